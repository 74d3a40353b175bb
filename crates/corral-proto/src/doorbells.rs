//! The doorbells of a pool's request queue: one per worker process, in the scoreboard (see
//! [`crate::board`]), on which the slots of that process sleep while the request ring
//! ([`crate::ring`]) is empty, and the counts that say whom to wake.
//!
//! # Layout
//! A first cache line holds `total`, how many slots sleep in the whole pool (so that a waker
//! with nobody to wake reads one word), and `in_use`, one more than the highest process
//! number the master ever gave a worker (the wakers look no further). Then one line per
//! process: `sleepers` (its slots that said they sleep), `waking` (1 while a slot of it was
//! woken and has not looked at the ring yet) and `bell` (a futex word for `corral_sys::bell`).
//!
//! # Sleeping and waking
//! A slot that finds the ring empty counts itself in its process's `sleepers` and in `total`,
//! looks at the ring once more, and only then waits on its process's doorbell. Both sides
//! write before they read (sequentially consistent), so one of them always sees the other: a
//! packet is never left behind while every slot sleeps.
//!
//! Whoever leaves a packet in the ring — the master after a push, a slot that took a packet
//! and sees more waiting — calls [`Doorbells::wake_one`]. It chooses the process with the most
//! sleeping slots (the fewest busy ones) among those with no woken slot on its way to the
//! ring, marks that process `waking`, and the caller rings its bell. The woken slot takes
//! itself off the counts ([`Doorbells::stop_sleeping`]: only a slot ever takes its own count
//! off, so the counts stay exact whatever the timing), and says it has looked
//! ([`Doorbells::looked`]) once it took a packet or found none; then it does the same as any
//! waker for whatever it left in the ring: the wake-ups go along the slots as a chain while
//! packets wait, and no packet waits for a slot that is asleep while the slots that are awake
//! are all busy.
//!
//! One wake-up per process at a time, because the threads of one process share Python's lock
//! (GIL): a slot woken while a sibling holds it can do nothing until the sibling lets go, and
//! the sibling takes the next packet itself. And never a process whose woken slot is still on
//! its way: if that slot waits for a lock that C code holds for seconds, the next packet goes
//! to another process, not behind it.
//!
//! A woken slot may find the packet gone (another slot took it); it counts itself again and
//! goes back to sleep. A doorbell nobody was waiting for (its slot counted itself, then saw
//! the packet and took it instead of sleeping) is kept for the next slot of that process that
//! waits, which costs it a spurious look; until then that process counts as having a woken
//! slot on its way. When a worker process is gone, the master forgets its counts
//! ([`Doorbells::forget_process`]) before its number is given to another
//! ([`Doorbells::open`]). `total` is raised before a process's count and lowered after it, so
//! that it never reads less than the sum of the counts (a slot killed between the two leaves
//! it one too high, which only costs wakers a look at the lines).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::ring::Ring;

/// Words per cache line.
const LINE: usize = 8;

/// A process's words, within its line.
const SLEEPERS: usize = 0;
const WAKING: usize = 1;
const BELL: usize = 2;

/// Words of the doorbells of `processes` worker processes.
pub const fn words(processes: usize) -> usize {
    LINE * (1 + processes)
}

/// The doorbells over their area of shared memory.
#[derive(Clone, Copy)]
pub struct Doorbells<'a> {
    total: &'a AtomicU64,
    in_use: &'a AtomicU64,
    lines: &'a [AtomicU64],
}

impl<'a> Doorbells<'a> {
    /// The doorbells laid out over `area` ([`words`] long; zeroed memory: nobody sleeps).
    pub fn new(area: &'a [AtomicU64]) -> Doorbells<'a> {
        assert!(area.len() >= words(1), "room for one process at least");
        Doorbells {
            total: &area[0],
            in_use: &area[1],
            lines: &area[LINE..],
        }
    }

    /// How many processes there is room for.
    pub fn capacity(&self) -> usize {
        self.lines.len() / LINE
    }

    fn word(&self, process: usize, which: usize) -> &'a AtomicU64 {
        &self.lines[process * LINE + which]
    }

