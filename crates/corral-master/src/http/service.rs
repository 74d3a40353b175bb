//! One HTTP request: check it, buffer the start of its body, lease a worker slot, send it
//! there, and turn the worker's answer into a hyper response.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use corral_config::HttpConfig;
use corral_proto::{
    encode, encode_request, RequestHeadRef, ResponseHead, ToMaster, ToWorker, BODY_HEADER_LEN,
    MAX_CHUNK, MAX_PACKET,
};
use http::{header, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::access_log::{AccessLog, Record};
use crate::http::body::{spawn_pump, InFlight, RespBody, WorkerBody};
use crate::http::completion::{Completion, LogLine};
use crate::http::error::Refusal;
use crate::http::file_send::FileQueue;
use crate::http::stream::Activity;
use crate::pool::{AcquireError, Lease, Pool, Unserved};
use crate::slot::Gather;

/// Everything a request needs that outlives it, shared by all connections of a listener.
pub struct AppCtx {
    pub pool: Arc<Pool>,
    pub http: HttpConfig,
    pub access_log: Option<AccessLog>,
    pub next_id: AtomicU64,
    /// The mount prefix (SCRIPT_NAME); empty for `/`.
    pub script_name: Bytes,
}

/// Facts about the connection a request arrived on.
pub struct ConnMeta {
    pub peer_ip: Bytes,
    pub peer_port: u16,
    pub local_ip: Bytes,
    pub local_port: u16,
    pub activity: Arc<Activity>,
    /// Files for `ConnIo` to `sendfile` (see `http::file_send`).
    pub files: Arc<FileQueue>,
}

const SERVER: HeaderValue = HeaderValue::from_static(crate::http::error::SERVER);

/// The service: turns one request into its response. The request's head is checked and
/// encoded before the returned future first runs: hyper reads from the connection again as
/// soon as this returns (to notice a client that leaves), and the head's headers and target
/// are slices of its read buffer. Dropped by then, they let hyper reuse that buffer instead
/// of allocating a new one for every request.
pub fn handle(
    req: Request<Incoming>,
    ctx: Arc<AppCtx>,
    conn: Arc<ConnMeta>,
) -> impl Future<Output = Result<Response<RespBody>, std::convert::Infallible>> {
    let number = conn
        .activity
        .requests_started
        .fetch_add(1, Ordering::AcqRel)
        + 1;
    conn.activity.head_started_ms.store(0, Ordering::Release);
    let id = ctx.next_id.fetch_add(1, Ordering::Relaxed);
    let mut completion = Completion {
        activity: conn.activity.clone(),
        line: log_line_for(&req, &ctx, &conn),
    };
    let head = encode_request_head(req, &ctx, &conn, (id, number));
    async move {
        let served = match head {
            Ok(head) => serve(head, &ctx, &conn, id).await,
            Err(refusal) => Err(refusal),
        };
        let (mut resp, pid) = match served {
            Ok(r) => r,
            Err(refusal) => {
                if matches!(refusal, Refusal::WorkerLost | Refusal::AppError) {
                    tracing::warn!(req = id, "{} ({})", refusal.status(), refusal.code());
                }
                (refusal.response(), 0)
            }
        };
        resp.headers_mut().entry(header::SERVER).or_insert(SERVER);
        if let Some(line) = &mut completion.line {
            line.record.status = resp.status().as_u16();
            line.record.pid = if pid == 0 { std::process::id() } else { pid };
        }
        Ok(resp.map(|b| b.with_completion(completion)))
    }
}

/// A request whose head passed the checks and is encoded for the worker.
struct EncodedHead {
    /// The `Request` frame (the body's end joins it when the body is all here).
    frames: BytesMut,
    body: Incoming,
}

/// Checks the head and encodes it; the head itself is dropped here (see `handle`).
fn encode_request_head(
    req: Request<Incoming>,
    ctx: &AppCtx,
    conn: &ConnMeta,
    (id, number): (u64, u64),
) -> Result<EncodedHead, Refusal> {
    if conn.activity.ambiguous_head.load(Ordering::Acquire) == number {
        return Err(Refusal::BadRequest(
            "both Content-Length and Transfer-Encoding are present",
        ));
    }
    let (parts, body) = req.into_parts();
    let content_length = check_request(&parts, &ctx.http)?;
    if content_length.is_some_and(|n| n > ctx.http.max_body) {
        return Err(Refusal::BodyTooLarge);
    }
    let frames = encode_head(id, &parts, content_length, ctx, conn)?;
    Ok(EncodedHead { frames, body })
}

async fn serve(
    head: EncodedHead,
    ctx: &AppCtx,
    conn: &ConnMeta,
    id: u64,
) -> Result<(Response<RespBody>, u32), Refusal> {
    let EncodedHead {
        mut frames,
        mut body,
    } = head;
    let (buffered, seen, complete) = buffer_body(&mut body, &ctx.http).await?;
    // The body's end, if it is here, goes in the head's buffer: one allocation for both.
    let head_len = frames.len();
    if complete {
        encode(&ToWorker::BodyEnd { id, complete: true }, &mut frames);
    }
    let (head, end) = frames.split_at(head_len);
    let first = first_packet(id, head, &buffered, end);
    let ticket = ctx
        .pool
        .submit(id, &first.packet)
        .await
        .map_err(|e| match e {
            AcquireError::QueueFull => Refusal::QueueFull,
            AcquireError::Closed => Refusal::ShuttingDown,
        })?;
    let (whole, rest) = (first.whole, rest_of(&buffered, first.rest_at));
    let lease = ticket.wait().await.map_err(|e| match e {
        Unserved::WorkerLost => Refusal::WorkerLost,
        Unserved::Closed => Refusal::ShuttingDown,
    })?;
    let (lease, pump) = if whole {
        (lease, None)
    } else {
        let mut starting = Starting {
            id,
            lease: Some(lease),
        };
        await_taken(starting.lease()).await?;
        let lease = starting.done();
        let still_coming = (!complete).then_some(body);
        let pump = lease
            .writer()
            .map(|w| spawn_pump(w, id, rest, still_coming, seen, ctx.http.max_body));
        (lease, pump)
    };
    let mut flight = InFlight::new(id, lease, pump);
    let pid = flight.pid();
    let head = await_head(&mut flight).await?;
    Ok((build_response(head, flight, &conn.files)?, pid))
}

/// Checks the limits hyper does not; returns the body's declared length (`None`: chunked).
fn check_request(parts: &http::request::Parts, http: &HttpConfig) -> Result<Option<u64>, Refusal> {
    let line_len = parts.method.as_str().len() + request_target(parts).len() + 10;
    if line_len > http.limit_request_line {
        return Err(Refusal::UriTooLong);
    }
    for (name, value) in &parts.headers {
        if name.as_str().len() + value.len() + 2 > http.limit_request_field_size {
            return Err(Refusal::HeaderTooLarge);
        }
    }
    if let Some(te) = parts.headers.get(header::TRANSFER_ENCODING) {
        // hyper accepts any coding list that ends in chunked; anything but a plain "chunked"
        // is a smuggling attempt or a client we cannot serve.
        if !te.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Err(Refusal::BadRequest("unsupported Transfer-Encoding"));
        }
    }
    match parts.headers.get(header::CONTENT_LENGTH) {
        Some(v) => parse_content_length(v.as_bytes())
            .map(Some)
            .ok_or(Refusal::BadRequest("invalid Content-Length")),
        None if parts.headers.contains_key(header::TRANSFER_ENCODING) => Ok(None),
        None => Ok(Some(0)),
    }
}

