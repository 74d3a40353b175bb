//! One WSGI call, from environ to the last byte, with PEP 3333's guarantees: the iterable's
//! `close()` is always called, exceptions become a 500 (before the head) or a cut connection
//! (after it), and nothing the app does can leave the slot in a bad state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use corral_proto::RequestHead;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use pyo3::{intern, PyTypeInfo};

use crate::environ::{self, ProcessFacts};
use crate::errors::{log_exception, ErrorStream};
use crate::file_wrapper::{self, FileWrapper};
use crate::input::InputStream;
use crate::response::{client_gone, io_err, Flush, StartResponse};
use crate::spares::Spares;
use crate::{Outcome, RequestIo, SharedTransport};

/// What a slot thread keeps between requests: the environ template of its interpreter, and
/// the request objects nobody else holds.
pub struct SlotPython {
    template: Py<PyDict>,
    spares: Spares,
    /// The request the slot runs, 0 between requests (see `RequestIo`).
    running: Arc<AtomicU64>,
}

impl SlotPython {
    pub fn new(py: Python<'_>, facts: ProcessFacts) -> PyResult<SlotPython> {
        let wrapper_type = FileWrapper::type_object(py);
        let template = environ::template(py, facts, wrapper_type.as_any())?;
        Ok(SlotPython {
            template: template.unbind(),
            spares: Spares::default(),
            running: Arc::new(AtomicU64::new(0)),
        })
    }
}

/// Runs the app for one request; the worker sends `End` or `Failed` according to the outcome.
pub fn handle(
    py: Python<'_>,
    app: &Py<PyAny>,
    slot: &mut SlotPython,
    id: u64,
    head: &RequestHead,
    io: SharedTransport,
) -> Outcome {
    slot.running.store(id, Ordering::Release);
    let io = RequestIo::new(id, io, slot.running.clone());
    let fresh = StartResponse::new(id, io.clone(), &head.method[..] == b"HEAD");
    let outcome = match slot.spares.responder.fill(py, fresh) {
        Ok(responder) => {
            let result = build_environ(py, slot, id, head, io)
                .and_then(|env| app.bind(py).call1((env, responder.bind(py))));
            respond(py, id, result, &responder)
        }
        Err(e) => {
            log_exception(py, id, "cannot create start_response", &e);
            Outcome::FailedBeforeHead
        }
    };
    slot.running.store(0, Ordering::Release);
    slot.spares.release(py);
    outcome
}

/// Sends what the app returned (or the error it raised) as the response.
fn respond(
    py: Python<'_>,
    id: u64,
    returned: PyResult<Bound<'_, PyAny>>,
    responder: &Py<StartResponse>,
) -> Outcome {
    match returned {
        Ok(iterable) => {
            let outcome = consume(py, id, &iterable, responder);
            let outcome = check_declared_length(py, id, outcome, responder);
            close(py, id, &iterable, responder, outcome)
        }
        Err(e) => app_raised(py, id, &e, responder),
    }
}

/// A body shorter than its declared Content-Length is not complete: the client must not
/// mistake it for a whole response. A response that has no body (to HEAD; 1xx, 204, 304) may
/// declare the length the body would have had (RFC 9110 §8.6), so it is never short.
fn check_declared_length(
    py: Python<'_>,
    id: u64,
    outcome: Outcome,
    responder: &Py<StartResponse>,
) -> Outcome {
    if outcome != Outcome::Complete {
        return outcome;
    }
    let responder = responder.borrow(py);
    if responder.body_discarded() {
        return outcome;
    }
    match responder.short_of_declared() {
        Some((sent, declared)) => {
            tracing::error!(
                req = id,
                "the app sent {sent} bytes of its declared Content-Length {declared}; \
                 closing the connection"
            );
            Outcome::Truncated
        }
        None => Outcome::Complete,
    }
}

fn build_environ<'py>(
    py: Python<'py>,
    slot: &mut SlotPython,
    id: u64,
    head: &RequestHead,
    io: RequestIo,
) -> PyResult<Bound<'py, PyDict>> {
    let env = environ::build(py, slot.template.bind(py), head)?;
    env.set_item(
        intern!(py, "wsgi.input"),
        slot.spares.input.fill(py, InputStream::new(io))?,
    )?;
    env.set_item(
        intern!(py, "wsgi.errors"),
        slot.spares.errors.fill(py, ErrorStream::new(id))?,
    )?;
    env.set_item(intern!(py, "corral.request_id"), id)?;
    Ok(env)
}

