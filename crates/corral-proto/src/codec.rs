//! The pure codec: messages to bytes and back. No I/O.
//!
//! `decode` follows "check, then parse": it looks at the length prefix first and returns
//! `Ok(None)` while the frame is incomplete, so callers can feed it partial input.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::head::{RequestHead, RequestHeadRef, ResponseHead};
use crate::msg::{ExitStatus, FailKind, FromZygote, ToMaster, ToWorker, ToZygote};

/// The largest frame any side accepts; bigger ones mean a corrupt or hostile peer.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME}")]
    TooLarge(usize),
    #[error("unknown message tag {0}")]
    UnknownTag(u8),
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

/// A message that can be written as one frame.
pub trait Encode {
    fn encode(&self, out: &mut BytesMut);
}

/// A message that can be read from one frame's payload.
pub trait Decode: Sized {
    fn decode_payload(tag: u8, payload: &mut Bytes) -> Result<Self, DecodeError>;
}

/// Appends `msg` as one frame to `out`.
pub fn encode<M: Encode>(msg: &M, out: &mut BytesMut) {
    msg.encode(out);
}

/// Takes one whole frame off the front of `buf`, or returns `Ok(None)` if it is not all there.
pub fn decode<M: Decode>(buf: &mut BytesMut) -> Result<Option<M>, DecodeError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_FRAME {
        return Err(DecodeError::TooLarge(len));
    }
    if len == 0 {
        return Err(DecodeError::Malformed("empty frame"));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    buf.advance(4);
    let mut payload = buf.split_to(len).freeze();
    let tag = payload.get_u8();
    let msg = M::decode_payload(tag, &mut payload)?;
    if payload.has_remaining() {
        return Err(DecodeError::Malformed("trailing bytes in frame"));
    }
    Ok(Some(msg))
}

/// Encodes `ToWorker::Request` straight from borrowed parts (the master's parsed request):
/// the same bytes as for the equivalent `RequestHead`, without building one.
pub fn encode_request<'a>(
    id: u64,
    head: RequestHeadRef<'a, impl IntoIterator<Item = (&'a [u8], &'a [u8])>>,
    out: &mut BytesMut,
) {
    frame(out, 1, |o| {
        o.put_u64_le(id);
        put_request_head(o, head);
    })
}

/// Encodes `ToMaster::Chunk { id, data }` straight from a borrowed slice (the worker's
/// body bytes live in Python objects; building a `Bytes` first would copy them twice).
pub fn encode_chunk(id: u64, data: &[u8], out: &mut BytesMut) {
    frame(out, 4, |o| {
        o.put_u64_le(id);
        put_bytes(o, data);
    })
}

/// Length of what precedes a `ToWorker::Body` frame's chunk (length, tag, id, chunk length);
/// the same for a `ToMaster::Chunk` frame's data.
pub const BODY_HEADER_LEN: usize = 4 + 1 + 8 + 4;

/// The bytes of a `ToWorker::Body { id, chunk }` frame that come before `chunk`: followed by
/// the chunk they are exactly that frame, so a sender can hand a large chunk to the kernel
/// where it lies (a vectored send) instead of copying it into the packet.
pub fn body_frame_header(id: u64, chunk_len: usize) -> [u8; BODY_HEADER_LEN] {
    data_frame_header(2, id, chunk_len)
}

/// The bytes of a `ToMaster::Chunk { id, data }` frame that come before `data` (see
/// `body_frame_header`).
pub fn chunk_frame_header(id: u64, data_len: usize) -> [u8; BODY_HEADER_LEN] {
    data_frame_header(4, id, data_len)
}

fn data_frame_header(tag: u8, id: u64, len: usize) -> [u8; BODY_HEADER_LEN] {
    let mut h = [0u8; BODY_HEADER_LEN];
    let frame_len = (1 + 8 + 4 + len) as u32;
    h[0..4].copy_from_slice(&frame_len.to_le_bytes());
    h[4] = tag;
    h[5..13].copy_from_slice(&id.to_le_bytes());
    h[13..17].copy_from_slice(&(len as u32).to_le_bytes());
    h
}

