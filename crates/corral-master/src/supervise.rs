//! Keeps the configured number of workers alive: asks the zygote for them, waits until each
//! slot says `Ready`, adds them to the pool, and replaces any that die. Respawning slows down
//! when workers die young, so a broken app cannot make corral fork in a tight loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use corral_proto::{ExitStatus, FromZygote, ToMaster, WIRE_VERSION};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};

use crate::pool::{BoardBlock, Pool, PoolEvent};
use crate::slot::{SlotConn, WorkerId};
use crate::zygote::ZygoteHandle;

/// How long a new worker may take to import the app and say Ready (`--no-preload`).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// A worker that dies sooner than this counts as a failed start for the respawn back-off.
const YOUNG: Duration = Duration::from_secs(2);

/// Why the supervisor gave up.
#[derive(Debug)]
pub enum Fatal {
    /// A worker could not import the app (`--no-preload`).
    LoadFailed(String),
    /// The zygote went away; without it no worker can be replaced.
    ZygoteDied,
}

struct Worker {
    pid: Option<u32>,
    born: Instant,
    /// Its scoreboard block, held until the process is reaped.
    block: Arc<BoardBlock>,
}

enum ReadyError {
    LoadFailed(String),
    Lost(String),
}

struct Readiness {
    worker: WorkerId,
    block: Arc<BoardBlock>,
    result: Result<Vec<SlotConn>, ReadyError>,
}

pub struct Supervisor {
    pub zygote: ZygoteHandle,
    pub from_zygote: mpsc::UnboundedReceiver<FromZygote>,
    pub pool: Arc<Pool>,
    pub pool_events: mpsc::UnboundedReceiver<PoolEvent>,
    pub workers_wanted: usize,
    pub threads: usize,
}

/// Supervises until `stop` fires (then hands the zygote back) or something fatal happens.
/// `ready` fires once, when the first full set of workers is serving.
pub async fn run(
    mut s: Supervisor,
    ready: oneshot::Sender<()>,
    mut stop: oneshot::Receiver<()>,
) -> Result<ZygoteHandle, (Fatal, ZygoteHandle)> {
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Readiness>();
    let mut workers: HashMap<WorkerId, Worker> = HashMap::new();
    let mut next_id: WorkerId = 1;
    let mut ready = Some(ready);
    let mut ready_count = 0usize;
    let mut respawn_at = Some(Instant::now());
    let mut young_deaths = 0u32;
    loop {
        let wake = respawn_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            // Stop first: at shutdown the workers exit (the pool closes its queue), and their
            // exits must not be mistaken for deaths to replace.
            biased;
            _ = &mut stop => return Ok(s.zygote),
            _ = sleep_until(wake), if respawn_at.is_some() => {
                respawn_at = None;
                while workers.len() < s.workers_wanted {
                    let Some(block) = s.pool.reserve_block() else {
                        // Dead workers not reaped yet still hold theirs: try again shortly.
                        respawn_at = Some(Instant::now() + Duration::from_millis(100));
                        break;
                    };
                    let id = next_id;
                    next_id += 1;
                    let board = s.pool.board();
                    match s.zygote.spawn_worker(id, s.threads, &board, block.first_slot()).await {
                        Ok(conns) => {
                            let worker = Worker { pid: None, born: Instant::now(), block: block.clone() };
                            workers.insert(id, worker);
                            tokio::spawn(await_ready(id, conns, block, ready_tx.clone()));
                        }
                        Err(_) => return Err((Fatal::ZygoteDied, s.zygote)),
                    }
                }
            }
            msg = s.from_zygote.recv() => match msg {
                None => return Err((Fatal::ZygoteDied, s.zygote)),
                Some(FromZygote::Spawned { worker, pid }) => {
                    if let Some(w) = workers.get_mut(&worker) {
                        w.pid = Some(pid);
                    }
                }
                Some(FromZygote::SpawnFailed { worker, message }) => {
                    tracing::error!("the zygote could not fork a worker: {message}");
                    workers.remove(&worker);
                    young_deaths += 1;
                    respawn_at = Some(Instant::now() + backoff(young_deaths));
                }
                Some(FromZygote::Exited { pid, status }) => {
                    let Some((&id, w)) = workers.iter().find(|(_, w)| w.pid == Some(pid)) else { continue };
                    let young = w.born.elapsed() < YOUNG;
                    s.pool.worker_exited(&w.block);
                    workers.remove(&id);
                    log_exit(pid, status);
                    young_deaths = if young { young_deaths + 1 } else { 0 };
                    respawn_at = Some(Instant::now() + backoff(young_deaths));
                }
                Some(other) => tracing::debug!("unexpected zygote message {other:?}"),
            },
            Some(r) = ready_rx.recv() => match r.result {
                Ok(conns) => {
                    if !workers.contains_key(&r.worker) {
                        continue; // died while starting; its slots just close
                    }
                    s.pool.add_worker(conns, r.block);
                    ready_count += 1;
                    if ready_count >= s.workers_wanted {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                    }
                }
                Err(ReadyError::LoadFailed(msg)) => return Err((Fatal::LoadFailed(msg), s.zygote)),
                Err(ReadyError::Lost(why)) => {
                    tracing::error!("a new worker did not start: {why}");
                    kill_worker(&workers, r.worker);
                }
            },
            Some(PoolEvent::WorkerBroken(id)) = s.pool_events.recv() => kill_worker(&workers, id),
        }
    }
}

fn backoff(young_deaths: u32) -> Duration {
    if young_deaths == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(100 << young_deaths.min(7)).min(Duration::from_secs(10))
}

fn kill_worker(workers: &HashMap<WorkerId, Worker>, id: WorkerId) {
    if let Some(pid) = workers.get(&id).and_then(|w| w.pid) {
        // Its slots are unusable; make sure the process (and anything it started) is gone.
        // The zygote reaps it and reports Exited, which triggers the replacement.
        let _ = corral_sys::kill_process_group(pid, corral_sys::process::SIGKILL);
    }
}

fn log_exit(pid: u32, status: ExitStatus) {
    match status {
        ExitStatus::Code(0) => tracing::info!("worker {pid} exited"),
        ExitStatus::Code(c) => tracing::warn!("worker {pid} exited with status {c}; replacing it"),
        ExitStatus::Signal(s) => {
            tracing::warn!("worker {pid} was killed by signal {s}; replacing it")
        }
    }
}

async fn await_ready(
    worker: WorkerId,
    mut conns: Vec<SlotConn>,
    block: Arc<BoardBlock>,
    tx: mpsc::UnboundedSender<Readiness>,
) {
    let mut result = Ok(());
    for c in &mut conns {
        match tokio::time::timeout(READY_TIMEOUT, c.next()).await {
            Ok(Ok(Some(ToMaster::Ready { pid, version }))) if version == WIRE_VERSION => {
                c.pid = pid
            }
            Ok(Ok(Some(ToMaster::Ready { version, .. }))) => {
                result = Err(ReadyError::Lost(format!(
                    "worker speaks wire version {version}"
                )));
                break;
            }
            Ok(Ok(Some(ToMaster::LoadFailed { message }))) => {
                result = Err(ReadyError::LoadFailed(message));
                break;
            }
            Ok(_) => {
                result = Err(ReadyError::Lost(
                    "it closed its slot before saying Ready".into(),
                ));
                break;
            }
            Err(_) => {
                result = Err(ReadyError::Lost("it did not say Ready within 120 s".into()));
                break;
            }
        }
    }
    let _ = tx.send(Readiness {
        worker,
        block,
        result: result.map(|()| conns),
    });
}
