//! The pool against real sockets: the tests play the worker's part of the protocol by hand
//! (take a packet from the queue, write the scoreboard, answer on a slot).

use super::*;
use std::os::fd::AsFd;
use std::time::Duration;

use bytes::BytesMut;
use corral_proto::{decode_to_worker, encode, ToMaster, ToWorker, MAX_PACKET};
use corral_sys::{recv_packet, send_packet, RecvFlags};

struct Fixture {
    pool: Arc<Pool>,
    events: mpsc::UnboundedReceiver<PoolEvent>,
    /// The scoreboard as a worker maps it.
    board: SharedWords,
}

fn fixture(max_queue: usize, threads: usize) -> Fixture {
    let cfg = corral_config::PoolConfig {
        workers: 2,
        threads,
        max_queue,
        ..Default::default()
    };
    let board = make_board(&cfg).unwrap();
    let workers_view = SharedWords::map(board.fd.as_fd()).unwrap();
    let (pool, events) = Pool::new(max_queue, board.words, threads);
    Fixture {
        pool,
        events,
        board: workers_view,
    }
}

/// Adds a worker of `n` slots; returns its first scoreboard slot and the worker ends of its
/// slots.
fn add_worker(f: &Fixture, worker: WorkerId, n: usize) -> (usize, Vec<WorkerEnd>) {
    let block = f.pool.reserve_block().unwrap();
    let first = block.first_slot() as usize;
    let mut conns = Vec::new();
    let mut theirs = Vec::new();
    for i in 0..n {
        let (a, b) = corral_sys::seqpacket_pair().unwrap();
        let board_slot = first + i;
        conns.push(SlotConn::new(a, worker, f.pool.board(), board_slot).unwrap());
        theirs.push(WorkerEnd {
            sock: b,
            board_slot,
        });
    }
    f.pool.add_worker(conns, block);
    (first, theirs)
}

fn request_packet(id: u64) -> BytesMut {
    let mut out = BytesMut::new();
    let head = corral_proto::RequestHead {
        method: "GET".into(),
        target: "/".into(),
        ..Default::default()
    };
    encode(
        &ToWorker::Request {
            id,
            head: Box::new(head),
        },
        &mut out,
    );
    encode(&ToWorker::BodyEnd { id, complete: true }, &mut out);
    out
}

async fn submit(pool: &Arc<Pool>, id: u64) -> Result<Ticket, AcquireError> {
    let packet = request_packet(id);
    let mut gather = Gather::default();
    gather.push_copied(&packet);
    pool.submit(id, &gather).await
}

/// Takes the next request from the queue as slot `board_slot` would; returns its id.
/// Takes the next request from the queue as a slot would, and records it on `board_slot`.
fn take(f: &Fixture, board_slot: usize) -> u64 {
    let id = take_unrecorded(f);
    f.board
        .word(board::slot_word(board_slot))
        .store(id, Ordering::Release);
    id
}

/// Takes the next request from the queue without recording it (a worker killed in between).
fn take_unrecorded(f: &Fixture) -> u64 {
    let ring = board::request_ring(f.board.all());
    let mut packet = BytesMut::new();
    let taken = ring.take(&mut packet).unwrap();
    assert_eq!(
        taken,
        corral_proto::ring::Taken::Packet,
        "a request in the queue"
    );
    let Some(ToWorker::Request { id, .. }) = decode_to_worker(&mut packet).unwrap() else {
        panic!("the packet does not start with a request");
    };
    id
}

/// Consumes one ring of worker process `process`'s doorbell, as a sleeping slot of it would
/// (without waiting), and takes that slot off the sleepers: false if it was not rung.
fn doorbell(f: &Fixture, process: usize) -> bool {
    let doorbells = board::doorbells(f.board.all());
    let rung = corral_sys::bell::try_wait(doorbells.bell(process));
    if rung == Some(corral_sys::bell::Bell::Rung) {
        doorbells.stop_sleeping(process);
    }
    rung == Some(corral_sys::bell::Bell::Rung)
}

/// A slot of worker process `process` finds the queue empty and sleeps.
fn sleep(f: &Fixture, process: usize) {
    let ring = board::request_ring(f.board.all());
    let doorbells = board::doorbells(f.board.all());
    assert!(
        doorbells.start_sleeping(process, &ring),
        "the queue is empty"
    );
}

/// The request's verdict is a 502: the worker that held it was lost.
async fn assert_worker_lost(ticket: Ticket) {
    assert_eq!(
        within("the verdict", ticket.wait()).await.err(),
        Some(Unserved::WorkerLost)
    );
}

