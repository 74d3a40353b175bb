//! `wsgi.input`: the request body, read from the master as the app asks for it.
//!
//! Bodies are not held whole in memory: each read pulls pieces from the transport (with the GIL
//! released while it waits) until it has what was asked for. The pieces are kept as they
//! came (they share the memory of the packets they arrived in) and copied once, into the
//! `bytes` object a read returns.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::response::ended_err;
use crate::RequestIo;

#[pyclass(module = "corral", name = "InputStream")]
pub struct InputStream {
    io: RequestIo,
    buf: Pieces,
    eof: bool,
}

/// Body bytes received and not yet read. Large pieces are kept as they arrived (they share
/// the memory of their packet); small ones are copied together, so that a body sent in tiny
/// pieces does not keep a whole receive buffer alive per piece.
#[derive(Default)]
struct Pieces {
    /// Large pieces, and small ones copied together before them.
    queue: VecDeque<Bytes>,
    /// Small pieces copied together since the last large one: after `queue`.
    tail: BytesMut,
    len: usize,
}

/// Pieces from this size on are kept rather than copied (a kept piece holds its packet's
/// buffer, at most `MAX_PACKET`, 80 KiB, so at most 2.5 times its own size).
const KEEP_FROM: usize = 32 * 1024;

impl Pieces {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, piece: Bytes) {
        self.len += piece.len();
        if piece.len() < KEEP_FROM {
            self.tail.extend_from_slice(&piece);
            return;
        }
        if !self.tail.is_empty() {
            self.queue.push_back(self.tail.split().freeze());
        }
        self.queue.push_back(piece);
    }

    /// Every piece, in order (some may be empty).
    fn all(&self) -> impl Iterator<Item = &[u8]> {
        let queued = self.queue.iter().map(|piece| &piece[..]);
        queued.chain(std::iter::once(&self.tail[..]))
    }

    /// Where the first `byte` at or after position `from` is.
    fn find(&self, byte: u8, from: usize) -> Option<usize> {
        let mut start = 0;
        for piece in self.all() {
            let end = start + piece.len();
            if end > from {
                let skip = from.saturating_sub(start);
                if let Some(i) = piece[skip..].iter().position(|&c| c == byte) {
                    return Some(start + skip + i);
                }
            }
            start = end;
        }
        None
    }

    /// The first `n` bytes (at most `len()`), in pieces.
    fn front(&self, n: usize) -> impl Iterator<Item = &[u8]> {
        let mut left = n;
        let pieces = self.all().filter(|piece| !piece.is_empty());
        pieces.map_while(move |piece| {
            let take = piece.len().min(left);
            left -= take;
            (take > 0).then(|| &piece[..take])
        })
    }

    /// Drops the first `n` bytes (at most `len()`).
    fn advance(&mut self, n: usize) {
        let mut left = n.min(self.len);
        self.len -= left;
        while left > 0 {
            let Some(piece) = self.queue.front_mut() else {
                self.tail.advance(left);
                return;
            };
            let take = piece.len().min(left);
            piece.advance(take);
            if piece.is_empty() {
                self.queue.pop_front();
            }
            left -= take;
        }
    }
}

impl InputStream {
    pub(crate) fn new(io: RequestIo) -> InputStream {
        InputStream {
            io,
            buf: Pieces::default(),
            eof: false,
        }
    }

    /// Drops what was received and not read (the request is over).
    pub(crate) fn forget_body(&mut self) {
        self.buf = Pieces::default();
    }

