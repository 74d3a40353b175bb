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
pub mod warmup;
pub mod wsgi;

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use corral_proto::ResponseHead;

pub use pyo3::{Py, PyAny, Python};

/// The worker side of one slot's IPC channel, as a WSGI request needs it. Implemented by
/// `corral-worker`. Every method may block, and is called with the GIL released, but for the
/// `try_` ones, which never wait and are called with it held (so that queueing a body does
/// not hand Python's lock to another thread and take it back).
pub trait Transport: Send {
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

/// Locks the request's transport (called with the GIL released).
pub(crate) fn lock_transport(
    io: &SharedTransport,
) -> io::Result<MutexGuard<'_, dyn Transport + 'static>> {
    io.lock()
        .map_err(|_| io::Error::other("transport poisoned"))
}

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
