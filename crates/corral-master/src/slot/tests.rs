//! The master's end of a slot against a real socket pair and a real scoreboard; the tests
//! play the worker, pushing into the response ring and writing to the socket by hand.

use super::*;
use std::sync::atomic::AtomicUsize;
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

/// A waker that counts its wake-ups.
struct Counter(AtomicUsize);

impl std::task::Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<Counter>, std::task::Waker) {
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    (counter.clone(), counter.into())
}

/// Waits (bounded) until the waker was woken.
async fn woken(counter: &Counter) -> bool {
    for _ in 0..500 {
        if counter.0.load(Ordering::SeqCst) > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn a_waiting_master_is_woken_by_the_doorbell_and_only_then() {
    let mut f = fixture();
    let (counter, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(f.conn.poll_next(&mut cx).is_pending());
    let wake = f.board.word(board::wake_word(0));
    assert_eq!(wake.load(Ordering::SeqCst), 1, "the master said it waits");
    push(&f, &[ToMaster::End { id: 3 }]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        0,
        "a push alone wakes nobody"
    );
    // As the worker does after a push: the master waits, so ring.
    wake.store(0, Ordering::SeqCst);
    send_packet(f.worker.as_fd(), &[1], &[]).unwrap();
    assert!(woken(&counter).await, "the doorbell woke the master");
    assert!(matches!(
        f.conn.poll_next(&mut cx),
        Poll::Ready(Ok(Some(ToMaster::End { id: 3 })))
    ));
}

#[tokio::test]
async fn a_socket_packet_read_before_its_switch_marker_waits_for_it() {
    let mut f = fixture();
    let (counter, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(f.conn.poll_next(&mut cx).is_pending());
    // The worker's marker is not visible yet when the master reads the socket packet.
    send(&f, &[ToMaster::End { id: 5 }, ToMaster::BackToRing]);
    assert!(woken(&counter).await);
    assert!(
        f.conn.poll_next(&mut cx).is_pending(),
        "kept until the marker"
    );
    board::response_ring(f.board.all(), 0)
        .push_switch()
        .unwrap();
    push(&f, &[ToMaster::Skipped { id: 6 }]);
    assert_eq!(next(&mut f).await, Some(ToMaster::End { id: 5 }));
    assert_eq!(next(&mut f).await, Some(ToMaster::Skipped { id: 6 }));
}

#[tokio::test]
async fn what_a_dying_worker_sent_through_the_socket_is_not_dropped() {
    let mut f = fixture();
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert!(f.conn.poll_next(&mut cx).is_pending());
    let failed = ToMaster::LoadFailed {
        message: "no module".into(),
    };
    send(&f, std::slice::from_ref(&failed));
    drop(std::mem::replace(
        &mut f.worker,
        corral_sys::seqpacket_pair().unwrap().0,
    ));
    assert_eq!(next(&mut f).await, Some(failed));
    assert_eq!(next(&mut f).await, None);
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
