//! The master end of one worker slot — its response ring and its IPC socket, on tokio — and
//! the writer of packets to a slot's socket.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use corral_proto::board;
use corral_proto::ring::{Ring, Taken};
use corral_proto::{body_frame_header, decode_to_master, encode, ToMaster, ToWorker, MAX_PACKET};
use corral_sys::{recv_packet_into, send_packet, send_packet_vectored, RecvFlags, SharedWords};
use std::sync::atomic::Ordering;
use tokio::io::unix::AsyncFd;

/// Identifies one worker process for the master's whole life (pids can be reused).
pub type WorkerId = u64;

/// The sending half of a socket; cheap to clone (the request-body pump holds one).
#[derive(Clone)]
pub struct PacketWriter {
    fd: Arc<AsyncFd<OwnedFd>>,
}

impl PacketWriter {
    /// Writes to `fd` (non-blocking, registered with tokio here).
    pub fn new(fd: OwnedFd) -> io::Result<PacketWriter> {
        corral_sys::set_nonblocking(fd.as_fd())?;
        Ok(PacketWriter {
            fd: Arc::new(register(fd)?),
        })
    }

    /// Sends one packet, waiting while the socket buffer is full.
    pub async fn send(&self, packet: &[u8]) -> io::Result<()> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| send_packet(fd.get_ref().as_fd(), packet, &[])) {
                Ok(r) => return r.map(drop),
                Err(_would_block) => continue,
            }
        }
    }
}

impl PacketWriter {
    /// Sends `packet` as one packet, its large body chunks straight from where they lie.
    pub async fn send_gathered(&self, packet: &Gather<'_>) -> io::Result<()> {
        self.send_parts(&packet.slices()).await
    }