/// The app raised: its traceback goes to the error log, unless `write()` raised it because
/// the client had left (as gunicorn, corral does not report a disconnect as a failure).
fn app_raised(py: Python<'_>, id: u64, e: &PyErr, responder: &Py<StartResponse>) -> Outcome {
    if responder.borrow(py).client_left {
        tracing::info!(
            req = id,
            "the client disconnected while the app was writing"
        );
        return Outcome::ClientGone;
    }
    log_exception(py, id, "the application raised an exception", e);
    failure(py, responder)
}

fn failure(py: Python<'_>, responder: &Py<StartResponse>) -> Outcome {
    if responder.borrow(py).head_sent {
        Outcome::Truncated
    } else {
        Outcome::FailedBeforeHead
    }
}

/// Sends the body the iterable produces. Lists and tuples are sent in one go; other iterables
/// (generators) are flushed piece by piece so that streaming really streams, except for the
/// piece that completes a declared Content-Length (see `Flush::UnlessBodyComplete`).
fn consume(
    py: Python<'_>,
    id: u64,
    iterable: &Bound<'_, PyAny>,
    responder: &Py<StartResponse>,
) -> Outcome {
    let run = || -> PyResult<Outcome> {
        if let Ok(wrapper) = iterable.cast::<FileWrapper>() {
            if let Some(outcome) = send_file(py, &wrapper.borrow(), responder)? {
                return Ok(outcome);
            }
        }
        let flush = if iterable.is_instance_of::<PyList>() || iterable.is_instance_of::<PyTuple>() {
            Flush::Later
        } else {
            Flush::UnlessBodyComplete
        };
        for item in iterable.try_iter()? {
            let item = item?;
            let bytes = item.cast::<PyBytes>().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(format!(
                    "the app's iterable yielded {}, but WSGI bodies are bytes",
                    item.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            if bytes.as_bytes().is_empty() {
                continue;
            }
            let mut r = responder.borrow_mut(py);
            let flushed = r.send_body(py, bytes, flush)?;
            if flushed && client_gone(&r.io) {
                return Ok(Outcome::ClientGone);
            }
            // Anything more would be cut anyway, and a generator that never ends must not hold
            // the worker (the master no longer aborts a response whose length is complete).
            if r.declared_body_sent() {
                break;
            }
        }
        responder.borrow_mut(py).ensure_head(py)?;
        Ok(Outcome::Complete)
    };
    run().unwrap_or_else(|e| app_raised(py, id, &e, responder))
}

/// The fast path of `wsgi.file_wrapper` over a regular file: hand the descriptor over.
fn send_file(
    py: Python<'_>,
    wrapper: &FileWrapper,
    responder: &Py<StartResponse>,
) -> PyResult<Option<Outcome>> {
    let Some((fd, offset, available)) = file_wrapper::regular_file(py, wrapper) else {
        return Ok(None);
    };
    let mut r = responder.borrow_mut(py);
    let len = match r.declared_len {
        Some(declared) => declared.saturating_sub(r.sent).min(available),
        None => available,
    };
    r.ensure_head(py)?;
    r.sent += len;
    let io = r.io.clone();
    py.detach(move || {
        // SAFETY: `fd` belongs to the file object the wrapper holds; that object stays alive
        // (and open) until close() runs after this call returns, so the descriptor is valid
        // for the whole borrow.
        let file = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        io.lock()?.send_file(file, offset, len)
    })
    .map_err(io_err)?;
    Ok(Some(Outcome::Complete))
}

/// Calls the iterable's `close()` if it has one (PEP 3333 requires it in every case). A complete
/// response is announced first (`Complete`): frameworks run clean-up in `close()` (Werkzeug's
/// `call_on_close`, Django's `request_finished`) that must not hold back a response the client
/// could already have. Once announced, an exception from `close()` is only logged, as gunicorn
/// and mod_wsgi do: the client has its whole response.
fn close(
    py: Python<'_>,
    id: u64,
    iterable: &Bound<'_, PyAny>,
    responder: &Py<StartResponse>,
    outcome: Outcome,
) -> Outcome {
    // Plain lists and tuples (the usual hello-world body) have no close(); asking would cost
    // a formatted AttributeError per request on Python < 3.13.
    if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
        return outcome;
    }
    if !iterable.hasattr(intern!(py, "close")).unwrap_or(false) {
        return outcome;
    }
    let announced =
        outcome == Outcome::Complete && responder.borrow(py).announce_complete(py).is_ok();
    if !announced {
        // A failed flush (the master is gone) must not skip close().
        let _ = responder.borrow(py).flush(py);
    }
    match iterable.call_method0(intern!(py, "close")) {
        Ok(_) => outcome,
        Err(e) => {
            log_exception(py, id, "the iterable's close() raised an exception", &e);
            if outcome == Outcome::Complete && !announced {
                failure(py, responder)
            } else {
                outcome
            }
        }
    }
}
