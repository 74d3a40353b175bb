//! The client socket as hyper sees it, plus the bookkeeping the connection timers need.
//!
//! The socket sits behind an `Arc` so that the connection task keeps a handle after hyper's
//! connection future is dropped: that is how a `408 Request Timeout` can still be written when
//! a client stalls in the middle of its request head.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use std::os::fd::{AsFd, BorrowedFd};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::time::{Duration, Instant};

use crate::http::error::replace_hyper_error_reply;
use crate::http::file_send::{is_stand_in, FileQueue};
use crate::http::smuggle::FramingTracker;
use tokio::net::{TcpStream, UnixStream};

/// A TCP or Unix client connection.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

impl Stream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_read_ready(cx),
            Stream::Unix(s) => s.poll_read_ready(cx),
        }
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_write_ready(cx),
            Stream::Unix(s) => s.poll_write_ready(cx),
        }
    }
    /// Reads what is there into `buf`'s unfilled part, without zero-filling it first. A read
    /// that leaves room in `buf` drained the socket, so tokio's readiness is cleared at once
    /// (as tokio's own `poll_read` does): the next read waits for new data instead of costing a
    /// `recv` that only says `EAGAIN`, once per request. (A read can also stop short at TCP
    /// urgent data with more queued behind it; that connection then waits for its client's next
    /// bytes or its timer. tokio's own reads share this, and no other connection is affected.)
    fn try_read_draining(&self, buf: &mut ReadBuf<'_>) -> io::Result<()> {
        let room = buf.remaining();
        let mut got = 0;
        let read = match self {
            Stream::Tcp(s) => s.try_io(Interest::READABLE, || {
                drained(s.try_read_buf(buf), room, &mut got)
            }),
            Stream::Unix(s) => s.try_io(Interest::READABLE, || {
                drained(s.try_read_buf(buf), room, &mut got)
            }),
        };
        match read {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(()),
            r => r,
        }
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_write(buf),
            Stream::Unix(s) => s.try_write(buf),
        }
    }
    /// One non-blocking write done by `write` on the raw socket, with tokio's readiness kept
    /// right (`WouldBlock` clears it).
    fn try_write_with(
        &self,
        write: impl FnOnce(BorrowedFd<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_io(Interest::WRITABLE, || write(s.as_fd())),
            Stream::Unix(s) => s.try_io(Interest::WRITABLE, || write(s.as_fd())),
        }
    }
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_write_vectored(bufs),
            Stream::Unix(s) => s.try_write_vectored(bufs),
        }
    }

    /// Ends the writing side: a FIN goes out after what was written, and reading goes on.
    /// False: the client is gone already.
    pub fn half_close(&self) -> bool {
        corral_sys::shutdown_write(self.as_fd()).is_ok()
    }

    /// Reads and throws away what the client has sent, without waiting: true if there was
    /// something (more may follow), false if nothing waits or the client closed its side.
    pub fn discard_waiting_input(&self) -> bool {
        let mut sink = [0u8; 4096];
        matches!(self.try_read(&mut sink), Ok(n) if n > 0)
    }

    /// Reads and throws away what the client sends, until it closes its side, `quiet` passes
    /// without a byte, or `until` (the lingering close, see `conn::close_lingering`).
    pub async fn discard_input(&self, quiet: Duration, until: Instant) {
        // On the heap, so that the connection task's future does not carry it all its life.
        let mut sink = vec![0u8; 4096];
        loop {
            let deadline = until.min(Instant::now() + quiet);
            // Each wait spends the task's budget, so a client that never stops sending still
            // lets the runtime thread serve others.
            let ready = std::future::poll_fn(|cx| self.poll_read_ready(cx));
            match tokio::time::timeout_at(deadline, ready).await {
                Ok(Ok(())) => {}
                _ => return, // quiet for too long, past `until`, or an error
            }
            match self.try_read(&mut sink) {
                Ok(0) => return, // the client closed its side
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read(buf),
            Stream::Unix(s) => s.try_read(buf),
        }
    }

    /// Writes all of `data`, waiting for the socket as needed (used for the 408 reply only).
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            std::future::poll_fn(|cx| self.poll_write_ready(cx)).await?;
            match self.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// What the connection timers need to know, shared by the I/O wrapper and the service.
#[derive(Debug)]
pub struct Activity {
    /// The connection's birth; `head_started_ms` counts from here.
    pub born: std::time::Instant,
    /// When the first byte of the current request head arrived, as ms since `born` plus one;
    /// 0 while no head is being received (idle, or a request in progress).
    pub head_started_ms: AtomicU64,
    /// Bumped by the service when a request head has been parsed, and when its response is done.
    pub requests_started: AtomicU64,
    pub requests_finished: AtomicU64,
    /// When the last response was finished (ms since `born` plus one; 0: none yet): the
    /// keep-alive count starts here.
    pub finished_ms: AtomicU64,
    /// Since when hyper has had response bytes it cannot write because the client is not
    /// reading (ms since `born` plus one; 0: not blocked). A request counts as finished when
    /// its body has been handed to hyper, which can be up to a buffer's worth before it is on
    /// the wire: the idle timers must not run meanwhile. Past `--send-timeout` the
    /// connection is closed.
    pub write_blocked_ms: AtomicU64,
    /// The number (1-based, as `requests_started` counts) of a request head with ambiguous
    /// framing, or 0 (see `http::smuggle`); the service refuses that request.
    pub ambiguous_head: AtomicU64,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            born: std::time::Instant::now(),
            head_started_ms: AtomicU64::new(0),
            requests_started: AtomicU64::new(0),
            requests_finished: AtomicU64::new(0),
            finished_ms: AtomicU64::new(0),
            write_blocked_ms: AtomicU64::new(0),
            ambiguous_head: AtomicU64::new(0),
        }
    }
}

