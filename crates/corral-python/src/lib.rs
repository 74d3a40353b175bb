//! The only crate that names `pyo3`: everything corral does with CPython happens here.
//!
//! It owns interpreter initialisation ([`interp`]), the fork bracket ([`fork`]), loading the app
//! ([`app`]), one WSGI request from environ to last byte ([`wsgi`], [`environ`], [`input`],
//! [`errors`], [`file_wrapper`]), and the zygote's warm-up requests ([`warmup`]). It talks to
//! the outside world only through the [`Transport`] trait, which the worker implements over its
//! IPC socket: this crate does no I/O of its own and never touches sockets, threads or
//! processes.
//!
//! # Contract with callers (who attaches, when to detach, what holds across fork)
//! - [`interp::init`] runs once per process, on the thread that will later fork; it leaves the GIL
//!   released so that any thread can attach with `Python::attach`.
//! - A worker's slot thread attaches once and detaches only while it blocks on IPC: reading the
//!   next request, or reading a request body for `wsgi.input` (done here, inside `detach`).
//! - [`fork::bracket`] must surround every fork: `PyOS_BeforeFork` → fork →
//!   `PyOS_AfterFork_Parent`/`_Child`, all with the GIL held. Objects created before the fork
//!   (the preloaded app) stay valid in the child.
//! - Workers never finalise the interpreter; they `_exit`.

pub mod app;
mod bytes_obj;
pub mod environ;
pub mod errors;
pub mod file_wrapper;
pub mod fork;
pub mod input;
pub mod interp;
pub mod response;
mod spares;
pub mod warmup;
pub mod wsgi;

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use bytes::Bytes;
use corral_proto::ResponseHead;

pub use pyo3::{Py, PyAny, Python};

/// The worker side of one slot's IPC channel, as a WSGI request needs it. Implemented by
/// `corral-worker`. Every method may block, and is called with the GIL released, but for
/// `serving` and the `try_` ones, which never wait and are called with it held (so that
/// queueing a body does not hand Python's lock to another thread and take it back), and
/// `send_head`, called either way, which sends nothing while the head fits beside what is
/// queued: it is queued before the first body piece, so it always does.
pub trait Transport: Send {
    /// The request being served, `None` between requests (see [`RequestIo`]).
    fn serving(&self) -> Option<u64>;
    /// The next piece of the request body; `Ok(None)` at its end. An error means the client
    /// disconnected before sending the whole body.
    fn read_body(&mut self) -> io::Result<Option<Bytes>>;
    /// Queues the response head (sent with the first data, or at the end).
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()>;
    /// Queues body bytes; may send when enough is queued.
    fn send_data(&mut self, data: &[u8]) -> io::Result<()>;
    /// As `send_data`, for bytes lent rather than copied: the transport keeps `data` until
    /// it has sent it (a large piece is then copied once, on its way out).
    fn send_shared(&mut self, data: Bytes) -> io::Result<()>;
    /// Sends `len` bytes of `file` from `offset`: the master reads the file itself.
    fn send_file(&mut self, file: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()>;
    /// Sends everything queued.
    fn flush(&mut self) -> io::Result<()>;
    /// Queues body bytes if they fit beside what is queued without sending anything; false,
    /// with nothing queued, if they do not.
    fn try_queue_data(&mut self, data: &[u8]) -> bool;
    /// `try_queue_data` for lent bytes (see `send_shared`).
    fn try_queue_shared(&mut self, data: &Bytes) -> bool;
    /// Queues "the body is whole" (see `body_complete`) if it fits without sending anything.
    fn try_queue_complete(&mut self) -> bool;
    /// Sends everything queued if that needs no waiting; false if it would wait (what is
    /// queued stays queued, for `flush`).
    fn try_flush(&mut self) -> io::Result<bool>;
    /// Sends everything queued and says the response body is whole, before the iterable's
    /// `close()` runs: the client need not wait for the app's clean-up.
    fn body_complete(&mut self) -> io::Result<()>;
    /// True once the master has said the client is gone (checked without blocking).
    fn client_gone(&mut self) -> bool;
}

/// The transport shared by the Python objects of one request (start_response, write, input).
pub type SharedTransport = Arc<Mutex<dyn Transport>>;

type Locked<'a> = MutexGuard<'a, dyn Transport + 'static>;

/// One request's hold on its slot's transport. It refuses once that request has ended, so an
/// object the app kept (`wsgi.input`, `write`, the response it returned) can never read
/// another request's body or write into another client's response.
///
/// Two checks: `running` (the slot's word for the request it runs, set by `wsgi::handle`)
/// before waiting for the transport, since an idle slot holds its transport while it sleeps
/// on the queue; and the transport's own `serving()` once it is locked, which is what counts.
#[derive(Clone)]
pub(crate) struct RequestIo {
    id: u64,
    io: SharedTransport,
    running: Arc<AtomicU64>,
}

impl RequestIo {
    pub(crate) fn new(id: u64, io: SharedTransport, running: Arc<AtomicU64>) -> RequestIo {
        RequestIo { id, io, running }
    }

    /// Waits for the transport: call with the GIL released (an app thread may hold it for
    /// long, blocked reading `wsgi.input`).
    pub(crate) fn lock(&self) -> io::Result<Locked<'_>> {
        if self.running.load(Ordering::Acquire) != self.id {
            return Err(self.ended());
        }
        let t = self.io.lock().map_err(|_| transport_poisoned())?;
        self.check(t)
    }

    /// The transport if nobody holds it, without waiting (so safe with the GIL held);
    /// `None` if another thread has it.
    pub(crate) fn try_lock(&self) -> io::Result<Option<Locked<'_>>> {
        match self.io.try_lock() {
            Ok(t) => self.check(t).map(Some),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Poisoned(_)) => Err(transport_poisoned()),
        }
    }

    /// Runs `f`, which only queues (it never waits for the master), on the transport: at once
    /// if the transport is free, else with the GIL released while waiting for it. Holding
    /// the GIL while waiting would stop every thread of the process until the holder is done.
    pub(crate) fn queue<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut dyn Transport) -> io::Result<R> + Send,
    ) -> io::Result<R> {
        if let Some(mut t) = self.try_lock()? {
            return f(&mut *t);
        }
        py.detach(|| f(&mut *self.lock()?))
    }

    fn check<'a>(&self, t: Locked<'a>) -> io::Result<Locked<'a>> {
        if t.serving() == Some(self.id) {
            Ok(t)
        } else {
            Err(self.ended())
        }
    }

    fn ended(&self) -> io::Error {
        io::Error::other(RequestEnded(self.id))
    }
}

fn transport_poisoned() -> io::Error {
    io::Error::other("transport poisoned")
}

/// The error of an object used after its request ended (see [`RequestIo`]).
#[derive(Debug)]
pub(crate) struct RequestEnded(u64);

impl std::fmt::Display for RequestEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "request {} has ended: its wsgi.input and write() work only while it runs \
             (the app kept them, or its response, past the request)",
            self.0
        )
    }
}

impl std::error::Error for RequestEnded {}

/// How a request ended inside the worker; the worker turns it into `End` or `Failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The whole response was produced.
    Complete,
    /// The app raised (or broke the protocol) before any header was sent: answer 500.
    FailedBeforeHead,
    /// The response was cut short after its head was sent: the connection must be closed.
    Truncated,
    /// The master reported the client gone; the app was stopped and closed.
    ClientGone,
}
