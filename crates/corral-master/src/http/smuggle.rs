//! Spotting ambiguous message framing before hyper resolves it.
//!
//! hyper treats a request with both `Content-Length` and `Transfer-Encoding` as chunked and
//! drops the Content-Length (RFC 9112 §6.3 allows that), so the service never sees the conflict.
//! corral refuses such requests outright, as gunicorn does, because a proxy in front may have
//! framed the same bytes differently (request smuggling). The connection's reader feeds every
//! byte that arrives while no request is in progress to a [`HeadScan`]; when the head is
//! complete it says whether the framing was ambiguous.
//!
//! Limit: heads that arrive while a previous request is still being served (pipelining) are not
//! scanned; hyper still frames those safely as chunked and closes the connection after them.

/// Accumulates the bytes of one request head (bounded) and judges it once complete.
#[derive(Debug, Default)]
pub struct HeadScan {
    buf: Vec<u8>,
    done: bool,
}

/// Heads longer than this are hyper's problem (431); the scan gives up on them.
const MAX_SCAN: usize = 64 * 1024;

impl HeadScan {
    /// Starts over for the next request.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.done = false;
    }

    /// Feeds newly read bytes; returns `Some(ambiguous)` once, when the head is complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<bool> {
        if self.done {
            return None;
        }
        // Fast path: the whole head arrived in one read and nothing was buffered before.
        let head = if self.buf.is_empty() {
            match find_head_end(bytes) {
                Some(end) => &bytes[..end],
                None => {
                    self.buf
                        .extend_from_slice(&bytes[..bytes.len().min(MAX_SCAN)]);
                    return None;
                }
            }
        } else {
            let room = MAX_SCAN.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
            match find_head_end(&self.buf) {
                Some(end) => &self.buf[..end],
                None if self.buf.len() >= MAX_SCAN => {
                    self.done = true;
                    return None;
                }
                None => return None,
            }
        };
        let verdict = is_ambiguous(head);
        self.done = true;
        Some(verdict)
    }
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n")
}

/// True when a head carries both Content-Length and Transfer-Encoding.
fn is_ambiguous(head: &[u8]) -> bool {
    let (mut cl, mut te) = (false, false);
    for line in head.split(|&c| c == b'\n').skip(1) {
        let name = match line.iter().position(|&c| c == b':') {
            Some(i) => line[..i].trim_ascii(),
            None => continue,
        };
        cl |= name.eq_ignore_ascii_case(b"content-length");
        te |= name.eq_ignore_ascii_case(b"transfer-encoding");
    }
    cl && te
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_headers_are_ambiguous() {
        let mut s = HeadScan::default();
        let req = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(s.feed(req), Some(true));
        assert_eq!(s.feed(b"more"), None);
    }

    #[test]
    fn one_header_is_fine_and_split_reads_work() {
        let mut s = HeadScan::default();
        assert_eq!(s.feed(b"POST / HTTP/1.1\r\nTransfer-Enc"), None);
        assert_eq!(s.feed(b"oding: chunked\r\n\r\n5\r\nhello"), Some(false));
        s.reset();
        assert_eq!(
            s.feed(b"GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n"),
            Some(false)
        );
    }

    #[test]
    fn header_split_across_reads_is_still_caught() {
        let mut s = HeadScan::default();
        assert_eq!(
            s.feed(b"POST / HTTP/1.1\r\ncontent-length: 5\r\ntransfer-"),
            None
        );
        assert_eq!(s.feed(b"encoding: chunked\r\n\r\n"), Some(true));
    }
}