pub fn decode_to_worker(buf: &mut BytesMut) -> Result<Option<ToWorker>, DecodeError> {
    decode(buf)
}
pub fn decode_to_master(buf: &mut BytesMut) -> Result<Option<ToMaster>, DecodeError> {
    decode(buf)
}
pub fn decode_to_zygote(buf: &mut BytesMut) -> Result<Option<ToZygote>, DecodeError> {
    decode(buf)
}
pub fn decode_from_zygote(buf: &mut BytesMut) -> Result<Option<FromZygote>, DecodeError> {
    decode(buf)
}

// === framing helpers ===

/// Writes the frame header, runs `body`, then patches the length in.
fn frame(out: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_u32_le(0);
    out.put_u8(tag);
    body(out);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32_le(b.len() as u32);
    out.put_slice(b);
}

/// A count, then each pair; the count is patched in afterwards, so any iterator will do.
fn put_pair_iter<'a>(out: &mut BytesMut, pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) {
    let at = out.len();
    out.put_u32_le(0);
    let mut count = 0u32;
    for (k, v) in pairs {
        put_bytes(out, k);
        put_bytes(out, v);
        count += 1;
    }
    out[at..at + 4].copy_from_slice(&count.to_le_bytes());
}

fn need(p: &Bytes, n: usize) -> Result<(), DecodeError> {
    if p.remaining() < n {
        Err(DecodeError::Malformed("frame ends early"))
    } else {
        Ok(())
    }
}

fn get_u8(p: &mut Bytes) -> Result<u8, DecodeError> {
    need(p, 1)?;
    Ok(p.get_u8())
}
fn get_u16(p: &mut Bytes) -> Result<u16, DecodeError> {
    need(p, 2)?;
    Ok(p.get_u16_le())
}
fn get_u32(p: &mut Bytes) -> Result<u32, DecodeError> {
    need(p, 4)?;
    Ok(p.get_u32_le())
}
fn get_u64(p: &mut Bytes) -> Result<u64, DecodeError> {
    need(p, 8)?;
    Ok(p.get_u64_le())
}
fn get_i32(p: &mut Bytes) -> Result<i32, DecodeError> {
    need(p, 4)?;
    Ok(p.get_i32_le())
}

fn get_bytes(p: &mut Bytes) -> Result<Bytes, DecodeError> {
    let n = get_u32(p)? as usize;
    need(p, n)?;
    Ok(p.split_to(n))
}

fn get_string(p: &mut Bytes) -> Result<String, DecodeError> {
    let b = get_bytes(p)?;
    String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Malformed("text is not UTF-8"))
}

fn get_pairs(p: &mut Bytes) -> Result<Vec<(Bytes, Bytes)>, DecodeError> {
    let n = get_u32(p)? as usize;
    // Each pair takes at least 8 bytes: refuse counts the frame cannot hold before allocating.
    need(p, n.saturating_mul(8))?;
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        pairs.push((get_bytes(p)?, get_bytes(p)?));
    }
    Ok(pairs)
}

// === RequestHead / ResponseHead ===

fn put_request_head<'a>(
    out: &mut BytesMut,
    h: RequestHeadRef<'a, impl IntoIterator<Item = (&'a [u8], &'a [u8])>>,
) {
    put_bytes(out, h.method);
    put_bytes(out, h.target);
    out.put_u8(h.version);
    put_pair_iter(out, h.headers);
    put_bytes(out, h.peer_ip);
    out.put_u16_le(h.peer_port);
    put_bytes(out, h.local_ip);
    out.put_u16_le(h.local_port);
    put_bytes(out, h.scheme);
    put_bytes(out, h.script_name);
    match h.content_length {
        Some(n) => {
            out.put_u8(1);
            out.put_u64_le(n);
        }
        None => out.put_u8(0),
    }
}

fn get_request_head(p: &mut Bytes) -> Result<RequestHead, DecodeError> {
    Ok(RequestHead {
        method: get_bytes(p)?,
        target: get_bytes(p)?,
        version: get_u8(p)?,
        headers: get_pairs(p)?,
        peer_ip: get_bytes(p)?,
        peer_port: get_u16(p)?,
        local_ip: get_bytes(p)?,
        local_port: get_u16(p)?,
        scheme: get_bytes(p)?,
        script_name: get_bytes(p)?,
        content_length: match get_u8(p)? {
            0 => None,
            1 => Some(get_u64(p)?),
            _ => return Err(DecodeError::Malformed("bad content-length marker")),
        },
    })
}

