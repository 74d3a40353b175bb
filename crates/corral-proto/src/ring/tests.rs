use super::*;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

const DATA_WORDS: usize = REQUEST_WORDS - CONTROL_WORDS;
const MAX_PACKET_BYTES: usize = max_packet(REQUEST_WORDS);

fn area() -> Vec<AtomicU64> {
    (0..REQUEST_WORDS).map(|_| AtomicU64::new(0)).collect()
}

/// A packet of `len` bytes that says which one it is: `seq` repeated.
fn packet(seq: u64, len: usize) -> Vec<u8> {
    seq.to_le_bytes()
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn take_one(ring: &Ring<'_>) -> Option<Vec<u8>> {
    let mut out = BytesMut::new();
    match ring.take(&mut out).unwrap() {
        Taken::Packet => Some(out.to_vec()),
        Taken::Empty => None,
        Taken::Switch => panic!("a switch marker"),
    }
}

#[test]
fn a_packet_comes_out_as_it_went_in_whatever_its_parts() {
    let area = area();
    let ring = Ring::new(&area);
    assert!(ring.is_empty());
    let whole: Vec<u8> = (0..=250u8).collect();
    let parts: [&[u8]; 5] = [
        &whole[..3],
        &[],
        &whole[3..20],
        &whole[20..21],
        &whole[21..],
    ];
    ring.push(whole.len(), parts).unwrap();
    ring.push(0, []).unwrap();
    assert!(!ring.is_empty());
    assert_eq!(take_one(&ring).unwrap(), whole);
    assert_eq!(
        take_one(&ring).unwrap(),
        Vec::<u8>::new(),
        "an empty packet"
    );
    assert_eq!(take_one(&ring), None);
    assert!(ring.is_empty());
}

/// Lengths around word boundaries and a few KiB long, appended after what the
/// buffer already holds, as the slots' receive buffers are.
#[test]
fn a_packet_of_any_length_is_appended_whole() {
    let area = area();
    let ring = Ring::new(&area);
    for len in [1, 7, 8, 9, 511, 512, 513, 1023, 1024, 1025, 4093] {
        let p = packet(len as u64, len);
        ring.push(len, [p.as_slice()]).unwrap();
        let mut out = BytesMut::from(&b"kept"[..]);
        assert_eq!(ring.take(&mut out).unwrap(), Taken::Packet);
        assert_eq!(&out[..4], b"kept", "{len} bytes");
        assert!(out[4..] == p[..], "{len} bytes");
    }
}

#[test]
fn packets_wrap_around_the_end_in_order() {
    let area = area();
    let ring = Ring::new(&area);
    // Odd sizes, so packets straddle the end of the data and padding is needed.
    let len = 8 * 1000 + 5;
    for seq in 0..(3 * DATA_WORDS / 1000) as u64 {
        ring.push(len, [packet(seq, len).as_slice()]).unwrap();
        if seq % 3 == 2 {
            for back in (0..3).rev() {
                assert_eq!(take_one(&ring).unwrap(), packet(seq - back, len));
            }
        }
    }
}

#[test]
fn a_full_ring_refuses_until_a_packet_is_taken() {
    let area = area();
    let ring = Ring::new(&area);
    let len = MAX_PACKET_BYTES / 2;
    let mut pushed = 0;
    while ring.push(len, [packet(pushed, len).as_slice()]).is_ok() {
        pushed += 1;
    }
    assert_eq!(
        ring.push(len, [packet(pushed, len).as_slice()]),
        Err(PushError::Full)
    );
    assert!(pushed >= 7, "the ring holds several of the largest packets");
    // Two, as the next packet starts a lap: the padding at the end of this one is lost room.
    assert_eq!(take_one(&ring).unwrap(), packet(0, len));
    assert_eq!(take_one(&ring).unwrap(), packet(1, len));
    ring.push(len, [packet(pushed, len).as_slice()]).unwrap();
    let too_big = vec![0; MAX_PACKET_BYTES + 1];
    assert_eq!(
        ring.push(too_big.len(), [too_big.as_slice()]),
        Err(PushError::TooLarge)
    );
}

#[test]
fn a_header_no_master_wrote_is_reported() {
    let area = area();
    let ring = Ring::new(&area);
    ring.push(16, [[1u8; 16].as_slice()]).unwrap();
    area[CONTROL_WORDS].store(1 << 40, Ordering::Relaxed);
    let err = ring.take(&mut BytesMut::new()).unwrap_err();
    assert_eq!(err.position, 0);
}

/// One producer, several consumers on threads: every packet is taken once, whole.
#[test]
fn concurrent_slots_take_every_packet_exactly_once() {
    take_concurrently(area(), 40_000, 3000);
}

/// The same in a ring of 64 data words, where the producer laps the consumers all the time,
/// so that many copies are overwritten while they are made: their claims fail and they are
/// thrown away, never taken torn.
#[test]
fn copies_a_lapping_producer_tore_are_never_taken() {
    let small = (0..CONTROL_WORDS + 64).map(|_| AtomicU64::new(0)).collect();
    take_concurrently(small, 100_000, max_packet(CONTROL_WORDS + 64));
}

/// Pushes `packets` packets of 8 to `max_len` bytes into a ring over `area` while four
/// consumer threads take them; checks that each was taken once and whole.
fn take_concurrently(area: Vec<AtomicU64>, packets: u64, max_len: usize) {
    const MIN_LEN: usize = 8;
    const SLOTS: usize = 4;
    let area: Arc<Vec<AtomicU64>> = Arc::new(area);
    let taken = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let slots: Vec<_> = (0..SLOTS)
        .map(|_| {
            let (area, taken, done) = (area.clone(), taken.clone(), done.clone());
            std::thread::spawn(move || {
                let ring = Ring::new(&area);
                let mut mine = Vec::new();
                loop {
                    match take_one(&ring) {
                        Some(p) => mine.push(p),
                        None if done.load(Ordering::Acquire) && ring.is_empty() => break,
                        None => std::thread::yield_now(),
                    }
                }
                taken.lock().unwrap().extend(mine);
            })
        })
        .collect();
    let ring = Ring::new(&area);
    for seq in 0..packets {
        let len = MIN_LEN + (seq as usize * 7919) % (max_len - MIN_LEN + 1);
        let p = packet(seq, len);
        while ring.push(len, [p.as_slice()]) == Err(PushError::Full) {
            std::thread::yield_now();
        }
    }
    done.store(true, Ordering::Release);
    for s in slots {
        s.join().unwrap();
    }
    let mut seen = vec![false; packets as usize];
    for p in taken.lock().unwrap().iter() {
        let seq = u64::from_le_bytes(p[..8].try_into().unwrap());
        assert_eq!(*p, packet(seq, p.len()), "packet {seq} is whole");
        assert!(!seen[seq as usize], "packet {seq} was taken twice");
        seen[seq as usize] = true;
    }
    assert!(seen.iter().all(|s| *s), "every packet was taken");
}

#[test]
fn a_switch_marker_fits_even_a_ring_that_refuses_packets() {
    let area = area();
    let ring = Ring::new(&area);
    // Empty packets, one word each, until not even one fits beside the free word.
    let mut pushed = 0;
    while ring.push(0, []).is_ok() {
        pushed += 1;
    }
    assert_eq!(pushed, DATA_WORDS - 1);
    ring.push_switch().unwrap();
    assert_eq!(ring.push_switch(), Err(PushError::Full));
    let mut out = BytesMut::new();
    let last = loop {
        match ring.take(&mut out).unwrap() {
            Taken::Packet => out.clear(),
            other => break other,
        }
    };
    assert_eq!(last, Taken::Switch, "the marker comes after the packets");
    assert!(ring.is_empty());
}

#[test]
fn room_for_a_switch_marker_is_known_before_going_back_to_the_ring() {
    let area = area();
    let ring = Ring::new(&area);
    while ring.push(0, []).is_ok() {}
    assert!(
        ring.has_room_for_switch(),
        "a push leaves the marker's word"
    );
    ring.push_switch().unwrap();
    assert!(
        !ring.has_room_for_switch(),
        "until the consumer reads, no second marker"
    );
    let mut out = BytesMut::new();
    assert_eq!(ring.take(&mut out).unwrap(), Taken::Packet);
    assert!(ring.has_room_for_switch());
}
