//! The pool: the request queue every worker slot takes requests from, the requests waiting
//! for a slot to answer, and the slots themselves.
//!
//! A request is not sent to a chosen slot. Its first packet goes into the pool's *request
//! queue*: a ring in the scoreboard that every worker maps (`corral_proto::ring`), from which
//! any idle slot takes the oldest packet. A slot that found the ring empty sleeps on its
//! process's doorbell (a futex) until the master — or a slot that took a packet and saw more
//! waiting — rings it: only when a slot of that process said it sleeps, one woken slot per
//! process at a time, and the process with the fewest busy slots first
//! (`corral_proto::doorbells`). A woken slot that is slow to look may wait for a Python lock
//! that C code holds: when nothing was taken between two of the master's looks (ten a second,
//! [`Pool::start_sweeper`]) while packets wait, a sleeper of another process is woken. A busy
//! slot is therefore never given a request, and a slot that finishes takes the next queued
//! request without going to sleep. It is how gunicorn's workers share a listening socket, one
//! level down: keep-alive connections and slow clients stay in the master.
//!
//! The master learns which slot took a request from that slot's first frame for it (the
//! response head, or `Taken` when the rest of the body must follow on that slot). A watcher
//! task per slot waits for that frame and lends the slot to the request's task as a [`Lease`]
//! until the response ends; then the slot goes back to its watcher, unless the slot has
//! already answered the next request it took: the ending lease then lends it straight on
//! ([`Pool::relend`]), which under load saves waking the watcher for every request. When a
//! slot breaks (its worker died), the request whose id is on the slot's scoreboard word, if it
//! is still waiting, is told that its worker is lost (502), and the supervisor replaces the
//! process.
//!
//! A worker killed in the instant between taking a packet and writing its scoreboard word
//! would leave its request waiting forever; a sweep once a second finds such a request (the
//! ring is empty, so it was taken, yet no slot's word holds it, twice in a row) and answers
//! it 502 ([`Pool::start_sweeper`]).
//!
//! Admission: when the requests that wait or run already outnumber the slots by `max_queue`, a
//! new one is refused (503). A request whose client leaves before its slot spoke is marked
//! cancelled on the scoreboard and stays in the table as an *orphan* until a slot speaks for
//! it: a slot that takes it from the queue skips it and says `Skipped`; one that was already
//! running it answers, and the watcher aborts and drains that answer. Either way the master
//! knows when the worker is done with it (a graceful stop waits for that).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use corral_proto::board;
use corral_proto::doorbells::Doorbells;
use corral_proto::ring::{PushError, Ring};
use corral_sys::{bell, SharedWords};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::slot::{Gather, SlotConn, WorkerId};

/// A pool's scoreboard: the master's mapping and the descriptor the zygote maps.
pub struct Board {
    pub words: SharedWords,
    pub fd: OwnedFd,
}

/// How long a request that finds the request ring full waits before it looks again (still
/// counted against `--max-queue`). The ring holds 4 MiB of packets: thousands of ordinary
/// requests, or about fifty that carry 80 KiB of body each.
const RING_FULL_RETRY: std::time::Duration = std::time::Duration::from_millis(1);

/// Creates a pool's scoreboard, which holds its request queue, with room for `cfg`'s workers
/// twice over (replacements start before the dead are reaped), plus a few spare.
pub fn make_board(cfg: &corral_config::PoolConfig) -> io::Result<Board> {
    let slots = (2 * cfg.workers + 4) * cfg.threads.max(1);
    let (words, fd) = SharedWords::create("corral-scoreboard", board::words(slots))?;
    Ok(Board { words, fd })
}

/// Things the supervisor must hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolEvent {
    /// A slot broke (EOF or protocol error): the process is dead or unusable.
    WorkerBroken(WorkerId),
}

/// Why a request could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireError {
    /// `max_queue` requests are already waiting.
    QueueFull,
    /// The pool is shutting down.
    Closed,
}

/// Why a queued request got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unserved {
    /// The worker that took it died before answering.
    WorkerLost,
    /// The pool closed first.
    Closed,
}

/// What a waiting request receives.
enum Routed {
    /// The slot that took it, and where to return the slot.
    Slot(Box<SlotConn>, oneshot::Sender<Returned>),
    WorkerLost,
}

