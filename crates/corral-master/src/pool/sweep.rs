//! The pool's watchdogs: the look for a queue that stopped moving while packets wait, ten
//! times a second, and the sweep for requests a dying worker took without recording them,
//! once a second (see the pool's doc).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use corral_proto::board;

use super::{Pool, Routed, Waiter};

/// How often the pool looks whether the queue moved while packets wait.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Progress looks per sweep for requests a dying worker took without recording them (one a
/// second).
const LOOKS_PER_SWEEP: u32 = 10;

impl Pool {
    /// Starts the task that looks, ten times a second, whether the queue stopped moving while
    /// packets wait, and once a second for requests that were taken from the queue but that
    /// no slot recorded (see the module doc). It ends with the pool.
    pub fn start_sweeper(self: &Arc<Self>) {
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut suspects = HashSet::new();
            let mut last_taken = None;
            let mut tick = tokio::time::interval(PROGRESS_EVERY);
            // After a stall of the master, no burst of looks microseconds apart (they would
            // find nothing taken between them).
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for look in (0..LOOKS_PER_SWEEP).cycle() {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                pool.unstick_the_queue(&mut last_taken);
                if look == 0 {
                    pool.sweep(&mut suspects);
                }
            }
        });
    }

    /// If packets wait and nobody took one since the last look (`last_taken`: where the ring's
    /// consumers stood then), the slot woken for them may be stuck: it waits for a Python lock
    /// that C code holds. A push wakes one process; this wakes another that sleeps, skipping
    /// every process whose woken slot has not looked yet, the stuck one among them (see
    /// `corral_proto::doorbells`). Nothing to wake while every slot is busy. (A woken slot
    /// that died is forgotten when its process is reaped: `Pool::worker_exited`.)
    pub(super) fn unstick_the_queue(&self, last_taken: &mut Option<u64>) {
        let ring = self.ring();
        let taken = (!ring.is_empty()).then(|| ring.taken());
        if taken.is_some() && taken == *last_taken {
            self.wake_a_sleeper();
        }
        *last_taken = taken;
    }

    /// One look for lost requests. A request is lost if, now and at the previous look, it
    /// waited while the queue was empty (so some slot had taken it) and no slot's word held
    /// it. Two looks, because a slot writes its word an instant after it takes a packet.
    pub(super) fn sweep(&self, suspects: &mut HashSet<u64>) {
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
}
