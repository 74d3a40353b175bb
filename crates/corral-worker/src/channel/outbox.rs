//! The packet a slot is putting together: encoded frames, copied, and large body pieces,
//! shared.
//!
//! A body piece the app handed over in an immutable buffer (a Python `bytes`, lent as a
//! `Bytes`) is not copied into the packet: it stays where it is, at its place between the
//! frames, until the packet is sent, and is copied once, into the response ring or the
//! socket. Small pieces are copied: for them a copy costs less than the bookkeeping.

use std::io::IoSlice;

use bytes::{Bytes, BytesMut};

/// Frames waiting to be sent as one packet.
pub(crate) struct Outbox {
    /// The encoded frames and small pieces, in order; see `shared` for what goes between.
    copied: BytesMut,
    /// Shared pieces, each with its place: the length `copied` had when it was added.
    shared: Vec<(usize, Bytes)>,
    shared_len: usize,
}

impl Outbox {
    pub(crate) fn with_capacity(capacity: usize) -> Outbox {
        Outbox {
            copied: BytesMut::with_capacity(capacity),
            shared: Vec::new(),
            shared_len: 0,
        }
    }

    /// The packet's length so far.
    pub(crate) fn len(&self) -> usize {
        self.copied.len() + self.shared_len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where frames are encoded: at the end of the packet.
    pub(crate) fn frames(&mut self) -> &mut BytesMut {
        &mut self.copied
    }

    /// Appends a piece without copying it.
    pub(crate) fn push_shared(&mut self, piece: Bytes) {
        self.shared_len += piece.len();
        self.shared.push((self.copied.len(), piece));
    }

    pub(crate) fn clear(&mut self) {
        self.copied.clear();
        self.shared.clear();
        self.shared_len = 0;
    }

    /// A mark at the end of the packet, for `truncate`.
    pub(crate) fn mark(&self) -> usize {
        self.copied.len()
    }

    /// Drops the frames encoded since `mark` (none of them shared pieces).
    pub(crate) fn truncate(&mut self, mark: usize) {
        debug_assert!(self.shared.last().is_none_or(|(at, _)| *at <= mark));
        self.copied.truncate(mark);
    }

    /// Takes the frames encoded since `mark` out of the packet, as the start of another one.
    pub(crate) fn split_off(&mut self, mark: usize) -> Outbox {
        debug_assert!(self.shared.last().is_none_or(|(at, _)| *at <= mark));
        Outbox {
            copied: self.copied.split_off(mark),
            shared: Vec::new(),
            shared_len: 0,
        }
    }

    /// The packet's bytes, piece by piece, in order.
    pub(crate) fn parts(&self) -> impl Iterator<Item = &[u8]> {
        let mut from = 0;
        let between = self.shared.iter().flat_map(move |(at, piece)| {
            let copied = &self.copied[from..*at];
            from = *at;
            [copied, &piece[..]]
        });
        let last = std::iter::once_with(move || &self.copied[self.last_place()..]);
        between.chain(last).filter(|part| !part.is_empty())
    }

    /// The packet as the kernel gathers it.
    pub(crate) fn io_slices(&self) -> Vec<IoSlice<'_>> {
        self.parts().map(IoSlice::new).collect()
    }

    fn last_place(&self) -> usize {
        self.shared.last().map_or(0, |(at, _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(outbox: &Outbox) -> Vec<u8> {
        outbox.parts().flatten().copied().collect()
    }

    #[test]
    fn shared_pieces_keep_their_places_between_the_frames() {
        let mut o = Outbox::with_capacity(64);
        o.frames().extend_from_slice(b"head|");
        o.push_shared(Bytes::from_static(b"big1"));
        o.push_shared(Bytes::from_static(b"big2"));
        o.frames().extend_from_slice(b"|mid|");
        o.push_shared(Bytes::from_static(b"big3"));
        o.frames().extend_from_slice(b"|end");
        assert_eq!(bytes(&o), b"head|big1big2|mid|big3|end");
        assert_eq!(o.len(), 26);
        assert_eq!(o.io_slices().len(), 6, "no empty slices");
        o.clear();
        assert!(o.is_empty() && bytes(&o).is_empty());
    }

    #[test]
    fn frames_after_a_mark_can_be_dropped_or_moved() {
        let mut o = Outbox::with_capacity(64);
        o.frames().extend_from_slice(b"a");
        o.push_shared(Bytes::from_static(b"B"));
        let mark = o.mark();
        o.frames().extend_from_slice(b"tail");
        let moved = o.split_off(mark);
        assert_eq!(
            (bytes(&o), bytes(&moved)),
            (b"aB".to_vec(), b"tail".to_vec())
        );
        let mark = o.mark();
        o.frames().extend_from_slice(b"xyz");
        o.truncate(mark);
        assert_eq!(bytes(&o), b"aB");
    }
}
