//! `start_response`, the `write()` callable, and the rules a response must follow
//! (status syntax, header syntax, no hop-by-hop headers, Content-Length honoured).

use std::borrow::Cow;

use bytes::Bytes;
use corral_proto::{ResponseHead, ResponseHeadBuilder};
use pyo3::exceptions::{PyAssertionError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::{RequestEnded, RequestIo, Transport};

/// Headers that describe one connection, not the resource; the server owns them (PEP 3333).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// When `StartResponse::send_body` sends what it has queued.
#[derive(Clone, Copy)]
pub(crate) enum Flush {
    /// At once (`write()`: PEP 3333 wants the data on its way before it returns).
    Now,
    /// At once, unless these bytes complete the declared Content-Length (streamed iterables:
    /// the caller stops iterating then, and flushes before calling the iterable's `close()`).
    UnlessBodyComplete,
    /// With the end of the response (lists and tuples: the whole body is already known).
    Later,
}

/// Body pieces from this size on are lent to the transport instead of copied into its packet
/// (`Transport::send_shared`); below it a copy costs less than keeping the object.
const LEND_FROM: usize = 4096;

/// A body piece on its way to the transport.
enum Piece<'a> {
    Copied(&'a [u8]),
    Lent(Bytes),
}

impl Piece<'_> {
    fn is_empty(&self) -> bool {
        match self {
            Piece::Copied(data) => data.is_empty(),
            Piece::Lent(data) => data.is_empty(),
        }
    }

    fn try_queue(&self, t: &mut dyn Transport) -> bool {
        match self {
            Piece::Copied(data) => t.try_queue_data(data),
            Piece::Lent(data) => t.try_queue_shared(data),
        }
    }

    fn send(self, t: &mut dyn Transport) -> std::io::Result<()> {
        match self {
            Piece::Copied(data) => t.send_data(data),
            Piece::Lent(data) => t.send_shared(data),
        }
    }
}

/// A head (if not yet queued) and a body piece on their way to the transport.
struct Outgoing<'a> {
    io: RequestIo,
    head: Option<ResponseHead>,
    piece: Piece<'a>,
    flush: bool,
}

impl Outgoing<'_> {
    /// Queues (and, if `flush`, sends) the head and the piece; returns whether it flushed.
    fn send(self, py: Python<'_>) -> PyResult<bool> {
        let Outgoing {
            io,
            head,
            piece,
            flush,
        } = self;
        queue_head(py, &io, head)?;
        // Queued (and sent) without releasing Python's lock while nothing has to wait.
        let mut queued = piece.is_empty();
        if let Some(mut t) = io.try_lock().map_err(io_err)? {
            queued = queued || piece.try_queue(&mut *t);
            if queued && (!flush || t.try_flush().map_err(io_err)?) {
                return Ok(flush);
            }
        }
        py.detach(|| {
            let mut io = io.lock()?;
            if !queued {
                piece.send(&mut *io)?;
            }
            if flush {
                io.flush()?;
            }
            Ok(flush)
        })
        .map_err(io_err)
    }
}

fn queue_head(py: Python<'_>, io: &RequestIo, head: Option<ResponseHead>) -> PyResult<()> {
    let Some(head) = head else {
        return Ok(());
    };
    // Only queued: at the first body piece nothing else is, so the head always fits.
    io.queue(py, move |t| t.send_head(head)).map_err(io_err)
}

/// The state of one response, behind `start_response` and `write`.
#[pyclass(module = "corral", name = "StartResponse")]
pub struct StartResponse {
    pub(crate) id: u64,
    pub(crate) io: RequestIo,
    /// The status the app gave to `start_response`, once it called it.
    status: Option<u16>,
    /// The head, from `start_response` until it is queued.
    head: Option<ResponseHead>,
    pub(crate) head_sent: bool,
    /// The Content-Length the app declared, if any: the body is cut or flagged to match it.
    pub(crate) declared_len: Option<u64>,
    pub(crate) sent: u64,
    overflow_logged: bool,
    /// `write()` found the client gone and raised: the app's exception is no bug of its own.
    pub(crate) client_left: bool,
    /// A `write()` took the head and queues it without holding the response: any other
    /// piece is refused meanwhile, so that none overtakes the head.
    head_in_flight: bool,
    /// The request is a HEAD: the master drops the body (and aborts it) by design.
    head_request: bool,
}

impl StartResponse {
    pub(crate) fn new(id: u64, io: RequestIo, head_request: bool) -> StartResponse {
        StartResponse {
            id,
            io,
            status: None,
            head: None,
            head_sent: false,
            declared_len: None,
            sent: 0,
            overflow_logged: false,
            client_left: false,
            head_in_flight: false,
            head_request,
        }
    }