    /// Sends `parts`, in order, as one packet.
    async fn send_parts(&self, parts: &[IoSlice<'_>]) -> io::Result<()> {
        loop {
            let mut guard = self.fd.writable().await?;
            let sent = guard.try_io(|fd| send_packet_vectored(fd.get_ref().as_fd(), parts, &[]));
            match sent {
                Ok(r) => return r.map(drop),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Body chunks at least this large are sent from where they lie instead of being copied into
/// the packet (smaller ones cost less to copy than to describe, and keep the iovec count low).
const BORROW_CHUNKS_FROM: usize = 2048;

/// One outgoing packet of frames: encoded frames and small body chunks are copied into a
/// buffer, large body chunks stay where they are and reach the kernel as iovecs of their own.
/// A 64 KiB request body is thus copied once (into the socket), not twice.
#[derive(Default)]
pub struct Gather<'a> {
    copied: BytesMut,
    segments: Vec<Segment<'a>>,
    len: usize,
}

enum Segment<'a> {
    /// A range of `copied`.
    Copied(usize, usize),
    Borrowed(&'a [u8]),
}

impl<'a> Gather<'a> {
    /// Bytes in the packet so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends bytes (encoded frames) that live long enough to be sent from where they are.
    pub fn push_borrowed(&mut self, bytes: &'a [u8]) {
        self.segments.push(Segment::Borrowed(bytes));
        self.len += bytes.len();
    }

    /// Appends bytes (encoded frames), copied.
    pub fn push_copied(&mut self, bytes: &[u8]) {
        let start = self.copied.len();
        self.copied.extend_from_slice(bytes);
        let end = self.copied.len();
        match self.segments.last_mut() {
            Some(Segment::Copied(_, last_end)) if *last_end == start => *last_end = end,
            _ => self.segments.push(Segment::Copied(start, end)),
        }
        self.len += bytes.len();
    }

    /// Appends a `Body { id, chunk }` frame.
    pub fn push_body(&mut self, id: u64, chunk: &'a [u8]) {
        self.push_copied(&body_frame_header(id, chunk.len()));
        if chunk.len() < BORROW_CHUNKS_FROM {
            self.push_copied(chunk);
        } else {
            self.segments.push(Segment::Borrowed(chunk));
            self.len += chunk.len();
        }
    }

    pub fn clear(&mut self) {
        self.copied.clear();
        self.segments.clear();
        self.len = 0;
    }

    /// The packet's bytes, piece by piece, in order.
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> {
        self.segments.iter().map(|s| match *s {
            Segment::Copied(start, end) => &self.copied[start..end],
            Segment::Borrowed(b) => b,
        })
    }

    fn slices(&self) -> Vec<IoSlice<'_>> {
        self.segments
            .iter()
            .map(|s| match *s {
                Segment::Copied(start, end) => IoSlice::new(&self.copied[start..end]),
                Segment::Borrowed(b) => IoSlice::new(b),
            })
            .collect()
    }
}

/// One slot of a worker process: its response ring and socket, plus the frames received but
/// not yet consumed.
///
/// The worker's packets come through the ring until a switch marker there says they come
/// through the socket, and through the socket until one ends with `BackToRing` (see
/// `corral_proto::ring`, "Response rings"). The socket also carries one-byte doorbells, which
/// the worker sends when this end said it waits (the slot's wake word), and the end of stream
/// when the worker dies.
pub struct SlotConn {
    fd: Arc<AsyncFd<OwnedFd>>,
    pub worker: WorkerId,
    pub pid: u32,
    /// The slot's place on the scoreboard (`corral_proto::board::slot_word`).
    pub board_slot: usize,
    board: Arc<SharedWords>,
    /// Packets come through the socket now, not the ring.
    on_socket: bool,
    /// Packets read from the socket before the ring's switch marker said they come next.
    early: VecDeque<BytesMut>,
    inbox: VecDeque<ToMaster>,
    /// Descriptors received with `File` frames, in arrival order.
    fds: VecDeque<OwnedFd>,
    /// Packets are received into this buffer's spare room and split off it, so the frames
    /// decoded from one (response bodies) share its memory instead of being copied out. Room
    /// for one packet: once those frames are dropped (usually before the next packet), the
    /// next receive reuses the same memory, so only what packets really fill is ever touched.
    rx: BytesMut,
}

impl SlotConn {
    pub fn new(
        fd: OwnedFd,
        worker: WorkerId,
        board: Arc<SharedWords>,
        board_slot: usize,
    ) -> io::Result<SlotConn> {
        corral_sys::set_nonblocking(fd.as_fd())?;
        Ok(SlotConn {
            fd: Arc::new(register(fd)?),
            worker,
            pid: 0,
            board_slot,
            board,
            on_socket: false,
            early: VecDeque::new(),
            inbox: VecDeque::new(),
            fds: VecDeque::new(),
            rx: BytesMut::with_capacity(MAX_PACKET),
        })
    }

    pub fn writer(&self) -> PacketWriter {
        PacketWriter {
            fd: self.fd.clone(),
        }
    }

    pub async fn send(&self, packet: &[u8]) -> io::Result<()> {
        self.writer().send(packet).await
    }

    /// The next frame from the worker; `Ok(None)` when the worker closed the socket (it died).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<ToMaster>>> {
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return Poll::Ready(Ok(Some(m)));
            }
            if self.on_socket {
                if let Some(packet) = self.early.pop_front() {
                    self.decode_socket_packet(packet)?;
                    continue;
                }
            } else if self.read_ring()? {
                continue;
            }
            match ready!(self.poll_socket(cx))? {
                Socket::Packet(packet) if self.on_socket => self.decode_socket_packet(packet)?,
                Socket::Packet(packet) => self.early.push_back(packet),
                Socket::Doorbell => {}
                // What the worker put in the ring before it died comes first, then what it
                // sent through the socket (a worker must mark that in the ring first, but
                // what a dying worker managed to send is never dropped).
                Socket::End if !self.on_socket && !self.ring().is_empty() => {}
                Socket::End if !self.early.is_empty() => self.on_socket = true,
                Socket::End => return Poll::Ready(Ok(None)),
            }
        }
    }

