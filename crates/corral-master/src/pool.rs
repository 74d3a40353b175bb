//! The slot table (the scoreboard, single writer) and the FIFO queue of requests waiting for a
//! slot.
//!
//! A request leases an idle slot, preferring the process with the fewest busy slots (so under
//! `worker` load spreads across processes, and under `prefork` a busy process never gets a second
//! request: it has no idle slot). When none is idle the request waits in FIFO order; when
//! `max_queue` requests already wait it is refused (503). A lease returns its slot on drop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot, Notify};

use crate::slot::{SlotConn, WorkerId};

/// Things the supervisor must hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolEvent {
    /// A slot broke mid-request (EOF or protocol error): the process is dead or unusable.
    WorkerBroken(WorkerId),
}

/// Why no slot could be leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireError {
    /// `max_queue` requests are already waiting.
    QueueFull,
    /// The pool is shutting down.
    Closed,
}

#[derive(Default)]
struct State {
    idle: Vec<SlotConn>,
    busy: HashMap<WorkerId, usize>,
    waiters: VecDeque<oneshot::Sender<SlotConn>>,
    /// Workers known dead: their slots are dropped instead of reused.
    dead: HashSet<WorkerId>,
}

pub struct Pool {
    state: Mutex<State>,
    /// Signalled whenever a lease ends (see `wait_until_all_idle`).
    released: Notify,
    max_queue: usize,
    events: mpsc::UnboundedSender<PoolEvent>,
}

impl Pool {
    pub fn new(max_queue: usize) -> (Arc<Pool>, mpsc::UnboundedReceiver<PoolEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Pool {
                state: Mutex::new(State::default()),
                released: Notify::new(),
                max_queue,
                events,
            }),
            rx,
        )
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock would be a bug in this file; the state stays valid
        // (every mutation is a single push/pop), so keep serving rather than poisoning.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leases a slot, waiting in FIFO order if none is idle.
    pub async fn acquire(self: &Arc<Self>) -> Result<Lease, AcquireError> {
        let mut waiting = {
            let mut st = self.lock();
            if let Some(conn) = take_least_busy(&mut st) {
                return Ok(Lease::new(self.clone(), conn));
            }
            if st.waiters.len() >= self.max_queue {
                return Err(AcquireError::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(tx);
            Waiting {
                pool: self.clone(),
                rx,
            }
        };
        match (&mut waiting.rx).await {
            Ok(conn) => Ok(Lease::new(self.clone(), conn)),
            Err(_) => Err(AcquireError::Closed),
        }
    }

    /// Adds the ready slots of a new worker.
    pub fn add_worker(&self, conns: Vec<SlotConn>) {
        let mut st = self.lock();
        for conn in conns {
            st.busy.entry(conn.worker).or_insert(0);
            give_back(&mut st, conn);
        }
    }

    /// Forgets a dead worker: its idle slots close now, its busy ones when their lease ends.
    pub fn remove_worker(&self, worker: WorkerId) {
        let mut st = self.lock();
        st.idle.retain(|c| c.worker != worker);
        if st.busy.get(&worker).copied().unwrap_or(0) == 0 {
            st.busy.remove(&worker);
        } else {
            st.dead.insert(worker);
        }
    }

    /// Closes every idle slot and refuses waiters (shutdown, after in-flight requests ended).
    pub fn close(&self) {
        let mut st = self.lock();
        st.idle.clear();
        st.waiters.clear();
    }

    /// Waits until no slot is leased, or until `deadline` (false then). At a graceful stop the
    /// responses are all out by the time this is asked, but a worker may still be running an
    /// iterable's `close()`, and killing it there would cut the app's clean-up short.
    pub async fn wait_until_all_idle(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let released = self.released.notified();
            if self.lock().busy.values().all(|&n| n == 0) {
                return true;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return false;
            }
        }
    }

    /// Requests waiting for a slot.
    pub fn queued(&self) -> usize {
        self.lock().waiters.len()
    }

    fn release(&self, conn: SlotConn, healthy: bool) {
        self.release_slot(conn, healthy);
        self.released.notify_waiters();
    }

    fn release_slot(&self, conn: SlotConn, healthy: bool) {
        let worker = conn.worker;
        let mut st = self.lock();
        if let Some(b) = st.busy.get_mut(&worker) {
            *b = b.saturating_sub(1);
        }
        if !healthy {
            // The process is dead or unusable: none of its other slots may take a request.
            st.idle.retain(|c| c.worker != worker);
            st.dead.insert(worker);
        }
        if st.dead.contains(&worker) {
            drop(conn);
            if st.busy.get(&worker) == Some(&0) && st.dead.remove(&worker) {
                st.busy.remove(&worker);
            }
            if !healthy {
                let _ = self.events.send(PoolEvent::WorkerBroken(worker));
            }
            return;
        }
        give_back(&mut st, conn);
    }
}

