//! Request and response heads: plain owned data that crosses the process boundary.

use bytes::Bytes;

/// Everything a worker needs to build a WSGI environ, parsed and checked by the master.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestHead {
    /// `GET`, `POST`, … exactly as the client sent it.
    pub method: Bytes,
    /// The request target as sent (`/path?query`), still percent-encoded.
    pub target: Bytes,
    /// 10 for HTTP/1.0, 11 for HTTP/1.1.
    pub version: u8,
    /// Header names (lower case) and raw values, in arrival order; repeated names repeat.
    pub headers: Vec<(Bytes, Bytes)>,
    /// Client address: IP text (empty for a Unix socket) and port.
    pub peer_ip: Bytes,
    pub peer_port: u16,
    /// The listener's address, used for SERVER_NAME / SERVER_PORT when no Host header exists.
    pub local_ip: Bytes,
    pub local_port: u16,
    /// `http` or `https`.
    pub scheme: Bytes,
    /// The mount prefix this app is served under (SCRIPT_NAME); empty for `/`.
    pub script_name: Bytes,
    /// `Some(n)` when the body length is known up front, `None` for chunked bodies.
    pub content_length: Option<u64>,
}

/// A request head borrowed from wherever the master parsed it. `codec::encode_request` writes
/// it exactly as a `ToWorker::Request` carrying the equivalent `RequestHead`, without copying
/// each part into a `Bytes` first; the worker decodes a `RequestHead`.
#[derive(Debug, Clone)]
pub struct RequestHeadRef<'a, H> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub version: u8,
    /// `(name, value)` pairs, as in `RequestHead::headers`.
    pub headers: H,
    pub peer_ip: &'a [u8],
    pub peer_port: u16,
    pub local_ip: &'a [u8],
    pub local_port: u16,
    pub scheme: &'a [u8],
    pub script_name: &'a [u8],
    pub content_length: Option<u64>,
}

impl RequestHead {
    /// This head as borrowed parts (how it is encoded).
    pub fn borrowed<'a>(
        &'a self,
    ) -> RequestHeadRef<'a, impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a> {
        RequestHeadRef {
            method: &self.method,
            target: &self.target,
            version: self.version,
            headers: self.headers.iter().map(|(k, v)| (&k[..], &v[..])),
            peer_ip: &self.peer_ip,
            peer_port: self.peer_port,
            local_ip: &self.local_ip,
            local_port: self.local_port,
            scheme: &self.scheme,
            script_name: &self.script_name,
            content_length: self.content_length,
        }
    }
}

/// The response status line and headers as the application gave them to `start_response`.
///
/// Kept in the form it travels in: the reason phrase and then each header's name and value,
/// every one a byte string (`u32 length | bytes`), back to back in one buffer. Building a head
/// therefore costs one allocation however many headers it has, and decoding one costs none:
/// the master reads the pairs straight out of the packet ([`ResponseHead::headers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// How many header pairs `block` holds after the reason.
    count: u32,
    /// The reason phrase, then the pairs, each a byte string; checked to be exactly that by
    /// whoever made it (the builder, or the decoder).
    block: Bytes,
}

impl ResponseHead {
    /// A head from its parts (for callers that have them at hand; see [`ResponseHeadBuilder`]).
    pub fn new<'a>(
        status: u16,
        reason: &[u8],
        headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> ResponseHead {
        let mut b = ResponseHeadBuilder::new(status, reason);
        for (name, value) in headers {
            b.header(name, value);
        }
        b.build()
    }

    /// The reason the app chose (`"200 OK"` → `"OK"`).
    pub fn reason(&self) -> &[u8] {
        let mut rest = &self.block[..];
        next_string(&mut rest).unwrap_or_default()
    }

    /// The header pairs in the order the app gave them; repeated names repeat.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let mut rest = &self.block[..];
        let _reason = next_string(&mut rest);
        (0..self.count).map_while(move |_| Some((next_string(&mut rest)?, next_string(&mut rest)?)))
    }

    pub fn header_count(&self) -> usize {
        self.count as usize
    }

    /// The memory the reason and the headers live in: a receiver can share a piece of it
    /// (`Bytes::slice_ref`) instead of copying.
    pub fn shared(&self) -> &Bytes {
        &self.block
    }

    /// The parts as they are encoded: the pair count and the block.
    pub(crate) fn encoded(&self) -> (u32, &[u8]) {
        (self.count, &self.block)
    }

    /// A head from its encoded parts, if `block` holds exactly a reason and `count` pairs.
    pub(crate) fn from_encoded(status: u16, count: u32, block: Bytes) -> Option<ResponseHead> {
        let mut rest = &block[..];
        for _ in 0..=u64::from(count) * 2 {
            next_string(&mut rest)?;
        }
        rest.is_empty().then_some(ResponseHead {
            status,
            count,
            block,
        })
    }
}

/// Takes one byte string (`u32 length | bytes`) off the front of `rest`.
fn next_string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, tail) = rest.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    if tail.len() < len {
        return None;
    }
    let (s, tail) = tail.split_at(len);
    *rest = tail;
    Some(s)
}

/// Builds a [`ResponseHead`] one header at a time, in its encoded form.
#[derive(Debug)]
pub struct ResponseHeadBuilder {
    status: u16,
    count: u32,
    block: Vec<u8>,
}

impl ResponseHeadBuilder {
    pub fn new(status: u16, reason: &[u8]) -> ResponseHeadBuilder {
        let mut block = Vec::with_capacity(128);
        put_string(&mut block, reason);
        ResponseHeadBuilder {
            status,
            count: 0,
            block,
        }
    }

    pub fn header(&mut self, name: &[u8], value: &[u8]) {
        self.header_with(name, |out| out.extend_from_slice(value));
    }

    /// Appends a header whose value `write_value` appends to the buffer it is given (so that a
    /// caller converting text need not build the value apart first).
    pub fn header_with(&mut self, name: &[u8], write_value: impl FnOnce(&mut Vec<u8>)) {
        put_string(&mut self.block, name);
        let at = self.block.len();
        self.block.extend_from_slice(&[0; 4]);
        write_value(&mut self.block);
        let len = (self.block.len() - at - 4) as u32;
        self.block[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self.count += 1;
    }

    pub fn build(self) -> ResponseHead {
        ResponseHead {
            status: self.status,
            count: self.count,
            block: Bytes::from(self.block),
        }
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s);
}
