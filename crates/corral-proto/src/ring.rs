//! Rings of packets in the memory the master shares with its workers (areas of the
//! scoreboard, see [`crate::board`]):
//!
//! - **the request ring**, a pool's queue of request packets: one producer (the master, which
//!   serialises its own threads) appends packets, any number of consumers (the idle slots of
//!   every worker) take them;
//! - **a response ring** per slot: the slot's packets to the master, one producer and one
//!   consumer (see "Response rings" below).
//!
//! Passing a packet costs no system call, so under load a worker that finishes a request takes
//! the next and hands over its response without entering the kernel, and the master queues a
//! request and reads a response without entering it either.
//!
//! # Layout
//! Two control words, each on a cache line of its own, then `data` words:
//! - `head`: where the next packet goes (a position in words, counted from the start and never
//!   wrapped); written by the master alone.
//! - `tail`: the first packet nobody took yet; consumers advance it with compare-and-swap.
//!
//! A packet is one header word (its length in bytes) and its bytes in the words after it,
//! copied in bulk (`corral_sys::shared::copy_into_words`, whose accesses are atomic bytes;
//! the unused end of the last word is left as it was). The header and the control words are
//! atomics; the payload is published by the release store of `head` and read after an
//! acquire load of it. A packet never wraps around the end of `data`: when it would, the
//! producer writes a [`SKIP`] header that covers the rest of the lap and starts the packet at
//! the beginning. A push always leaves one word free, for a [`SWITCH`] marker.
//!
//! # Taking a packet, and a worker dying while it does
//! A consumer copies the packet at `tail` out *first* and then claims it by moving `tail`
//! past it. The master never overwrites a word nobody took, so when the claim succeeds the
//! copy was whole; when it fails, another slot took the packet (the copy may be torn and is
//! thrown away). A worker killed at any point has therefore either not taken the packet (it
//! stays for the next slot) or taken all of it; the pool's sweep answers a packet taken but
//! not recorded on the scoreboard.
//!
//! # Sleeping and waking
//! A slot that finds the request ring empty sleeps on its process's doorbell, and whoever
//! leaves a packet in the ring wakes one: see [`crate::doorbells`].
//!
//! # Response rings
//! The slot's socket stays: it carries the packets that hold a file descriptor or find the
//! ring full, the doorbell that wakes a master waiting for the slot (a one-byte packet, sent
//! only when the master said it waits: the scoreboard's wake word), and the end of stream when
//! the worker dies. Order is kept by a [`SWITCH`] marker: a slot that must use the socket
//! pushes the marker first, and from there on the master reads the socket; the slot returns to
//! the ring with the frame `BackToRing` at the end of a socket packet, when the ring has room
//! for another marker (the master may not have read the last one yet). A ring too full for a
//! packet sends it through the socket too, so a slot never waits for room in its ring: the
//! socket's own buffer is what holds a worker back from a master that does not read.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;

/// Words before the data: two control words, a cache line each.
pub const CONTROL_WORDS: usize = 2 * LINE;

/// Words of a pool's request ring (4 MiB of packets).
pub const REQUEST_WORDS: usize = CONTROL_WORDS + (1 << 19);

/// Words of a slot's response ring (512 KiB of packets: under load a worker answers requests
/// faster than the master sends the answers on, and what does not fit here goes through the
/// slot's socket, which costs both sides a system call per packet; 128 KiB held seven 16 KiB
/// answers, and more than half of them overflowed at 64 connections).
pub const RESPONSE_WORDS: usize = CONTROL_WORDS + (1 << 16);

/// Words per cache line.
const LINE: usize = 8;

/// The header of padding: the rest of the lap holds no packet.
pub const SKIP: u64 = u64::MAX;

/// The header of the marker that says: the next packets come through the socket.
pub const SWITCH: u64 = u64::MAX - 1;

/// The largest packet a ring of `words` words takes, in bytes (a quarter of its data, so that
/// a full ring still holds several).
pub const fn max_packet(words: usize) -> usize {
    (words - CONTROL_WORDS) * 8 / 4
}

