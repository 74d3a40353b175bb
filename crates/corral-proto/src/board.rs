//! The scoreboard: words of memory the master shares with every worker of a pool (mapped by
//! `corral_sys::SharedWords`). Its layout is part of the protocol, so it lives here.
//!
//! - **Cancelled requests** (`cancel_word`): the master writes a request's id when its client
//!   left while the request was still in the queue; a worker that takes it from the queue
//!   skips it (and says `Skipped`). A ring: a later cancellation may overwrite an older one, and then that request
//!   runs and is aborted the ordinary way.
//! - **The request ring** (`RING`, [`crate::ring`]): the pool's queue of request packets.
//! - **Wake** (`wake_word`, beside the slot's word): the master sets it when it waits for the
//!   slot's next packet; the slot, after it pushed one into its response ring, clears it and
//!   rings the doorbell on its socket.
//! - **Response rings** (`response_ring`, after each slot's words): the slot's packets to the
//!   master.
//! - **Read** (`read_word`, beside the slot's word): when the master last took a packet of
//!   the slot's, on the clock every process shares. A slot that finds its answers waiting and
//!   this stamp old knows that the master cannot pass them on (their client reads slowly or
//!   not at all), and takes no request until they have gone (see the worker's channel).
//! - **Slots** (`slot_word`): each slot writes the id of every request it takes, before
//!   running it. When a worker dies, the master reads its slots' words to learn which
//!   requests died with it (those still without a response get a 502). One cache line per
//!   slot, so that workers do not share lines.
//! - **Mail** (`mail_word`, beside the slot's word): the master sets it after sending a slot
//!   a frame the worker may already be past (an `Abort` that crossed the request's `End`). An
//!   idle slot reads nothing but the queue, so before it waits there again it looks at this
//!   word and, if set, discards what waits on its own socket (all of it is stale then).
//! - **Doorbells** (`doorbells`, after the last slot, [`crate::doorbells`]): one per worker
//!   process, which its idle slots sleep on while the request ring is empty, with the counts
//!   that say which process to wake. Room for as many processes as slots (a process has one
//!   slot at least).

use std::sync::atomic::AtomicU64;

use crate::doorbells::{self, Doorbells};
use crate::ring::{self, Ring};

/// Entries in the ring of cancelled requests.
pub const CANCEL_RING: usize = 4096;

/// Where the request ring starts (after the cancel ring); [`ring::REQUEST_WORDS`] long.
pub const RING: usize = CANCEL_RING;

/// Where the slots' words start.
const SLOTS: usize = RING + ring::REQUEST_WORDS;

/// Words of a slot's own words (one cache line) before its response ring.
const SLOT_WORDS: usize = 8;

/// Words per slot: its own words, then its response ring.
pub const SLOT_STRIDE: usize = SLOT_WORDS + ring::RESPONSE_WORDS;

/// The word that says whether request `id` was cancelled (it holds `id` if so).
pub fn cancel_word(id: u64) -> usize {
    (id % CANCEL_RING as u64) as usize
}

/// The word holding the id of the request slot `slot` took last (0: none yet).
pub fn slot_word(slot: usize) -> usize {
    SLOTS + slot * SLOT_STRIDE
}

/// The word the master sets when stale frames may wait on slot `slot`'s socket.
pub fn mail_word(slot: usize) -> usize {
    slot_word(slot) + 1
}

/// The word the master sets when it waits for slot `slot`'s next packet.
pub fn wake_word(slot: usize) -> usize {
    slot_word(slot) + 2
}

/// The word where the master stamps its clock (`corral_sys::coarse_millis`) each time it
/// takes a packet from slot `slot`.
pub fn read_word(slot: usize) -> usize {
    slot_word(slot) + 3
}

/// Where slot `slot`'s response ring starts ([`ring::RESPONSE_WORDS`] long).
fn response_ring_word(slot: usize) -> usize {
    slot_word(slot) + SLOT_WORDS
}

/// The pool's request ring in the scoreboard `board`.
pub fn request_ring(board: &[AtomicU64]) -> Ring<'_> {
    Ring::new(&board[RING..RING + ring::REQUEST_WORDS])
}

/// Slot `slot`'s response ring in the scoreboard `board`.
pub fn response_ring(board: &[AtomicU64], slot: usize) -> Ring<'_> {
    let start = response_ring_word(slot);
    Ring::new(&board[start..start + ring::RESPONSE_WORDS])
}

/// The pool's doorbells in the scoreboard `board`.
pub fn doorbells(board: &[AtomicU64]) -> Doorbells<'_> {
    let slots = slots(board.len());
    let start = slot_word(slots);
    Doorbells::new(&board[start..start + doorbells::words(slots)])
}

/// Words in a scoreboard with room for `slots` slots.
pub fn words(slots: usize) -> usize {
    slot_word(slots) + doorbells::words(slots)
}

/// How many slots a scoreboard of `words` words has room for.
pub fn slots(words: usize) -> usize {
    // Each slot brings its words and a process's doorbell; the doorbells' first line is extra.
    let per_slot = SLOT_STRIDE + doorbells::words(1) - doorbells::words(0);
    words.saturating_sub(SLOTS + doorbells::words(0)) / per_slot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_areas_do_not_overlap() {
        assert!(cancel_word(u64::MAX) < RING);
        assert!(RING + ring::REQUEST_WORDS <= slot_word(0));
        assert_eq!(slot_word(1) - slot_word(0), SLOT_STRIDE);
        assert!(mail_word(0) > slot_word(0) && wake_word(0) > mail_word(0));
        assert!(wake_word(0) < response_ring_word(0));
        assert_eq!(response_ring_word(0) + ring::RESPONSE_WORDS, slot_word(1));
        for n in [1, 7, 100] {
            assert_eq!(slots(words(n)), n);
            assert_eq!(slots(words(n) - 1), n - 1);
        }
        assert!(slot_word(6) < words(7));
        let board: Vec<AtomicU64> = (0..words(7)).map(|_| AtomicU64::new(0)).collect();
        assert_eq!(doorbells(&board).capacity(), 7);
        assert!(std::ptr::eq(
            doorbells(&board).bell(6),
            &board[slot_word(7) + doorbells::words(7) - 8 + 2]
        ));
    }
}