    /// Whether the client gets no body whatever the app writes: a HEAD request, or a status
    /// that has none.
    pub(crate) fn body_discarded(&self) -> bool {
        self.head_request || matches!(self.status, Some(100..=199 | 204 | 304))
    }

    pub(crate) fn started(&self) -> bool {
        self.status.is_some()
    }

    /// Queues the head if it has not gone out yet. Fails if start_response was never called.
    pub(crate) fn ensure_head(&mut self, py: Python<'_>) -> PyResult<()> {
        let head = self.take_unsent_head()?;
        queue_head(py, &self.io, head)
    }

    /// The head if it has not been queued yet (it counts as queued from now on).
    fn take_unsent_head(&mut self) -> PyResult<Option<ResponseHead>> {
        if self.head_in_flight {
            return Err(in_use());
        }
        if self.head_sent {
            return Ok(None);
        }
        let head = self.head.take().ok_or_else(|| {
            PyAssertionError::new_err("the app produced a body before calling start_response()")
        })?;
        self.head_sent = true;
        Ok(Some(head))
    }

    /// Queues body bytes (after the head), trimmed to the declared Content-Length, and sends
    /// them at once if `flush` asks for it. Returns whether a flush happened.
    ///
    /// With `Flush::UnlessBodyComplete`, bytes that complete the declared Content-Length stay
    /// queued: the caller stops iterating and sends them before the iterable's `close()`, or
    /// with `End` when there is no `close()` (one packet for head, body and end).
    pub(crate) fn send_body(
        &mut self,
        py: Python<'_>,
        body: &Bound<'_, PyBytes>,
        flush: Flush,
    ) -> PyResult<bool> {
        self.prepare_body(body, flush)?.send(py)
    }

    /// What `send_body` sends, worked out without sending anything: `write()` sends it after
    /// it has let go of the response, so that no thread waits on the transport while it
    /// holds the response (another thread of the app may want it meanwhile).
    fn prepare_body<'a>(
        &mut self,
        body: &'a Bound<'_, PyBytes>,
        flush: Flush,
    ) -> PyResult<Outgoing<'a>> {
        let head = self.take_unsent_head()?;
        let data = self.trim_to_declared(body.as_bytes());
        self.sent += data.len() as u64;
        let flush = match flush {
            Flush::Now => true,
            Flush::UnlessBodyComplete => self.declared_len != Some(self.sent),
            Flush::Later => false,
        };
        // Only an exact `bytes` is lent: a subclass could run Python code (`__del__`) when
        // the transport drops it, with the transport locked.
        let piece = if data.len() >= LEND_FROM && body.is_exact_instance_of::<PyBytes>() {
            Piece::Lent(crate::bytes_obj::lend(body, data.len()))
        } else {
            Piece::Copied(data)
        };
        Ok(Outgoing {
            io: self.io.clone(),
            head,
            piece,
            flush,
        })
    }

    fn trim_to_declared<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let Some(limit) = self.declared_len else {
            return data;
        };
        let room = limit.saturating_sub(self.sent) as usize;
        if data.len() <= room {
            return data;
        }
        if !self.overflow_logged {
            tracing::warn!(
                req = self.id,
                "the app sent more than its Content-Length of {limit} bytes; the excess was dropped"
            );
            self.overflow_logged = true;
        }
        &data[..room]
    }

    /// True once the declared Content-Length has been sent in full (PEP 3333: the server should
    /// stop iterating then).
    pub(crate) fn declared_body_sent(&self) -> bool {
        self.declared_len == Some(self.sent)
    }

    /// Sends whatever is queued (head, body) now.
    pub(crate) fn flush(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.io.lock()?.flush()).map_err(io_err)
    }

    /// Sends whatever is queued and tells the master the body is whole (see
    /// `Transport::body_complete`).
    pub(crate) fn announce_complete(&self, py: Python<'_>) -> PyResult<()> {
        let io = &self.io;
        if let Some(mut t) = io.try_lock().map_err(io_err)? {
            if t.try_queue_complete() {
                if t.try_flush().map_err(io_err)? {
                    return Ok(());
                }
                drop(t);
                return py.detach(|| io.lock()?.flush()).map_err(io_err);
            }
        }
        py.detach(|| io.lock()?.body_complete()).map_err(io_err)
    }

    /// True when the app declared a Content-Length and sent fewer bytes.
    pub(crate) fn short_of_declared(&self) -> Option<(u64, u64)> {
        match self.declared_len {
            Some(n) if self.sent < n => Some((self.sent, n)),
            _ => None,
        }
    }

    fn set_head(&mut self, status: &str, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        let (code, reason) = parse_status(status)?;
        let mut head = ResponseHeadBuilder::new(code, &latin1_bytes(reason));
        let mut declared = None;
        for_each_item(headers, |item| {
            let pair = item.cast::<PyTuple>().map_err(|_| not_a_pair())?;
            if pair.len() != 2 {
                return Err(not_a_pair());
            }
            let (name, value) = (pair.get_borrowed_item(0)?, pair.get_borrowed_item(1)?);
            let (name, value) = (header_text(&name, "name")?, header_text(&value, "value")?);
            if check_header(name, value)? == Verdict::Drop {
                return Ok(());
            }
            if name.eq_ignore_ascii_case("content-length") {
                declared = Some(value.trim().parse::<u64>().map_err(|_| {
                    PyValueError::new_err(format!("invalid Content-Length header {value:?}"))
                })?);
            }
            // A valid name is ASCII; a value is latin-1 (checked), written byte per character.
            head.header_with(name.as_bytes(), |out| {
                out.extend_from_slice(&latin1_bytes(value))
            });
            Ok(())
        })?;
        self.declared_len = declared;
        self.status = Some(code);
        self.head = Some(head.build());
        Ok(())
    }
}

