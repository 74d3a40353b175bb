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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseHead {
    pub status: u16,
    /// The reason phrase the app chose (`"200 OK"` → `"OK"`).
    pub reason: Bytes,
    pub headers: Vec<(Bytes, Bytes)>,
}
