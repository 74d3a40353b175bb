use super::*;
use crate::head::ResponseHeadBuilder;

fn sample_head() -> RequestHead {
    RequestHead {
        method: Bytes::from_static(b"POST"),
        target: Bytes::from_static(b"/a%20b?x=1"),
        version: 11,
        headers: vec![
            (
                Bytes::from_static(b"host"),
                Bytes::from_static(b"example.org"),
            ),
            (Bytes::from_static(b"x-dup"), Bytes::from_static(b"1")),
            (Bytes::from_static(b"x-dup"), Bytes::from_static(b"2")),
        ],
        peer_ip: Bytes::from_static(b"127.0.0.1"),
        peer_port: 5555,
        local_ip: Bytes::from_static(b"127.0.0.1"),
        local_port: 8000,
        scheme: Bytes::from_static(b"http"),
        script_name: Bytes::new(),
        content_length: Some(42),
    }
}

fn all_to_worker() -> Vec<ToWorker> {
    vec![
        ToWorker::Request {
            id: 7,
            head: Box::new(sample_head()),
        },
        ToWorker::Body {
            id: 7,
            chunk: Bytes::from_static(b"hello"),
        },
        ToWorker::BodyEnd {
            id: 7,
            complete: true,
        },
        ToWorker::BodyEnd {
            id: 8,
            complete: false,
        },
        ToWorker::Abort { id: 9 },
    ]
}

fn all_to_master() -> Vec<ToMaster> {
    vec![
        ToMaster::Ready {
            pid: 12,
            version: 1,
        },
        ToMaster::LoadFailed {
            message: "ImportError: no module named x".into(),
        },
        ToMaster::ResponseHead {
            id: 3,
            head: ResponseHead::new(200, b"OK", [(&b"Content-Type"[..], &b"t/p"[..])]),
        },
        ToMaster::Chunk {
            id: 3,
            data: Bytes::from_static(b"body"),
        },
        ToMaster::File {
            id: 3,
            offset: 10,
            len: 1 << 40,
        },
        ToMaster::Complete { id: 3 },
        ToMaster::Taken { id: 4 },
        ToMaster::Skipped { id: 5 },
        ToMaster::BackToRing,
        ToMaster::End { id: 3 },
        ToMaster::Failed {
            id: 3,
            kind: FailKind::AppError,
        },
        ToMaster::Failed {
            id: 3,
            kind: FailKind::Truncated,
        },
    ]
}

#[test]
fn back_to_ring_is_as_long_as_its_constant() {
    let mut b = BytesMut::new();
    encode(&ToMaster::BackToRing, &mut b);
    assert_eq!(b.len(), crate::BACK_TO_RING_FRAME);
}

fn round_trip<M: Encode + Decode + PartialEq + std::fmt::Debug>(msgs: Vec<M>) {
    for m in msgs {
        let mut b = BytesMut::new();
        encode(&m, &mut b);
        assert_eq!(decode::<M>(&mut b).unwrap(), Some(m));
        assert!(b.is_empty());
    }
}

#[test]
fn every_message_round_trips() {
    round_trip(all_to_worker());
    round_trip(all_to_master());
    round_trip(vec![
        ToZygote::Spawn {
            worker: 4,
            slots: 8,
            board: 16,
        },
        ToZygote::Shutdown,
    ]);
    round_trip(vec![
        FromZygote::Ready { pid: 1, version: 1 },
        FromZygote::LoadFailed {
            message: "x".into(),
        },
        FromZygote::Spawned { worker: 2, pid: 3 },
        FromZygote::SpawnFailed {
            worker: 2,
            message: "EAGAIN".into(),
        },
        FromZygote::Exited {
            pid: 3,
            status: ExitStatus::Code(0),
        },
        FromZygote::Exited {
            pid: 3,
            status: ExitStatus::Signal(9),
        },
    ]);
}

#[test]
fn partial_frames_are_incomplete_byte_by_byte() {
    let mut whole = BytesMut::new();
    for m in all_to_worker() {
        encode(&m, &mut whole);
    }
    let mut fed = BytesMut::new();
    let mut got = Vec::new();
    for byte in whole.iter() {
        fed.extend_from_slice(&[*byte]);
        while let Some(m) = decode_to_worker(&mut fed).unwrap() {
            got.push(m);
        }
    }
    assert_eq!(got, all_to_worker());
    assert!(fed.is_empty());
}

#[test]
fn several_frames_in_one_packet() {
    let mut b = BytesMut::new();
    for m in all_to_master() {
        encode(&m, &mut b);
    }
    let mut got = Vec::new();
    while let Some(m) = decode_to_master(&mut b).unwrap() {
        got.push(m);
    }
    assert_eq!(got, all_to_master());
}

#[test]
fn oversized_frame_is_refused() {
    let mut b = BytesMut::from(&((MAX_FRAME as u32) + 1).to_le_bytes()[..]);
    assert_eq!(
        decode_to_worker(&mut b),
        Err(DecodeError::TooLarge(MAX_FRAME + 1))
    );
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    let cases: Vec<Vec<u8>> = vec![
        vec![0, 0, 0, 0],                                           // empty frame
        vec![1, 0, 0, 0, 99],                                       // unknown tag
        vec![3, 0, 0, 0, 2, 1, 2],                                  // Body with a truncated id
        vec![13, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 255, 0, 0, 0], // Body longer than its frame
        vec![2, 0, 0, 0, 4, 0],                                     // Abort, frame ends early
        vec![10, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 7],            // Abort with a trailing byte
    ];
    for c in cases {
        let mut b = BytesMut::from(&c[..]);
        assert!(decode_to_worker(&mut b).is_err(), "accepted {c:?}");
    }
}

