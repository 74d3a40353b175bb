//! Whether this slot's answers are still on their way, and waiting for them to go.
//!
//! A slot is done with a request once its answer is in its response ring (or socket); the
//! master passes it on as fast as the client reads. A large answer to a client that reads
//! slowly, or not at all, can stay there long after the slot went back to the queue. A
//! request the slot took then would wait behind that answer, however idle the other slots
//! are. So before it takes one, a slot looks whether many of its answers wait *and* the
//! master has taken none of them for a while (the scoreboard's read stamp, see
//! `corral_proto::board`); if so it takes nothing, passes on a wake-up it had, and waits
//! until they have gone. A master that is merely busy keeps taking packets, and its slots
//! keep serving.

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use corral_sys::bell;

use super::SlotChannel;

/// Bytes of answers waiting (ring and socket) from which a slot may be stalled...
const STALL_BACKLOG: usize = 128 * 1024;
/// ...if the master has taken none of its packets for this long (the clock moves a few
/// milliseconds at a time).
const STALL_AFTER_MS: u64 = 20;
/// A stalled slot takes requests again once fewer bytes than this wait.
const DELIVERED_BELOW: usize = 16 * 1024;
/// The longest pause between two looks while a stalled slot waits.
const LONGEST_PAUSE: Duration = Duration::from_millis(16);

impl SlotChannel {
    /// True when the master cannot pass this slot's answers on (see the module's doc): the
    /// slot must `wait_until_delivered` before it takes a request.
    pub(crate) fn stalled(&mut self) -> bool {
        // The stamp first: under load the master has just read, and what waits need not be
        // counted (which may cost a system call).
        let read = self.pool.board.word(self.read_word).load(Ordering::Relaxed);
        if corral_sys::coarse_millis().saturating_sub(read) < STALL_AFTER_MS {
            return false;
        }
        self.undelivered() > STALL_BACKLOG
    }

    /// Waits (call without the GIL) until nearly all of this slot's answers have gone,
    /// looking every few milliseconds. A wake-up it had goes on to another sleeper first,
    /// since this slot will not take the request it was woken for. False if the master
    /// closed the queue meanwhile (it retires the worker).
    pub(crate) fn wait_until_delivered(&mut self) -> bool {
        self.done_looking();
        if !self.pool.ring().is_empty() {
            self.pool.wake_a_sleeper();
        }
        let mut pause = Duration::from_millis(1);
        while self.undelivered() >= DELIVERED_BELOW {
            if bell::is_closed(self.pool.doorbells().bell(self.process)) {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
        true
    }

    /// Bytes of this slot's answers the master has not taken: in the ring, and on the socket
    /// if the slot sent any there since it last found the socket read to its end (asking the
    /// kernel costs a system call, which the usual answer, all in the ring, does not pay).
    fn undelivered(&mut self) -> usize {
        let in_ring = self.pool.response_ring(self.board_slot).waiting_bytes();
        if !self.socket_used {
            return in_ring;
        }
        let on_socket = corral_sys::unread_by_peer(self.sock.as_fd()).unwrap_or_else(|e| {
            tracing::debug!("cannot ask how much of the slot's socket is unread: {e}");
            0
        });
        if on_socket == 0 {
            self.socket_used = false;
        }
        in_ring + on_socket
    }
}
