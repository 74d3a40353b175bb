//! A corral worker process: the forked child that runs the WSGI app.
//!
//! It owns the slot threads (one per `--threads`, each with its own IPC socket to the master) and
//! the blocking side of the IPC protocol ([`channel`]). Every idle slot thread of every worker
//! of the pool takes requests from the same request queue and sleeps on its process's doorbell
//! while it is empty. Each slot thread attaches to Python once, looks at the queue with Python's lock
//! held, and detaches only while it waits: on the doorbell or on its socket (DESIGN.md
//! "Python").
//!
//! It must not fork, listen, or talk HTTP. It handles no signals itself: a worker ends when the
//! master closes the queue (its sleeping slots wake to a closed doorbell) or one of its slot
//! sockets (end of stream), or when the master or the zygote kills its process group; either
//! way the whole process exits.
//!
//! Messages accepted: `Request` (with the first of its `Body` frames, and its `BodyEnd` if the
//! body fits) from the queue; `Body`, `BodyEnd`, `Abort` on a slot (see `corral-proto`).
#![forbid(unsafe_code)]

pub mod channel;
mod slot;

use std::os::fd::OwnedFd;

use corral_python::environ::ProcessFacts;
use corral_python::{Py, PyAny, Python};

pub use channel::{PoolShare, SlotChannel};

/// Exit status of a worker whose app failed to import (`--no-preload`), as for the master.
pub const EXIT_LOAD_FAILED: i32 = 3;

/// Runs the worker: one slot thread per socket in `slots` (the calling thread serves the first),
/// on scoreboard slots `board ..`. Returns when any slot's master connection ends; the caller
/// then exits the process.
pub fn run(
    app: Py<PyAny>,
    facts: ProcessFacts,
    slots: Vec<OwnedFd>,
    pool: PoolShare,
    board: usize,
) {
    let mut slots = slots.into_iter();
    let Some(first) = slots.next() else { return };
    for (i, fd) in slots.enumerate() {
        let app = Python::attach(|py| app.clone_ref(py));
        let chan = SlotChannel::new(fd, pool.clone(), board + i + 1);
        let spawned = std::thread::Builder::new()
            .name(format!("corral-slot-{}", i + 1))
            .spawn(move || {
                slot::serve(app, facts, chan);
                // One slot's master connection ended: the master is retiring this process.
                corral_sys::exit_now(0);
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start slot thread: {e}");
            corral_sys::exit_now(1);
        }
    }
    slot::serve(app, facts, SlotChannel::new(first, pool, board));
}

/// Tells the master (over the first slot, scoreboard slot `board`) that the app could not be
/// loaded.
pub fn report_load_failure(slots: Vec<OwnedFd>, pool: PoolShare, board: usize, message: String) {
    if let Some(fd) = slots.into_iter().next() {
        let mut chan = SlotChannel::new(fd, pool, board);
        let _ = chan.send_now(&corral_proto::ToMaster::LoadFailed { message });
    }
}