fn is_pending(f: &Fixture, id: u64) -> bool {
    f.pool.lock().pending.contains_key(&id)
}

/// The worker's end of a slot.
struct WorkerEnd {
    sock: OwnedFd,
    board_slot: usize,
}

/// Sends `msg` as the worker does: into the slot's response ring, and the doorbell if the
/// master waits.
fn answer(f: &Fixture, slot: &WorkerEnd, msg: &ToMaster) {
    let mut out = BytesMut::new();
    encode(msg, &mut out);
    let ring = board::response_ring(f.board.all(), slot.board_slot);
    ring.push(out.len(), [&out[..]]).unwrap();
    let wake = f.board.word(board::wake_word(slot.board_slot));
    if wake.swap(0, Ordering::SeqCst) == 1 {
        send_packet(slot.sock.as_fd(), &[1], &[]).unwrap();
    }
}

fn head(id: u64) -> ToMaster {
    ToMaster::ResponseHead {
        id,
        head: corral_proto::ResponseHead::new(200, b"OK", []),
    }
}

/// Reads frames the master sends on `slot` until there are at least `n`.
async fn frames_to_worker(slot: &OwnedFd, n: usize) -> Vec<ToWorker> {
    let slot = slot.try_clone().unwrap();
    let read = tokio::task::spawn_blocking(move || {
        let mut frames = Vec::new();
        let mut buf = vec![0u8; MAX_PACKET];
        while frames.len() < n {
            let got = recv_packet(slot.as_fd(), &mut buf, &mut Vec::new(), RecvFlags::Wait);
            let mut packet = BytesMut::from(&buf[..got.unwrap()]);
            while let Some(m) = decode_to_worker(&mut packet).unwrap() {
                frames.push(m);
            }
        }
        frames
    });
    read.await.unwrap()
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test]
async fn a_request_goes_to_the_slot_that_takes_it() {
    let f = fixture(10, 2);
    let (first, slots) = add_worker(&f, 1, 2);
    let ticket = submit(&f.pool, 7).await.unwrap();
    assert_eq!(take(&f, first + 1), 7);
    answer(&f, &slots[1], &head(7));
    let mut lease = within("the lease", ticket.wait()).await.unwrap();
    assert_eq!(lease.conn().board_slot, first + 1);
    assert!(matches!(
        lease.conn().next().await,
        Ok(Some(ToMaster::ResponseHead { id: 7, .. }))
    ));
}

/// Whether `fut` is ready the first time it is polled: nothing else ran meanwhile (the tests
/// run on one thread, so a watcher task cannot have run between the caller's steps).
fn ready_at_once<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

/// Reads the lease's next frame and checks that it is the response head of request `id`.
async fn expect_head(lease: &mut Lease, id: u64) {
    let next = lease.conn().next().await;
    assert!(
        matches!(next, Ok(Some(ToMaster::ResponseHead { id: i, .. })) if i == id),
        "the head of request {id}, not {next:?}"
    );
}

/// Plays a slot that takes the next request (it must be `id`) and answers its head; returns
/// the request's lease once the head is read.
async fn serve_head(f: &Fixture, slot: &WorkerEnd, ticket: Ticket, id: u64) -> Lease {
    assert_eq!(take(f, slot.board_slot), id);
    answer(f, slot, &head(id));
    let mut lease = within("the lease", ticket.wait()).await.unwrap();
    expect_head(&mut lease, id).await;
    lease
}

/// The slot ends request `id`, and the lease reads that `End`.
async fn end(f: &Fixture, slot: &WorkerEnd, lease: &mut Lease, id: u64) {
    answer(f, slot, &ToMaster::End { id });
    let next = lease.conn().next().await;
    assert!(matches!(next, Ok(Some(ToMaster::End { id: i })) if i == id));
}

#[tokio::test]
async fn a_lease_that_ends_hands_its_slot_straight_to_the_next_request_it_answered() {
    let f = fixture(10, 1);
    let (_, slots) = add_worker(&f, 1, 1);
    let one = submit(&f.pool, 1).await.unwrap();
    let two = submit(&f.pool, 2).await.unwrap();
    let mut lease = serve_head(&f, &slots[0], one, 1).await;
    // The slot finishes request 1 and answers request 2 before the master gets back to it.
    end(&f, &slots[0], &mut lease, 1).await;
    assert_eq!(take(&f, slots[0].board_slot), 2);
    answer(&f, &slots[0], &head(2));
    drop(lease);
    let mut lease = ready_at_once(two.wait())
        .expect("lent on by the lease itself, not by the watcher")
        .unwrap();
    expect_head(&mut lease, 2).await;
    assert_eq!(f.pool.lock().leased, 1, "one lease ended, one began");
    end(&f, &slots[0], &mut lease, 2).await;
    drop(lease);
    let later = tokio::time::Instant::now() + Duration::from_secs(5);
    assert!(f.pool.wait_until_all_idle(later).await);
}

