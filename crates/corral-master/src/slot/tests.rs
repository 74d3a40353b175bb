//! The master's end of a slot against a real socket pair and a real scoreboard; the tests
//! play the worker, pushing into the response ring and writing to the socket by hand.

use super::*;
use std::time::Duration;

use corral_proto::ToMaster;

struct Fixture {
    conn: SlotConn,
    board: Arc<SharedWords>,
    /// The worker's end of the socket.
    worker: OwnedFd,
}

fn fixture() -> Fixture {
    let (words, _fd) = SharedWords::create("corral-test", board::words(1)).unwrap();
    let board = Arc::new(words);
    let (ours, worker) = corral_sys::seqpacket_pair().unwrap();
    let conn = SlotConn::new(ours, 1, board.clone(), 0).unwrap();
    Fixture {
        conn,
        board,
        worker,
    }
}

fn packet(msgs: &[ToMaster]) -> BytesMut {
    let mut out = BytesMut::new();
    for m in msgs {
        encode(m, &mut out);
    }
    out
}

fn push(f: &Fixture, msgs: &[ToMaster]) {
    let p = packet(msgs);
    board::response_ring(f.board.all(), 0)
        .push(p.len(), [&p[..]])
        .unwrap();
}

fn send(f: &Fixture, msgs: &[ToMaster]) {
    send_packet(f.worker.as_fd(), &packet(msgs), &[]).unwrap();
}

async fn next(f: &mut Fixture) -> Option<ToMaster> {
    tokio::time::timeout(Duration::from_secs(5), f.conn.next())
        .await
        .expect("a frame in time")
        .unwrap()
}

#[tokio::test]
async fn frames_keep_their_order_across_the_ring_and_the_socket() {
    let mut f = fixture();
    push(&f, &[ToMaster::Taken { id: 1 }]);
    board::response_ring(f.board.all(), 0)
        .push_switch()
        .unwrap();
    send(&f, &[ToMaster::Complete { id: 1 }]);
    send(&f, &[ToMaster::End { id: 1 }, ToMaster::BackToRing]);
    push(&f, &[ToMaster::Skipped { id: 2 }]);
    assert_eq!(next(&mut f).await, Some(ToMaster::Taken { id: 1 }));
    assert_eq!(next(&mut f).await, Some(ToMaster::Complete { id: 1 }));
    assert_eq!(next(&mut f).await, Some(ToMaster::End { id: 1 }));
    assert_eq!(
        next(&mut f).await,
        Some(ToMaster::Skipped { id: 2 }),
        "BackToRing is consumed, and the ring read again"
    );
}

#[tokio::test]
async fn a_waiting_master_is_woken_by_the_doorbell() {
    let mut f = fixture();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(f.conn.poll_next(&mut cx).is_pending());
    let wake = f.board.word(board::wake_word(0));
    assert_eq!(wake.load(Ordering::SeqCst), 1, "the master said it waits");
    push(&f, &[ToMaster::End { id: 3 }]);
    // As the worker does after a push: the master waits, so ring.
    wake.store(0, Ordering::SeqCst);
    send_packet(f.worker.as_fd(), &[1], &[]).unwrap();
    assert_eq!(next(&mut f).await, Some(ToMaster::End { id: 3 }));
}

#[tokio::test]
async fn what_a_dead_worker_left_in_the_ring_comes_before_the_end_of_stream() {
    let mut f = fixture();
    push(&f, &[ToMaster::End { id: 4 }]);
    drop(std::mem::replace(
        &mut f.worker,
        corral_sys::seqpacket_pair().unwrap().0,
    ));
    assert_eq!(next(&mut f).await, Some(ToMaster::End { id: 4 }));
    assert_eq!(next(&mut f).await, None);
}