/// Calls `f` on every item of `items`: a list's without an iterator object (the usual
/// `start_response` headers), anything else's through the iterator protocol.
fn for_each_item(
    items: &Bound<'_, PyAny>,
    mut f: impl FnMut(&Bound<'_, PyAny>) -> PyResult<()>,
) -> PyResult<()> {
    if let Ok(list) = items.cast::<PyList>() {
        return list.iter().try_for_each(|item| f(&item));
    }
    items.try_iter()?.try_for_each(|item| f(&item?))
}

fn not_a_pair() -> PyErr {
    PyValueError::new_err("each response header must be a (name, value) tuple")
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        slf: Bound<'_, Self>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<WriteFn> {
        let py = slf.py();
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let mut this = slf.borrow_mut();
            match exc_info {
                Some(info) if this.head_sent => {
                    // Too late to change the response: re-raise so the app's error propagates.
                    let value = info.get_item(1)?;
                    return Err(PyErr::from_value(value));
                }
                None if this.started() => {
                    return Err(PyAssertionError::new_err(
                        "start_response() was called twice without exc_info",
                    ));
                }
                _ => {}
            }
            let status = status.cast::<PyString>().map_err(|_| {
                PyValueError::new_err("the status passed to start_response() must be a str")
            })?;
            this.set_head(status.to_str()?, headers)?;
        }
        Ok(WriteFn {
            response: slf.unbind().clone_ref(py),
        })
    }
}

/// The `write(data)` callable that `start_response` returns (for pre-WSGI apps).
#[pyclass(module = "corral", name = "write")]
pub struct WriteFn {
    response: Py<StartResponse>,
}

#[pymethods]
impl WriteFn {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data
            .cast::<PyBytes>()
            .map_err(|_| pyo3::exceptions::PyTypeError::new_err("write() takes bytes"))?;
        // The response is let go of before anything is sent (see `prepare_body`).
        let (outgoing, carries_head, bodiless) = {
            let mut response = self.response.try_borrow_mut(py).map_err(|_| in_use())?;
            let outgoing = response.prepare_body(bytes, Flush::Now)?;
            let carries_head = outgoing.head.is_some();
            response.head_in_flight = carries_head;
            (outgoing, carries_head, response.body_discarded())
        };
        let io = outgoing.io.clone();
        // PEP 3333: write() must send the data before it returns.
        let sent = outgoing.send(py);
        if carries_head {
            if let Ok(mut response) = self.response.try_borrow_mut(py) {
                response.head_in_flight = false;
            }
        }
        sent?;
        // The master aborts a body nobody will read (HEAD, 204, 304): no reason to raise.
        if !bodiless && client_gone(&io) {
            if let Ok(mut response) = self.response.try_borrow_mut(py) {
                response.client_left = true;
            }
            return Err(pyo3::exceptions::PyBrokenPipeError::new_err(
                "the client disconnected: the rest of the response cannot be sent",
            ));
        }
        Ok(())
    }
}

fn in_use() -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err(
        "write() was called while another thread was sending this response",
    )
}

/// Whether the master said the client is gone. Asked without waiting: while another thread
/// of the app holds the transport (reading `wsgi.input`), the answer waits for the next piece.
pub(crate) fn client_gone(io: &RequestIo) -> bool {
    match io.try_lock() {
        Ok(Some(mut t)) => t.client_gone(),
        Ok(None) => false,
        Err(_) => true,
    }
}

/// The status code and the reason phrase of `"NNN Reason"`.
fn parse_status(status: &str) -> PyResult<(u16, &str)> {
    let bytes = status.as_bytes();
    let valid = bytes.len() >= 4
        && bytes[..3].iter().all(u8::is_ascii_digit)
        && bytes[3] == b' '
        && !status.contains(['\r', '\n']);
    if !valid {
        return Err(PyValueError::new_err(format!(
            "invalid status {status:?}: expected \"NNN Reason\", e.g. \"200 OK\""
        )));
    }
    let code: u16 = status[..3].parse().unwrap_or(500);
    if code < 100 {
        return Err(PyValueError::new_err(format!(
            "invalid status code in {status:?}"
        )));
    }
    Ok((code, status[4..].trim()))
}

