//! The binary IPC protocol spoken between corral's processes.
//!
//! This crate owns the *messages* (what crosses a process boundary) and a *pure codec* (bytes in,
//! messages out). It must not do I/O, know about sockets, Python or HTTP types: every other crate
//! wraps it in its own transport, so the codec can be tested byte by byte. It uses
//! `corral-sys` for one thing only: the bulk copy of ring payloads in and out of shared memory
//! (the `unsafe` stays there).
//!
//! # Transport
//! Every channel is a Unix `SOCK_SEQPACKET` socket, but for a pool's request queue: its packets
//! travel in a [`ring`] in the scoreboard, memory the master shares with the workers (layout in
//! [`board`]), and a slot that finds it empty sleeps on its process's futex word, a doorbell
//! ([`doorbells`]; no socket). Each slot has a socket of its own. One *packet* carries one or
//! more *frames*; a sender may batch several frames (a response head, its body and its end)
//! into one packet so that a small response costs one system call. A packet never exceeds
//! [`MAX_PACKET`] bytes, so a receiver reading with a buffer of that size never truncates one.
//! File descriptors travel as `SCM_RIGHTS` ancillary data of the packet whose frame announces
//! them ([`ToMaster::File`], [`ToZygote::Spawn`]).
//!
//! # Frame layout
//! `u32 length (little endian, counts what follows) | u8 tag | payload`. Integers are little
//! endian; byte strings are `u32 length | bytes`. [`codec::decode`] returns `Ok(None)` when a
//! frame is incomplete, which is a normal result, not an error (mini-redis' "check, then parse").
//!
//! # Conversations
//! ```text
//! master → request ring:  Request{id, head} Body{id, chunk}* [BodyEnd{id}]   (one packet; an
//!                           idle slot of any worker takes it)
//! master ⇄ worker slot:   ← Ready{pid, version}
//!                         ← Taken{id}   (only if BodyEnd was not in the queued packet)
//!                         ← Skipped{id} (it was cancelled while queued: not run)
//!                         → Body{id, chunk}*  → BodyEnd{id}   (the rest of that body)
//!                         ← ResponseHead{id,..} ← Chunk{id,..}* | File{id,..}
//!                         ← [Complete{id}] End{id} | Failed{id,..}
//!                           (Complete: the body is whole, the iterable's close() is running)
//!                         → Abort{id}   (client went away: stop iterating, call close())
//! master ⇄ zygote:        ← ZygoteReady{pid} | LoadFailed{message}
//!                         → Spawn{worker, slots} + fds  ← Spawned{worker, pid} | SpawnFailed{..}
//!                         ← Exited{pid, status}         → Shutdown
//! ```
#![forbid(unsafe_code)]

pub mod board;
pub mod codec;
pub mod doorbells;
pub mod head;
pub mod msg;
pub mod ring;

pub use codec::{
    body_frame_header, chunk_frame_header, encode, encode_chunk, encode_request, Decode,
    DecodeError, Encode, BODY_HEADER_LEN,
};
pub use codec::{decode, decode_from_zygote, decode_to_master, decode_to_worker, decode_to_zygote};
pub use head::{RequestHead, RequestHeadRef, ResponseHead, ResponseHeadBuilder};
pub use msg::{ExitStatus, FailKind, FromZygote, ToMaster, ToWorker, ToZygote, BACK_TO_RING_FRAME};

/// Bumped whenever a message changes shape; a worker built from another binary is refused.
pub const WIRE_VERSION: u32 = 5;

/// The largest packet any side sends. Fits the default `SO_SNDBUF` of a Unix socket
/// (`net.core.wmem_default`, 208 KiB) with room for the kernel's per-packet overhead.
///
/// 80 KiB so that a 64 KiB request or response body travels in one packet with its head (a
/// 64 KiB POST echoed: +50 % against 64 KiB packets, which cost a `Taken` round trip and a
/// second response packet). Linux builds a Unix datagram of this size from a linear part of
/// at most 16 KiB plus up to 17 single pages, so it needs no larger allocation than a 64 KiB
/// one; beyond about 83 KiB the linear part, and the allocation's order, would grow.
pub const MAX_PACKET: usize = 80 * 1024;

/// The largest body chunk that fits one packet next to its frame header.
pub const MAX_CHUNK: usize = MAX_PACKET - 64;