/// The request target as the worker gets it: path and query as sent, `*` for `OPTIONS *`.
fn request_target(parts: &http::request::Parts) -> &[u8] {
    match parts.uri.path_and_query() {
        Some(pq) => pq.as_str().as_bytes(),
        None if parts.method == http::Method::OPTIONS => b"*",
        None => b"/",
    }
}

/// The `Request` frame, encoded straight from hyper's parts (no copy of each header into a
/// `RequestHead`).
fn encode_head(
    id: u64,
    parts: &http::request::Parts,
    content_length: Option<u64>,
    ctx: &AppCtx,
    conn: &ConnMeta,
) -> Result<BytesMut, Refusal> {
    let mut out = BytesMut::with_capacity(512);
    let head = RequestHeadRef {
        method: parts.method.as_str().as_bytes(),
        target: request_target(parts),
        version: if parts.version == http::Version::HTTP_10 {
            10
        } else {
            11
        },
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes())),
        peer_ip: &conn.peer_ip,
        peer_port: conn.peer_port,
        local_ip: &conn.local_ip,
        local_port: conn.local_port,
        scheme: b"http",
        script_name: &ctx.script_name,
        content_length,
    };
    encode_request(id, head, &mut out);
    if out.len() > MAX_PACKET {
        // Every header is within its limit, but together they would not fit the IPC packet a
        // worker receives: refuse the head as a whole, before any worker is involved.
        return Err(Refusal::HeaderTooLarge);
    }
    Ok(out)
}