/// `u16 status | u32 header count | byte string of the reason and the pairs` (see
/// `ResponseHead`: the block is kept as it is, and checked here).
fn put_response_head(out: &mut BytesMut, h: &ResponseHead) {
    let (count, block) = h.encoded();
    out.put_u16_le(h.status);
    out.put_u32_le(count);
    put_bytes(out, block);
}

fn get_response_head(p: &mut Bytes) -> Result<ResponseHead, DecodeError> {
    let status = get_u16(p)?;
    let count = get_u32(p)?;
    let block = get_bytes(p)?;
    ResponseHead::from_encoded(status, count, block).ok_or(DecodeError::Malformed(
        "response head block does not match its header count",
    ))
}

// === ToWorker ===

impl Encode for ToWorker {
    fn encode(&self, out: &mut BytesMut) {
        match self {
            ToWorker::Request { id, head } => encode_request(*id, head.borrowed(), out),
            ToWorker::Body { id, chunk } => {
                out.put_slice(&body_frame_header(*id, chunk.len()));
                out.put_slice(chunk);
            }
            ToWorker::BodyEnd { id, complete } => frame(out, 3, |o| {
                o.put_u64_le(*id);
                o.put_u8(u8::from(*complete));
            }),
            ToWorker::Abort { id } => frame(out, 4, |o| o.put_u64_le(*id)),
        }
    }
}

impl Decode for ToWorker {
    fn decode_payload(tag: u8, p: &mut Bytes) -> Result<Self, DecodeError> {
        Ok(match tag {
            1 => ToWorker::Request {
                id: get_u64(p)?,
                head: Box::new(get_request_head(p)?),
            },
            2 => ToWorker::Body {
                id: get_u64(p)?,
                chunk: get_bytes(p)?,
            },
            3 => ToWorker::BodyEnd {
                id: get_u64(p)?,
                complete: get_u8(p)? != 0,
            },
            4 => ToWorker::Abort { id: get_u64(p)? },
            t => return Err(DecodeError::UnknownTag(t)),
        })
    }
}

// === ToMaster ===

impl Encode for ToMaster {
    fn encode(&self, out: &mut BytesMut) {
        match self {
            ToMaster::Ready { pid, version } => frame(out, 1, |o| {
                o.put_u32_le(*pid);
                o.put_u32_le(*version);
            }),
            ToMaster::LoadFailed { message } => frame(out, 2, |o| put_bytes(o, message.as_bytes())),
            ToMaster::ResponseHead { id, head } => frame(out, 3, |o| {
                o.put_u64_le(*id);
                put_response_head(o, head);
            }),
            ToMaster::Chunk { id, data } => encode_chunk(*id, data, out),
            ToMaster::File { id, offset, len } => frame(out, 5, |o| {
                o.put_u64_le(*id);
                o.put_u64_le(*offset);
                o.put_u64_le(*len);
            }),
            ToMaster::End { id } => frame(out, 6, |o| o.put_u64_le(*id)),
            ToMaster::Failed { id, kind } => frame(out, 7, |o| {
                o.put_u64_le(*id);
                o.put_u8(*kind as u8);
            }),
            ToMaster::Complete { id } => frame(out, 8, |o| o.put_u64_le(*id)),
            ToMaster::Taken { id } => frame(out, 9, |o| o.put_u64_le(*id)),
            ToMaster::Skipped { id } => frame(out, 10, |o| o.put_u64_le(*id)),
            ToMaster::BackToRing => frame(out, 11, |_| {}),
        }
    }
}