#[tokio::test]
async fn a_slot_whose_next_answer_is_not_here_yet_goes_back_to_its_watcher() {
    let f = fixture(10, 1);
    let (_, slots) = add_worker(&f, 1, 1);
    let one = submit(&f.pool, 1).await.unwrap();
    let mut lease = serve_head(&f, &slots[0], one, 1).await;
    end(&f, &slots[0], &mut lease, 1).await;
    drop(lease);
    // Request 2 comes later; the watcher (not the old lease) lends the slot to it.
    let two = submit(&f.pool, 2).await.unwrap();
    serve_head(&f, &slots[0], two, 2).await;
}

#[tokio::test]
async fn a_request_the_slot_skipped_is_left_to_the_watcher_when_a_lease_ends() {
    let f = fixture(10, 1);
    let (_, slots) = add_worker(&f, 1, 1);
    let one = submit(&f.pool, 1).await.unwrap();
    let two = submit(&f.pool, 2).await.unwrap();
    let three = submit(&f.pool, 3).await.unwrap();
    drop(two); // its client left while it was queued: cancelled
    let mut lease = serve_head(&f, &slots[0], one, 1).await;
    end(&f, &slots[0], &mut lease, 1).await;
    assert_eq!(take(&f, slots[0].board_slot), 2);
    answer(&f, &slots[0], &ToMaster::Skipped { id: 2 });
    assert_eq!(take(&f, slots[0].board_slot), 3);
    answer(&f, &slots[0], &head(3));
    drop(lease);
    let mut lease = within("the third lease", three.wait()).await.unwrap();
    expect_head(&mut lease, 3).await;
    assert!(!is_pending(&f, 2), "the skipped request is forgotten");
}

#[tokio::test]
async fn the_queue_admits_slots_plus_max_queue_requests() {
    let f = fixture(1, 1);
    let _worker = add_worker(&f, 1, 1);
    let _a = submit(&f.pool, 1).await.unwrap();
    let _b = submit(&f.pool, 2).await.unwrap();
    assert_eq!(
        submit(&f.pool, 3).await.err(),
        Some(AcquireError::QueueFull)
    );
}

#[tokio::test]
async fn a_request_that_leaves_the_queue_is_marked_cancelled() {
    let f = fixture(10, 1);
    let (first, slots) = add_worker(&f, 1, 1);
    let ticket = submit(&f.pool, 42).await.unwrap();
    let word = f.board.word(board::cancel_word(42));
    assert_eq!(word.load(Ordering::Acquire), 0);
    drop(ticket);
    assert_eq!(word.load(Ordering::Acquire), 42);
    let soon = || tokio::time::Instant::now() + Duration::from_millis(50);
    assert!(
        !f.pool.wait_until_all_idle(soon()).await,
        "until a worker has seen it, it may be running"
    );
    assert_eq!(take(&f, first), 42);
    answer(&f, &slots[0], &ToMaster::Skipped { id: 42 });
    let later = tokio::time::Instant::now() + Duration::from_secs(5);
    assert!(f.pool.wait_until_all_idle(later).await, "skipped: gone");
}

#[tokio::test]
async fn a_request_whose_client_left_while_it_ran_is_waited_for_then_drained() {
    let f = fixture(10, 1);
    let (first, slots) = add_worker(&f, 1, 1);
    let ticket = submit(&f.pool, 43).await.unwrap();
    assert_eq!(take(&f, first), 43); // running, silent so far
    drop(ticket);
    let soon = || tokio::time::Instant::now() + Duration::from_millis(50);
    assert!(!f.pool.wait_until_all_idle(soon()).await, "still running");
    answer(&f, &slots[0], &head(43));
    let frames = within("the abort", frames_to_worker(&slots[0].sock, 1)).await;
    assert_eq!(frames[0], ToWorker::Abort { id: 43 });
    assert!(!f.pool.wait_until_all_idle(soon()).await, "until its End");
    answer(&f, &slots[0], &ToMaster::End { id: 43 });
    let later = tokio::time::Instant::now() + Duration::from_secs(5);
    assert!(f.pool.wait_until_all_idle(later).await);
}

