//! The fork bracket: the only place that calls `PyOS_BeforeFork` / `PyOS_AfterFork_*`.

use pyo3::ffi;
use pyo3::prelude::*;

/// Which side of the fork `bracket` returned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Parent,
    Child,
}

/// Runs `fork` (which must call fork(2) exactly once, or fail without forking) inside CPython's
/// fork protocol, with the GIL held throughout: `PyOS_BeforeFork` takes Python's locks so no
/// other thread holds them at the fork, and the matching `AfterFork` call releases them (and,
/// in the child, resets threading state and runs `os.register_at_fork` hooks). In the child the
/// garbage collector frozen by `interp::freeze_heap` is switched back on.
pub fn bracket<E>(fork: impl FnOnce() -> Result<Side, E>) -> Result<Side, E> {
    Python::attach(|py| {
        // SAFETY: called with the GIL held, as CPython requires, and always paired with one of
        // the AfterFork calls below.
        unsafe { ffi::PyOS_BeforeFork() };
        let result = fork();
        match result {
            Ok(Side::Child) => {
                // SAFETY: we are the child of the fork that just happened, GIL held.
                unsafe { ffi::PyOS_AfterFork_Child() };
                if let Err(e) = py.import("gc").and_then(|gc| gc.call_method0("enable")) {
                    e.print(py);
                }
            }
            // SAFETY: we are the parent (or fork failed and there is no child), GIL held.
            _ => unsafe { ffi::PyOS_AfterFork_Parent() },
        }
        result
    })
}