impl Decode for ToMaster {
    fn decode_payload(tag: u8, p: &mut Bytes) -> Result<Self, DecodeError> {
        Ok(match tag {
            1 => ToMaster::Ready {
                pid: get_u32(p)?,
                version: get_u32(p)?,
            },
            2 => ToMaster::LoadFailed {
                message: get_string(p)?,
            },
            3 => ToMaster::ResponseHead {
                id: get_u64(p)?,
                head: get_response_head(p)?,
            },
            4 => ToMaster::Chunk {
                id: get_u64(p)?,
                data: get_bytes(p)?,
            },
            5 => ToMaster::File {
                id: get_u64(p)?,
                offset: get_u64(p)?,
                len: get_u64(p)?,
            },
            6 => ToMaster::End { id: get_u64(p)? },
            7 => {
                let id = get_u64(p)?;
                let kind = match get_u8(p)? {
                    1 => FailKind::AppError,
                    2 => FailKind::Truncated,
                    _ => return Err(DecodeError::Malformed("unknown failure kind")),
                };
                ToMaster::Failed { id, kind }
            }
            8 => ToMaster::Complete { id: get_u64(p)? },
            9 => ToMaster::Taken { id: get_u64(p)? },
            10 => ToMaster::Skipped { id: get_u64(p)? },
            11 => ToMaster::BackToRing,
            t => return Err(DecodeError::UnknownTag(t)),
        })
    }
}

// === ToZygote / FromZygote ===

impl Encode for ToZygote {
    fn encode(&self, out: &mut BytesMut) {
        match self {
            ToZygote::Spawn {
                worker,
                slots,
                board,
            } => frame(out, 1, |o| {
                o.put_u64_le(*worker);
                o.put_u32_le(*slots);
                o.put_u32_le(*board);
            }),
            ToZygote::Shutdown => frame(out, 2, |_| {}),
        }
    }
}

impl Decode for ToZygote {
    fn decode_payload(tag: u8, p: &mut Bytes) -> Result<Self, DecodeError> {
        Ok(match tag {
            1 => ToZygote::Spawn {
                worker: get_u64(p)?,
                slots: get_u32(p)?,
                board: get_u32(p)?,
            },
            2 => ToZygote::Shutdown,
            t => return Err(DecodeError::UnknownTag(t)),
        })
    }
}

impl Encode for FromZygote {
    fn encode(&self, out: &mut BytesMut) {
        match self {
            FromZygote::Ready { pid, version } => frame(out, 1, |o| {
                o.put_u32_le(*pid);
                o.put_u32_le(*version);
            }),
            FromZygote::LoadFailed { message } => {
                frame(out, 2, |o| put_bytes(o, message.as_bytes()))
            }
            FromZygote::Spawned { worker, pid } => frame(out, 3, |o| {
                o.put_u64_le(*worker);
                o.put_u32_le(*pid);
            }),
            FromZygote::SpawnFailed { worker, message } => frame(out, 4, |o| {
                o.put_u64_le(*worker);
                put_bytes(o, message.as_bytes());
            }),
            FromZygote::Exited { pid, status } => frame(out, 5, |o| {
                o.put_u32_le(*pid);
                match status {
                    ExitStatus::Code(c) => {
                        o.put_u8(0);
                        o.put_i32_le(*c);
                    }
                    ExitStatus::Signal(s) => {
                        o.put_u8(1);
                        o.put_i32_le(*s);
                    }
                }
            }),
        }
    }
}

impl Decode for FromZygote {
    fn decode_payload(tag: u8, p: &mut Bytes) -> Result<Self, DecodeError> {
        Ok(match tag {
            1 => FromZygote::Ready {
                pid: get_u32(p)?,
                version: get_u32(p)?,
            },
            2 => FromZygote::LoadFailed {
                message: get_string(p)?,
            },
            3 => FromZygote::Spawned {
                worker: get_u64(p)?,
                pid: get_u32(p)?,
            },
            4 => FromZygote::SpawnFailed {
                worker: get_u64(p)?,
                message: get_string(p)?,
            },
            5 => {
                let pid = get_u32(p)?;
                let status = match get_u8(p)? {
                    0 => ExitStatus::Code(get_i32(p)?),
                    1 => ExitStatus::Signal(get_i32(p)?),
                    _ => return Err(DecodeError::Malformed("bad exit status kind")),
                };
                FromZygote::Exited { pid, status }
            }
            t => return Err(DecodeError::UnknownTag(t)),
        })
    }
}

#[cfg(test)]
mod tests;
