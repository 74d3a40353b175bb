//! `fork()`, allowed only in a single-threaded process.
//!
//! Forking a multi-threaded process leaves the child with locks held by threads that no longer
//! exist (a Python thread holding a `Lock` at fork keeps it held forever in the child). corral's
//! zygote is single-threaded by design; this module checks it before every fork instead of
//! trusting it.

use std::io;

/// Which side of a fork we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Parent { child: u32 },
    Child,
}

/// The number of threads of this process, from `/proc/self/status`.
pub fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads: line in /proc/self/status"))
}

/// Forks the calling process. Refuses (with an error that says why) when any other thread
/// exists: only a single-threaded process can be forked soundly.
pub fn fork() -> io::Result<Forked> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "refusing to fork: the process has {threads} threads, and a fork copies only the \
             calling one (did the app start a thread at import time?)"
        )));
    }
    // SAFETY: the process has exactly one thread (checked just above, and only this thread
    // could start another), so the child inherits no lock held by a vanished thread.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent { child: pid as u32 }),
    }
}
