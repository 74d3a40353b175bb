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

/// Follows the framing of the requests on one connection.
#[derive(Debug)]
pub struct FramingTracker {
    state: State,
    head: Vec<u8>,
    heads: u64,
    /// Heads longer than this are hyper's problem (431); the tracker stops following.
    max_head: usize,
}

impl Default for FramingTracker {
    fn default() -> FramingTracker {
        FramingTracker::new(128 * 1024)
    }
}

/// Where the tracker is in the byte stream. The chunked states mirror hyper's own decoder
/// (`hyper/src/proto/h1/decode.rs`) byte for byte: where hyper would fail, the tracker is lost.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum State {
    /// Receiving a request head (leading blank lines are skipped, as hyper does).
    #[default]
    Head,
    /// Inside a body with this many bytes left.
    Fixed(u64),
    /// Expecting the first hex digit of a chunk size.
    ChunkStart,
    /// Chunk size digits so far.
    ChunkSize(u64),
    /// Blanks after the chunk size.
    ChunkLws(u64),
    /// A chunk extension, up to its CR.
    ChunkExt(u64),
    /// Expecting the LF that ends the chunk-size line.
    ChunkSizeLf(u64),
    /// Inside chunk data with this many bytes left.
    ChunkData(u64),
    /// Expecting the CR, then the LF, after chunk data.
    ChunkDataCr,
    ChunkDataLf,
    /// After the last chunk: a CR (end) or the first byte of a trailer line.
    EndCr,
    /// Inside a trailer line, up to its CR; then its LF.
    Trailer,
    TrailerLf,
    /// Expecting the final LF of the message.
    EndLf,
    /// No longer following this connection.
    Lost,
}

impl FramingTracker {
    /// A tracker for a connection whose heads hyper buffers up to `max_head` bytes.
    pub fn new(max_head: usize) -> FramingTracker {
        FramingTracker {
            state: State::Head,
            head: Vec::new(),
            heads: 0,
            max_head,
        }
    }

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
                return skip_body(&mut self.state, left, bytes.len(), State::Head)
            }
            State::ChunkData(left) => {
                return skip_body(&mut self.state, left, bytes.len(), State::ChunkDataCr)
            }
            State::Lost => return (bytes.len(), None),
            _ => {}
        }
        self.state = self.chunk_byte(bytes[0]);
        (1, None)
    }

    /// One byte of chunk framing (size lines, the CRLF after data, trailers).
    fn chunk_byte(&self, b: u8) -> State {
        let hex = (b as char).to_digit(16).map(u64::from);
        let grow = |size: u64, digit: u64| {
            size.checked_mul(16)
                .and_then(|s| s.checked_add(digit))
                .map_or(State::Lost, State::ChunkSize)
        };
        match (self.state, b, hex) {
            (State::ChunkStart, _, Some(digit)) => State::ChunkSize(digit),
            (State::ChunkSize(size), _, Some(digit)) => grow(size, digit),
            (State::ChunkSize(size) | State::ChunkLws(size), b'\t' | b' ', _) => {
                State::ChunkLws(size)
            }
            (State::ChunkSize(size) | State::ChunkLws(size), b';', _) => State::ChunkExt(size),
            (State::ChunkSize(size) | State::ChunkLws(size) | State::ChunkExt(size), b'\r', _) => {
                State::ChunkSizeLf(size)
            }
            (State::ChunkExt(_), b'\n', _) => State::Lost,
            (State::ChunkExt(size), _, _) => State::ChunkExt(size),
            (State::ChunkSizeLf(0), b'\n', _) => State::EndCr,
            (State::ChunkSizeLf(size), b'\n', _) => State::ChunkData(size),
            (State::ChunkDataCr, b'\r', _) => State::ChunkDataLf,
            (State::ChunkDataLf, b'\n', _) => State::ChunkStart,
            (State::EndCr, b'\r', _) => State::EndLf,
            (State::Trailer, b'\r', _) => State::TrailerLf,
            (State::EndCr | State::Trailer, _, _) => State::Trailer,
            (State::TrailerLf, b'\n', _) => State::EndCr,
            (State::EndLf, b'\n', _) => State::Head,
            _ => State::Lost,
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
            // The usual case: the whole head came in this read. Judge it where it lies.
            if let Some(end) = head_end(bytes, 0).filter(|&end| end <= self.max_head) {
                return (end, self.head_done(&bytes[..end]));
            }
        }
        let searched = self.head.len().saturating_sub(2);
        let room = self.max_head.saturating_sub(self.head.len());
        // Copy no further than the head's end: a body read together with its head (a 64 KiB
        // upload arrives in the same read) is skipped, not copied.
        let wanted = head_end_across(&self.head, bytes).unwrap_or(bytes.len());
        let take = wanted.min(room.max(1));
        self.head.extend_from_slice(&bytes[..take]);
        let Some(end) = head_end(&self.head, searched) else {
            if self.head.len() >= self.max_head {
                self.state = State::Lost;
            }
            return (take, None);
        };
        // Bytes past the head's end belong to the body or the next head: hand them back.
        let unused = self.head.len() - end;
        let head = std::mem::take(&mut self.head);
        let verdict = self.head_done(&head[..end]);
        self.head = head;
        self.head.clear();
        (take - unused, verdict)
    }

    /// A whole head arrived: counts it and follows the body it announces. Returns its number
    /// if its framing is ambiguous.
    fn head_done(&mut self, head: &[u8]) -> Option<u64> {
        self.heads += 1;
        let framing = Framing::of(head);
        self.state = framing.next_state();
        framing.ambiguous.then_some(self.heads)
    }
}

