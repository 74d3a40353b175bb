//! One slot thread: wait for a request, run the app, report the outcome, repeat.

use std::sync::{Arc, Mutex, MutexGuard};

use corral_python::environ::ProcessFacts;
use corral_python::wsgi::{self, SlotPython};
use corral_python::{Outcome, Py, PyAny, Python, SharedTransport};

use crate::channel::{Next, SlotChannel};

/// Locks the channel, waiting for it (call with the GIL released: an app thread may hold the
/// channel while it blocks on `wsgi.input`).
fn lock(chan: &Mutex<SlotChannel>) -> Option<MutexGuard<'_, SlotChannel>> {
    chan.lock().ok()
}

/// Locks the channel if nobody holds it (safe with the GIL held).
fn try_lock(chan: &Mutex<SlotChannel>) -> Option<MutexGuard<'_, SlotChannel>> {
    chan.try_lock().ok()
}

/// Ends the request: at once if nothing needs waiting for, else with the GIL released.
fn finish(py: Python<'_>, chan: &Mutex<SlotChannel>, outcome: Outcome) -> std::io::Result<()> {
    if let Some(mut c) = try_lock(chan) {
        c.queue_end(outcome);
        if c.try_complete_finish()? {
            return Ok(());
        }
        drop(c);
        return py.detach(|| lock(chan).ok_or_else(poisoned)?.complete_finish());
    }
    py.detach(|| {
        let mut c = lock(chan).ok_or_else(poisoned)?;
        c.queue_end(outcome);
        c.complete_finish()
    })
}

fn poisoned() -> std::io::Error {
    std::io::Error::other("slot channel poisoned")
}

/// Serves requests on one slot until the master closes it.
pub(crate) fn serve(app: Py<PyAny>, facts: ProcessFacts, mut chan: SlotChannel) {
    if let Err(e) = chan.send_ready() {
        tracing::debug!("master gone before the slot was ready: {e}");
        return;
    }
    let chan = Arc::new(Mutex::new(chan));
    Python::attach(|py| {
        let mut slot = match SlotPython::new(py, facts) {
            Ok(s) => s,
            Err(e) => {
                e.print(py);
                return;
            }
        };
        loop {
            // The queue is looked at with Python's lock held and slept on without it (see
            // `SlotChannel::try_next_request`).
            let next = match try_lock(&chan).and_then(|mut c| c.try_next_request()) {
                Some(next) => next,
                None => {
                    let rung = py.detach(|| lock(&chan).is_some_and(|mut c| c.sleep_until_rung()));
                    if !rung {
                        return;
                    }
                    continue;
                }
            };
            let (id, head) = match next {
                Next::Request { id, head } => (id, head),
                Next::Closed => return,
                Next::Stalled => {
                    let alive =
                        py.detach(|| lock(&chan).is_some_and(|mut c| c.wait_until_delivered()));
                    if !alive {
                        return;
                    }
                    continue;
                }
            };
            if try_lock(&chan).is_none_or(|c| c.has_queued()) {
                let sent = py.detach(|| lock(&chan).ok_or_else(poisoned)?.send_queued());
                if let Err(e) = sent {
                    tracing::debug!(req = id, "master connection lost while taking it: {e}");
                    return;
                }
            }
            let transport: SharedTransport = chan.clone();
            let outcome = wsgi::handle(py, &app, &mut slot, id, &head, transport);
            if let Err(e) = finish(py, &chan, outcome) {
                tracing::debug!(req = id, "master connection lost while finishing: {e}");
                return;
            }
        }
    });
}