#[tokio::test]
async fn a_slot_that_breaks_fails_the_request_it_held_and_reports_the_worker() {
    let mut f = fixture(10, 1);
    let (first, mut slots) = add_worker(&f, 5, 1);
    let ticket = submit(&f.pool, 9).await.unwrap();
    let other = submit(&f.pool, 10).await.unwrap();
    assert_eq!(take(&f, first), 9);
    drop(slots.pop()); // the worker dies while running request 9
    assert_worker_lost(ticket).await;
    assert_eq!(
        within("the event", f.events.recv()).await,
        Some(PoolEvent::WorkerBroken(5))
    );
    // request 10 is still queued, for the next worker to take
    let (first, slots) = add_worker(&f, 6, 1);
    assert_eq!(take(&f, first), 10);
    answer(&f, &slots[0], &head(10));
    assert!(within("the second lease", other.wait()).await.is_ok());
}

#[tokio::test]
async fn a_response_nobody_waits_for_is_aborted_and_the_slot_reused() {
    let f = fixture(10, 1);
    let (first, slots) = add_worker(&f, 1, 1);
    let gone = submit(&f.pool, 3).await.unwrap();
    assert_eq!(take(&f, first), 3);
    drop(gone); // the client left while the app ran
    answer(&f, &slots[0], &head(3));
    let frames = within("the abort", frames_to_worker(&slots[0].sock, 1)).await;
    assert_eq!(frames[0], ToWorker::Abort { id: 3 });
    answer(&f, &slots[0], &ToMaster::End { id: 3 });
    let next = submit(&f.pool, 4).await.unwrap();
    assert_eq!(take(&f, first), 4);
    answer(&f, &slots[0], &head(4));
    assert!(within("the next lease", next.wait()).await.is_ok());
}

#[tokio::test]
async fn idle_means_nothing_waits_and_nothing_is_lent() {
    let f = fixture(10, 1);
    let (first, slots) = add_worker(&f, 1, 1);
    let soon = || tokio::time::Instant::now() + Duration::from_millis(50);
    assert!(f.pool.wait_until_all_idle(soon()).await);
    let ticket = submit(&f.pool, 1).await.unwrap();
    assert!(!f.pool.wait_until_all_idle(soon()).await, "one waits");
    take(&f, first);
    answer(&f, &slots[0], &head(1));
    let mut lease = within("the lease", ticket.wait()).await.unwrap();
    assert!(!f.pool.wait_until_all_idle(soon()).await, "one is lent");
    // the request reads its response to the end before it lets the slot go
    answer(&f, &slots[0], &ToMaster::End { id: 1 });
    for _ in 0..2 {
        assert!(lease.conn().next().await.unwrap().is_some());
    }
    let p = f.pool.clone();
    let waiting = tokio::spawn(async move {
        p.wait_until_all_idle(tokio::time::Instant::now() + Duration::from_secs(5))
            .await
    });
    tokio::task::yield_now().await;
    drop(lease);
    assert!(within("idle", waiting).await.unwrap());
}

#[tokio::test]
async fn a_scoreboard_block_is_free_again_once_every_holder_let_go() {
    let f = fixture(10, 4);
    let total = f.pool.lock().free_blocks.len();
    let block = f.pool.reserve_block().unwrap();
    assert_eq!(block.first_slot() % 4, 0);
    let copy = block.clone();
    drop(block);
    assert_eq!(f.pool.lock().free_blocks.len(), total - 1);
    drop(copy);
    assert_eq!(f.pool.lock().free_blocks.len(), total);
}

#[tokio::test]
async fn an_abandoned_request_whose_body_was_still_coming_gets_its_body_ended() {
    let f = fixture(10, 1);
    let (first, slots) = add_worker(&f, 1, 1);
    let ticket = submit(&f.pool, 8).await.unwrap();
    assert_eq!(take(&f, first), 8);
    answer(&f, &slots[0], &ToMaster::Taken { id: 8 });
    drop(ticket); // the client left as the worker said it took the request
    let frames = within("the abort", frames_to_worker(&slots[0].sock, 2)).await;
    assert_eq!(
        frames,
        [
            ToWorker::Abort { id: 8 },
            ToWorker::BodyEnd {
                id: 8,
                complete: false
            }
        ]
    );
    answer(&f, &slots[0], &ToMaster::End { id: 8 });
    assert!(
        f.pool
            .wait_until_all_idle(tokio::time::Instant::now() + Duration::from_secs(5))
            .await,
        "the slot is back"
    );
}