    /// Pulls one more piece of the body into the buffer; false at the end of the body.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        if self.eof {
            return Ok(false);
        }
        let io = &self.io;
        let piece = py.detach(|| io.lock()?.read_body());
        match piece {
            Ok(Some(chunk)) => {
                self.buf.push(chunk);
                Ok(true)
            }
            Ok(None) => {
                self.eof = true;
                Ok(false)
            }
            Err(e) => {
                self.eof = true;
                Err(ended_err(&e)
                    .unwrap_or_else(|| PyOSError::new_err(format!("request body incomplete: {e}"))))
            }
        }
    }

    fn take<'py>(&mut self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        let n = n.min(self.buf.len());
        let out = crate::bytes_obj::from_parts(py, n, self.buf.front(n))?;
        self.buf.advance(n);
        Ok(out)
    }

    /// Reads until the buffer holds a newline (or `limit` bytes, or the body ends); returns the
    /// length of the line to hand out.
    fn line_len(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<usize> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf.find(b'\n', scanned) {
                let len = i + 1;
                return Ok(limit.map_or(len, |l| len.min(l)));
            }
            scanned = self.buf.len();
            if limit.is_some_and(|l| self.buf.len() >= l) || !self.fill(py)? {
                return Ok(limit.map_or(self.buf.len(), |l| self.buf.len().min(l)));
            }
        }
    }
}

/// A size argument: None or a negative number means "no limit".
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl InputStream {
    #[pyo3(signature = (size = None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        match limit(size) {
            None => {
                while self.fill(py)? {}
                let n = self.buf.len();
                self.take(py, n)
            }
            Some(n) => {
                while self.buf.len() < n && self.fill(py)? {}
                self.take(py, n)
            }
        }
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let n = self.line_len(py, limit(size))?;
        self.take(py, n)
    }

    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let n = self.line_len(py, None)?;
            if n == 0 {
                return Ok(lines);
            }
            total += n;
            lines.push(self.take(py, n)?);
            if hint.is_some_and(|h| total >= h) {
                return Ok(lines);
            }
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let n = self.line_len(py, None)?;
        (n > 0).then(|| self.take(py, n)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(parts: &[&'static [u8]]) -> Pieces {
        let mut p = Pieces::default();
        for part in parts {
            p.push(Bytes::from_static(part));
        }
        p
    }

    /// Small pieces are copied together; large ones are kept, in order with the small ones.
    #[test]
    fn small_pieces_are_copied_together_and_large_ones_kept() {
        let large = Bytes::from(vec![b'L'; KEEP_FROM]);
        let mut p = Pieces::default();
        for piece in [&b"a"[..], b"b", b"\n"] {
            p.push(Bytes::copy_from_slice(piece));
        }
        p.push(large.clone());
        p.push(Bytes::from_static(b"z\n"));
        assert_eq!(
            p.queue.len(),
            2,
            "one copy of the small pieces, then the large one"
        );
        assert_eq!(
            p.queue[1].as_ptr(),
            large.as_ptr(),
            "the large piece is not copied"
        );
        assert_eq!(p.len(), KEEP_FROM + 5);
        assert_eq!(p.find(b'\n', 0), Some(2));
        assert_eq!(p.find(b'\n', 3), Some(KEEP_FROM + 4));
        p.advance(KEEP_FROM + 3);
        assert_eq!(p.front(9).collect::<Vec<_>>().concat(), b"z\n");
    }

    #[test]
    fn bytes_are_found_across_pieces() {
        let p = pieces(&[b"ab", b"", b"c\nd", b"\n"]);
        assert_eq!(p.len(), 6);
        assert_eq!(p.find(b'\n', 0), Some(3));
        assert_eq!(p.find(b'\n', 3), Some(3));
        assert_eq!(p.find(b'\n', 4), Some(5));
        assert_eq!(p.find(b'\n', 6), None);
        assert_eq!(p.find(b'x', 0), None);
    }

    #[test]
    fn the_front_is_taken_in_order_across_pieces() {
        let mut p = pieces(&[b"abc", b"", b"de", b"f"]);
        assert_eq!(p.front(4).collect::<Vec<_>>().concat(), b"abcd");
        p.advance(4);
        assert_eq!(p.len(), 2);
        assert_eq!(p.front(9).collect::<Vec<_>>().concat(), b"ef");
        p.advance(9);
        assert_eq!((p.len(), p.front(1).count()), (0, 0));
        assert_eq!(p.find(b'e', 0), None);
    }
}
