//! What a request holds: its [`Ticket`] while it waits, the [`Lease`] of the slot that took
//! it; and what a worker holds: its [`BoardBlock`] of scoreboard slots.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::{Pool, Returned, Routed, Unserved};
use crate::slot::{PacketWriter, SlotConn};

/// A request in the queue, waiting for the slot that takes it.
pub struct Ticket {
    pub(super) pool: Arc<Pool>,
    pub(super) id: u64,
    pub(super) rx: oneshot::Receiver<Routed>,
    /// The packet is in the queue (else the request never left the master).
    pub(super) queued: bool,
    pub(super) done: bool,
}

impl Ticket {
    /// Waits until a slot takes the request and speaks.
    pub async fn wait(mut self) -> Result<Lease, Unserved> {
        let routed = (&mut self.rx).await;
        self.done = true;
        match routed {
            Ok(Routed::Slot(conn, back)) => Ok(Lease::new(self.pool.clone(), conn, back)),
            Ok(Routed::WorkerLost) => Err(Unserved::WorkerLost),
            Err(_) => Err(Unserved::Closed),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.rx.close();
        match self.rx.try_recv() {
            // The slot spoke just as the client left: let the worker finish, then return it.
            Ok(Routed::Slot(conn, back)) => {
                let lease = Lease::new(self.pool.clone(), conn, back);
                tokio::spawn(lease.abandon(self.id));
            }
            Ok(Routed::WorkerLost) => {}
            Err(_) if self.queued => self.pool.cancel(self.id),
            Err(_) => {
                // It never reached the queue (it waited for room): forget it.
                self.pool.lock().pending.remove(&self.id);
                self.pool.released.notify_waiters();
            }
        }
    }
}

/// A slot lent to the request it took. Dropping it lends the slot on to the next request it
/// already answered, if that one waits, or returns it to its watcher (which retires it if
/// marked broken).
pub struct Lease {
    pool: Arc<Pool>,
    conn: Option<Box<SlotConn>>,
    back: Option<oneshot::Sender<Returned>>,
    healthy: bool,
}

impl Lease {
    pub(super) fn new(
        pool: Arc<Pool>,
        conn: Box<SlotConn>,
        back: oneshot::Sender<Returned>,
    ) -> Lease {
        Lease {
            pool,
            conn: Some(conn),
            back: Some(back),
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

    pub fn writer(&self) -> Option<PacketWriter> {
        self.conn.as_ref().map(|c| c.writer())
    }

    /// The slot failed (worker died, protocol error): do not reuse it.
    pub fn mark_broken(&mut self) {
        self.healthy = false;
    }

    /// The request's client is gone before any body pump started: tell the worker, wait
    /// for it to finish, return the slot (see `SlotConn::abandon`).
    pub async fn abandon(mut self, id: u64) {
        let healthy = self.conn().abandon(id).await;
        self.note_mail();
        if !healthy {
            self.mark_broken();
        }
    }

    /// `SlotConn::stop_and_drain`: what it sends may reach the worker after it finished the
    /// request, so the slot is told to look for stale frames.
    pub async fn stop_and_drain(&mut self, id: u64, abort: bool, end_body: bool) -> bool {
        let healthy = self.conn().stop_and_drain(id, abort, end_body).await;
        if abort || end_body {
            self.note_mail();
        }
        healthy
    }

    /// Ends request `id`'s body as cut short, for a worker that answered before it was all
    /// sent (it skips the body up to this end). False if the slot is gone.
    pub async fn end_body(&mut self, id: u64) -> bool {
        let healthy = self.conn().end_body(id).await;
        self.note_mail();
        healthy
    }

    /// An `Abort` may reach the worker after it finished the request: see `Pool::note_mail`.
    fn note_mail(&mut self) {
        let slot = self.conn().board_slot;
        self.pool.note_mail(slot);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (Some(conn), Some(back)) = (self.conn.take(), self.back.take()) else {
            return;
        };
        let (returned, back) = if self.healthy {
            match self.pool.relend(conn, back) {
                Some(not_lent) => not_lent,
                // Still lent: to the next request.
                None => return,
            }
        } else {
            let healthy = false;
            (Returned { conn, healthy }, back)
        };
        self.pool.lock().leased -= 1;
        let _ = back.send(returned);
        self.pool.released.notify_waiters();
    }
}

/// One worker's block of scoreboard slots. Free again once every holder has let go: the
/// supervisor (until the process is reaped) and the slots' watchers (until each has read its
/// word after the slot broke), so a new worker never writes where a lost one is still read.
pub struct BoardBlock {
    pub(super) pool: Arc<Pool>,
    pub(super) block: u32,
}

impl BoardBlock {
    /// The scoreboard slot of the block's first worker slot.
    pub fn first_slot(&self) -> u32 {
        self.block * self.pool.threads as u32
    }
}

impl Drop for BoardBlock {
    fn drop(&mut self) {
        self.pool.lock().free_blocks.push(self.block);
    }
}
