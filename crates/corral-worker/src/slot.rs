//! One slot thread: wait for a request, run the app, report the outcome, repeat.

use std::sync::{Arc, Mutex};

use corral_python::environ::ProcessFacts;
use corral_python::wsgi::{self, SlotPython};
use corral_python::{Py, PyAny, Python, SharedTransport};

use crate::channel::{Next, SlotChannel};

/// Serves requests on one slot until the master closes it.
pub(crate) fn serve(app: Py<PyAny>, facts: ProcessFacts, mut chan: SlotChannel) {
    if let Err(e) = chan.send_ready() {
        tracing::debug!("master gone before the slot was ready: {e}");
        return;
    }
    let chan = Arc::new(Mutex::new(chan));
    Python::attach(|py| {
        let slot = match SlotPython::new(py, facts) {
            Ok(s) => s,
            Err(e) => {
                e.print(py);
                return;
            }
        };
        loop {
            let next = py.detach(|| match chan.lock() {
                Ok(mut c) => c.next_request(),
                Err(_) => Next::Closed,
            });
            let (id, head) = match next {
                Next::Request { id, head } => (id, head),
                Next::Closed => return,
            };
            let transport: SharedTransport = chan.clone();
            let outcome = wsgi::handle(py, &app, &slot, id, &head, transport);
            let finished = py.detach(|| match chan.lock() {
                Ok(mut c) => c.finish(outcome),
                Err(_) => Err(std::io::Error::other("slot channel poisoned")),
            });
            if let Err(e) = finished {
                tracing::debug!(req = id, "master connection lost while finishing: {e}");
                return;
            }
        }
    });
}
