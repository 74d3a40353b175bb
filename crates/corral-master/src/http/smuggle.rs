//! Spotting ambiguous message framing before hyper resolves it.
//!
//! hyper treats a request with both `Content-Length` and `Transfer-Encoding` as chunked and
//! drops the Content-Length (RFC 9112 §6.3 allows that), so the service never sees the conflict.
//! corral refuses such requests outright, as gunicorn does, because a proxy in front may have
//! framed the same bytes differently (request smuggling).
//!
//! The connection's reader feeds every byte it reads to a [`FramingTracker`], which follows the
//! request stream the way hyper frames it — head, then a Content-Length or chunked body, then
//! the next head — and numbers the heads. Pipelined heads that arrive while an earlier request
//! is still being served are therefore judged too. The service compares the number of an
//! ambiguous head with its own request count and refuses that request with 400.
//!
//! When the stream stops making sense (a malformed chunk size, a head too large) the tracker
//! stops following it: hyper rejects such input itself and closes the connection.

/// Heads longer than this are hyper's problem (431); the tracker stops following.
const MAX_HEAD: usize = 128 * 1024;

/// Follows the framing of the requests on one connection.
#[derive(Debug, Default)]
pub struct FramingTracker {
    state: State,
    head: Vec<u8>,
    heads: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum State {
    /// Receiving a request head (leading blank lines are skipped, as hyper does).
    #[default]
    Head,
    /// Inside a body with this many bytes left.
    Fixed(u64),
    /// Reading a chunk-size line: the size so far, and whether an extension began.
    ChunkSize { size: u64, digits: u8, in_ext: bool },
    /// Inside chunk data with this many bytes left.
    ChunkData(u64),
    /// Expecting the CRLF after chunk data; counts the bytes seen.
    ChunkDataEnd(u8),
    /// Reading trailer lines after the last chunk; the length of the current line.
    Trailers(usize),
    /// No longer following this connection.
    Lost,
}

impl FramingTracker {
    /// Feeds bytes in the order they were read. Returns the 1-based number of a request head
    /// whose framing is ambiguous, when one completes in these bytes.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Option<u64> {
        while !bytes.is_empty() {
            let (used, verdict) = self.step(bytes);
            bytes = &bytes[used..];
            if verdict.is_some() {
                return verdict;
            }
        }
        None
    }

    /// Consumes a prefix of `bytes` (at least one byte) in the current state.
    fn step(&mut self, bytes: &[u8]) -> (usize, Option<u64>) {
        match self.state {
            State::Head => return self.step_head(bytes),
            State::Fixed(left) => {
                let n = left.min(bytes.len() as u64);
                self.state = if n == left {
                    State::Head
                } else {
                    State::Fixed(left - n)
                };
                return (n as usize, None);
            }
            State::ChunkData(left) => {
                let n = left.min(bytes.len() as u64);
                self.state = if n == left {
                    State::ChunkDataEnd(0)
                } else {
                    State::ChunkData(left - n)
                };
                return (n as usize, None);
            }
            State::Lost => return (bytes.len(), None),
            _ => {}
        }
        self.state = self.chunk_byte(bytes[0]);
        (1, None)
    }

    /// One byte of chunk framing (size lines, the CRLF after data, trailers).
    fn chunk_byte(&self, b: u8) -> State {
        match self.state {
            State::ChunkSize {
                size,
                digits,
                in_ext,
            } => match b {
                b'\n' if digits == 0 => State::Lost,
                b'\n' if size == 0 => State::Trailers(0),
                b'\n' => State::ChunkData(size),
                _ if in_ext => self.state,
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' if digits < 16 => {
                    let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                    State::ChunkSize {
                        size: size * 16 + digit,
                        digits: digits + 1,
                        in_ext,
                    }
                }
                b';' | b' ' | b'\t' | b'\r' => State::ChunkSize {
                    size,
                    digits,
                    in_ext: true,
                },
                _ => State::Lost,
            },
            State::ChunkDataEnd(seen) => match b {
                b'\n' => State::ChunkSize {
                    size: 0,
                    digits: 0,
                    in_ext: false,
                },
                b'\r' if seen == 0 => State::ChunkDataEnd(1),
                _ => State::Lost,
            },
            State::Trailers(len) => match b {
                b'\n' if len == 0 => State::Head,
                b'\n' => State::Trailers(0),
                b'\r' => State::Trailers(len),
                _ if len > MAX_HEAD => State::Lost,
                _ => State::Trailers(len + 1),
            },
            other => other,
        }
    }

    fn step_head(&mut self, bytes: &[u8]) -> (usize, Option<u64>) {
        if self.head.is_empty() {
            let blank = bytes
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if blank > 0 {
                return (blank, None);
            }
        }
        let searched = self.head.len().saturating_sub(2);
        let room = MAX_HEAD.saturating_sub(self.head.len());
        let take = bytes.len().min(room.max(1));
        self.head.extend_from_slice(&bytes[..take]);
        let Some(end) = head_end(&self.head, searched) else {
            if self.head.len() >= MAX_HEAD {
                self.state = State::Lost;
            }
            return (take, None);
        };
        // Bytes past the head's end belong to the body or the next head: hand them back.
        let unused = self.head.len() - end;
        self.head.truncate(end);
        self.heads += 1;
        let framing = Framing::of(&self.head);
        self.head.clear();
        self.state = framing.next_state();
        let verdict = framing.ambiguous.then_some(self.heads);
        (take - unused, verdict)
    }
}

