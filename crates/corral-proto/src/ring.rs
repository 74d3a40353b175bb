//! The request ring: a pool's queue of request packets, in the memory the master shares with
//! its workers (an area of the scoreboard, see [`crate::board`]).
//!
//! One producer (the master, which serialises its own threads) appends packets; any number of
//! consumers (the idle slots of every worker) take them. Taking one costs no system call, so a
//! worker that finishes a request under load takes the next without entering the kernel, and
//! the master queues one without entering it either.
//!
//! # Layout
//! Three control words, each on a cache line of its own, then `data` words:
//! - `head`: where the next packet goes (a position in words, counted from the start and never
//!   wrapped); written by the master alone.
//! - `tail`: the first packet nobody took yet; consumers advance it with compare-and-swap.
//! - `sleepers`: how many slots said they would block on the queue socket (see below).
//!
//! A packet is one header word (its length in bytes) and its bytes packed little endian into
//! words. A packet never wraps around the end of `data`: when it would, the master writes a
//! [`SKIP`] header that covers the rest of the lap and starts the packet at the beginning.
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
//! A slot that finds the ring empty counts itself in `sleepers`, looks at the ring once more,
//! and only then blocks reading the pool's queue socket. The master, after it appends a packet,
//! takes one sleeper off the count, if there is one, and writes a one-byte *doorbell* to that
//! socket, which wakes one blocked slot. Both sides write before they read (sequentially
//! consistent), so one of them always sees the other: a packet is never left behind while
//! every slot sleeps. A woken slot may find the packet gone (another slot took it); it counts
//! itself again and goes back to sleep. A doorbell nobody was waiting for only costs a
//! spurious wake-up.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;

/// Words of packet data in a pool's ring (4 MiB).
pub const DATA_WORDS: usize = 1 << 19;

/// Words before the data: three control words, a cache line each.
pub const CONTROL_WORDS: usize = 3 * LINE;

/// Words of the whole ring area.
pub const WORDS: usize = CONTROL_WORDS + DATA_WORDS;

/// Words per cache line.
const LINE: usize = 8;

/// The header of padding: the rest of the lap holds no packet.
pub const SKIP: u64 = u64::MAX;

/// The largest packet the ring takes, in bytes (a quarter of it, so that a full ring still
/// holds several).
pub const MAX_PACKET_BYTES: usize = DATA_WORDS * 8 / 4;

const _: () = assert!(
    crate::MAX_PACKET <= MAX_PACKET_BYTES,
    "every IPC packet fits the ring"
);

/// The ring over its area of shared memory.
#[derive(Clone, Copy)]
pub struct Ring<'a> {
    head: &'a AtomicU64,
    tail: &'a AtomicU64,
    sleepers: &'a AtomicU64,
    data: &'a [AtomicU64],
}

/// Why a packet was not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// Not enough room until slots take what waits.
    Full,
    /// Larger than [`MAX_PACKET_BYTES`]: it never fits.
    TooLarge,
}

/// The ring's words hold something no master wrote: the memory is corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request ring is corrupt (header {header:#x} at position {position})")]
pub struct Corrupt {
    pub header: u64,
    pub position: u64,
}

