//! A doorbell in shared memory: a counting wake-up that threads of any process mapping the
//! word can ring and wait on, built on `futex(2)`.
//!
//! The word's low 32 bits are the futex: a count of rings nobody consumed yet, and a closed
//! bit. [`ring`] adds one to the count and wakes one waiter; [`wait`] consumes one ring,
//! sleeping while there is none; [`close`] sets the closed bit and wakes every waiter for good.
//! A ring nobody waits for is kept and consumed by the next waiter, so a ring is never lost
//! between a waiter's last look and its sleep.
//!
//! The futexes are not process-private (no `FUTEX_PRIVATE_FLAG`): the word lives in memory
//! that several processes map, and the kernel matches waiters and wakers by the page it is on.

use std::io;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

/// The closed bit, inside the futex's 32 bits.
const CLOSED: u64 = 1 << 31;

/// The ring count, below the closed bit.
const COUNT: u64 = CLOSED - 1;

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bell {
    /// A ring was consumed.
    Rung,
    /// The bell is closed: nobody will ring it again.
    Closed,
}

/// Rings the bell: one waiter (if any sleeps) wakes and consumes the ring.
pub fn ring(word: &AtomicU64) {
    word.fetch_add(1, Ordering::SeqCst);
    futex_wake(word, 1);
}

/// Closes the bell: every waiter, now and later, returns [`Bell::Closed`].
pub fn close(word: &AtomicU64) {
    word.fetch_or(CLOSED, Ordering::SeqCst);
    futex_wake(word, i32::MAX);
}

/// Whether the bell was closed (looked at without consuming a ring).
pub fn is_closed(word: &AtomicU64) -> bool {
    word.load(Ordering::SeqCst) & CLOSED != 0
}

/// Consumes one ring, sleeping until there is one; [`Bell::Closed`] once the bell is closed.
/// An error only if the kernel refuses to let the thread wait (no futexes: a sandbox).
pub fn wait(word: &AtomicU64) -> io::Result<Bell> {
    loop {
        let seen = word.load(Ordering::SeqCst);
        match try_consume(word, seen) {
            Some(bell) => return Ok(bell),
            None if seen & COUNT == 0 => futex_wait(word, seen)?,
            None => {} // another waiter consumed first: look again
        }
    }
}

/// Consumes one ring if there is one, without sleeping: `None` if there was none.
pub fn try_wait(word: &AtomicU64) -> Option<Bell> {
    loop {
        let seen = word.load(Ordering::SeqCst);
        match try_consume(word, seen) {
            None if seen & COUNT != 0 => continue,
            consumed => return consumed,
        }
    }
}

/// One attempt to consume a ring from the value `seen`.
fn try_consume(word: &AtomicU64, seen: u64) -> Option<Bell> {
    if seen & CLOSED != 0 {
        return Some(Bell::Closed);
    }
    if seen & COUNT == 0 {
        return None;
    }
    word.compare_exchange(seen, seen - 1, Ordering::SeqCst, Ordering::SeqCst)
        .ok()
        .map(|_| Bell::Rung)
}

/// The address of the word's futex: its low 32 bits.
fn futex_address(word: &AtomicU64) -> *const u32 {
    let base = word.as_ptr() as *const u32;
    if cfg!(target_endian = "little") {
        base
    } else {
        base.wrapping_add(1)
    }
}

/// Sleeps while the word's futex still holds `seen`'s low 32 bits. Returns on a wake-up, on
/// a changed value (`EAGAIN`) and on a signal alike: the caller looks again.
fn futex_wait(word: &AtomicU64, seen: u64) -> io::Result<()> {
    // SAFETY: the address points into `word`, a live, aligned atomic for the whole call (the
    // borrow outlives it); FUTEX_WAIT only reads those 4 bytes atomically and compares them
    // with `seen`'s low half; no timeout, no other pointer is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            futex_address(word),
            libc::FUTEX_WAIT,
            seen as u32,
            ptr::null::<libc::timespec>(),
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EINTR) => Ok(()),
        _ => Err(e),
    }
}

/// Wakes up to `n` threads waiting on the word's futex.
fn futex_wake(word: &AtomicU64, n: i32) {
    // SAFETY: as in `futex_wait`: a valid address into a live atomic; FUTEX_WAKE reads no
    // memory through it (the kernel uses it only as the key of the waiters' queue).
    let woke = unsafe { libc::syscall(libc::SYS_futex, futex_address(word), libc::FUTEX_WAKE, n) };
    debug_assert!(
        woke >= 0,
        "FUTEX_WAKE failed: {}",
        io::Error::last_os_error()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    use crate::SharedWords;

    fn shared_word() -> Arc<SharedWords> {
        Arc::new(SharedWords::create("bell-test", 8).unwrap().0)
    }

    #[test]
    fn a_ring_before_the_wait_is_kept() {
        let words = shared_word();
        ring(words.word(0));
        ring(words.word(0));
        assert_eq!(wait(words.word(0)).unwrap(), Bell::Rung);
        assert_eq!(try_wait(words.word(0)), Some(Bell::Rung));
        assert_eq!(try_wait(words.word(0)), None, "both rings consumed");
    }

    #[test]
    fn a_ring_wakes_one_sleeper_and_close_wakes_the_rest() {
        let words = shared_word();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        for _ in 0..3 {
            let (words, done) = (words.clone(), done_tx.clone());
            thread::spawn(move || done.send(wait(words.word(0)).unwrap()).unwrap());
        }
        thread::sleep(Duration::from_millis(50));
        assert!(done_rx.try_recv().is_err(), "nobody wakes without a ring");
        ring(words.word(0));
        let first = done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(first, Bell::Rung);
        thread::sleep(Duration::from_millis(50));
        assert!(done_rx.try_recv().is_err(), "one ring wakes one sleeper");
        close(words.word(0));
        for _ in 0..2 {
            let rest = done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(rest, Bell::Closed);
        }
        assert_eq!(
            wait(words.word(0)).unwrap(),
            Bell::Closed,
            "closed for good"
        );
    }
}
