//! The request objects a slot keeps for its next request: `start_response`, `wsgi.input` and
//! `wsgi.errors`. Making them anew and freeing them cost about a tenth of a hello-world
//! request's instructions in the worker; an object nobody else holds is refilled instead.
//!
//! An object the app kept past its request (its reference count shows it) is never reused:
//! the app keeps it, still tied to its own request (see `RequestIo`), and the slot makes a new
//! one. A reused object is indistinguishable from a new one, since every field is replaced.

use pyo3::prelude::*;
use pyo3::pyclass::boolean_struct::False;
use pyo3::{PyClass, PyClassInitializer};

use crate::errors::ErrorStream;
use crate::input::InputStream;
use crate::response::StartResponse;

#[derive(Default)]
pub(crate) struct Spares {
    pub(crate) responder: Spare<StartResponse>,
    pub(crate) input: Spare<InputStream>,
    pub(crate) errors: Spare<ErrorStream>,
}

impl Spares {
    /// After the request: empties the objects only the slot holds, so that they pin nothing
    /// (body pieces, a half-written error line) until the next request, and forgets the
    /// ones the app kept.
    pub(crate) fn release(&mut self, py: Python<'_>) {
        self.responder.release(py, |_| {});
        self.input.release(py, InputStream::forget_body);
        self.errors.release(py, ErrorStream::flush);
    }
}

/// One kept object, if any.
pub(crate) struct Spare<T: PyClass>(Option<Py<T>>);

impl<T: PyClass> Default for Spare<T> {
    fn default() -> Self {
        Spare(None)
    }
}

impl<T> Spare<T>
where
    T: PyClass<Frozen = False> + Into<PyClassInitializer<T>>,
{
    /// An object holding `value`: the kept one if only the slot holds it, else a new one,
    /// which is kept from now on.
    pub(crate) fn fill(&mut self, py: Python<'_>, value: T) -> PyResult<Py<T>> {
        if let Some(obj) = self.0.as_ref().filter(|obj| only_slot_holds(obj)) {
            *obj.borrow_mut(py) = value;
            return Ok(obj.clone_ref(py));
        }
        let obj = Py::new(py, value)?;
        self.0 = Some(obj.clone_ref(py));
        Ok(obj)
    }

    fn release(&mut self, py: Python<'_>, empty: impl FnOnce(&mut T)) {
        match &self.0 {
            Some(obj) if only_slot_holds(obj) => empty(&mut obj.borrow_mut(py)),
            _ => self.0 = None,
        }
    }
}

/// Whether the slot's reference is the only one. (A reference dropped on a thread without
/// the GIL is counted until pyo3 applies it: such an object is merely not reused.)
fn only_slot_holds<T>(obj: &Py<T>) -> bool {
    // SAFETY: `obj` is a live object (the slot's reference keeps it alive), so its header
    // may be read; reading the reference count is a plain load. The answer cannot go stale:
    // if the slot's is the only reference, no other thread can make a new one, and if it is
    // not, the object is merely not reused.
    unsafe { pyo3::ffi::Py_REFCNT(obj.as_ptr()) == 1 }
}
