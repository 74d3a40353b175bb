//! The sweep for requests a dying worker took without recording them (see the pool's doc).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use corral_proto::board;

use super::{Pool, Routed, Waiter};

/// How often the pool looks for requests a dying worker took without recording them.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Pool {
    /// Starts the task that looks, once a second, for requests that were taken from the queue
    /// but that no slot recorded (see the module doc). It ends with the pool.
    pub fn start_sweeper(self: &Arc<Self>) {
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut suspects = HashSet::new();
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                pool.sweep(&mut suspects);
            }
        });
    }

    /// One look for lost requests. A request is lost if, now and at the previous look, it
    /// waited while the queue was empty (so some slot had taken it) and no slot's word held
    /// it. Two looks, because a slot writes its word an instant after it takes a packet.
    pub(super) fn sweep(&self, suspects: &mut HashSet<u64>) {
        self.wake_a_sleeper_for_a_waiting_packet();
        let queue_empty = self.ring().is_empty();
        if !queue_empty || self.lock().pending.is_empty() {
            suspects.clear();
            return;
        }
        let held: HashSet<u64> = (0..board::slots(self.board.len()))
            .map(|slot| {
                self.board
                    .word(board::slot_word(slot))
                    .load(Ordering::Acquire)
            })
            .collect();
        let mut lost = Vec::new();
        {
            let mut st = self.lock();
            let unheld: HashSet<u64> = st
                .pending
                .keys()
                .copied()
                .filter(|id| !held.contains(id))
                .collect();
            for id in unheld.intersection(suspects) {
                lost.extend(st.pending.remove(id));
            }
            *suspects = unheld;
        }
        if lost.is_empty() {
            return;
        }
        tracing::error!(
            "{} request(s) taken by a worker that died before it could record them",
            lost.len()
        );
        for waiter in lost {
            if let Waiter::Request(tx) = waiter {
                let _ = tx.send(Routed::WorkerLost);
            }
        }
        self.released.notify_waiters();
    }

    /// A slot woken for a packet may die before it looks at the ring, while another slot
    /// sleeps: if a packet waits, recount the wake-ups (at worst a spurious look, once a
    /// second).
    fn wake_a_sleeper_for_a_waiting_packet(&self) {
        if !self.ring().is_empty() {
            self.recount_wakes();
        }
    }
}