/// Hands `conn` to the first live waiter, or parks it as idle.
fn give_back(st: &mut State, mut conn: SlotConn) {
    while let Some(waiter) = st.waiters.pop_front() {
        if let Some(b) = st.busy.get_mut(&conn.worker) {
            *b += 1;
        }
        match waiter.send(conn) {
            Ok(()) => return,
            Err(back) => {
                // That request gave up waiting (its client left): try the next one.
                conn = back;
                if let Some(b) = st.busy.get_mut(&conn.worker) {
                    *b -= 1;
                }
            }
        }
    }
    st.idle.push(conn);
}

fn take_least_busy(st: &mut State) -> Option<SlotConn> {
    let best = st
        .idle
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| st.busy.get(&c.worker).copied().unwrap_or(0))
        .map(|(i, _)| i)?;
    let conn = st.idle.swap_remove(best);
    *st.busy.entry(conn.worker).or_insert(0) += 1;
    Some(conn)
}

/// A request's place in the queue. If the request is dropped (its client left) after a slot
/// was handed to it but before it took the slot, the slot goes back to the pool: dropped with
/// the channel, it would close the slot's socket and so retire a healthy worker process (and,
/// under `worker`, the requests in flight on its other slots).
struct Waiting {
    pool: Arc<Pool>,
    rx: oneshot::Receiver<SlotConn>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.rx.close();
        if let Ok(conn) = self.rx.try_recv() {
            self.pool.release(conn, true);
        }
    }
}

/// A leased slot. Dropping it returns the slot to the pool (or discards it if marked broken).
pub struct Lease {
    pool: Arc<Pool>,
    conn: Option<SlotConn>,
    healthy: bool,
}

impl Lease {
    fn new(pool: Arc<Pool>, conn: SlotConn) -> Lease {
        Lease {
            pool,
            conn: Some(conn),
            healthy: true,
        }
    }

    pub fn conn(&mut self) -> &mut SlotConn {
        // Only Drop takes the connection out.
        self.conn
            .as_mut()
            .expect("lease holds its slot until dropped")
    }

    pub fn pid(&self) -> u32 {
        self.conn.as_ref().map_or(0, |c| c.pid)
    }

    pub fn writer(&self) -> Option<crate::slot::SlotWriter> {
        self.conn.as_ref().map(|c| c.writer())
    }