/// A slot coming back from a lease.
struct Returned {
    conn: Box<SlotConn>,
    healthy: bool,
}

/// A request in the queue or running, whose slot has not spoken yet.
enum Waiter {
    /// Its task waits for the slot.
    Request(oneshot::Sender<Routed>),
    /// Its client left; nobody waits, but a worker may be running it.
    Orphan,
}

/// Hashes request ids for the `pending` table. They are the master's own sequence numbers,
/// never chosen by a client, so they need no flood-resistant hash (the default SipHash was 1.4 %
/// of the master's instructions): one multiplication spreads them over the table.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

struct State {
    /// Requests in the queue or running whose slot has not spoken yet.
    pending: HashMap<u64, Waiter, BuildHasherDefault<IdHasher>>,
    /// Slots of live workers, and how many of them are lent to a request.
    slots: usize,
    leased: usize,
    /// Scoreboard slots whose watcher runs (it reads the slot's word itself when it ends).
    watched: HashSet<usize>,
    /// Scoreboard blocks (one per worker) not in use.
    free_blocks: Vec<u32>,
    closed: bool,
}

pub struct Pool {
    state: Mutex<State>,
    /// Held while a packet is appended to the request ring (it has one producer).
    pushing: Mutex<()>,
    board: Arc<SharedWords>,
    /// Slots per worker: the size of a scoreboard block.
    threads: usize,
    /// Signalled whenever a lease ends or a slot is lost (see `wait_until_all_idle`).
    released: Notify,
    max_queue: usize,
    events: mpsc::UnboundedSender<PoolEvent>,
}

