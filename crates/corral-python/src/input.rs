//! `wsgi.input`: the request body, read from the master as the app asks for it.
//!
//! Bodies are not held whole in memory: each read pulls pieces from the transport (with the GIL
//! released while it waits) until it has what was asked for. The pieces are kept as they
//! came (they share the memory of the packets they arrived in) and copied once, into the
//! `bytes` object a read returns.

use std::collections::VecDeque;

use bytes::{Buf, Bytes};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::SharedTransport;

#[pyclass(module = "corral", name = "InputStream")]
pub struct InputStream {
    io: SharedTransport,
    buf: Pieces,
    eof: bool,
}

/// Body bytes received and not yet read, in the pieces they arrived in.
#[derive(Default)]
struct Pieces {
    queue: VecDeque<Bytes>,
    len: usize,
}

impl Pieces {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, piece: Bytes) {
        self.len += piece.len();
        self.queue.push_back(piece);
    }

    /// Where the first `byte` at or after position `from` is.
    fn find(&self, byte: u8, from: usize) -> Option<usize> {
        let mut start = 0;
        for piece in &self.queue {
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
        let pieces = self.queue.iter().filter(|piece| !piece.is_empty());
        pieces.map_while(move |piece| {
            let take = piece.len().min(left);
            left -= take;
            (take > 0).then(|| &piece[..take])
        })
    }

    /// Drops the first `n` bytes (at most `len()`).
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(piece) = self.queue.front_mut() else {
                return;
            };
            let take = piece.len().min(n);
            piece.advance(take);
            if piece.is_empty() {
                self.queue.pop_front();
            }
            n -= take;
            self.len -= take;
        }
    }
}

impl InputStream {
    pub fn new(io: SharedTransport) -> InputStream {
        InputStream {
            io,
            buf: Pieces::default(),
            eof: false,
        }
    }

    /// Pulls one more piece of the body into the buffer; false at the end of the body.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        if self.eof {
            return Ok(false);
        }
        let io = self.io.clone();
        let piece = py.detach(move || crate::lock_transport(&io)?.read_body());
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
                Err(PyOSError::new_err(format!("request body incomplete: {e}")))
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
        assert_eq!(p.front(4).collect::<Vec<_>>(), [&b"abc"[..], b"d"]);
        p.advance(4);
        assert_eq!(p.len(), 2);
        assert_eq!(p.front(9).collect::<Vec<_>>().concat(), b"ef");
        p.advance(9);
        assert_eq!((p.len(), p.front(1).count()), (0, 0));
        assert_eq!(p.find(b'e', 0), None);
    }
}