#[tokio::test]
async fn a_reaped_worker_fails_what_its_slots_took_even_unwatched() {
    // A worker whose slots the master no longer watches (they broke, or it died starting)
    // may still have taken a request before it was killed.
    let f = fixture(10, 2);
    let block = f.pool.reserve_block().unwrap();
    let ticket = submit(&f.pool, 21).await.unwrap();
    let unrelated = submit(&f.pool, 22).await.unwrap();
    assert_eq!(take(&f, block.first_slot() as usize + 1), 21);
    f.pool.worker_exited(&block);
    assert_worker_lost(ticket).await;
    assert!(
        is_pending(&f, 22),
        "a request still queued waits for the next worker"
    );
    drop(unrelated);
}

#[tokio::test]
async fn a_request_taken_but_never_recorded_is_found_by_the_sweep() {
    // A worker killed between taking the packet and writing its scoreboard word.
    let f = fixture(10, 1);
    let (first, _slots) = add_worker(&f, 1, 1);
    let lost = submit(&f.pool, 31).await.unwrap();
    assert_eq!(take_unrecorded(&f), 31);
    let running = submit(&f.pool, 32).await.unwrap();
    assert_eq!(take(&f, first), 32); // this one a slot did record
    let mut suspects = HashSet::new();
    f.pool.sweep(&mut suspects);
    assert!(is_pending(&f, 31), "one look is not enough");
    f.pool.sweep(&mut suspects);
    assert_worker_lost(lost).await;
    assert!(is_pending(&f, 32), "a recorded request is left alone");
    drop(running);
}

#[tokio::test]
async fn the_sweep_leaves_queued_requests_alone() {
    let f = fixture(10, 1);
    let _worker = add_worker(&f, 1, 1);
    let _queued = submit(&f.pool, 41).await.unwrap();
    let mut suspects = HashSet::new();
    for _ in 0..3 {
        f.pool.sweep(&mut suspects);
    }
    assert!(is_pending(&f, 41));
}

#[tokio::test]
async fn a_request_rings_the_doorbell_only_for_a_sleeping_slot() {
    let f = fixture(10, 1);
    let _worker = add_worker(&f, 1, 1);
    let _first = submit(&f.pool, 1).await.unwrap();
    assert!(!doorbell(&f, 0), "nobody slept: no doorbell");
    assert_eq!(take_unrecorded(&f), 1);
    sleep(&f, 0);
    let _second = submit(&f.pool, 2).await.unwrap();
    assert!(doorbell(&f, 0), "the sleeper's doorbell");
    let _third = submit(&f.pool, 3).await.unwrap();
    assert!(
        !doorbell(&f, 0),
        "one doorbell per sleeper, not per request"
    );
    assert_eq!((take_unrecorded(&f), take_unrecorded(&f)), (2, 3));
}

#[tokio::test]
async fn a_request_wakes_the_process_with_the_fewest_busy_slots() {
    let f = fixture(10, 3);
    let _first = add_worker(&f, 1, 3);
    let _second = add_worker(&f, 2, 3);
    sleep(&f, 0); // two slots of process 0 are busy
    for _ in 0..2 {
        sleep(&f, 1); // one of process 1 is
    }
    let _a = submit(&f.pool, 1).await.unwrap();
    assert!(doorbell(&f, 1), "the process with more idle slots");
    assert!(!doorbell(&f, 0));
    let _b = submit(&f.pool, 2).await.unwrap();
    assert!(
        doorbell(&f, 0),
        "process 1's woken slot has not looked yet (it may wait for the GIL): the other"
    );
    let _c = submit(&f.pool, 3).await.unwrap();
    assert!(
        !doorbell(&f, 0) && !doorbell(&f, 1),
        "both have a woken slot on its way"
    );
}