impl Pool {
    /// A pool queueing requests in the ring of its scoreboard `board` (see [`make_board`]),
    /// for workers of `threads` slots each.
    pub fn new(
        max_queue: usize,
        board: SharedWords,
        threads: usize,
    ) -> (Arc<Pool>, mpsc::UnboundedReceiver<PoolEvent>) {
        let threads = threads.max(1);
        let blocks = (board::slots(board.len()) / threads) as u32;
        let (events, rx) = mpsc::unbounded_channel();
        let state = State {
            pending: HashMap::default(),
            slots: 0,
            leased: 0,
            watched: HashSet::new(),
            free_blocks: (0..blocks).rev().collect(),
            closed: false,
        };
        let pool = Pool {
            state: Mutex::new(state),
            pushing: Mutex::new(()),
            board: Arc::new(board),
            threads,
            released: Notify::new(),
            max_queue,
            events,
        };
        (Arc::new(pool), rx)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock would be a bug in this file; the state stays valid
        // (every mutation is a single insert, remove or count), so keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts request `id` (its first packet) in the queue. The returned ticket waits for the
    /// slot that takes it; dropping the ticket cancels the request.
    pub async fn submit(
        self: &Arc<Self>,
        id: u64,
        packet: &Gather<'_>,
    ) -> Result<Ticket, AcquireError> {
        let rx = {
            let mut st = self.lock();
            if st.closed {
                return Err(AcquireError::Closed);
            }
            if st.pending.len() + st.leased >= st.slots + self.max_queue {
                return Err(AcquireError::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            st.pending.insert(id, Waiter::Request(tx));
            rx
        };
        // Made before the send: if this future is dropped while the queue is full, the
        // ticket's drop takes the request out again.
        let mut ticket = Ticket {
            pool: self.clone(),
            id,
            rx,
            queued: false,
            done: false,
        };
        self.enqueue(packet).await?;
        ticket.queued = true;
        self.wake_a_sleeper();
        Ok(ticket)
    }

    /// The scoreboard, for the slots of a new worker (their response rings are there).
    pub fn board(&self) -> Arc<SharedWords> {
        self.board.clone()
    }

    /// The request ring, in the scoreboard.
    fn ring(&self) -> Ring<'_> {
        board::request_ring(self.board.all())
    }

    /// The doorbells the slots of each worker sleep on, in the scoreboard.
    fn doorbells(&self) -> Doorbells<'_> {
        board::doorbells(self.board.all())
    }

    /// Rings the doorbell of the process with the most sleeping slots, if one sleeps in a
    /// process that has no woken slot on its way already.
    fn wake_a_sleeper(&self) {
        let doorbells = self.doorbells();
        if let Some(process) = doorbells.wake_one() {
            bell::ring(doorbells.bell(process));
        }
    }

    /// Appends `packet` to the request ring, waiting while the ring is full.
    async fn enqueue(&self, packet: &Gather<'_>) -> Result<(), AcquireError> {
        loop {
            let pushed = {
                let _pusher = self.pushing.lock().unwrap_or_else(|p| p.into_inner());
                self.ring().push(packet.len(), packet.parts())
            };
            match pushed {
                Ok(()) => return Ok(()),
                Err(PushError::Full) if !self.lock().closed => {
                    tokio::time::sleep(RING_FULL_RETRY).await
                }
                Err(PushError::Full) => return Err(AcquireError::Closed),
                Err(PushError::TooLarge) => {
                    unreachable!("an IPC packet ({} bytes) fits the ring", packet.len())
                }
            }
        }
    }

    /// A scoreboard block for a new worker, or `None` if all are taken (workers that died
    /// have not all been reaped yet).
    pub fn reserve_block(self: &Arc<Self>) -> Option<Arc<BoardBlock>> {
        let block = self.lock().free_blocks.pop()?;
        let block = Arc::new(BoardBlock {
            pool: self.clone(),
            block,
        });
        self.clear_slots(&block);
        Some(block)
    }

    /// Forgets what a dead worker left in a block's response rings, wake words and doorbell;
    /// nobody else holds the block (its last worker was reaped, every slot of it was dropped).
    fn clear_slots(&self, block: &BoardBlock) {
        let first = block.first_slot() as usize;
        for slot in first..first + self.threads {
            board::response_ring(self.board.all(), slot).reset();
            let wake = self.board.word(board::wake_word(slot));
            wake.store(0, Ordering::SeqCst);
        }
        let doorbells = self.doorbells();
        doorbells.open(block.block as usize);
        // After the open: `close` closes every doorbell opened before it set `closed`.
        if self.lock().closed {
            bell::close(doorbells.bell(block.block as usize));
        }
    }

    /// Adds the ready slots of a new worker, whose scoreboard block is `block`.
    pub fn add_worker(self: &Arc<Self>, conns: Vec<SlotConn>, block: Arc<BoardBlock>) {
        {
            let mut st = self.lock();
            st.slots += conns.len();
            st.watched.extend(conns.iter().map(|c| c.board_slot));
        }
        for conn in conns {
            tokio::spawn(watch(self.clone(), conn, block.clone()));
        }
    }

    /// Refuses new requests and tells every waiting one (shutdown, after in-flight requests
    /// ended, or when they ran out of time); those still in the queue are cancelled, so no
    /// worker runs them.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        for (id, _) in st.pending.drain() {
            let word = self.board.word(board::cancel_word(id));
            word.store(id, Ordering::Release);
        }
        drop(st);
        for doorbell in self.doorbells().bells_in_use() {
            bell::close(doorbell);
        }
    }

    /// Waits until no request is waiting or holds a slot, or until `deadline` (false then).
    /// At a graceful stop the responses are all out by the time this is asked, but a worker
    /// may still be running an iterable's `close()`, and killing it there would cut the app's
    /// clean-up short.
    pub async fn wait_until_all_idle(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let released = self.released.notified();
            {
                let st = self.lock();
                if st.pending.is_empty() && st.leased == 0 {
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return false;
            }
        }
    }

    /// Request `id`'s client left before its slot spoke: marks it cancelled on the scoreboard
    /// (a slot that takes it from the queue skips it) and keeps it as an orphan until a slot
    /// speaks for it.
    fn cancel(&self, id: u64) {
        let mut st = self.lock();
        if let Some(waiter) = st.pending.get_mut(&id) {
            *waiter = Waiter::Orphan;
            let word = self.board.word(board::cancel_word(id));
            word.store(id, Ordering::Release);
        }
    }

    /// A slot broke: the request it held, if still waiting, lost its worker. The slot's
    /// socket is closed by now; the mail flag makes a worker that is still alive find that
    /// out before it takes another request.
    fn slot_lost(&self, worker: WorkerId, board_slot: usize) {
        self.note_mail(board_slot);
        {
            let mut st = self.lock();
            st.slots = st.slots.saturating_sub(1);
            st.watched.remove(&board_slot);
        }
        self.fail_held(board_slot);
        let _ = self.events.send(PoolEvent::WorkerBroken(worker));
        self.released.notify_waiters();
    }

    /// If the request slot `board_slot` took last is still waiting, its worker is lost.
    fn fail_held(&self, board_slot: usize) {
        let held = self.board.word(board::slot_word(board_slot));
        let waiting = self.lock().pending.remove(&held.load(Ordering::Acquire));
        if let Some(Waiter::Request(tx)) = waiting {
            let _ = tx.send(Routed::WorkerLost);
        }
    }

    /// A worker process is gone (reaped): any request one of its unwatched slots took and that
    /// still waits — one taken after the master stopped watching a broken slot, or by a
    /// worker that died starting — is lost. A watched slot is left to its watcher, which
    /// first reads what the worker sent before it died (a whole response may be there).
    pub fn worker_exited(&self, block: &BoardBlock) {
        let first = block.first_slot() as usize;
        for slot in first..first + self.threads {
            if !self.lock().watched.contains(&slot) {
                self.fail_held(slot);
            }
        }
        // Its slots sleep no more, and one of them may have been woken and not have looked at
        // the ring yet: a packet meant for it would wait for nobody.
        self.doorbells().forget_process(block.block as usize);
        if !self.ring().is_empty() {
            self.wake_a_sleeper();
        }
        self.released.notify_waiters();
    }

    /// Tells slot `board_slot` that frames it may no longer expect wait on its socket.
    fn note_mail(&self, board_slot: usize) {
        let mail = self.board.word(board::mail_word(board_slot));
        mail.store(1, Ordering::Release);
    }

    /// Aborts request `id`, whose client left, on a slot nobody else holds, and waits for
    /// the worker to finish it; counted as lent meanwhile (a graceful stop waits for it).
    async fn abandon(&self, conn: &mut SlotConn, id: u64) -> bool {
        self.lock().leased += 1;
        let healthy = conn.abandon(id).await;
        self.note_mail(conn.board_slot);
        self.lock().leased -= 1;
        self.released.notify_waiters();
        healthy
    }

    /// A lease of `conn` ended: if the slot already answered the next request it took, and
    /// that request waits, lends the slot straight on to it, so that the slot's watcher (which
    /// waits for `back`) is not woken just to do that. Otherwise gives back what is to be
    /// returned to the watcher, which deals with everything else (nothing ready yet, `Skipped`,
    /// an orphan, a broken slot).
    fn relend(
        &self,
        mut conn: Box<SlotConn>,
        back: oneshot::Sender<Returned>,
    ) -> Option<(Returned, oneshot::Sender<Returned>)> {
        let not_lent = |conn, back, healthy| Some((Returned { conn, healthy }, back));
        let id = match conn.ready_id() {
            Ok(Some(id)) if !conn.is_skipped(id) => id,
            Ok(_) => return not_lent(conn, back, true),
            Err(_) => return not_lent(conn, back, false),
        };
        let tx = {
            let mut st = self.lock();
            match st.pending.remove(&id) {
                Some(Waiter::Request(tx)) => tx,
                other => {
                    if let Some(orphan) = other {
                        st.pending.insert(id, orphan);
                    }
                    return not_lent(conn, back, true);
                }
            }
        };
        match tx.send(Routed::Slot(conn, back)) {
            Ok(()) => None,
            // It gave up just now: the watcher finds it gone from `pending` and lets the
            // worker finish it.
            Err(Routed::Slot(conn, back)) => not_lent(conn, back, true),
            Err(Routed::WorkerLost) => unreachable!("the message sent was a slot"),
        }
    }

    /// Lends `conn` to the request waiting on `tx` and waits for it back.
    async fn lend(&self, tx: oneshot::Sender<Routed>, conn: Box<SlotConn>) -> Lent {
        let (back, returned) = oneshot::channel();
        self.lock().leased += 1;
        if let Err(Routed::Slot(conn, _)) = tx.send(Routed::Slot(conn, back)) {
            self.lock().leased -= 1;
            return Lent::Refused(conn);
        }
        match returned.await {
            Ok(r) => Lent::Back(r),
            Err(_) => Lent::Gone,
        }
    }
}

mod lease;
mod sweep;
mod watch;

pub use lease::{BoardBlock, Lease, Ticket};
use watch::{watch, Lent};

#[cfg(test)]
mod tests;
