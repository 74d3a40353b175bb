//! corral's zygote: the single-threaded fork server of one app.
//!
//! The master execs `corral __zygote --ctl-fd N`; the zygote reads its configuration (the
//! first packet on the control socket, JSON: this is startup, not the hot path; the pool's
//! scoreboard, which holds its request queue, comes attached, and every worker inherits its
//! mapping), initialises
//! CPython, imports the app (preload, the default), freezes the heap, says `Ready`, then serves
//! `Spawn` requests. It is the only process that forks ([`spawn`]), it reaps its children and
//! reports each exit to the master ([`FromZygote::Exited`]).
//!
//! It must stay single-threaded: no runtime, no threads, and `corral_sys::fork` refuses to fork
//! if the app started a thread at import time.
//!
//! Signals: SIGCHLD is read through a signalfd; the zygote sits in its own process group, so a
//! terminal's Ctrl-C reaches only the master, which decides. End of stream on the control socket
//! (the master died) or `Shutdown`: kill every worker's process group and exit.
#![forbid(unsafe_code)]

mod control;
mod spawn;

use std::collections::BTreeSet;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use corral_proto::{FromZygote, WIRE_VERSION};
use corral_python::app::{AppRef, AppSource};
use corral_python::environ::ProcessFacts;
use corral_python::interp::{self, InterpConfig};
use corral_python::{Outcome, Py, PyAny, Python};
use corral_sys::SignalFd;
use corral_worker::PoolShare;

pub use control::{read_config, Startup};

/// Exit status when the app cannot be imported (gunicorn's "worker failed to boot" is 3 too).
pub const EXIT_LOAD_FAILED: i32 = 3;

/// Everything a forked worker inherits from the zygote.
pub(crate) struct Zygote {
    pub(crate) ctl: OwnedFd,
    pub(crate) sigchld: SignalFd,
    /// The preloaded app; `None` with `--no-preload` (each worker imports it after fork).
    pub(crate) app: Option<Py<PyAny>>,
    pub(crate) app_ref: AppRef,
    pub(crate) facts: ProcessFacts,
    /// Live workers (each is also the id of its process group).
    pub(crate) workers: BTreeSet<u32>,
    /// The scoreboard (with the request queue), inherited by every worker.
    pub(crate) pool: PoolShare,
}

/// Runs the zygote until the master says stop or goes away. Returns the process exit status.
pub fn run(ctl: OwnedFd, startup: Startup) -> i32 {
    let Startup { cfg, board } = startup;
    if let Err(e) = corral_sys::own_process_group() {
        tracing::warn!("zygote cannot start its own process group: {e}");
    }
    let py = &cfg.python;
    if let Err(e) = start_python(py) {
        return fail_startup(&ctl, e);
    }
    tracing::debug!("Python {}", interp::version());
    let app_ref = app_ref(&py.app);
    let app = if py.preload {
        match corral_python::app::load(&app_ref) {
            Ok(app) => Some(app),
            Err(summary) => return fail_startup(&ctl, summary),
        }
    } else {
        None
    };
    let facts = ProcessFacts {
        multithread: py.threads > 1,
        multiprocess: cfg.multiprocess,
    };
    if let Some(app) = &app {
        if let Err(e) = warm_up(app, &py.warmup, facts) {
            return fail_startup(&ctl, e);
        }
    }
    if let Err(e) = interp::freeze_heap() {
        tracing::warn!("gc.freeze() failed, workers will share less memory: {e}");
    }
    let mapped = corral_sys::SharedWords::map(board.as_fd());
    drop(board); // the mapping stays; workers need no descriptor for it
    let pool = match mapped {
        Ok(board) => PoolShare {
            board: Arc::new(board),
            threads: py.threads,
        },
        Err(e) => return fail_startup(&ctl, format!("cannot map the scoreboard: {e}")),
    };
    let sigchld = match SignalFd::new(&[corral_sys::process::SIGCHLD]) {
        Ok(s) => s,
        Err(e) => return fail_startup(&ctl, format!("cannot watch SIGCHLD: {e}")),
    };
    let mut zygote = Zygote {
        ctl,
        sigchld,
        app,
        app_ref,
        facts,
        workers: BTreeSet::new(),
        pool,
    };
    let ready = FromZygote::Ready {
        pid: std::process::id(),
        version: WIRE_VERSION,
    };
    if control::send(zygote.ctl.as_fd(), &ready).is_err() {
        return 0;
    }
    control::serve(&mut zygote)
}

/// `--warmup`: GETs each target from the preloaded app and logs how it went. Fails if the
/// requests left threads running: the zygote could no longer fork.
fn warm_up(app: &Py<PyAny>, targets: &[String], facts: ProcessFacts) -> Result<(), String> {
    if targets.is_empty() {
        return Ok(());
    }
    let warmed = Python::attach(|py| corral_python::warmup::warm(py, app, facts, targets));
    for w in warmed {
        match (w.outcome, w.status) {
            (Outcome::Complete, Some(status)) if status < 500 => {
                tracing::info!("warm-up GET {}: {status}", w.target)
            }
            (_, status) => tracing::warn!(
                "warm-up GET {} did not succeed (status {}); the workers start anyway",
                w.target,
                status.map_or("none".to_owned(), |s| s.to_string())
            ),
        }
    }
    match corral_sys::thread_count() {
        Ok(n) if n > 1 => Err(format!(
            "the --warmup requests left {} thread(s) running in the zygote (a client library's \
             background thread, a pool, ...); workers can only be forked from a single-threaded \
             process: drop --warmup, or warm up only paths that start no threads",
            n - 1
        )),
        _ => Ok(()),
    }
}

/// Enters the app's directory and starts CPython with the app's `sys.path` and virtualenv.
fn start_python(py: &corral_config::PythonConfig) -> Result<(), String> {
    std::env::set_current_dir(&py.chdir)
        .map_err(|e| format!("cannot change directory to {}: {e}", py.chdir.display()))?;
    let mut sys_path = vec![py.chdir.clone()];
    sys_path.extend(py.pythonpath.iter().cloned());
    interp::init(&InterpConfig {
        virtualenv: py.virtualenv.clone(),
        sys_path,
    })
}

fn app_ref(app: &corral_config::AppSpec) -> AppRef {
    AppRef {
        source: match &app.target {
            corral_config::AppTarget::Module(m) => AppSource::Module(m.clone()),
            corral_config::AppTarget::File(p) => AppSource::File(p.clone()),
        },
        callable: app.callable.clone(),
        factory: app.factory,
    }
}

fn fail_startup(ctl: &OwnedFd, message: String) -> i32 {
    tracing::error!("{message}");
    let _ = control::send(ctl.as_fd(), &FromZygote::LoadFailed { message });
    EXIT_LOAD_FAILED
}

/// `corral check`: initialise Python and import the app in this process, as the zygote would.
pub fn check(py: &corral_config::PythonConfig) -> Result<(), String> {
    start_python(py)?;
    corral_python::app::load(&app_ref(&py.app)).map(drop)
}