impl Activity {
    /// When the current head started arriving, if it has.
    pub fn head_started(&self) -> Option<std::time::Instant> {
        self.instant(&self.head_started_ms)
    }

    /// When the last response was finished, if one was.
    pub fn last_finished(&self) -> Option<std::time::Instant> {
        self.instant(&self.finished_ms)
    }

    /// Since when the client has not taken response bytes hyper wants to write, if it has not.
    pub fn write_blocked_since(&self) -> Option<std::time::Instant> {
        self.instant(&self.write_blocked_ms)
    }

    /// Now, as the ms-since-birth-plus-one that the `*_ms` fields hold.
    pub fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64 + 1
    }

    fn instant(&self, field: &AtomicU64) -> Option<std::time::Instant> {
        match field.load(Ordering::Acquire) {
            0 => None,
            ms => Some(self.born + std::time::Duration::from_millis(ms - 1)),
        }
    }

    /// A request is being served, or its response is still being written.
    pub fn busy(&self) -> bool {
        self.in_request() || self.write_blocked_ms.load(Ordering::Acquire) != 0
    }

    pub fn in_request(&self) -> bool {
        self.requests_started.load(Ordering::Acquire)
            > self.requests_finished.load(Ordering::Acquire)
    }
}

/// The outcome of one read inside `try_io`: a short read is reported as `WouldBlock` so that
/// tokio clears the readiness it saw before the read (race-free: an edge that arrives later
/// carries a newer tick); `got` keeps the byte count.
fn drained(read: io::Result<usize>, room: usize, got: &mut usize) -> io::Result<()> {
    let n = read?;
    *got = n;
    if n > 0 && n < room {
        Err(io::ErrorKind::WouldBlock.into())
    } else {
        Ok(())
    }
}

/// The hyper I/O object: the shared socket plus activity tracking.
pub struct ConnIo {
    pub stream: Arc<Stream>,
    pub activity: Arc<Activity>,
    pub framing: FramingTracker,
    /// corral's own reply standing in for an error reply hyper wrote itself (see
    /// [`replace_hyper_error_reply`]): the bytes, how many are written, and the length of
    /// hyper's original to report once done.
    pub replacement: Option<(Vec<u8>, usize, usize)>,
    /// Files whose stand-in bytes hyper will write (see `http::file_send`).
    pub files: Arc<FileQueue>,
}