    /// Readies process number `process` for a new worker: nobody of it sleeps, its bell holds
    /// no ring. Only while no live process has that number.
    pub fn open(&self, process: usize) {
        assert!(
            process < self.capacity(),
            "process {process} has a doorbell"
        );
        for which in [SLEEPERS, WAKING, BELL] {
            self.word(process, which).store(0, Ordering::SeqCst);
        }
        self.in_use.fetch_max(process as u64 + 1, Ordering::SeqCst);
    }

    /// Process `process` is gone: its sleepers and its woken slot no longer count.
    pub fn forget_process(&self, process: usize) {
        self.word(process, WAKING).store(0, Ordering::SeqCst);
        let gone = self.word(process, SLEEPERS).swap(0, Ordering::SeqCst);
        subtract(self.total, gone);
    }

    /// The doorbell of process `process`: a word for `corral_sys::bell`.
    pub fn bell(&self, process: usize) -> &'a AtomicU64 {
        self.word(process, BELL)
    }

    /// The doorbells of every process number given out so far.
    pub fn bells_in_use(&self) -> impl Iterator<Item = &'a AtomicU64> + 'a {
        let this = *self;
        (0..this.in_use()).map(move |p| this.bell(p))
    }

    fn in_use(&self) -> usize {
        (self.in_use.load(Ordering::SeqCst) as usize).min(self.capacity())
    }

    /// How many slots of process `process` count themselves asleep now.
    pub fn sleepers(&self, process: usize) -> u64 {
        self.word(process, SLEEPERS).load(Ordering::SeqCst)
    }

    /// A slot of `process` found `ring` empty and means to wait on its doorbell: counts it
    /// among the sleepers. False if a packet arrived meanwhile: it is not counted, and takes
    /// the packet instead (a doorbell rung for it meanwhile is kept: see the module doc).
    pub fn start_sleeping(&self, process: usize, ring: &Ring<'_>) -> bool {
        self.count_asleep(process);
        if ring.is_empty() {
            return true;
        }
        self.stop_sleeping(process);
        false
    }

    fn count_asleep(&self, process: usize) {
        self.total.fetch_add(1, Ordering::SeqCst);
        self.word(process, SLEEPERS).fetch_add(1, Ordering::SeqCst);
    }

    /// A slot of `process` that counted itself asleep is awake again (its doorbell rang): takes
    /// it off the counts.
    pub fn stop_sleeping(&self, process: usize) {
        subtract(self.word(process, SLEEPERS), 1);
        subtract(self.total, 1);
    }

    /// After a push, or after a take that left packets: chooses the process to wake (see the
    /// module doc) and marks its wake-up. The caller then rings that process's
    /// [`Doorbells::bell`]. `None`: nobody to wake.
    pub fn wake_one(&self) -> Option<usize> {
        // Bounded: a failed claim means another waker marked that process just now.
        for _ in 0..4 {
            if self.total.load(Ordering::SeqCst) == 0 {
                return None;
            }
            let process = self.most_sleepers_not_waking()?;
            let claimed = self.word(process, WAKING).compare_exchange(
                0,
                1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            if claimed.is_ok() {
                return Some(process);
            }
        }
        None
    }

    /// The process with the most sleeping slots and no woken slot on its way; the lowest
    /// number among equals, so that a lightly loaded pool keeps its requests on one warm
    /// process.
    fn most_sleepers_not_waking(&self) -> Option<usize> {
        let mut best = None;
        let mut most = 0;
        for process in 0..self.in_use() {
            let sleepers = self.sleepers(process);
            if sleepers > most && self.word(process, WAKING).load(Ordering::SeqCst) == 0 {
                best = Some(process);
                most = sleepers;
            }
        }
        best
    }

    /// The slot of `process` that its doorbell woke has looked at the ring (it took a packet
    /// or found none).
    pub fn looked(&self, process: usize) {
        self.word(process, WAKING).store(0, Ordering::SeqCst);
    }
}

/// Takes `n` off `word`, stopping at zero.
fn subtract(word: &AtomicU64, n: u64) {
    let _ = word.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
        Some(w.saturating_sub(n))
    });
}

#[cfg(test)]
mod tests;
