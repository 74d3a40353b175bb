//! THE fork site of corral: `Spawn` → fork a worker inside CPython's fork bracket.

use std::os::fd::{AsFd, OwnedFd};

use corral_proto::FromZygote;
use corral_python::fork::{bracket, Side};
use corral_sys::Forked;

use crate::control::{raw_fds, send};
use crate::Zygote;

/// Forks one worker process serving `slots` (the sockets in `fds`, on scoreboard slots
/// `board ..`) and reports the result.
pub(crate) fn spawn(z: &mut Zygote, worker: u64, (slots, board): (u32, u32), fds: Vec<OwnedFd>) {
    if fds.len() != slots as usize {
        let message = format!(
            "spawn request for {slots} slots carried {} sockets",
            fds.len()
        );
        let _ = send(z.ctl.as_fd(), &FromZygote::SpawnFailed { worker, message });
        return;
    }
    let mut child_pid = 0;
    let forked = bracket(|| match corral_sys::fork()? {
        Forked::Child => Ok(Side::Child),
        Forked::Parent { child } => {
            child_pid = child;
            Ok::<_, std::io::Error>(Side::Parent)
        }
    });
    match forked {
        Ok(Side::Child) => run_child(z, fds, board as usize),
        Ok(Side::Parent) => {
            drop(fds);
            z.workers.insert(child_pid);
            let _ = send(
                z.ctl.as_fd(),
                &FromZygote::Spawned {
                    worker,
                    pid: child_pid,
                },
            );
        }
        Err(e) => {
            tracing::error!("cannot fork a worker: {e}");
            let message = e.to_string();
            let _ = send(z.ctl.as_fd(), &FromZygote::SpawnFailed { worker, message });
        }
    }
}

/// The worker's life after fork. Never returns: the process exits without finalising Python.
fn run_child(z: &mut Zygote, slots: Vec<OwnedFd>, board: usize) -> ! {
    if let Err(e) = corral_sys::child_setup(&raw_fds(z)) {
        tracing::error!("worker set-up failed: {e}");
        corral_sys::exit_now(1);
    }
    let app = match z.app.take() {
        Some(app) => app,
        None => match corral_python::app::load(&z.app_ref) {
            Ok(app) => app,
            Err(summary) => {
                corral_worker::report_load_failure(slots, z.pool.clone(), board, summary);
                corral_sys::exit_now(corral_worker::EXIT_LOAD_FAILED);
            }
        },
    };
    corral_worker::run(app, z.facts, slots, z.pool.clone(), board);
    corral_sys::exit_now(0)
}
