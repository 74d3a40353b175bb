//! One client connection: hyper's HTTP/1.1 state machine plus corral's own timers.
//!
//! hyper's header-read timeout closes silently; corral wants a `408` for a client that stalls
//! inside its request head (slowloris), a silent close for an idle keep-alive connection, and a
//! close for a client that stops reading its response (`--send-timeout`: dropping hyper's
//! connection drops the response body, which tells the worker to stop, so one such client
//! cannot hold a worker for ever).
//! So the timers live here: the task sleeps until the next deadline that the connection's
//! [`Activity`] implies, and re-checks.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

use corral_config::HttpConfig;

use crate::http::error::{http_date_now, Refusal};
use crate::http::file_send::FileQueue;
use crate::http::service::{handle, AppCtx, ConnMeta};
use crate::http::side_wake::SideWake;
use crate::http::smuggle::FramingTracker;
use crate::http::stream::{Activity, ConnIo, Stream};

/// Where a connection stands, as far as its timers care.
enum Phase {
    /// Serving a request: no timer (request timeouts are the dispatcher's business).
    Busy,
    /// A response is waiting for the client to read: it must take a byte by this deadline,
    /// else the connection is closed (and the worker producing the response told to stop).
    Stalled(Instant),
    /// Part of a request head has arrived: it must be complete by this deadline, else 408.
    Head(Instant),
    /// Nothing pending: close silently at this deadline.
    Idle(Instant),
}

/// Peer/local addresses of an accepted connection.
pub struct Addrs {
    pub peer_ip: String,
    pub peer_port: u16,
    pub local_ip: String,
    pub local_port: u16,
}

