//! The watcher of one slot: it lends the slot to the requests the slot takes. Under load it
//! is rarely woken: a lease that ends passes the slot straight on to the next request when
//! the slot already answered it (`Pool::relend`), and the slot comes back here only when it
//! has nothing to say yet or says something only the watcher handles.

use std::sync::Arc;

use super::{BoardBlock, Pool, Returned, Routed, Waiter};
use crate::slot::SlotConn;

/// How a lent slot came back.
pub(super) enum Lent {
    Back(Returned),
    /// The request had just given up: the slot was never lent.
    Refused(Box<SlotConn>),
    /// Dropped without being returned (only while the runtime shuts down).
    Gone,
}

/// Waits for each request the slot takes and lends the slot to it, until the slot breaks.
pub(super) async fn watch(pool: Arc<Pool>, conn: SlotConn, block: Arc<BoardBlock>) {
    // Boxed: the slot travels to each request it serves and back, so a move is one pointer.
    let mut conn = Box::new(conn);
    let (worker, board_slot) = (conn.worker, conn.board_slot);
    loop {
        let Some(id) = conn.next_id().await else {
            break;
        };
        let waiting = pool.lock().pending.remove(&id);
        if conn.skipped(id) {
            // A cancelled request the slot did not run: nothing else comes for it.
            if let Some(Waiter::Request(tx)) = waiting {
                let _ = tx.send(Routed::WorkerLost); // (only if a cancel word was stale)
            }
            pool.released.notify_waiters();
            continue;
        }
        if let Some(Waiter::Request(tx)) = waiting {
            match pool.lend(tx, conn).await {
                Lent::Back(Returned {
                    conn: back,
                    healthy,
                }) => {
                    conn = back;
                    if healthy {
                        continue;
                    }
                    break;
                }
                Lent::Refused(back) => conn = back,
                Lent::Gone => return,
            }
        }
        // An orphan, or nobody waits for this request any more (its client left just now):
        // let the worker finish it.
        if !pool.abandon(&mut conn, id).await {
            break;
        }
    }
    drop(conn);
    pool.slot_lost(worker, board_slot);
    drop(block);
}