impl<'a> Ring<'a> {
    /// The ring laid out over `area` ([`WORDS`] words; zeroed memory is an empty ring).
    pub fn new(area: &'a [AtomicU64]) -> Ring<'a> {
        assert_eq!(area.len(), WORDS, "a ring area has {WORDS} words");
        Ring {
            head: &area[0],
            tail: &area[LINE],
            sleepers: &area[2 * LINE],
            data: &area[CONTROL_WORDS..],
        }
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
        if len > MAX_PACKET_BYTES {
            return Err(PushError::TooLarge);
        }
        let n = self.data.len() as u64;
        let need = 1 + words_for(len) as u64;
        let mut head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        let offset = head % n;
        let pad = if offset + need > n { n - offset } else { 0 };
        if head - tail + pad + need > n {
            return Err(PushError::Full);
        }
        if pad > 0 {
            self.data[offset as usize].store(SKIP, Ordering::Relaxed);
            head += pad;
        }
        let start = (head % n) as usize;
        let written = pack(&self.data[start + 1..], parts);
        debug_assert_eq!(written, len, "the parts add up to the packet's length");
        self.data[start].store(len as u64, Ordering::Relaxed);
        // SeqCst: publishes the packet (release) and orders this store before the read of
        // `sleepers` in `wake_one`.
        self.head.store(head + need, Ordering::SeqCst);
        Ok(())
    }

    /// Takes the oldest packet, appending its bytes to `out`. `Ok(false)`: the ring is empty.
    pub fn take(&self, out: &mut BytesMut) -> Result<bool, Corrupt> {
        let n = self.data.len() as u64;
        let kept = out.len();
        // Bounded: every failed claim means another slot took a packet, and the ring holds
        // at most `n` words of them. A consumer that keeps losing gives up, as if empty.
        for _ in 0..n {
            let tail = self.tail.load(Ordering::Acquire);
            let head = self.head.load(Ordering::Acquire);
            if tail == head {
                return Ok(false);
            }
            let offset = tail % n;
            let header = self.data[offset as usize].load(Ordering::Relaxed);
            let next = match self.check(header, tail, head) {
                Checked::Skip => tail - offset + n,
                Checked::Packet(len) => {
                    unpack(&self.data[offset as usize + 1..], len, out);
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
                Ok(_) => return Ok(true),
                Err(_) => out.truncate(kept),
            }
        }
        Ok(false)
    }

    /// What the header read at `tail` says, given the `head` read with it.
    fn check(&self, header: u64, tail: u64, head: u64) -> Checked {
        let n = self.data.len() as u64;
        let offset = tail % n;
        let fits = |len: u64| {
            len as usize <= MAX_PACKET_BYTES && {
                let need = 1 + words_for(len as usize) as u64;
                offset + need <= n && tail + need <= head
            }
        };
        if header == SKIP {
            return Checked::Skip;
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

    /// A slot found the ring empty and means to block until a doorbell: counts it among the
    /// sleepers. False if a packet arrived meanwhile (then it is not counted, or its doorbell
    /// is already on its way, which only costs someone a spurious wake-up): take it instead.
    pub fn start_sleeping(&self) -> bool {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        if self.is_empty() {
            return true;
        }
        let _ = self
            .sleepers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| s.checked_sub(1));
        false
    }

    /// After a push: takes one sleeper off the count. True if there was one; the caller then
    /// rings the doorbell.
    pub fn wake_one(&self) -> bool {
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return false;
        }
        self.sleepers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| s.checked_sub(1))
            .is_ok()
    }
}

enum Checked {
    Skip,
    Packet(usize),
    /// Read while the master overwrote it: look again.
    Stale,
    Corrupt,
}

fn words_for(bytes: usize) -> usize {
    bytes.div_ceil(8)
}

/// Packs `parts` into `words`, little endian; returns the bytes written.
fn pack<'p>(words: &[AtomicU64], parts: impl IntoIterator<Item = &'p [u8]>) -> usize {
    let mut word = 0;
    let mut partial = [0u8; 8];
    let mut filled = 0;
    let mut total = 0;
    for mut part in parts {
        total += part.len();
        while filled > 0 && !part.is_empty() {
            partial[filled] = part[0];
            part = &part[1..];
            filled += 1;
            if filled == 8 {
                words[word].store(u64::from_le_bytes(partial), Ordering::Relaxed);
                word += 1;
                filled = 0;
            }
        }
        if part.is_empty() {
            continue;
        }
        // Word aligned from here on.
        let mut chunks = part.chunks_exact(8);
        for chunk in &mut chunks {
            let bytes: [u8; 8] = chunk.try_into().expect("chunks of eight");
            words[word].store(u64::from_le_bytes(bytes), Ordering::Relaxed);
            word += 1;
        }
        let rest = chunks.remainder();
        partial[..rest.len()].copy_from_slice(rest);
        filled = rest.len();
    }
    if filled > 0 {
        partial[filled..].fill(0);
        words[word].store(u64::from_le_bytes(partial), Ordering::Relaxed);
    }
    total
}

/// Appends `len` bytes packed in `words` to `out`.
fn unpack(words: &[AtomicU64], len: usize, out: &mut BytesMut) {
    out.reserve(words_for(len) * 8);
    let start = out.len();
    for w in &words[..words_for(len)] {
        out.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    out.truncate(start + len);
}

#[cfg(test)]
mod tests;