/// The index just past the blank line ending a head (`\n\n` or `\n\r\n`), searching from `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find_map(|i| match (buf[i], buf.get(i + 1), buf.get(i + 2)) {
        (b'\n', Some(b'\n'), _) => Some(i + 2),
        (b'\n', Some(b'\r'), Some(b'\n')) => Some(i + 3),
        _ => None,
    })
}

/// What a head says about the body that follows it.
struct Framing {
    content_length: Option<Option<u64>>,
    transfer_encoding: Option<bool>,
    ambiguous: bool,
    upgrade: bool,
}

impl Framing {
    fn of(head: &[u8]) -> Framing {
        let mut lines = head.split(|&c| c == b'\n');
        let request_line = lines.next().unwrap_or_default();
        let mut f = Framing {
            content_length: None,
            transfer_encoding: None,
            ambiguous: false,
            upgrade: request_line.starts_with(b"CONNECT "),
        };
        for line in lines {
            let Some(colon) = line.iter().position(|&c| c == b':') else {
                continue;
            };
            let (name, value) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length") {
                let parsed = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                f.content_length.get_or_insert(parsed);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                let last = value.rsplit(|&c| c == b',').next().unwrap_or_default();
                f.transfer_encoding = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case(b"upgrade") {
                f.upgrade = true;
            }
        }
        f.ambiguous = f.content_length.is_some() && f.transfer_encoding.is_some();
        f
    }

    fn next_state(&self) -> State {
        if self.ambiguous || self.upgrade {
            return State::Lost;
        }
        match (self.transfer_encoding, self.content_length) {
            (Some(true), _) => State::ChunkSize {
                size: 0,
                digits: 0,
                in_ext: false,
            },
            (Some(false), _) | (None, Some(None)) => State::Lost,
            (None, Some(Some(0))) | (None, None) => State::Head,
            (None, Some(Some(n))) => State::Fixed(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLTE: &[u8] =
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";

    #[test]
    fn both_headers_are_ambiguous() {
        let mut t = FramingTracker::default();
        assert_eq!(t.feed(CLTE), Some(1));
        assert_eq!(t.feed(b"0\r\n\r\nGET / HTTP/1.1\r\n\r\n"), None);
    }

    #[test]
    fn one_header_is_fine_and_split_reads_work() {
        let mut t = FramingTracker::default();
        assert_eq!(t.feed(b"POST / HTTP/1.1\r\nTransfer-Enc"), None);
        assert_eq!(t.feed(b"oding: chunked\r\n\r\n5\r\nhel"), None);
        assert_eq!(t.feed(b"lo\r\n0\r\n\r\n"), None);
        assert_eq!(t.state, State::Head);
        assert_eq!(t.feed(b"GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!((t.heads, t.state), (2, State::Head));
    }

    #[test]
    fn header_split_across_reads_is_still_caught() {
        let mut t = FramingTracker::default();
        assert_eq!(
            t.feed(b"POST / HTTP/1.1\r\ncontent-length: 5\r\ntransfer-"),
            None
        );
        assert_eq!(t.feed(b"encoding: chunked\r\n\r"), None);
        assert_eq!(t.feed(b"\n"), Some(1));
    }

    #[test]
    fn pipelined_head_behind_bodies_is_numbered_and_caught() {
        let mut stream = Vec::new();
        stream.extend_from_slice(b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789");
        stream.extend_from_slice(b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        stream.extend_from_slice(b"4;ext=1\r\nGET \r\n10\r\n");
        stream.extend_from_slice(&[b'x'; 16]);
        stream.extend_from_slice(b"\r\n0\r\nX-Trailer: 1\r\n\r\n");
        stream.extend_from_slice(b"\r\nGET /c HTTP/1.1\r\n\r\n");
        stream.extend_from_slice(CLTE);
        // Whole, and one byte at a time: the same verdict.
        assert_eq!(FramingTracker::default().feed(&stream), Some(4));
        let mut t = FramingTracker::default();
        let found: Vec<u64> = stream.iter().filter_map(|b| t.feed(&[*b])).collect();
        assert_eq!(found, vec![4]);
    }

    #[test]
    fn body_text_that_looks_like_a_head_is_not_judged() {
        let mut t = FramingTracker::default();
        let body = &CLTE[..40];
        let head = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
        assert_eq!(t.feed(head.as_bytes()), None);
        assert_eq!(t.feed(body), None);
        assert_eq!((t.heads, t.state), (1, State::Head));
    }

    #[test]
    fn nonsense_stops_the_tracking() {
        let mut t = FramingTracker::default();
        t.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert_eq!(t.state, State::Lost);
        assert_eq!(t.feed(CLTE), None);
    }
}