#[tokio::test]
async fn a_block_given_to_a_new_worker_starts_with_empty_response_rings() {
    let f = fixture(10, 2);
    let block = f.pool.reserve_block().unwrap();
    let (number, first) = (block.block, block.first_slot() as usize);
    for slot in first..first + 2 {
        let ring = board::response_ring(f.board.all(), slot);
        ring.push(3, [&b"old"[..]]).unwrap();
        ring.push_switch().unwrap();
        f.board
            .word(board::wake_word(slot))
            .store(1, Ordering::SeqCst);
    }
    drop(block); // its worker was reaped
    let block = f.pool.reserve_block().unwrap();
    assert_eq!(block.block, number, "the same block, reused");
    for slot in first..first + 2 {
        assert!(board::response_ring(f.board.all(), slot).is_empty());
        assert_eq!(
            f.board.word(board::wake_word(slot)).load(Ordering::SeqCst),
            0
        );
    }
}

#[tokio::test]
async fn a_queue_that_stops_moving_wakes_another_sleeper() {
    let f = fixture(10, 2);
    let _first = add_worker(&f, 1, 2);
    let _second = add_worker(&f, 2, 2);
    sleep(&f, 0); // each process has one slot busy, one asleep
    sleep(&f, 1);
    let _queued = submit(&f.pool, 5).await.unwrap();
    assert!(doorbell(&f, 0), "equals: the lower number is woken...");
    // ... and its slot waits for a Python lock that C code holds.
    let mut last_taken = None;
    f.pool.unstick_the_queue(&mut last_taken);
    assert!(!doorbell(&f, 1), "one look: the queue may just be slow");
    f.pool.unstick_the_queue(&mut last_taken);
    assert!(
        doorbell(&f, 1),
        "nothing taken between two looks: the other process is woken"
    );
    f.pool.unstick_the_queue(&mut last_taken);
    assert!(
        !doorbell(&f, 0) && !doorbell(&f, 1),
        "both have a woken slot on its way: nobody else to wake"
    );
}

#[tokio::test]
async fn a_queue_that_moves_wakes_nobody_more() {
    let f = fixture(10, 3);
    let mut workers = Vec::new();
    for (worker, asleep) in [(1, 3), (2, 2), (3, 1)] {
        workers.push(add_worker(&f, worker, 3));
        for _ in 0..asleep {
            sleep(&f, worker as usize - 1);
        }
    }
    let _a = submit(&f.pool, 5).await.unwrap();
    let _b = submit(&f.pool, 6).await.unwrap();
    assert!(
        doorbell(&f, 0) && doorbell(&f, 1),
        "two requests, two processes"
    );
    let mut last_taken = None;
    f.pool.unstick_the_queue(&mut last_taken);
    assert_eq!(take_unrecorded(&f), 5, "a busy slot takes one meanwhile");
    f.pool.unstick_the_queue(&mut last_taken);
    assert!(
        !doorbell(&f, 2),
        "the queue moved: the third process sleeps on"
    );
    f.pool.unstick_the_queue(&mut last_taken);
    assert!(doorbell(&f, 2), "it stopped: the third process is woken");
}

#[tokio::test]
async fn a_worker_that_exits_leaves_no_sleeper_to_wake_and_its_packet_goes_to_another() {
    let f = fixture(10, 2);
    let dying = f.pool.reserve_block().unwrap();
    let replacement = f.pool.reserve_block().unwrap();
    let (dead, live) = (dying.block as usize, replacement.block as usize);
    sleep(&f, dead);
    sleep(&f, dead);
    sleep(&f, live);
    let _queued = submit(&f.pool, 7).await.unwrap();
    assert!(
        doorbell(&f, dead),
        "the process with more sleepers is woken, and killed before its slot looks"
    );
    f.pool.worker_exited(&dying);
    assert!(
        doorbell(&f, live),
        "the packet's wake-up goes to the live process"
    );
    assert_eq!(take_unrecorded(&f), 7);
    board::doorbells(f.board.all()).looked(live);
    sleep(&f, live);
    let _next = submit(&f.pool, 8).await.unwrap();
    assert!(
        !doorbell(&f, dead),
        "the dead process's other sleeper is not counted"
    );
    assert!(doorbell(&f, live));
}

#[tokio::test]
async fn close_closes_every_doorbell_and_those_opened_after() {
    let f = fixture(10, 1);
    let _first = add_worker(&f, 1, 1);
    let doorbells = board::doorbells(f.board.all());
    f.pool.close();
    assert_eq!(
        corral_sys::bell::try_wait(doorbells.bell(0)),
        Some(corral_sys::bell::Bell::Closed)
    );
    let late = f.pool.reserve_block().unwrap();
    assert_eq!(
        corral_sys::bell::try_wait(doorbells.bell(late.block as usize)),
        Some(corral_sys::bell::Bell::Closed),
        "a worker started during the stop finds its doorbell closed"
    );
}