#[test]
fn header_count_larger_than_frame_is_refused_without_allocating() {
    // A request whose head claims u32::MAX headers.
    let mut req = BytesMut::new();
    frame(&mut req, 1, |o| {
        o.put_u64_le(1);
        put_bytes(o, b"GET");
        put_bytes(o, b"/");
        o.put_u8(11);
        o.put_u32_le(u32::MAX);
    });
    assert!(decode_to_worker(&mut req).is_err());
}

/// A `ResponseHead` frame (tag 3) for request 1 with this status, count and block.
fn response_head_frame(count: u32, block: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    frame(&mut b, 3, |o| {
        o.put_u64_le(1);
        o.put_u16_le(200);
        o.put_u32_le(count);
        put_bytes(o, block);
    });
    b
}

#[test]
fn a_response_head_is_its_reason_and_pairs_as_byte_strings() {
    let mut block = BytesMut::new();
    for s in [&b"OK"[..], b"a", b"1", b"b", b""] {
        put_bytes(&mut block, s);
    }
    let mut b = response_head_frame(2, &block);
    let Some(ToMaster::ResponseHead { id: 1, head }) = decode_to_master(&mut b).unwrap() else {
        panic!("not a response head");
    };
    assert_eq!((head.status, head.reason()), (200, &b"OK"[..]));
    let pairs: Vec<_> = head.headers().collect();
    assert_eq!(pairs, [(&b"a"[..], &b"1"[..]), (&b"b"[..], &b""[..])]);
    assert_eq!(head, ResponseHead::new(200, b"OK", pairs));
}

#[test]
fn a_response_head_block_must_hold_exactly_its_pairs() {
    let mut block = BytesMut::new();
    for s in [&b"OK"[..], b"a", b"1"] {
        put_bytes(&mut block, s);
    }
    let mut short = block.clone();
    short.truncate(block.len() - 1);
    let mut long = block.clone();
    long.extend_from_slice(b"x");
    let cases = [
        (2, block.clone()), // one pair claimed too many
        (0, block.clone()), // a pair more than claimed
        (1, short),         // the last value cut
        (1, long),          // trailing bytes
        (u32::MAX, block),  // a count the frame cannot hold
    ];
    for (count, block) in cases {
        let mut b = response_head_frame(count, &block);
        assert!(
            decode_to_master(&mut b).is_err(),
            "accepted {count} pairs in {block:?}"
        );
    }
}

#[test]
fn a_header_value_can_be_written_in_place() {
    let mut b = ResponseHeadBuilder::new(404, b"Not Found");
    b.header(b"content-type", b"text/plain");
    b.header_with(b"x-written", |out| out.extend_from_slice(b"in place"));
    b.header_with(b"x-empty", |_| {});
    let head = b.build();
    assert_eq!(head.header_count(), 3);
    assert_eq!(
        head.headers().collect::<Vec<_>>(),
        [
            (&b"content-type"[..], &b"text/plain"[..]),
            (b"x-written", b"in place"),
            (b"x-empty", b""),
        ]
    );
}

#[test]
fn a_request_encoded_from_borrowed_parts_is_the_same_frame() {
    let head = sample_head();
    let mut owned = BytesMut::new();
    encode(
        &ToWorker::Request {
            id: 7,
            head: Box::new(head.clone()),
        },
        &mut owned,
    );
    // Headers from a different source than a Vec<(Bytes, Bytes)>, as the master's HeaderMap.
    let pairs: Vec<(&[u8], &[u8])> = vec![
        (&b"host"[..], &b"example.org"[..]),
        (&b"x-dup"[..], &b"1"[..]),
        (&b"x-dup"[..], &b"2"[..]),
    ];
    let mut borrowed = BytesMut::new();
    encode_request(
        7,
        RequestHeadRef {
            method: b"POST",
            target: b"/a%20b?x=1",
            version: 11,
            headers: pairs,
            peer_ip: b"127.0.0.1",
            peer_port: 5555,
            local_ip: b"127.0.0.1",
            local_port: 8000,
            scheme: b"http",
            script_name: b"",
            content_length: Some(42),
        },
        &mut borrowed,
    );
    assert_eq!(owned, borrowed);
    assert_eq!(
        decode::<ToWorker>(&mut borrowed).unwrap(),
        Some(ToWorker::Request {
            id: 7,
            head: Box::new(head)
        })
    );
}

/// Followed by its data, each data frame header is exactly that frame (`Body` to the
/// worker, `Chunk` to the master), and decodes as it.
#[test]
fn a_data_frame_header_followed_by_its_data_is_the_frame() {
    for len in [0usize, 1, 5, 65_000] {
        let data = Bytes::from(vec![0xab; len]);
        let body = ToWorker::Body {
            id: 7,
            chunk: data.clone(),
        };
        let chunk = ToMaster::Chunk {
            id: 9,
            data: data.clone(),
        };
        let (mut body_whole, mut chunk_whole) = (BytesMut::new(), BytesMut::new());
        encode(&body, &mut body_whole);
        encode(&chunk, &mut chunk_whole);
        let split = |header: &[u8]| {
            let mut b = BytesMut::from(header);
            b.extend_from_slice(&data);
            b
        };
        let mut body_split = split(&body_frame_header(7, len));
        let mut chunk_split = split(&chunk_frame_header(9, len));
        assert_eq!(body_split, body_whole, "chunk of {len} bytes");
        assert_eq!(chunk_split, chunk_whole, "data of {len} bytes");
        assert_eq!(decode_to_worker(&mut body_split).unwrap(), Some(body));
        assert_eq!(decode_to_master(&mut chunk_split).unwrap(), Some(chunk));
    }
}