    /// The slot failed (worker died, protocol error): do not reuse it.
    pub fn mark_broken(&mut self) {
        self.healthy = false;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.release(conn, self.healthy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::time::Duration;

    fn slots(worker: WorkerId, n: usize) -> (Vec<SlotConn>, Vec<std::os::fd::OwnedFd>) {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..n {
            let (a, b) = corral_sys::seqpacket_pair().unwrap();
            ours.push(SlotConn::new(a, worker).unwrap());
            theirs.push(b);
        }
        (ours, theirs)
    }

    #[tokio::test]
    async fn leases_go_to_the_least_busy_process() {
        let (pool, _events) = Pool::new(10);
        let (a, _ka) = slots(1, 2);
        let (b, _kb) = slots(2, 2);
        pool.add_worker(a);
        pool.add_worker(b);
        let first = pool.acquire().await.unwrap();
        let second = pool.acquire().await.unwrap();
        let (w1, w2) = (
            first.conn.as_ref().unwrap().worker,
            second.conn.as_ref().unwrap().worker,
        );
        assert_ne!(w1, w2, "the second lease must go to the idle process");
    }

    #[tokio::test]
    async fn waiters_are_served_in_order_and_the_queue_is_bounded() {
        let (pool, _events) = Pool::new(2);
        let (a, _k) = slots(1, 1);
        pool.add_worker(a);
        let held = pool.acquire().await.unwrap();
        let p1 = pool.clone();
        let first = tokio::spawn(async move { p1.acquire().await.map(|_| 1) });
        tokio::task::yield_now().await;
        let p2 = pool.clone();
        let second = tokio::spawn(async move { p2.acquire().await.map(|_| 2) });
        tokio::task::yield_now().await;
        assert_eq!(pool.queued(), 2);
        assert_eq!(pool.acquire().await.err(), Some(AcquireError::QueueFull));
        drop(held);
        assert_eq!(first.await.unwrap(), Ok(1));
        assert_eq!(second.await.unwrap(), Ok(2));
    }

    #[tokio::test]
    async fn a_request_that_leaves_the_queue_after_being_handed_a_slot_gives_it_back() {
        let (pool, _events) = Pool::new(10);
        let (a, theirs) = slots(1, 1);
        pool.add_worker(a);
        let held = pool.acquire().await.unwrap();
        let mut waiting = Box::pin(pool.acquire());
        let queued = tokio::time::timeout(Duration::ZERO, &mut waiting).await;
        assert!(queued.is_err(), "the second request must wait");
        drop(held); // the slot is handed to the waiting request...
        drop(waiting); // ...which leaves (its client went away) before taking it
        let again = tokio::time::timeout(Duration::from_secs(5), pool.acquire()).await;
        assert!(
            matches!(again, Ok(Ok(_))),
            "the slot must be back in the pool"
        );
        let mut buf = [0u8; 16];
        let peer = corral_sys::recv_packet(
            theirs[0].as_fd(),
            &mut buf,
            &mut Vec::new(),
            corral_sys::RecvFlags::DontWait,
        );
        assert_eq!(
            peer.unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock,
            "the worker's end of the slot must still be open"
        );
    }

    #[tokio::test]
    async fn waiting_for_all_slots_to_be_idle() {
        let (pool, _events) = Pool::new(10);
        let (a, _k) = slots(1, 2);
        pool.add_worker(a);
        let soon = || tokio::time::Instant::now() + Duration::from_millis(50);
        assert!(pool.wait_until_all_idle(soon()).await);
        let held = pool.acquire().await.unwrap();
        assert!(!pool.wait_until_all_idle(soon()).await);
        let p = pool.clone();
        let waiting = tokio::spawn(async move {
            p.wait_until_all_idle(tokio::time::Instant::now() + Duration::from_secs(5))
                .await
        });
        tokio::task::yield_now().await;
        drop(held);
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn a_broken_slot_takes_its_idle_siblings_out_and_reports_the_process() {
        let (pool, mut events) = Pool::new(10);
        let (a, _ka) = slots(1, 3);
        let (b, _kb) = slots(2, 1);
        pool.add_worker(a);
        pool.add_worker(b);
        let mut lease = pool.acquire().await.unwrap();
        let dead = lease.conn().worker;
        lease.mark_broken();
        drop(lease);
        assert_eq!(events.recv().await, Some(PoolEvent::WorkerBroken(dead)));
        for _ in 0..3 {
            let l = pool.acquire().await.unwrap();
            assert_ne!(l.conn.as_ref().unwrap().worker, dead);
        }
    }
}
