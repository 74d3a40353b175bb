//! Python `bytes` objects without extra passes over their memory: one lent to the transport
//! as a `Bytes` (a large response piece is then copied once, into the response ring or the
//! socket, not into the packet first), and one built from the pieces a request body arrived
//! in (copied once, and not zeroed first).

use std::mem::MaybeUninit;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// A new `bytes` object of `len` bytes: `parts`, in order (zeros after them, should they be
/// shorter).
pub(crate) fn from_parts<'py, 'a>(
    py: Python<'py>,
    len: usize,
    parts: impl IntoIterator<Item = &'a [u8]>,
) -> PyResult<Bound<'py, PyBytes>> {
    // SAFETY: with a null pointer, PyBytes_FromStringAndSize allocates a `bytes` object of
    // `len` bytes and leaves them uninitialised (CPython's documented way to build one in
    // place), or returns null with an exception set, which `from_owned_ptr_or_err` turns
    // into an error. Until it is returned nobody else can see the object (but for `len` 0,
    // the shared empty `bytes`, of which nothing is written), so its buffer may be written; PyBytes_AsString points at that buffer, `len` bytes long, which the slice
    // covers exactly, as `MaybeUninit` until every byte is written below.
    let (obj, buf) = unsafe {
        let ptr =
            pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), len as pyo3::ffi::Py_ssize_t);
        let obj = Bound::from_owned_ptr_or_err(py, ptr)?;
        let data = pyo3::ffi::PyBytes_AsString(obj.as_ptr()).cast::<MaybeUninit<u8>>();
        (obj, std::slice::from_raw_parts_mut(data, len))
    };
    let mut filled = 0;
    for part in parts {
        let n = part.len().min(len - filled);
        for (dst, &byte) in buf[filled..filled + n].iter_mut().zip(part) {
            dst.write(byte);
        }
        filled += n;
    }
    buf[filled..].fill(MaybeUninit::new(0));
    // SAFETY: `obj` is a `bytes` object (made above); every byte of it is now written.
    Ok(unsafe { obj.cast_into_unchecked() })
}

/// The first `len` bytes of `obj`, shared with it: the object lives until the `Bytes` and
/// every slice of it are dropped.
pub(crate) fn lend(obj: &Bound<'_, PyBytes>, len: usize) -> Bytes {
    let data = obj.as_bytes();
    let lent = Lent {
        data: data.as_ptr(),
        len: data.len(),
        _obj: obj.clone().unbind(),
    };
    Bytes::from_owner(lent).slice(..len)
}

/// A reference to a `bytes` object, and where its buffer is.
struct Lent {
    data: *const u8,
    len: usize,
    /// Keeps the buffer alive. Dropped on a thread not attached to Python, its reference is
    /// released the next time a thread attaches (pyo3's pool of deferred decrefs).
    _obj: Py<PyBytes>,
}

// SAFETY: the raw pointer is the only part that is not `Send` on its own. It points into a
// `bytes` object's buffer, which never changes and lives as long as the object (`_obj` holds
// a reference), so any thread may read it, without Python's lock.
unsafe impl Send for Lent {}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `data` and `len` describe the buffer of the object `_obj` keeps alive, which
        // is immutable (see the `Send` impl); the slice lives no longer than `self`.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}