/// A Content-Length value (request or response), if it is a plain decimal number.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// Reads up to `--body-buffer` bytes of the body before a worker is involved, so that slow
/// uploads of ordinary size never hold a worker. Returns the pieces, the byte count, and
/// whether that was the whole body.
async fn buffer_body(
    body: &mut Incoming,
    http: &HttpConfig,
) -> Result<(Vec<Bytes>, u64, bool), Refusal> {
    let mut pieces = Vec::new();
    let mut seen = 0u64;
    while seen < http.body_buffer {
        match body.frame().await {
            None => return Ok((pieces, seen, true)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    seen += data.len() as u64;
                    if seen > http.max_body {
                        return Err(Refusal::BodyTooLarge);
                    }
                    pieces.push(data);
                }
            }
            Some(Err(_)) => {
                return Err(Refusal::BadRequest(
                    "the request body is malformed or incomplete",
                ))
            }
        }
    }
    Ok((pieces, seen, false))
}

/// A request's first packet, the one that goes into the queue: its head, as much of the
/// buffered body as fits (pieces are cut to fill the packet; body chunks are not copied, see
/// `Gather`) and, for a complete body that fits, its end.
struct FirstPacket<'a> {
    packet: Gather<'a>,
    /// The end went in too: the worker has the whole request.
    whole: bool,
    /// Where the buffered body that did not fit starts: piece index, offset in the piece.
    rest_at: (usize, usize),
}

fn first_packet<'a>(id: u64, head: &'a [u8], body: &'a [Bytes], end: &'a [u8]) -> FirstPacket<'a> {
    let mut packet = Gather::default();
    packet.push_borrowed(head);
    for (i, data) in body.iter().enumerate() {
        let mut at = 0;
        while at < data.len() {
            let room = MAX_PACKET.saturating_sub(packet.len() + BODY_HEADER_LEN);
            if room == 0 {
                let rest_at = (i, at);
                return FirstPacket {
                    packet,
                    whole: false,
                    rest_at,
                };
            }
            let n = room.min(MAX_CHUNK).min(data.len() - at);
            packet.push_body(id, &data[at..at + n]);
            at += n;
        }
    }
    let whole = !end.is_empty() && packet.len() + end.len() <= MAX_PACKET;
    if whole {
        packet.push_borrowed(end);
    }
    let rest_at = (body.len(), 0);
    FirstPacket {
        packet,
        whole,
        rest_at,
    }
}

/// The buffered body from `at` on, as slices of its pieces (nothing copied).
fn rest_of(body: &[Bytes], (piece, offset): (usize, usize)) -> Vec<Bytes> {
    let mut rest: Vec<Bytes> = body.iter().skip(piece).cloned().collect();
    if let Some(first) = rest.first_mut() {
        *first = first.slice(offset..);
    }
    rest.retain(|b| !b.is_empty());
    rest
}

/// The slot that took a request whose first packet did not hold all of it says `Taken`
/// before anything else; the rest then goes to that slot (the pump, beside the response).
async fn await_taken(lease: &mut Lease) -> Result<(), Refusal> {
    match lease.conn().next().await {
        Ok(Some(ToMaster::Taken { .. })) => Ok(()),
        _ => {
            lease.mark_broken();
            Err(Refusal::WorkerLost)
        }
    }
}

/// A lease whose worker waits for the rest of the body, which no pump carries yet: if the
/// request ends here (its client left), the worker is told, or it would wait for the body
/// forever.
struct Starting {
    id: u64,
    lease: Option<Lease>,
}

impl Starting {
    fn lease(&mut self) -> &mut Lease {
        self.lease.as_mut().expect("taken only by done()")
    }

    fn done(mut self) -> Lease {
        self.lease.take().expect("taken only once")
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            tokio::spawn(lease.abandon(self.id));
        }
    }
}

/// Waits for the response head; turns an early failure into the right status.
async fn await_head(flight: &mut InFlight) -> Result<ResponseHead, Refusal> {
    match flight.lease().conn().next().await {
        Ok(Some(ToMaster::ResponseHead { head, .. })) => return Ok(head),
        Ok(Some(ToMaster::Failed { .. })) => {
            flight.finish(true);
            return Err(Refusal::AppError);
        }
        Ok(Some(other)) => {
            tracing::error!(
                req = flight.id,
                "worker broke the protocol: {other:?} before a head"
            );
        }
        Ok(None) | Err(_) => {}
    }
    flight.finish(false);
    Err(Refusal::WorkerLost)
}

