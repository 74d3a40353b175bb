//! corral's master: the tokio/hyper front end that owns every client connection, and the
//! supervisor of the app's worker processes. It never runs Python and never forks itself: it
//! execs a zygote (`corral __zygote`) that does both.
//!
//! The request path, in the order a request meets the modules:
//! [`listen`] (accept) → [`http::conn`] (hyper, keep-alive and header timers) →
//! [`http::service`] (limits, body buffering) → [`pool`] (the request queue idle slots take
//! from, and the lease of the slot that took a request) → [`slot`] (IPC frames) → [`http::body`] (response frames, files, aborts) →
//! [`http::completion`] → [`access_log`]. Statuses the master produces itself come only from
//! [`http::error`]. Worker lifecycle: [`zygote`] (the master's handle on the fork server) and
//! [`supervise`] (keep N workers alive, replace the dead).
//!
//! Stopping: a [`Stop::Graceful`] stops accepting, lets in-flight requests finish (up to
//! `--graceful-timeout`), then closes the workers and the zygote; [`Stop::Immediate`] skips the
//! wait.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod http;
pub mod listen;
pub mod pool;
pub mod slot;
pub mod supervise;
pub mod zygote;

use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use corral_config::{Config, LogTarget, ZygoteConfig};
use corral_proto::FromZygote;
use tokio::sync::{mpsc, oneshot, watch};

use crate::http::service::AppCtx;
use crate::listen::Listener;
use crate::supervise::{Fatal, Supervisor};

/// How to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Graceful,
    Immediate,
}

/// How the master ended; `main` maps it to the exit status.
#[derive(Debug)]
pub enum Exit {
    /// Stopped on request (status 0).
    Clean,
    /// The app could not be imported (status 3).
    LoadFailed(String),
    /// Anything else fatal (status 1).
    Failed(String),
}

/// Runs corral for `cfg` until a stop arrives on `stops`.
pub async fn run(cfg: Config, mut stops: mpsc::UnboundedReceiver<Stop>) -> Exit {
    let listeners = match listen::bind_all(&cfg.listen).await {
        Ok(l) => l,
        Err(e) => return Exit::Failed(e.to_string()),
    };
    let access_log = match open_access_log(&cfg) {
        Ok(l) => l,
        Err(e) => return Exit::Failed(e),
    };
    let zcfg = ZygoteConfig {
        python: cfg.python.clone(),
        multiprocess: cfg.pool.workers > 1,
        log_level: cfg.log.level.as_str().to_owned(),
    };
    let board = match pool::make_board(&cfg.pool) {
        Ok(b) => b,
        Err(e) => return Exit::Failed(format!("cannot create the scoreboard: {e}")),
    };
    let (mut zygote, mut from_zygote) = match zygote::start(&zcfg, board.fd) {
        Ok(z) => z,
        Err(e) => return Exit::Failed(format!("cannot start the zygote: {e}")),
    };
    match from_zygote.recv().await {
        Some(FromZygote::Ready { .. }) => {}
        Some(FromZygote::LoadFailed { message }) => {
            zygote.reap();
            return Exit::LoadFailed(message);
        }
        _ => {
            let status = zygote.reap();
            return Exit::LoadFailed(format!("the zygote exited during startup ({status:?})"));
        }
    }
    let (pool, pool_events) = pool::Pool::new(cfg.pool.max_queue, board.words, cfg.pool.threads);
    pool.start_sweeper();
    let sup = Supervisor {
        zygote,
        from_zygote,
        pool: pool.clone(),
        pool_events,
        workers_wanted: cfg.pool.workers,
        threads: cfg.pool.threads,
    };
    let (ready_tx, ready_rx) = oneshot::channel();
    let (sup_stop, sup_stop_rx) = oneshot::channel();
    let mut supervisor = tokio::spawn(supervise::run(sup, ready_tx, sup_stop_rx));
    tokio::select! {
        _ = ready_rx => {}
        r = &mut supervisor => return fatal_exit(r),
        _ = stops.recv() => return Exit::Clean,
    }
    announce(&listeners, &cfg);
    let ctx = Arc::new(AppCtx {
        pool: pool.clone(),
        http: cfg.http.clone(),
        access_log,
        next_id: AtomicU64::new(1),
        script_name: bytes::Bytes::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let unix_paths: Vec<_> = listeners
        .iter()
        .filter_map(|l| match l {
            Listener::Unix(_, p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    for l in listeners {
        tokio::spawn(listen::accept_loop(
            l,
            ctx.clone(),
            stop_rx.clone(),
            alive_tx.clone(),
        ));
    }
    drop(alive_tx);
    drop(ctx);
    let how = tokio::select! {
        s = stops.recv() => s.unwrap_or(Stop::Immediate),
        r = &mut supervisor => return fatal_exit(r),
    };
    tracing::info!(
        "stopping ({})",
        if how == Stop::Graceful {
            "graceful"
        } else {
            "immediate"
        }
    );
    let _ = stop_tx.send(true);
    if how == Stop::Graceful {
        let deadline = tokio::time::Instant::now() + cfg.pool.graceful_timeout;
        let drained = async {
            let done = tokio::time::timeout_at(deadline, alive_rx.recv())
                .await
                .is_ok();
            // Responses are out, but a worker may still be in an iterable's close().
            done && pool.wait_until_all_idle(deadline).await
        };
        tokio::select! {
            done = drained => if !done {
                tracing::warn!("graceful timeout reached; closing the remaining connections");
            },
            _ = stops.recv() => tracing::warn!("second stop signal: stopping now"),
        }
    }
    let _ = sup_stop.send(());
    pool.close();
    if let Ok(Ok(mut z) | Err((_, mut z))) = supervisor.await {
        z.shutdown().await;
    }
    for p in unix_paths {
        let _ = std::fs::remove_file(p);
    }
    Exit::Clean
}

fn fatal_exit(
    r: Result<Result<zygote::ZygoteHandle, (Fatal, zygote::ZygoteHandle)>, tokio::task::JoinError>,
) -> Exit {
    match r {
        Ok(Err((Fatal::LoadFailed(msg), mut z))) => {
            tokio::spawn(async move { z.shutdown().await });
            Exit::LoadFailed(msg)
        }
        Ok(Err((Fatal::ZygoteDied, _))) => Exit::Failed("the zygote process died".into()),
        Ok(Ok(_)) => Exit::Clean,
        Err(e) => Exit::Failed(format!("the supervisor failed: {e}")),
    }
}

/// Tells the operator (and tests) where we listen, once every worker is ready.
fn announce(listeners: &[Listener], cfg: &Config) {
    let mut out = std::io::stdout().lock();
    for l in listeners {
        let _ = writeln!(out, "corral: listening on {}", l.describe());
    }
    let _ = writeln!(
        out,
        "corral: ready: {} serving with {} worker process(es) x {} thread(s), mpm {}",
        cfg.python.app.raw, cfg.pool.workers, cfg.pool.threads, cfg.pool.mpm
    );
    let _ = out.flush();
}

fn open_access_log(cfg: &Config) -> Result<Option<access_log::AccessLog>, String> {
    let Some(target) = &cfg.log.access_log else {
        return Ok(None);
    };
    let format = access_log::Format::parse(&cfg.log.access_log_format)
        .map_err(|e| format!("--access-log-format: {e}"))?;
    let out: Box<dyn Write + Send> = match target {
        LogTarget::Std => Box::new(std::io::stdout()),
        LogTarget::File(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("cannot open access log {}: {e}", p.display()))?,
        ),
    };
    Ok(Some(access_log::AccessLog::start(format, out)))
}
