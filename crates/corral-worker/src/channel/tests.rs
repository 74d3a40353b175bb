//! The slot channel against real socket pairs and a real scoreboard.

use super::*;
use corral_proto::decode_to_master;

/// Every frame the master would receive, reading as it does (packets of `MAX_PACKET`).
fn received(master: &OwnedFd) -> Vec<ToMaster> {
    let mut frames = Vec::new();
    let mut rx = BytesMut::new();
    loop {
        let got = recv_packet_into(
            master.as_fd(),
            &mut rx,
            MAX_PACKET,
            &mut Vec::new(),
            RecvFlags::DontWait,
        );
        match got {
            Ok(0) => break,
            Ok(_) => {
                let mut packet = rx.split();
                while let Some(m) = decode_to_master(&mut packet).unwrap() {
                    frames.push(m);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("the master could not receive a packet: {e}"),
        }
    }
    frames
}

fn channel() -> (SlotChannel, OwnedFd, OwnedFd) {
    let (ours, master) = corral_sys::seqpacket_pair().unwrap();
    let (queue, master_queue) = corral_sys::seqpacket_pair().unwrap();
    let (board, _fd) = SharedWords::create("corral-test", board::words(1)).unwrap();
    let pool = PoolShare {
        queue: Arc::new(queue),
        board: Arc::new(board),
    };
    (SlotChannel::new(ours, pool, 0), master, master_queue)
}

/// Puts request `id` in the ring, as the master does (without ringing the doorbell).
fn queue_request(pool: &PoolShare, id: u64) {
    let mut out = BytesMut::new();
    let head = Box::new(RequestHead::default());
    encode(&ToWorker::Request { id, head }, &mut out);
    encode(&ToWorker::BodyEnd { id, complete: true }, &mut out);
    pool.ring().push(out.len(), [&out[..]]).unwrap();
}

#[test]
fn an_idle_slot_drops_stale_frames_when_the_master_says_so() {
    let (mut chan, master, _queue) = channel();
    let mut stale = BytesMut::new();
    encode(&ToWorker::Abort { id: 1 }, &mut stale);
    for _ in 0..3 {
        send_packet(master.as_fd(), &stale, &[]).unwrap();
    }
    chan.pool
        .board
        .word(chan.mail_word)
        .store(1, Ordering::Release);
    queue_request(&chan.pool, 2);
    assert!(matches!(chan.next_request(), Next::Request { id: 2, .. }));
    assert_eq!(
        chan.pool
            .board
            .word(chan.board_word)
            .load(Ordering::Acquire),
        2
    );
    assert_eq!(
        chan.pool.board.word(chan.mail_word).load(Ordering::Acquire),
        0
    );
    assert!(
        chan.inbox
            .iter()
            .all(|m| matches!(m, ToWorker::BodyEnd { id: 2, .. })),
        "only the new request's own frames are left: {:?}",
        chan.inbox
    );
    let mut buf = [0u8; 64];
    let left = corral_sys::recv_packet(
        chan.sock.as_fd(),
        &mut buf,
        &mut Vec::new(),
        RecvFlags::DontWait,
    );
    assert_eq!(left.unwrap_err().kind(), io::ErrorKind::WouldBlock);
}

#[test]
fn an_idle_slot_whose_master_let_go_takes_no_more_requests() {
    let (mut chan, master, _queue) = channel();
    drop(master);
    chan.pool
        .board
        .word(chan.mail_word)
        .store(1, Ordering::Release);
    queue_request(&chan.pool, 5);
    assert!(matches!(chan.next_request(), Next::Closed));
    assert!(
        !chan.pool.ring().is_empty(),
        "the request stays for another worker"
    );
}

#[test]
fn a_cancelled_request_is_skipped() {
    let (mut chan, master, _queue) = channel();
    chan.pool
        .board
        .word(board::cancel_word(7))
        .store(7, Ordering::Release);
    queue_request(&chan.pool, 7);
    queue_request(&chan.pool, 8);
    assert!(matches!(chan.next_request(), Next::Request { id: 8, .. }));
    assert_eq!(received(&master), [ToMaster::Skipped { id: 7 }]);
}

#[test]
fn closing_frames_never_push_a_packet_past_the_limit() {
    let (mut chan, master, _queue) = channel();
    chan.current = 1;
    let head = ResponseHead {
        status: 200,
        reason: Bytes::from_static(b"OK"),
        headers: vec![(
            Bytes::from_static(b"Content-Type"),
            Bytes::from_static(b"application/octet-stream"),
        )],
    };
    chan.send_head(head).unwrap();
    let body = vec![b'x'; MAX_PACKET - chan.outbox.len() - CHUNK_OVERHEAD];
    chan.send_data(&body).unwrap();
    assert_eq!(chan.outbox.len(), MAX_PACKET, "the body fills the packet");
    chan.body_complete().unwrap();
    chan.queue_end(Outcome::Complete);
    chan.complete_finish().unwrap();
    let frames = received(&master);
    assert!(matches!(&frames[1], ToMaster::Chunk { data, .. } if data.len() == body.len()));
    assert_eq!(
        frames[2..],
        [ToMaster::Complete { id: 1 }, ToMaster::End { id: 1 }]
    );
}

#[test]
fn a_slot_sleeps_on_an_empty_ring_until_the_doorbell_rings() {
    let (mut chan, _master, queue) = channel();
    let pool = chan.pool.clone();
    assert!(chan.try_next_request().is_none(), "nothing queued");
    let slot = std::thread::spawn(move || match chan.next_request() {
        Next::Request { id, .. } => Some(id),
        Next::Closed => None,
    });
    // The slot counts itself a sleeper before it blocks.
    let ring = pool.ring();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ring.wake_one() {
        assert!(std::time::Instant::now() < deadline, "the slot never slept");
        std::thread::yield_now();
    }
    queue_request(&pool, 3);
    send_packet(queue.as_fd(), &[1], &[]).unwrap();
    assert_eq!(slot.join().unwrap(), Some(3));
}

#[test]
fn a_sleeping_slot_closes_when_the_master_closes_the_queue() {
    let (mut chan, _master, queue) = channel();
    let slot = std::thread::spawn(move || matches!(chan.next_request(), Next::Closed));
    drop(queue);
    assert!(slot.join().unwrap());
}