/// The hyper response for a worker's head. When the whole body is already here (one packet:
/// head, chunks, end) the slot is released at once and the body is sent as one piece; when the
/// app failed before anything reached the client, the answer is a plain 500.
fn build_response(
    head: ResponseHead,
    mut flight: InFlight,
    files: &Arc<FileQueue>,
) -> Result<Response<RespBody>, Refusal> {
    let declared = head
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case(b"content-length"))
        .and_then(|(_, v)| parse_content_length(v));
    let body = match take_whole_body(&mut flight) {
        Whole::Body(bytes, Ending::End) => {
            flight.finish(true);
            RespBody::full(bytes)
        }
        Whole::Body(bytes, Ending::Complete) => {
            flight.finish_after_end();
            RespBody::full(bytes)
        }
        Whole::Failed => {
            flight.finish(true);
            return Err(Refusal::AppError);
        }
        Whole::NotYet => RespBody::worker(WorkerBody::new(flight, files.clone(), declared)),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() =
        StatusCode::from_u16(head.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    // One more for the `Server` header `handle` adds.
    headers.reserve(head.header_count() + 1);
    for (name, value) in head.headers() {
        // The value shares the packet's memory rather than being copied.
        match (
            HeaderName::from_bytes(name),
            HeaderValue::from_maybe_shared(head.shared().slice_ref(value)),
        ) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => tracing::warn!("dropping an invalid response header from the app"),
        }
    }
    if canonical_reason_differs(resp.status(), head.reason()) {
        if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(head.reason()) {
            resp.extensions_mut().insert(reason);
        }
    }
    Ok(resp)
}

fn canonical_reason_differs(status: StatusCode, reason: &[u8]) -> bool {
    status.canonical_reason().map(str::as_bytes) != Some(reason) && !reason.is_empty()
}

enum Whole {
    /// `Chunk*` then `End` or `Complete` had all arrived: the whole body.
    Body(Bytes, Ending),
    /// `Chunk*` then `Failed`: the app broke before any byte reached the client.
    Failed,
    /// The response is still coming: stream it.
    NotYet,
}

/// How a whole body ended: with `End` (the slot is free) or `Complete` (the worker is still
/// in the iterable's `close()`).
enum Ending {
    End,
    Complete,
}

/// Looks at the frames that arrived with the head, without waiting for more.
fn take_whole_body(flight: &mut InFlight) -> Whole {
    let conn = flight.lease().conn();
    let buffered = conn.buffered();
    let Some(end) = buffered.iter().position(|m| {
        matches!(
            m,
            ToMaster::End { .. } | ToMaster::Complete { .. } | ToMaster::Failed { .. }
        )
    }) else {
        return Whole::NotYet;
    };
    if !buffered
        .iter()
        .take(end)
        .all(|m| matches!(m, ToMaster::Chunk { .. }))
    {
        return Whole::NotYet;
    }
    let mut out = BytesMut::new();
    let mut single = None;
    for _ in 0..end {
        if let Some(ToMaster::Chunk { data, .. }) = conn.take_buffered() {
            if end == 1 {
                single = Some(data);
            } else {
                out.extend_from_slice(&data);
            }
        }
    }
    let body = single.unwrap_or_else(|| out.freeze());
    match conn.take_buffered() {
        Some(ToMaster::Failed { .. }) => Whole::Failed,
        Some(ToMaster::Complete { .. }) => Whole::Body(body, Ending::Complete),
        _ => Whole::Body(body, Ending::End),
    }
}

/// The request's access log line so far, if there is an access log.
fn log_line_for(req: &Request<Incoming>, ctx: &AppCtx, conn: &ConnMeta) -> Option<Box<LogLine>> {
    let log = ctx.access_log.as_ref()?;
    let headers = log
        .format
        .header_names()
        .iter()
        .map(|n| {
            req.headers()
                .get(n.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .collect();
    let record = Record {
        remote: String::from_utf8_lossy(&conn.peer_ip).into_owned(),
        time: Some(SystemTime::now()),
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or("").to_owned(),
        protocol: if req.version() == http::Version::HTTP_10 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        },
        headers,
        local_port: conn.local_port,
        ..Record::default()
    };
    Some(Box::new(LogLine {
        log: log.clone(),
        record,
        started: Instant::now(),
    }))
}
