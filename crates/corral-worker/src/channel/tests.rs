//! The slot channel against real socket pairs and a real scoreboard.

use super::*;
use corral_proto::decode_to_master;
use corral_proto::ring::{self, Taken};
use corral_sys::send_packet;

/// Every frame the master would receive, reading as it does: the slot's response ring, and
/// its socket from a switch marker to a packet that ends with `BackToRing`.
fn received(chan: &SlotChannel, master: &OwnedFd) -> Vec<ToMaster> {
    let ring = chan.pool.response_ring(chan.board_slot);
    let mut frames = Vec::new();
    let mut on_socket = false;
    let mut rx = BytesMut::new();
    // Bounded: each turn consumes a packet or a marker, or stops.
    for _ in 0..ring::RESPONSE_WORDS {
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

/// A pool of one worker process with two slots, and the channel of its first slot.
fn channel() -> (SlotChannel, OwnedFd) {
    let (board, _fd) = SharedWords::create("corral-test", board::words(2)).unwrap();
    let pool = PoolShare {
        board: Arc::new(board),
        threads: 2,
    };
    pool.doorbells().open(0); // as the master does before it starts the worker
    slot_of(&pool, 0)
}

/// The channel of scoreboard slot `slot` of `pool`, and the master's end of its socket.
fn slot_of(pool: &PoolShare, slot: usize) -> (SlotChannel, OwnedFd) {
    let (ours, master) = corral_sys::seqpacket_pair().unwrap();
    (SlotChannel::new(ours, pool.clone(), slot), master)
}

/// Runs `chan.next_request()` on a thread named `name`; the id it took arrives on the
/// returned channel (`None`: the queue closed).
fn serve_one(mut chan: SlotChannel, name: &str) -> std::sync::mpsc::Receiver<Option<u64>> {
    on_thread(name, move || taken_id(chan.next_request()))
}

/// The id of the request a slot took (`None`: the queue closed).
fn taken_id(next: Next) -> Option<u64> {
    match next {
        Next::Request { id, .. } => Some(id),
        Next::Closed | Next::Stalled => None,
    }
}

/// Runs `slot` on a thread named `name` (see `until_asleep`); what it returns arrives on the
/// returned channel.
fn on_thread(
    name: &str,
    slot: impl FnOnce() -> Option<u64> + std::marker::Send + 'static,
) -> std::sync::mpsc::Receiver<Option<u64>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new().name(name.into());
    thread
        .spawn(move || {
            let _ = tx.send(slot());
        })
        .unwrap();
    rx
}

/// Waits until the slot thread named `name` has counted itself a sleeper and blocks: on the
/// doorbell, the only place it can block then.
fn until_asleep(pool: &PoolShare, name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pool.doorbells().sleepers(0) == 0 || !thread_blocked(name) {
        assert!(std::time::Instant::now() < deadline, "the slot never slept");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Whether this process's thread named `name` is blocked (state `S` in /proc).
fn thread_blocked(name: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    tasks.flatten().any(|task| {
        let read = |file| std::fs::read_to_string(task.path().join(file)).unwrap_or_default();
        let state = read("stat");
        let state = state.rsplit(')').next().unwrap_or("").trim_start();
        read("comm").trim_end() == name && state.starts_with('S')
    })
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
    let (mut chan, master) = channel();
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
    let (mut chan, master) = channel();
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
    let (mut chan, master) = channel();
    chan.pool
        .board
        .word(board::cancel_word(7))
        .store(7, Ordering::Release);
    queue_request(&chan.pool, 7);
    queue_request(&chan.pool, 8);
    assert!(matches!(chan.next_request(), Next::Request { id: 8, .. }));
    assert_eq!(received(&chan, &master), [ToMaster::Skipped { id: 7 }]);
}

/// The request is served from taking it until the app is done (`queue_end`), and only then:
/// the Python objects of a request check this before they touch the channel.
#[test]
fn a_request_is_served_from_taking_it_until_its_end_is_queued() {
    let (mut chan, _master) = channel();
    assert_eq!(chan.serving(), None, "nothing before the first request");
    queue_request(&chan.pool, 3);
    assert!(matches!(chan.next_request(), Next::Request { id: 3, .. }));
    assert_eq!(chan.serving(), Some(3));
    chan.queue_end(Outcome::Complete);
    assert_eq!(chan.serving(), None, "the app is done with request 3");
    chan.complete_finish().unwrap();
    queue_request(&chan.pool, 4);
    assert!(matches!(chan.next_request(), Next::Request { id: 4, .. }));
    assert_eq!(chan.serving(), Some(4));
}

#[test]
fn closing_frames_never_push_a_packet_past_the_limit() {
    let (mut chan, master) = channel();
    chan.current = 1;
    let head = ResponseHead::new(
        200,
        b"OK",
        [(&b"Content-Type"[..], &b"application/octet-stream"[..])],
    );
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
    let (mut chan, _master) = channel();
    let pool = chan.pool.clone();
    assert!(chan.try_next_request().is_none(), "nothing queued");
    let taken = serve_one(chan, "slot-bell");
    until_asleep(&pool, "slot-bell");
    queue_request(&pool, 3);
    assert_eq!(pool.wake_a_sleeper(), Some(0), "the slot sleeps");
    let id = taken.recv_timeout(std::time::Duration::from_secs(10));
    assert_eq!(id, Ok(Some(3)));
}

#[test]
fn a_sleeping_slot_closes_when_the_master_closes_the_queue() {
    let (chan, _master) = channel();
    let pool = chan.pool.clone();
    let taken = serve_one(chan, "slot-close");
    until_asleep(&pool, "slot-close");
    bell::close(pool.doorbells().bell(0));
    let id = taken.recv_timeout(std::time::Duration::from_secs(10));
    assert_eq!(id, Ok(None));
}

/// The master rang for one slot; that slot took one request and saw another waiting: it
/// wakes a sleeping sibling, or the second request would wait behind the first.
#[test]
fn a_slot_that_leaves_a_packet_behind_wakes_a_sleeping_sibling() {
    let (mut first, _master) = channel();
    let pool = first.pool.clone();
    let (second, _master2) = slot_of(&pool, 1);
    let taken = serve_one(second, "slot-sibling");
    until_asleep(&pool, "slot-sibling");
    let doorbells = pool.doorbells();
    assert!(
        doorbells.start_sleeping(0, &pool.ring()),
        "the first slot sleeps too"
    );
    queue_request(&pool, 4);
    queue_request(&pool, 5);
    assert_eq!(
        doorbells.wake_one(),
        Some(0),
        "the master wakes one of them, the first"
    );
    assert_eq!(
        doorbells.wake_one(),
        None,
        "and no more: one woken slot per process"
    );
    doorbells.stop_sleeping(0);
    first.woken = true;
    assert!(matches!(
        first.try_next_request(),
        Some(Next::Request { id: 4, .. })
    ));
    let id = taken.recv_timeout(std::time::Duration::from_secs(10));
    assert_eq!(
        id,
        Ok(Some(5)),
        "the sibling was woken for the second request"
    );
}

/// Woken, the slot could not look at the ring (its channel was busy) and goes back to sleep:
/// its wake-up must not stay counted as on its way, or the master would never ring again.
#[test]
fn a_slot_that_sleeps_again_before_it_looked_frees_its_wake_up() {
    let (mut chan, _master) = channel();
    let pool = chan.pool.clone();
    let doorbells = pool.doorbells();
    assert!(doorbells.start_sleeping(0, &pool.ring()));
    queue_request(&pool, 8);
    assert_eq!(doorbells.wake_one(), Some(0), "the master wakes the slot");
    doorbells.stop_sleeping(0);
    chan.woken = true;
    assert_eq!(
        pool.ring().take(&mut BytesMut::new()),
        Ok(Taken::Packet),
        "another slot took it"
    );
    let taken = on_thread("slot-relook", move || {
        let rung = chan.sleep_until_rung();
        rung.then(|| chan.next_request()).and_then(taken_id)
    });
    until_asleep(&pool, "slot-relook");
    queue_request(&pool, 9);
    assert_eq!(
        pool.wake_a_sleeper(),
        Some(0),
        "no wake-up is counted as on its way any more"
    );
    let id = taken.recv_timeout(std::time::Duration::from_secs(10));
    assert_eq!(id, Ok(Some(9)));
}

#[test]
fn a_packet_with_a_file_goes_through_the_socket_in_order() {
    let (mut chan, master) = channel();
    chan.current = 1;
    let file = std::fs::File::open("/proc/self/exe").unwrap();
    chan.send_data(b"small").unwrap();
    chan.flush().unwrap();
    chan.send_file(file.as_fd(), 0, 100).unwrap();
    assert!(chan.on_socket, "a descriptor cannot travel in the ring");
    chan.send_data(b"after").unwrap();
    chan.flush().unwrap();
    assert!(
        !chan.on_socket,
        "a packet without one took the slot back to the ring"
    );
    chan.send_data(b"ring again").unwrap();
    chan.flush().unwrap();
    let frames = received(&chan, &master);
    let chunk = |data: &'static [u8]| ToMaster::Chunk {
        id: 1,
        data: Bytes::from_static(data),
    };
    let expected = [
        chunk(b"small"),
        ToMaster::File {
            id: 1,
            offset: 0,
            len: 100,
        },
        chunk(b"after"),
        chunk(b"ring again"),
    ];
    assert_eq!(frames, expected);
}

#[test]
fn the_doorbell_rings_only_when_the_master_waits() {
    let (mut chan, master) = channel();
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
    let (mut chan, master) = channel();
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

/// The ring is full and the next packet is filled to the last byte: it goes through the
/// socket as it is, without a `BackToRing` that would take it past the size the master
/// reads (it would be truncated, and the slot taken for broken). The next packet brings the
/// slot back to the ring.
#[test]
fn a_full_sized_packet_that_finds_the_ring_full_stays_within_the_packet_size() {
    let (mut chan, master) = channel();
    chan.current = 1;
    let pool = chan.pool.clone();
    let ring = pool.response_ring(0);
    while ring.push(8, [[0u8; 8].as_slice()]).is_ok() {}
    // Frames of 17 + 30 and 17 + MAX_CHUNK bytes: MAX_PACKET exactly (see `send_data`).
    let first = vec![b'a'; 64 - 2 * CHUNK_OVERHEAD];
    let second = vec![b'b'; MAX_CHUNK];
    chan.send_data(&first).unwrap();
    chan.send_data(&second).unwrap();
    assert_eq!(
        chan.outbox.len(),
        MAX_PACKET,
        "a packet filled to the last byte"
    );
    chan.flush().unwrap();
    assert!(chan.on_socket, "the full ring sent it to the socket");
    // The master reads what the ring held (the filler, then the switch marker)...
    let mut rx = BytesMut::new();
    while ring.take(&mut rx).unwrap() == Taken::Packet {
        rx.clear();
    }
    // ... then the socket, with buffers of MAX_PACKET.
    let next_on_socket = || {
        let mut rx = BytesMut::new();
        let how = RecvFlags::Wait;
        recv_packet_into(master.as_fd(), &mut rx, MAX_PACKET, &mut Vec::new(), how)
            .expect("a packet within MAX_PACKET");
        let mut frames = Vec::new();
        decode_all(rx, &mut frames);
        frames
    };
    let frames = next_on_socket();
    assert_eq!(frames.len(), 2, "the two chunks, no BackToRing: {frames:?}");
    chan.send_data(b"after").unwrap();
    chan.flush().unwrap();
    assert!(
        !chan.on_socket,
        "a smaller packet took the slot back to the ring"
    );
    let after = ToMaster::Chunk {
        id: 1,
        data: Bytes::from_static(b"after"),
    };
    assert_eq!(next_on_socket(), [after, ToMaster::BackToRing]);
}

/// Four single-slot processes (prefork) take thousands of requests that arrive in bursts,
/// so that pushes keep landing just as slots count themselves asleep. Every request is taken
/// (no wake-up lost), and once the queue is empty and every slot blocks, each process counts
/// exactly its one sleeper: no wake-up left a sleeper counted that does not sleep.
#[test]
fn single_slot_processes_take_every_request_and_the_sleepers_stay_counted_exactly() {
    const REQUESTS: u64 = 50_000;
    const SLOTS: usize = 4;
    let (board, _fd) = SharedWords::create("corral-test", board::words(SLOTS)).unwrap();
    let pool = PoolShare {
        board: Arc::new(board),
        threads: 1,
    };
    for process in 0..SLOTS {
        pool.doorbells().open(process);
    }
    let taken = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut masters = Vec::new();
    let mut done = Vec::new();
    for slot in 0..SLOTS {
        let (mut chan, master) = slot_of(&pool, slot);
        masters.push(master);
        let taken = taken.clone();
        done.push(on_thread(&format!("stress-{slot}"), move || {
            while let Next::Request { .. } = chan.next_request() {
                taken.fetch_add(1, Ordering::SeqCst);
            }
            None
        }));
    }
    for id in 1..=REQUESTS {
        queue_request(&pool, id);
        pool.wake_a_sleeper();
        if id % 8 == 0 {
            std::thread::yield_now();
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while taken.load(Ordering::SeqCst) < REQUESTS {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {REQUESTS} requests taken: a wake-up was lost",
            taken.load(Ordering::SeqCst)
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    while !(0..SLOTS).all(|slot| thread_blocked(&format!("stress-{slot}"))) {
        assert!(
            std::time::Instant::now() < deadline,
            "the slots never slept"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let doorbells = pool.doorbells();
    let counted: Vec<u64> = (0..SLOTS).map(|p| doorbells.sleepers(p)).collect();
    assert_eq!(counted, vec![1; SLOTS], "sleepers counted per process");
    for bell in doorbells.bells_in_use() {
        bell::close(bell);
    }
    for slot in done {
        assert_eq!(
            slot.recv_timeout(std::time::Duration::from_secs(10)),
            Ok(None)
        );
    }
}

/// Fills the slot's response ring (with filler the master never reads) and then its socket,
/// with `MAX_CHUNK` chunks of request 1 until one would wait; returns how many the socket
/// took. The channel is left on the socket, with nothing queued.
fn fill_ring_and_socket(chan: &mut SlotChannel) -> usize {
    let ring = chan.pool.response_ring(chan.board_slot);
    while ring.push(8, [[0u8; 8].as_slice()]).is_ok() {}
    let mut filler = 0;
    loop {
        assert!(chan.try_queue_data(&vec![b'f'; MAX_CHUNK]));
        if !chan.try_flush().unwrap() {
            break;
        }
        filler += 1;
        assert!(filler < 1000, "the socket never filled");
    }
    assert!(chan.on_socket);
    chan.outbox.clear(); // the last filler, which the socket refused
    filler
}

/// The master reading `count` frames from the slot's socket, on a thread of its own. The
/// ring stays full (of filler the master never reads), so the slot's tries to go back to it
/// (`BackToRing`) are left out: they are not what these tests are about.
fn read_from_socket(master: OwnedFd, count: usize) -> std::thread::JoinHandle<Vec<ToMaster>> {
    std::thread::spawn(move || {
        let mut frames = Vec::new();
        let mut rx = BytesMut::new();
        while frames.len() < count {
            let how = RecvFlags::Wait;
            recv_packet_into(master.as_fd(), &mut rx, MAX_PACKET, &mut Vec::new(), how).unwrap();
            decode_all(rx.split(), &mut frames);
            frames.retain(|m| *m != ToMaster::BackToRing);
        }
        frames
    })
}

/// Fills slot `chan`'s response ring past what makes it stalled, with answers the master
/// never takes, and stamps its read word `ago_ms` milliseconds ago.
fn fill_unread_answers(chan: &SlotChannel, ago_ms: u64) {
    let ring = chan.pool.response_ring(chan.board_slot);
    while ring.waiting_bytes() <= 256 * 1024 {
        ring.push(4096, [[0u8; 4096].as_slice()]).unwrap();
    }
    let read = chan.pool.board.word(chan.read_word);
    read.store(corral_sys::coarse_millis() - ago_ms, Ordering::Relaxed);
}

/// A slot is stalled only while many of its answers wait and the master has taken none of
/// them for a while; it waits until they have gone, then takes requests again.
#[test]
fn a_slot_whose_answers_wait_unread_takes_no_request_until_they_go() {
    let (mut chan, _master) = channel();
    let pool = chan.pool.clone();
    fill_unread_answers(&chan, 0);
    queue_request(&pool, 5);
    assert!(!chan.stalled(), "the master read just now: it is only busy");
    fill_unread_answers(&chan, 1000);
    assert!(chan.stalled(), "nothing taken for a second");
    assert!(matches!(chan.try_next_request(), Some(Next::Stalled)));
    // The master takes the answers a while later, on a thread of its own.
    let board_slot = chan.board_slot;
    let master = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let ring = pool.response_ring(board_slot);
        let mut rx = BytesMut::new();
        while ring.take(&mut rx).unwrap() != Taken::Empty {
            rx.clear();
        }
    });
    assert!(chan.wait_until_delivered());
    master.join().unwrap();
    assert!(matches!(chan.next_request(), Next::Request { id: 5, .. }));
}

/// A stalled slot whose worker is retired (the master closes its doorbell) stops waiting.
#[test]
fn a_stalled_slot_stops_waiting_when_the_queue_closes() {
    let (mut chan, _master) = channel();
    fill_unread_answers(&chan, 1000);
    assert!(chan.stalled());
    bell::close(chan.pool.doorbells().bell(chan.process));
    assert!(!chan.wait_until_delivered(), "a closed queue ends the wait");
}

/// Taking a request whose body is still coming answers `Taken` without waiting, even when
/// the master is not reading this slot (the ring and socket are full of the last response):
/// the frame waits in the outbox, and `send_queued` delivers it, after the fillers.
#[test]
fn taking_a_request_never_waits_for_the_master() {
    let (mut chan, master) = channel();
    chan.current = 1;
    let filler = fill_ring_and_socket(&mut chan);
    // The master took a packet just now: the slot is not stalled (see `delivery`).
    let read = chan.pool.board.word(chan.read_word);
    read.store(corral_sys::coarse_millis(), Ordering::Relaxed);
    let mut out = BytesMut::new();
    let head = Box::new(RequestHead::default());
    encode(&ToWorker::Request { id: 2, head }, &mut out);
    chan.pool.ring().push(out.len(), [&out[..]]).unwrap();
    let (tx, taken) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let next = chan.try_next_request().map(taken_id);
        let _ = tx.send((chan, next));
    });
    let (mut chan, next) = taken
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("taking the request waited for the master");
    assert_eq!(next, Some(Some(2)));
    assert!(chan.has_queued(), "Taken waits in the outbox");
    let reader = read_from_socket(master, filler + 1);
    chan.send_queued().unwrap();
    let frames = reader.join().unwrap();
    assert_eq!(frames.len(), filler + 1);
    assert_eq!(frames[filler], ToMaster::Taken { id: 2 });
}

/// What the slot does with Python's lock held never waits: data that does not fit the packet
/// is refused and left to `send_data`; with the ring and the socket both full, `try_flush`
/// says so and keeps what is queued, and a later `flush` sends it, in order.
#[test]
fn the_non_waiting_sends_refuse_rather_than_wait_and_lose_nothing() {
    let (mut chan, master) = channel();
    chan.current = 1;
    assert!(
        !chan.try_queue_data(&vec![b'x'; MAX_PACKET]),
        "larger than a packet"
    );
    assert!(chan.outbox.is_empty(), "a refused piece queues nothing");
    let filler = fill_ring_and_socket(&mut chan);
    assert!(chan.try_queue_data(b"last"));
    assert!(chan.try_queue_complete());
    assert!(!chan.try_flush().unwrap(), "the socket is still full");
    // The master drains the socket while the slot flushes.
    let reader = read_from_socket(master, filler + 2);
    chan.flush().unwrap();
    let frames = reader.join().unwrap();
    let chunk = |m: &ToMaster| matches!(m, ToMaster::Chunk { data, .. } if data.len() == MAX_CHUNK);
    assert!(frames[..filler].iter().all(chunk), "the fillers first");
    let last = ToMaster::Chunk {
        id: 1,
        data: Bytes::from_static(b"last"),
    };
    assert_eq!(
        frames[filler..filler + 2],
        [last, ToMaster::Complete { id: 1 }]
    );
}

/// Lent body bytes (`send_shared`) travel as `Chunk` frames like copied ones, between the
/// frames queued before and after them, split wherever a packet is full.
#[test]
fn a_shared_body_arrives_whole_and_in_order() {
    let (mut chan, master) = channel();
    chan.current = 1;
    chan.send_head(ResponseHead::new(200, b"OK", [])).unwrap();
    let body: Bytes = (0..200_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    chan.send_data(b"copied;").unwrap();
    chan.send_shared(body.clone()).unwrap();
    assert!(chan.try_queue_shared(&body.slice(..5000)));
    chan.queue_end(Outcome::Complete);
    chan.complete_finish().unwrap();
    let frames = received(&chan, &master);
    assert!(matches!(frames[0], ToMaster::ResponseHead { id: 1, .. }));
    assert_eq!(frames.last(), Some(&ToMaster::End { id: 1 }));
    let mut got = Vec::new();
    for frame in &frames[1..frames.len() - 1] {
        let ToMaster::Chunk { id: 1, data } = frame else {
            panic!("not a chunk: {frame:?}");
        };
        got.extend_from_slice(data);
    }
    let want = [&b"copied;"[..], &body, &body[..5000]].concat();
    assert!(
        got == want,
        "{} bytes received, {} sent",
        got.len(),
        want.len()
    );
}