/// Serves one connection until the client leaves, a timer fires, or a graceful stop finishes
/// the request in progress. `_alive` is dropped when this returns (graceful stop waits for it).
pub async fn serve(
    stream: Stream,
    addrs: Addrs,
    ctx: Arc<AppCtx>,
    mut stop: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
) {
    let stream = Arc::new(stream);
    let activity = Arc::new(Activity::default());
    let files = Arc::new(FileQueue::default());
    let meta = Arc::new(ConnMeta {
        peer_ip: addrs.peer_ip.into(),
        peer_port: addrs.peer_port,
        local_ip: addrs.local_ip.into(),
        local_port: addrs.local_port,
        activity: activity.clone(),
        files: files.clone(),
    });
    let http = ctx.http.clone();
    let max_buf_size = (http.limit_request_line + 64 * 1024).max(16 * 1024);
    let io = TokioIo::new(ConnIo {
        stream: stream.clone(),
        activity: activity.clone(),
        framing: FramingTracker::new(max_buf_size),
        replacement: None,
        files,
    });
    let client = meta.clone(); // for the send-timeout warning
    let svc = service_fn(move |req| handle(req, ctx.clone(), meta.clone()));
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(!http.keepalive_timeout.is_zero())
        // Body slices must reach ConnIo uncopied: file stand-ins are recognised by address.
        .writev(true)
        .max_headers(http.limit_request_fields)
        .max_buf_size(max_buf_size);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);

    let idle_limit = |served: bool| {
        if served {
            http.keepalive_timeout
        } else {
            http.header_timeout
        }
    };
    let longest_wait = longest_wait(&http);
    let mut idle_since = Instant::now();
    let mut stopping = *stop.borrow();
    // The timer and the stop signal are polled only when they woke the task, not each time
    // hyper does (see `side_wake`).
    let mut side = SideWake::default();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let now = Instant::now();
        let finished = activity.last_finished().map(Instant::from_std);
        if let Some(f) = finished {
            idle_since = idle_since.max(f);
        }
        let phase = if let Some(since) = activity.write_blocked_since() {
            // Keep-alive counts from when the client has taken the last response.
            idle_since = now;
            Phase::Stalled(Instant::from_std(since) + http.send_timeout)
        } else if activity.busy() {
            Phase::Busy
        } else if let Some(started) = activity.head_started() {
            Phase::Head(Instant::from_std(started) + http.header_timeout)
        } else {
            Phase::Idle(idle_since + idle_limit(finished.is_some()))
        };
        // The phase is computed afresh at every wake-up, so a deadline acts only on the state
        // it was set for (a head that started after the last wake-up has its own deadline).
        match phase {
            Phase::Head(t) if now >= t => {
                // hyper is no longer polled, so it cannot write concurrently.
                let reply = Refusal::HeadTimeout.raw_reply(&http_date_now());
                let reply = stream.write_all(&reply);
                if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(1), reply).await {
                    // Briefly: a client this slow gets no 30 s more of the server's time.
                    close_lingering(&stream, &mut stop, LINGER_QUIET).await;
                }
                return;
            }
            Phase::Idle(t) if now >= t => return,
            Phase::Stalled(t) if now >= t => {
                tracing::warn!(
                    "client {}:{} read nothing of its response for {:?} \
                     (--send-timeout); closing the connection",
                    String::from_utf8_lossy(&client.peer_ip),
                    client.peer_port,
                    http.send_timeout
                );
                return;
            }
            _ => {}
        }
        let timer = sleep_until(next_check(&phase, now, longest_wait));
        tokio::pin!(timer);
        let mut stop_signal = (!stopping).then(|| Box::pin(stop.changed()));
        side.rearm();
        let event = std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                return Poll::Ready(Event::Ended(result));
            }
            side.poll(cx, |cx| {
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Timer);
                }
                match stop_signal.as_mut().map(|s| s.as_mut().poll(cx)) {
                    Some(Poll::Ready(_)) => Poll::Ready(Event::Stop),
                    _ => Poll::Pending,
                }
            })
        })
        .await;
        drop(stop_signal);
        match event {
            Event::Ended(result) => {
                if let Err(e) = result {
                    tracing::debug!("connection ended: {e}");
                }
                close_lingering(&stream, &mut stop, LINGER_MAX).await;
                return;
            }
            Event::Timer => {}
            Event::Stop => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// How long a closing connection waits for its client's next byte, and for all of them
/// (Apache's lingering close waits 2 s and 30 s).
const LINGER_QUIET: Duration = Duration::from_secs(2);
const LINGER_MAX: Duration = Duration::from_secs(30);

/// Closes a connection whose client may still be sending (the rest of a body the app did not
/// read, the body of a request refused with 413) so that the response reaches the client
/// (RFC 9112 section 9.6). A socket closed with unread input makes the kernel send a reset,
/// and a client still sending takes the reset for a failure and may never read the response
/// that was already on its way. So the socket is half-closed, and what the client sends is read
/// and thrown away until it closes its side, is quiet for [`LINGER_QUIET`], or `most` passes.
///
/// A stop shortens the wait to [`LINGER_QUIET`] at most. A server already stopping lingers
/// only for a client found still sending: the idle keep-alive connections a stop closes would
/// otherwise each hold the stop for [`LINGER_QUIET`] (pooling clients do not close them).
async fn close_lingering(stream: &Stream, stop: &mut watch::Receiver<bool>, most: Duration) {
    if !stream.half_close() {
        return;
    }
    let until = Instant::now() + most;
    let stopping = *stop.borrow();
    if !stopping {
        tokio::select! {
            _ = stream.discard_input(LINGER_QUIET, until) => return,
            _ = stop.changed() => {}
        }
    } else if !stream.discard_waiting_input() {
        return;
    }
    let until = until.min(Instant::now() + LINGER_QUIET);
    stream.discard_input(LINGER_QUIET, until).await;
}

/// What ended a wait of the connection task.
enum Event {
    Ended(hyper::Result<()>),
    Timer,
    Stop,
}

/// When to look at the connection again. Phase changes happen while hyper is polled and do not
/// end the wait, and each change starts a timeout at an instant `Activity` records (a head's
/// first byte, the end of a response, the first write the client did not take). Waiting at most
/// `longest` (the shortest of those timeouts) after the last look is therefore never late for
/// a deadline a change brought. A stalled response is looked at every second: the instant the
/// client starts reading again is not recorded, and the keep-alive count starts there.
///
/// Idle and slow-header connections, the ones a server holds by the thousand, thus wake once per
/// `longest` or at their deadline, not every second.
fn next_check(phase: &Phase, now: Instant, longest: Duration) -> Instant {
    const STALLED_CHECK: Duration = Duration::from_secs(1);
    match *phase {
        Phase::Head(t) | Phase::Idle(t) => t.min(now + longest),
        Phase::Busy => now + longest,
        Phase::Stalled(t) => t.min(now + STALLED_CHECK.min(longest)),
    }
}

/// The shortest timeout a phase change can start (a zero keep-alive timeout turns keep-alive
/// off, so it starts none).
fn longest_wait(http: &HttpConfig) -> Duration {
    [
        http.header_timeout,
        http.keepalive_timeout,
        http.send_timeout,
    ]
    .into_iter()
    .filter(|t| !t.is_zero())
    .min()
    .unwrap_or(Duration::from_secs(1))
}
