use super::*;
use crate::ring::REQUEST_WORDS;

fn area(processes: usize) -> Vec<AtomicU64> {
    (0..words(processes)).map(|_| AtomicU64::new(0)).collect()
}

fn ring_area() -> Vec<AtomicU64> {
    (0..REQUEST_WORDS).map(|_| AtomicU64::new(0)).collect()
}

/// Doorbells of `processes` opened processes.
fn opened(area: &[AtomicU64], processes: usize) -> Doorbells<'_> {
    let bells = Doorbells::new(area);
    for p in 0..processes {
        bells.open(p);
    }
    bells
}

#[test]
fn a_sleeper_is_counted_only_while_the_ring_is_empty() {
    let (area, ring_area) = (area(1), ring_area());
    let (bells, ring) = (opened(&area, 1), Ring::new(&ring_area));
    assert_eq!(wake(&bells), None, "nobody sleeps yet");
    assert!(bells.start_sleeping(0, &ring));
    ring.push(1, [[9u8].as_slice()]).unwrap();
    assert!(
        !bells.start_sleeping(0, &ring),
        "a packet waits: take it instead"
    );
    assert_eq!(bells.sleepers(0), 1, "the second was not counted");
    assert_eq!(bells.wake_one(), Some(0));
    assert_eq!(bells.sleepers(0), 1, "the woken slot takes itself off");
    bells.stop_sleeping(0);
    assert_eq!(bells.sleepers(0), 0);
}

/// Wakes a slot as the master does, and the woken slot takes itself off the counts.
fn wake(bells: &Doorbells<'_>) -> Option<usize> {
    let process = bells.wake_one()?;
    bells.stop_sleeping(process);
    Some(process)
}

#[test]
fn one_slot_per_process_is_on_its_way_until_it_has_looked() {
    let (area, ring_area) = (area(1), ring_area());
    let (bells, ring) = (opened(&area, 1), Ring::new(&ring_area));
    for _ in 0..3 {
        assert!(bells.start_sleeping(0, &ring));
    }
    assert_eq!(wake(&bells), Some(0), "a slot sleeps");
    assert_eq!(
        wake(&bells),
        None,
        "its woken sibling may wait for the GIL: no second one"
    );
    bells.looked(0);
    assert_eq!(wake(&bells), Some(0), "it looked: the next may be woken");
    bells.looked(0);
    assert_eq!(wake(&bells), Some(0), "and the last");
    bells.looked(0);
    assert_eq!(wake(&bells), None, "nobody sleeps any more");
}

#[test]
fn the_process_with_the_most_sleepers_is_woken_first() {
    let (area, ring_area) = (area(3), ring_area());
    let (bells, ring) = (opened(&area, 3), Ring::new(&ring_area));
    // Process 0 has one slot asleep (two busy), 1 has three, 2 has two.
    for (process, asleep) in [(0, 1), (1, 3), (2, 2)] {
        for _ in 0..asleep {
            assert!(bells.start_sleeping(process, &ring));
        }
    }
    assert_eq!(wake(&bells), Some(1), "the fewest busy slots");
    assert_eq!(
        wake(&bells),
        Some(2),
        "1 has a slot on its way: the next most idle"
    );
    assert_eq!(wake(&bells), Some(0));
    assert_eq!(wake(&bells), None, "every process has a slot on its way");
    bells.looked(1);
    assert_eq!(wake(&bells), Some(1), "1 still has the most asleep");
}

#[test]
fn equals_keep_to_the_lowest_process() {
    let (area, ring_area) = (area(2), ring_area());
    let (bells, ring) = (opened(&area, 2), Ring::new(&ring_area));
    for _ in 0..3 {
        assert!(bells.start_sleeping(1, &ring));
        assert!(bells.start_sleeping(0, &ring));
        assert_eq!(wake(&bells), Some(0));
        bells.looked(0);
        bells.forget_process(1);
    }
}

#[test]
fn a_process_that_is_gone_is_never_woken() {
    let (area, ring_area) = (area(2), ring_area());
    let (bells, ring) = (opened(&area, 2), Ring::new(&ring_area));
    for _ in 0..2 {
        assert!(bells.start_sleeping(0, &ring));
    }
    assert_eq!(bells.wake_one(), Some(0), "process 0 is woken...");
    bells.forget_process(0); // ...and dies before its slot runs
    assert_eq!(bells.sleepers(0), 0);
    assert_eq!(wake(&bells), None, "its other sleeper died with it");
    assert!(bells.start_sleeping(1, &ring));
    assert_eq!(wake(&bells), Some(1), "a live process still is");
}

#[test]
fn a_reopened_process_starts_with_nobody_asleep_and_no_ring_kept() {
    let area = area(1);
    let (bells, ring_area) = (opened(&area, 1), ring_area());
    assert!(bells.start_sleeping(0, &Ring::new(&ring_area)));
    bells.bell(0).store(5, Ordering::SeqCst);
    bells.forget_process(0);
    bells.open(0);
    assert_eq!(bells.sleepers(0), 0);
    assert_eq!(bells.bell(0).load(Ordering::SeqCst), 0);
    assert_eq!(wake(&bells), None);
}

#[test]
fn wakers_look_no_further_than_the_processes_given_out() {
    let area = area(4);
    let bells = Doorbells::new(&area);
    assert_eq!(bells.capacity(), 4);
    assert_eq!(bells.bells_in_use().count(), 0);
    bells.open(2);
    assert_eq!(bells.bells_in_use().count(), 3, "numbers 0 to 2");
    bells.open(0);
    assert_eq!(bells.bells_in_use().count(), 3);
}

/// A slot counts itself asleep; before it looks at the ring once more, the master pushes and
/// wakes it; it sees the packet and takes it instead of sleeping. Its doorbell rang for
/// nobody. Nothing of that may stay counted: a sleeper counted in a process where nobody
/// sleeps would draw later wake-ups there while another process's slot sleeps.
#[test]
fn a_slot_that_takes_the_packet_it_was_woken_for_leaves_no_sleeper_counted() {
    let (area, ring_area) = (area(2), ring_area());
    let (bells, ring) = (opened(&area, 2), Ring::new(&ring_area));
    assert!(bells.start_sleeping(1, &ring), "process 1's slot sleeps");
    bells.count_asleep(0); // process 0's slot, on its way to sleep...
    ring.push(1, [[9u8].as_slice()]).unwrap();
    assert_eq!(bells.wake_one(), Some(0), "the lower number among equals");
    bells.stop_sleeping(0); // ...sees the packet, does not sleep, takes it
    assert_eq!(
        ring.take(&mut bytes::BytesMut::new()),
        Ok(crate::ring::Taken::Packet)
    );
    // It finishes and sleeps: the doorbell rung for nobody is still there, consumed at once.
    assert!(bells.start_sleeping(0, &ring));
    bells.bell(0).fetch_sub(1, Ordering::SeqCst);
    bells.stop_sleeping(0);
    bells.looked(0);
    assert!(bells.start_sleeping(0, &ring), "and it sleeps for real");
    assert_eq!(
        (bells.sleepers(0), bells.sleepers(1)),
        (1, 1),
        "one sleeper in each process"
    );
    assert_eq!(wake(&bells), Some(0));
    assert_eq!(
        wake(&bells),
        Some(1),
        "process 0 has nobody asleep any more: the next goes to process 1"
    );
}