impl ConnIo {
    /// Waits until the socket may take more bytes, noting in `activity` since when it is full.
    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = self.stream.poll_write_ready(cx);
        let blocked = &self.activity.write_blocked_ms;
        if poll.is_ready() {
            if blocked.load(Ordering::Relaxed) != 0 {
                blocked.store(0, Ordering::Release);
            }
        } else if blocked.load(Ordering::Relaxed) == 0 {
            blocked.store(self.activity.now_ms(), Ordering::Release);
        }
        poll
    }

    /// hyper is writing up to `max` stand-in bytes: `sendfile` that many from the file queue.
    fn poll_send_file(&self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_writable(cx))?;
            let sent = self.files.with_front(|range| {
                let Some(range) = range else {
                    return Err(io::Error::other("file bytes to write but no file queued"));
                };
                if range.remaining < max as u64 {
                    return Err(io::Error::other("file stand-ins and file ranges disagree"));
                }
                let count = max;
                let file = range.file.as_fd();
                let n = self.stream.try_write_with(|sock| {
                    corral_sys::sendfile(sock, file, &mut range.offset, count)
                })?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file handed over by wsgi.file_wrapper is shorter than announced",
                    ));
                }
                range.remaining -= n as u64;
                Ok(n)
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    /// Writes corral's reply instead of hyper's own error reply, if `bufs` is one; `None` when
    /// the bytes are to be written as they are.
    fn poll_replaced(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Option<Poll<io::Result<usize>>> {
        if self.replacement.is_none() {
            let first = bufs.iter().find(|b| !b.is_empty())?;
            // hyper's own reply is one short head; anything longer is not it.
            if first.len() > 160 || !first.starts_with(b"HTTP/1.1 4") || self.activity.in_request()
            {
                return None;
            }
            let bytes: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let reply = replace_hyper_error_reply(&bytes)?;
            self.replacement = Some((reply, 0, bytes.len()));
        }
        loop {
            let (reply, written, original) = self.replacement.as_ref()?;
            if *written >= reply.len() {
                let original = *original;
                self.replacement = None;
                return Some(Poll::Ready(Ok(original)));
            }
            match self.poll_writable(cx) {
                Poll::Pending => return Some(Poll::Pending),
                Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
                Poll::Ready(Ok(())) => {}
            }
            let (reply, written, _) = self.replacement.as_mut()?;
            match self.stream.try_write(&reply[*written..]) {
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Some(Poll::Ready(Err(e))),
            }
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            let start = buf.filled().len();
            match self.stream.try_read_draining(buf) {
                Ok(()) => {
                    let n = buf.filled().len() - start;
                    let this = self.as_mut().get_mut();
                    if n > 0 && !this.activity.in_request() {
                        let ms = this.activity.now_ms();
                        // Only the first byte of a head sets the clock.
                        let _ = this.activity.head_started_ms.compare_exchange(
                            0,
                            ms,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        );
                    }
                    if let Some(head) = this.framing.feed(&buf.filled()[start..]) {
                        this.activity.ambiguous_head.store(head, Ordering::Release);
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // One path for both: stand-ins and hyper's error replies are handled there.
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Plain bytes up to the first stand-in go out with writev; a stand-in with sendfile.
        let mut bufs = bufs;
        match bufs.iter().position(|b| is_stand_in(b)) {
            Some(0) => return this.poll_send_file(cx, bufs[0].len()),
            Some(first) => bufs = &bufs[..first],
            None => {}
        }
        if let Some(poll) = this.poll_replaced(cx, bufs) {
            return poll;
        }
        loop {
            ready!(this.poll_writable(cx))?;
            match this.stream.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection task half-closes the socket once hyper is done with it and lingers
        // (`conn::close_lingering`); the socket closes when the last Arc drops.
        Poll::Ready(Ok(()))
    }
}