/// Consumes up to `left` body bytes of the `available` ones; moves to `then` when the body
/// (or chunk) is done, else counts down in the same state.
fn skip_body(state: &mut State, left: u64, available: usize, then: State) -> (usize, Option<u64>) {
    let n = left.min(available as u64);
    *state = match *state {
        _ if n == left => then,
        State::Fixed(_) => State::Fixed(left - n),
        _ => State::ChunkData(left - n),
    };
    (n as usize, None)
}

/// The index just past the blank line ending a head (`\n\n` or `\n\r\n`), searching from `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let from = from.min(buf.len());
    memchr::memchr_iter(b'\n', &buf[from..]).find_map(|at| {
        let i = from + at;
        match (buf.get(i + 1), buf.get(i + 2)) {
            (Some(b'\n'), _) => Some(i + 2),
            (Some(b'\r'), Some(b'\n')) => Some(i + 3),
            _ => None,
        }
    })
}

/// Where a head that starts with `head` and goes on with `more` ends, as an offset into `more`
/// (just past the blank line). Only the positions from `head.len() - 2` on are looked at: the
/// earlier ones were searched when `head` was fed.
fn head_end_across(head: &[u8], more: &[u8]) -> Option<usize> {
    let at = |k: usize| match k.checked_sub(head.len()) {
        None => head.get(k).copied(),
        Some(j) => more.get(j).copied(),
    };
    let from = head.len().saturating_sub(2);
    (from..head.len() + more.len())
        .find_map(|i| match (at(i), at(i + 1), at(i + 2)) {
            (Some(b'\n'), Some(b'\n'), _) => Some(i + 2),
            (Some(b'\n'), Some(b'\r'), Some(b'\n')) => Some(i + 3),
            _ => None,
        })
        .map(|end| end.saturating_sub(head.len()))
}

/// What a head says about the body that follows it.
struct Framing {
    content_length: Option<Option<u64>>,
    transfer_encoding: Option<bool>,
    ambiguous: bool,
}

impl Framing {
    fn of(head: &[u8]) -> Framing {
        let mut f = Framing {
            content_length: None,
            transfer_encoding: None,
            ambiguous: false,
        };
        // An Upgrade header or CONNECT changes nothing here: hyper frames the request as usual
        // and, if it really switches protocols, reads no further heads.
        for line in head.split(|&c| c == b'\n').skip(1) {
            // Only two names matter; most lines start with another letter.
            let first = line.iter().find(|c| !c.is_ascii_whitespace());
            if !matches!(first, Some(b'c' | b'C' | b't' | b'T')) {
                continue;
            }
            let Some(colon) = memchr::memchr(b':', line) else {
                continue;
            };
            let (name, value) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length") {
                let parsed = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                f.content_length.get_or_insert(parsed);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                let last = value.rsplit(|&c| c == b',').next().unwrap_or_default();
                f.transfer_encoding = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
        }
        f.ambiguous = f.content_length.is_some() && f.transfer_encoding.is_some();
        f
    }

    fn next_state(&self) -> State {
        if self.ambiguous {
            return State::Lost;
        }
        match (self.transfer_encoding, self.content_length) {
            (Some(true), _) => State::ChunkStart,
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
    fn a_body_read_with_its_head_is_not_copied() {
        let mut t = FramingTracker::default();
        let mut read = b"POST / HTTP/1.1\r\nContent-Length: 65536\r\n\r\n".to_vec();
        read.extend(std::iter::repeat_n(b'x', 65536));
        assert_eq!(t.feed(&read), None);
        assert_eq!((t.heads, t.state), (1, State::Head));
        assert!(
            t.head.capacity() < 4096,
            "the body went through the head buffer"
        );
    }

    #[test]
    fn a_head_over_the_limit_is_not_followed_even_when_it_comes_whole() {
        let mut t = FramingTracker::new(32);
        let head = b"GET / HTTP/1.1\r\nHost: a-rather-long-host-name\r\n\r\n";
        assert_eq!(t.feed(head), None);
        assert_eq!((t.heads, t.state), (0, State::Lost));
    }

    #[test]
    fn a_blank_line_split_across_reads_ends_the_head() {
        for cut in 1..4 {
            let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
            let (a, b) = head.split_at(head.len() - cut);
            let mut t = FramingTracker::default();
            assert_eq!(t.feed(a), None);
            assert_eq!(t.heads, 0, "cut {cut}: the head is not over yet");
            assert_eq!(t.feed(b), None);
            assert_eq!((t.heads, t.state), (1, State::Head), "cut {cut}");
        }
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
    fn chunked_edge_cases_follow_hyper() {
        // Leading zeros in a chunk size; then an Upgrade header (no switch without a 101).
        let mut t = FramingTracker::default();
        let stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
            00000000000000000005\r\nhello\r\n0\r\n\r\n\
            GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(t.feed(stream), None);
        assert_eq!(t.feed(CLTE), Some(3));
        // A bare LF after the last chunk starts a trailer line for hyper, so what follows is
        // trailers up to the blank line, not a new head.
        let mut t = FramingTracker::default();
        t.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n");
        assert_eq!(t.feed(b"GET /x HTTP/1.1\r\n\r\n"), None);
        assert_eq!((t.heads, t.state), (1, State::Head));
        assert_eq!(t.feed(CLTE), Some(2));
    }

    #[test]
    fn nonsense_stops_the_tracking() {
        let mut t = FramingTracker::default();
        t.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert_eq!(t.state, State::Lost);
        assert_eq!(t.feed(CLTE), None);
    }
}
