//! The slot channel against real socket pairs and a real scoreboard.

use super::*;
use corral_proto::decode_to_master;
use corral_proto::ring::Taken;

/// Every frame the master would receive, reading as it does: the slot's response ring, and
/// its socket from a switch marker to a packet that ends with `BackToRing`.
fn received(chan: &SlotChannel, master: &OwnedFd) -> Vec<ToMaster> {
    let ring = chan.pool.response_ring(chan.board_slot);
    let mut frames = Vec::new();
    let mut on_socket = false;
    let mut rx = BytesMut::new();
    // Bounded: each turn consumes a packet or a marker, or stops.
    for _ in 0..10_000 {
        if !on_socket {
            match ring.take(&mut rx).unwrap() {
                Taken::Empty => break,
                Taken::Switch => on_socket = true,
                Taken::Packet => decode_all(rx.split(), &mut frames),
            }
            continue;
        }
        let how = RecvFlags::DontWait;
        match recv_packet_into(master.as_fd(), &mut rx, MAX_PACKET, &mut Vec::new(), how) {
            Ok(0) => break,
            Ok(1) => rx.clear(), // a doorbell
            Ok(_) => {
                decode_all(rx.split(), &mut frames);
                if frames.last() == Some(&ToMaster::BackToRing) {
                    frames.pop();
                    on_socket = false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("the master could not receive a packet: {e}"),
        }
    }
    frames
}

fn decode_all(mut packet: BytesMut, frames: &mut Vec<ToMaster>) {
    while let Some(m) = decode_to_master(&mut packet).unwrap() {
        frames.push(m);
    }
    assert!(packet.is_empty(), "a packet ends inside a frame");
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
    assert_eq!(received(&chan, &master), [ToMaster::Skipped { id: 7 }]);
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
    let frames = received(&chan, &master);
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

#[test]
fn a_packet_too_large_for_the_ring_goes_through_the_socket_in_order() {
    let (mut chan, master, _queue) = channel();
    chan.current = 1;
    let big = vec![b'b'; chan.pool.response_ring(0).max_packet() + 1];
    chan.send_data(b"small").unwrap();
    chan.flush().unwrap();
    chan.send_data(&big).unwrap();
    chan.flush().unwrap();
    assert!(chan.on_socket, "the large packet left the ring");
    chan.send_data(b"after").unwrap();
    chan.flush().unwrap();
    assert!(
        !chan.on_socket,
        "a small packet took the slot back to the ring"
    );
    chan.send_data(b"ring again").unwrap();
    chan.flush().unwrap();
    let chunks: Vec<Bytes> = received(&chan, &master)
        .into_iter()
        .map(|m| match m {
            ToMaster::Chunk { data, .. } => data,
            other => panic!("not a chunk: {other:?}"),
        })
        .collect();
    let expected: [&[u8]; 4] = [b"small", &big, b"after", b"ring again"];
    assert_eq!(chunks, expected);
}

#[test]
fn the_doorbell_rings_only_when_the_master_waits() {
    let (mut chan, master, _queue) = channel();
    chan.current = 1;
    let doorbells = |master: &OwnedFd| {
        let mut n = 0;
        let mut buf = [0u8; 8];
        while corral_sys::recv_packet(
            master.as_fd(),
            &mut buf,
            &mut Vec::new(),
            RecvFlags::DontWait,
        )
        .is_ok()
        {
            n += 1;
        }
        n
    };
    chan.send_now(&ToMaster::End { id: 1 }).unwrap();
    assert_eq!(doorbells(&master), 0, "nobody waited");
    let board = chan.pool.board.clone();
    let wake = board.word(chan.wake_word);
    wake.store(1, Ordering::SeqCst);
    chan.send_now(&ToMaster::End { id: 1 }).unwrap();
    chan.send_now(&ToMaster::End { id: 1 }).unwrap();
    assert_eq!(
        doorbells(&master),
        1,
        "one doorbell for the master that waited"
    );
    assert_eq!(wake.load(Ordering::SeqCst), 0);
}

#[test]
fn a_full_ring_overflows_to_the_socket_and_nothing_is_lost_or_reordered() {
    let (mut chan, master, _queue) = channel();
    chan.current = 1;
    // Small packets until the ring is full, then a few more: those go through the socket,
    // some after the last free word held a switch marker the master has not read yet.
    let ring_holds = corral_proto::ring::RESPONSE_WORDS / 4;
    let sent: Vec<u16> = (0..ring_holds as u16 + 20).collect();
    for seq in &sent {
        chan.send_data(&seq.to_be_bytes()).unwrap();
        chan.flush().unwrap();
    }
    assert!(chan.on_socket, "the last packets went through the socket");
    let got: Vec<u16> = received(&chan, &master)
        .into_iter()
        .map(|m| match m {
            ToMaster::Chunk { data, .. } => u16::from_be_bytes([data[0], data[1]]),
            other => panic!("not a chunk: {other:?}"),
        })
        .collect();
    assert_eq!(got, sent);
}