const _: () = assert!(
    crate::MAX_PACKET <= max_packet(REQUEST_WORDS),
    "every IPC packet fits the request ring"
);

const _: () = assert!(
    crate::MAX_PACKET <= max_packet(RESPONSE_WORDS),
    "every IPC packet fits a response ring (only a full ring or a descriptor needs the socket)"
);

/// The ring over its area of shared memory.
#[derive(Clone, Copy)]
pub struct Ring<'a> {
    head: &'a AtomicU64,
    tail: &'a AtomicU64,
    data: &'a [AtomicU64],
}

/// Why a packet was not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// Not enough room until the consumers take what waits.
    Full,
    /// Larger than [`max_packet`]: it never fits.
    TooLarge,
}

/// What [`Ring::take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Nothing waits.
    Empty,
    /// A packet, appended to the caller's buffer.
    Packet,
    /// A [`SWITCH`] marker: the next packets come through the socket.
    Switch,
}

/// The ring's words hold something no master wrote: the memory is corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request ring is corrupt (header {header:#x} at position {position})")]
pub struct Corrupt {
    pub header: u64,
    pub position: u64,
}

impl<'a> Ring<'a> {
    /// The ring laid out over `area` (zeroed memory is an empty ring).
    pub fn new(area: &'a [AtomicU64]) -> Ring<'a> {
        assert!(area.len() > 2 * CONTROL_WORDS, "a ring area holds data");
        Ring {
            head: &area[0],
            tail: &area[LINE],
            data: &area[CONTROL_WORDS..],
        }
    }

    /// Where the consumers stand: a count of words taken that only grows, so that two reads
    /// that differ mean something was taken in between.
    pub fn taken(&self) -> u64 {
        self.tail.load(Ordering::SeqCst)
    }

    /// How many bytes of packets wait to be taken (their words, headers and padding
    /// included): a measure of how far the consumer is behind, not a count of payload.
    pub fn waiting_bytes(&self) -> usize {
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        head.saturating_sub(tail) as usize * 8
    }

    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::SeqCst) == self.tail.load(Ordering::SeqCst)
    }

    /// Appends a packet of `len` bytes made of `parts` (in order). Only one thread of one
    /// process may push at a time: the caller serialises.
    pub fn push<'p>(
        &self,
        len: usize,
        parts: impl IntoIterator<Item = &'p [u8]>,
    ) -> Result<(), PushError> {
        if len > self.max_packet() {
            return Err(PushError::TooLarge);
        }
        let n = self.data.len() as u64;
        let need = 1 + words_for(len) as u64;
        let mut head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        let offset = head % n;
        let pad = if offset + need > n { n - offset } else { 0 };
        // One word stays free, for a switch marker.
        if head - tail + pad + need + 1 > n {
            return Err(PushError::Full);
        }
        if pad > 0 {
            self.data[offset as usize].store(SKIP, Ordering::Relaxed);
            head += pad;
        }
        let start = (head % n) as usize;
        // Only the packet's own words: parts longer than `len` panic in the copy instead of
        // overwriting packets nobody took.
        let written = pack(&self.data[start + 1..start + need as usize], parts);
        assert_eq!(written, len, "the parts add up to the packet's length");
        self.data[start].store(len as u64, Ordering::Relaxed);
        self.publish(head + need);
        Ok(())
    }

    /// Appends a [`SWITCH`] marker, in the word every push leaves free. Same caller rule as
    /// [`Ring::push`].
    pub fn push_switch(&self) -> Result<(), PushError> {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        if head - tail + 1 > self.data.len() as u64 {
            return Err(PushError::Full);
        }
        let offset = head % self.data.len() as u64;
        self.data[offset as usize].store(SWITCH, Ordering::Relaxed);
        self.publish(head + 1);
        Ok(())
    }

    /// Empties the ring. Only while nobody else uses it: before the slot of a dead worker is
    /// given to a new one.
    pub fn reset(&self) {
        for word in [self.head, self.tail] {
            word.store(0, Ordering::SeqCst);
        }
    }

    /// Whether a [`SWITCH`] marker would fit now. It keeps fitting until the producer pushes
    /// again (consumers only make room), so a producer that checks this before it goes back
    /// to the ring can always leave it again.
    pub fn has_room_for_switch(&self) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        head - tail < self.data.len() as u64
    }

    /// SeqCst: publishes what was written below `head` (release), and orders this store before
    /// the producer's next look at whether its consumer sleeps.
    fn publish(&self, head: u64) {
        self.head.store(head, Ordering::SeqCst);
    }

    /// The largest packet this ring takes, in bytes.
    pub fn max_packet(&self) -> usize {
        max_packet(self.data.len() + CONTROL_WORDS)
    }

    /// Takes the oldest packet (appending its bytes to `out`) or marker.
    pub fn take(&self, out: &mut BytesMut) -> Result<Taken, Corrupt> {
        let n = self.data.len() as u64;
        let kept = out.len();
        // Bounded: every failed claim means another slot took a packet, and the ring holds
        // at most `n` words of them. A consumer that keeps losing gives up, as if empty.
        for _ in 0..n {
            let tail = self.tail.load(Ordering::Acquire);
            let head = self.head.load(Ordering::Acquire);
            if tail == head {
                return Ok(Taken::Empty);
            }
            let offset = tail % n;
            // Acquire: ordered before the look at `tail` in `check`, so that a header
            // overwritten by a lapping producer comes with the tail that moved past it.
            let header = self.data[offset as usize].load(Ordering::Acquire);
            let next = match self.check(header, tail, head) {
                Checked::Skip => tail - offset + n,
                Checked::Switch => tail + 1,
                Checked::Packet(len) => {
                    corral_sys::shared::append_from_words(
                        &self.data[offset as usize + 1..],
                        len,
                        out,
                    );
                    tail + 1 + words_for(len) as u64
                }
                Checked::Stale => continue,
                Checked::Corrupt => {
                    return Err(Corrupt {
                        header,
                        position: tail,
                    })
                }
            };
            let claimed =
                self.tail
                    .compare_exchange(tail, next, Ordering::AcqRel, Ordering::Relaxed);
            match claimed {
                Ok(_) if header == SKIP => continue,
                Ok(_) if header == SWITCH => return Ok(Taken::Switch),
                Ok(_) => return Ok(Taken::Packet),
                Err(_) => out.truncate(kept),
            }
        }
        Ok(Taken::Empty)
    }

    /// What the header read at `tail` says, given the `head` read with it.
    fn check(&self, header: u64, tail: u64, head: u64) -> Checked {
        let n = self.data.len() as u64;
        let offset = tail % n;
        let fits = |len: u64| {
            len as usize <= self.max_packet() && {
                let need = 1 + words_for(len as usize) as u64;
                offset + need <= n && tail + need <= head
            }
        };
        if header == SKIP {
            return Checked::Skip;
        }
        if header == SWITCH {
            return Checked::Switch;
        }
        if fits(header) {
            return Checked::Packet(header as usize);
        }
        // Either the master lapped this reader (the tail moved on) or the memory is bad.
        if self.tail.load(Ordering::Acquire) != tail {
            Checked::Stale
        } else {
            Checked::Corrupt
        }
    }
}

enum Checked {
    Skip,
    Switch,
    Packet(usize),
    /// Read while the master overwrote it: look again.
    Stale,
    Corrupt,
}

fn words_for(bytes: usize) -> usize {
    bytes.div_ceil(8)
}

/// Copies `parts` one after another into `words`; returns the bytes written.
fn pack<'p>(words: &[AtomicU64], parts: impl IntoIterator<Item = &'p [u8]>) -> usize {
    let mut at = 0;
    for part in parts {
        corral_sys::shared::copy_into_words(words, at, part);
        at += part.len();
    }
    at
}

#[cfg(test)]
mod tests;