/// The text of a header name or value (borrowed from the str object: no copy).
fn header_text<'a>(obj: &'a Bound<'_, PyAny>, what: &str) -> PyResult<&'a str> {
    let s = obj.cast::<PyString>().map_err(|_| {
        PyValueError::new_err(format!(
            "response header {what}s must be str, not {}",
            type_name(obj)
        ))
    })?;
    s.to_str()
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// RFC 9110's `tchar`: the characters of a header name.
const TOKEN: [bool; 128] = {
    let mut t = [false; 128];
    let mut c = 0;
    while c < 128 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        c += 1;
    }
    t
};

/// What becomes of a valid header the app gave.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Keep,
    /// A hop-by-hop header: the server manages the connection (see `check_header`).
    Drop,
}

/// Checks a response header. PEP 3333 forbids hop-by-hop headers; gunicorn drops them
/// without a word, and apps that pass on the headers of a response they fetched rely on
/// that, so corral drops them too, with a warning once per process. `Connection: close`
/// keeps its meaning: the connection is closed after this response.
fn check_header(name: &str, value: &str) -> PyResult<Verdict> {
    let token = |b: &u8| TOKEN.get(*b as usize).copied().unwrap_or(false);
    if name.is_empty() || !name.as_bytes().iter().all(token) {
        return Err(PyValueError::new_err(format!(
            "invalid response header name {name:?}"
        )));
    }
    let forbidden = |c: char| c == '\r' || c == '\n' || c == '\0' || c as u32 > 255;
    let bad = if value.is_ascii() {
        value.bytes().any(|b| matches!(b, b'\r' | b'\n' | b'\0'))
    } else {
        value.chars().any(forbidden)
    };
    if bad {
        return Err(PyValueError::new_err(format!(
            "response header {name:?} has a value with a line break or a character outside latin-1"
        )));
    }
    if !HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return Ok(Verdict::Keep);
    }
    let closes = name.eq_ignore_ascii_case("connection")
        && value
            .split(',')
            .any(|option| option.trim().eq_ignore_ascii_case("close"));
    if closes {
        return Ok(Verdict::Keep);
    }
    warn_dropped_once(name);
    Ok(Verdict::Drop)
}

fn warn_dropped_once(name: &str) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            "the app sent the hop-by-hop header {name:?}, which PEP 3333 forbids; it was dropped \
             (the server manages the connection; only \"Connection: close\" is honoured). \
             Logged once per worker process"
        );
    }
}

/// `s` as latin-1: its own bytes when it is ASCII, else one byte per character (characters
/// beyond latin-1 are refused by `check_header` before values get here).
fn latin1_bytes(s: &str) -> Cow<'_, [u8]> {
    if s.is_ascii() {
        Cow::Borrowed(s.as_bytes())
    } else {
        Cow::Owned(s.chars().map(|c| c as u32 as u8).collect())
    }
}

pub(crate) fn io_err(e: std::io::Error) -> PyErr {
    if let Some(err) = ended_err(&e) {
        return err;
    }
    pyo3::exceptions::PyOSError::new_err(format!("connection to the master failed: {e}"))
}

/// A `RuntimeError` if `e` says the request had ended (see `RequestIo`): the app's mistake,
/// not a broken connection.
pub(crate) fn ended_err(e: &std::io::Error) -> Option<PyErr> {
    let ended = e.get_ref()?.downcast_ref::<RequestEnded>()?;
    Some(pyo3::exceptions::PyRuntimeError::new_err(ended.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped_but_connection_close() {
        let cases = [
            ("Content-Type", "text/plain", Verdict::Keep),
            ("Connection", "keep-alive", Verdict::Drop),
            ("connection", "Close", Verdict::Keep),
            ("Connection", "foo, close", Verdict::Keep),
            ("Transfer-Encoding", "chunked", Verdict::Drop),
            ("Keep-Alive", "timeout=5", Verdict::Drop),
        ];
        for (name, value, verdict) in cases {
            assert_eq!(
                check_header(name, value).unwrap(),
                verdict,
                "{name}: {value}"
            );
        }
        let err = check_header("Connection", "close\r\nX: y");
        assert!(err.is_err(), "values are checked first");
        assert!(check_header("Bad Name", "x").is_err());
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("200 OK").unwrap(), (200, "OK"));
        assert_eq!(parse_status("404 Not Found").unwrap().0, 404);
        assert_eq!(parse_status("599 ").unwrap().0, 599);
    }
}