    fn ring(&self) -> Ring<'_> {
        board::response_ring(self.board.all(), self.board_slot)
    }

    /// Reads the ring: true if that gave frames or switched to the socket. When the ring is
    /// empty, says on the slot's wake word that this end waits (the worker rings the doorbell
    /// after its next push), and looks once more.
    fn read_ring(&mut self) -> io::Result<bool> {
        let ring = board::response_ring(self.board.all(), self.board_slot);
        let mut taken = ring.take(&mut self.rx).map_err(invalid)?;
        if taken == Taken::Empty {
            let wake = self.board.word(board::wake_word(self.board_slot));
            wake.store(1, Ordering::SeqCst);
            // `is_empty` reads with SeqCst: this store and the worker's publication of a
            // packet are ordered one way or the other, so one of us sees the other.
            if ring.is_empty() {
                return Ok(false);
            }
            wake.store(0, Ordering::Relaxed);
            taken = ring.take(&mut self.rx).map_err(invalid)?;
        }
        self.absorb(taken)
    }

    /// Acts on what a look at the ring found: true if that gave frames or switched to the
    /// socket.
    fn absorb(&mut self, taken: Taken) -> io::Result<bool> {
        match taken {
            Taken::Empty => Ok(false),
            Taken::Switch => {
                self.on_socket = true;
                Ok(true)
            }
            Taken::Packet => {
                let packet = self.rx.split();
                self.decode_packet(packet)?;
                Ok(true)
            }
        }
    }

    /// Waits for the socket and reads one packet from it.
    fn poll_socket(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Socket>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let mut fds = Vec::new();
            let rx = &mut self.rx;
            let got = guard.try_io(|fd| {
                let fd = fd.get_ref().as_fd();
                recv_packet_into(fd, rx, MAX_PACKET, &mut fds, RecvFlags::DontWait)
            });
            let n = match got {
                Ok(r) => r?,
                Err(_would_block) => continue,
            };
            self.fds.extend(fds);
            let packet = self.rx.split();
            return Poll::Ready(Ok(match n {
                0 => Socket::End,
                1 => Socket::Doorbell,
                _ => Socket::Packet(packet),
            }));
        }
    }

    /// Decodes a packet that came through the socket; one that ends with `BackToRing` sends
    /// this end back to the ring.
    fn decode_socket_packet(&mut self, packet: BytesMut) -> io::Result<()> {
        self.decode_packet(packet)?;
        if self.inbox.back() == Some(&ToMaster::BackToRing) {
            self.inbox.pop_back();
            self.on_socket = false;
        }
        Ok(())
    }

    fn decode_packet(&mut self, mut packet: BytesMut) -> io::Result<()> {
        // When the master last took a packet: the slot judges by it whether its answers go on
        // (see `corral_proto::board`, "Read").
        // Stored only when the clock moved: the word shares its line with words the worker
        // writes, and a store per packet would pull that line over per packet.
        let read = self.board.word(board::read_word(self.board_slot));
        let now = corral_sys::coarse_millis();
        if read.load(Ordering::Relaxed) != now {
            read.store(now, Ordering::Relaxed);
        }
        while let Some(m) = decode_to_master(&mut packet).map_err(invalid)? {
            self.inbox.push_back(m);
        }
        if !packet.is_empty() {
            return Err(invalid("packet ends inside a frame"));
        }
        Ok(())
    }

    pub async fn next(&mut self) -> io::Result<Option<ToMaster>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Waits for the next frame and tells which request it belongs to, leaving it unread.
    /// `None` when the worker closed the slot, broke the protocol, or sent a frame that
    /// belongs to no request.
    pub async fn next_id(&mut self) -> Option<u64> {
        let first = self.next().await.ok()??;
        let id = first.id();
        self.inbox.push_front(first);
        id
    }

    /// The request the next frame belongs to, if that frame is already here (in the inbox or
    /// the ring), without waiting and without telling the worker that this end waits. `None`
    /// when nothing is ready or frames come through the socket now; an error when what the
    /// ring holds breaks the protocol.
    pub fn ready_id(&mut self) -> io::Result<Option<u64>> {
        if self.inbox.is_empty() && !self.on_socket {
            let ring = board::response_ring(self.board.all(), self.board_slot);
            let taken = ring.take(&mut self.rx).map_err(invalid)?;
            self.absorb(taken)?;
        }
        Ok(self.inbox.front().and_then(ToMaster::id))
    }

    /// Whether the next frame is `Skipped{id}`.
    pub fn is_skipped(&self, id: u64) -> bool {
        matches!(self.inbox.front(), Some(ToMaster::Skipped { id: i }) if *i == id)
    }

    /// Consumes the next frame if it is `Skipped{id}` (see `Pool`): true then.
    pub fn skipped(&mut self, id: u64) -> bool {
        let skipped = self.is_skipped(id);
        if skipped {
            self.inbox.pop_front();
        }
        skipped
    }

    /// Tells the worker that request `id` lost its client, and discards the rest of the
    /// response until the worker is done with it. For a request whose body nobody is
    /// sending (it was abandoned before any pump started), the body is ended as cut short,
    /// so a worker waiting for it does not wait forever; a worker that had the whole body
    /// skips that frame. False if the slot broke on the way.
    pub async fn abandon(&mut self, id: u64) -> bool {
        self.stop_and_drain(id, true, true).await
    }

    /// Sends `BodyEnd{id, complete: false}` alone (the response is already read to its end).
    /// False if the slot is gone.
    pub async fn end_body(&self, id: u64) -> bool {
        let mut out = BytesMut::new();
        encode_cut_body_end(id, &mut out);
        self.send(&out).await.is_ok()
    }

    /// Sends `Abort{id}` (if `abort`) and `BodyEnd{id, complete: false}` (if `end_body`) while
    /// it discards the response up to its `End`: a worker blocked writing its response is read
    /// meanwhile, so neither side waits for the other. False if the slot broke.
    pub async fn stop_and_drain(&mut self, id: u64, abort: bool, end_body: bool) -> bool {
        let mut out = BytesMut::new();
        if abort {
            encode(&ToWorker::Abort { id }, &mut out);
        }
        if end_body {
            encode_cut_body_end(id, &mut out);
        }
        if out.is_empty() {
            return self.drain_until_end().await;
        }
        let writer = self.writer();
        let (sent, drained) = tokio::join!(writer.send(&out), self.drain_until_end());
        sent.is_ok() && drained
    }

    /// Discards frames up to the request's `End` (or `Failed`); false if the slot broke.
    pub async fn drain_until_end(&mut self) -> bool {
        loop {
            match self.next().await {
                Ok(Some(ToMaster::End { .. } | ToMaster::Failed { .. })) => return true,
                Ok(Some(ToMaster::File { .. })) => drop(self.take_fd()),
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return false,
            }
        }
    }

    /// Frames already received, without waiting (for the whole-response fast path).
    pub fn buffered(&self) -> &VecDeque<ToMaster> {
        &self.inbox
    }

    pub fn take_buffered(&mut self) -> Option<ToMaster> {
        self.inbox.pop_front()
    }

    /// The descriptor that came with the `File` frame just read.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }
}

/// What one read of a slot's socket gave.
enum Socket {
    Packet(BytesMut),
    /// The worker pushed into the ring while this end waited.
    Doorbell,
    /// The worker closed the socket: it died.
    End,
}

/// `BodyEnd{id, complete: false}`: the body stops here, short of what the client meant to send.
fn encode_cut_body_end(id: u64, out: &mut BytesMut) {
    let end = ToWorker::BodyEnd {
        id,
        complete: false,
    };
    encode(&end, out);
}

fn invalid<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("IPC protocol error from worker: {e}"),
    )
}

/// Registers a socket with tokio. `AsyncFd::new` is deprecated because a `T` that does not own
/// its descriptor could close it behind tokio's back; an `OwnedFd` owns it for the whole life of
/// the `AsyncFd`, which is exactly the condition `AsyncFd::register` asks of its callers.
#[allow(deprecated)]
pub(crate) fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    AsyncFd::new(fd)
}

#[cfg(test)]
mod tests;
