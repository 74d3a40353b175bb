//! The blocking worker end of one slot: the pool's request queue it takes requests from (a
//! ring in shared memory, and its process's doorbell to sleep on while it is empty), and its
//! own IPC socket to the master.
//!
//! A request arrives in the ring as one packet (its head and as much of its body as fits);
//! the slot writes the request's id on its scoreboard word at once, so that the master knows
//! which request died if this process does. Everything else of that request — the rest of
//! its body, an `Abort` — arrives on the slot's own socket, and the response goes back there.
//!
//! Outgoing frames are gathered in a buffer and sent as one packet (a small response — head,
//! body and end — costs one `sendmsg`). Incoming packets are decoded into a queue, so a check
//! for `Abort` between two body pieces never loses a frame.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use corral_proto::doorbells::Doorbells;
use corral_proto::ring::{Ring, Taken};
use corral_proto::{
    board, chunk_frame_header, decode_to_worker, encode, encode_chunk, Encode, FailKind,
    RequestHead, ResponseHead, ToMaster, ToWorker, BACK_TO_RING_FRAME, BODY_HEADER_LEN, MAX_CHUNK,
    MAX_PACKET, WIRE_VERSION,
};
use corral_python::{Outcome, Transport};
use corral_sys::bell::{self, Bell};
use corral_sys::{
    recv_packet_into, send_packet_vectored, try_send_packet_vectored, RecvFlags, SharedWords,
};

use outbox::Outbox;

/// What every slot of a pool shares: the scoreboard (see `corral_proto::board`), whose request
/// ring holds the queued requests, with a doorbell per worker process that the slots of that
/// process sleep on while the ring is empty; and the pool's slots per process.
#[derive(Clone)]
pub struct PoolShare {
    pub board: Arc<SharedWords>,
    pub threads: usize,
}

impl PoolShare {
    fn ring(&self) -> Ring<'_> {
        board::request_ring(self.board.all())
    }

    fn doorbells(&self) -> Doorbells<'_> {
        board::doorbells(self.board.all())
    }

    /// Rings the doorbell of the process the doorbells choose (see `corral_proto::doorbells`),
    /// as the master does after a push; the process woken, if any.
    fn wake_a_sleeper(&self) -> Option<usize> {
        let doorbells = self.doorbells();
        let process = doorbells.wake_one()?;
        bell::ring(doorbells.bell(process));
        Some(process)
    }

    /// The worker process (its number on the scoreboard) that scoreboard slot `slot` is part of.
    fn process_of(&self, slot: usize) -> usize {
        slot / self.threads.max(1)
    }

    fn response_ring(&self, slot: usize) -> Ring<'_> {
        board::response_ring(self.board.all(), slot)
    }
}

/// What the slot thread should do next.
pub(crate) enum Next {
    Request {
        id: u64,
        head: Box<RequestHead>,
    },
    /// The master closed the slot (or broke the protocol): the worker exits.
    Closed,
    /// The slot's last answers cannot go on yet: `wait_until_delivered`, then look again.
    Stalled,
}

pub struct SlotChannel {
    sock: OwnedFd,
    pool: PoolShare,
    /// This slot's place on the scoreboard (its response ring), and its words there: the
    /// request it took, the master's mail flag, and the flag of a master waiting for it.
    board_slot: usize,
    /// The number of this slot's process, whose doorbell it sleeps on.
    process: usize,
    board_word: usize,
    /// Where the master stamps when it last took a packet of this slot's (see `delivery`).
    read_word: usize,
    mail_word: usize,
    wake_word: usize,
    /// Packets go through the socket until one ends with `BackToRing` (see
    /// `corral_proto::ring`, "Response rings").
    on_socket: bool,
    /// A packet went through the socket since the master was last seen to have read it all
    /// (see `delivery`).
    socket_used: bool,
    /// Decoded frames not yet consumed.
    inbox: VecDeque<ToWorker>,
    /// Packets land in this buffer's spare room and are split off it: the request body frames
    /// decoded from a packet share its memory instead of being copied out. Room for one
    /// packet, reused once its frames are dropped (see the master's `SlotConn`).
    rx: BytesMut,
    /// Frames waiting to be sent as one packet.
    outbox: Outbox,
    /// The frame that ends the request (`End` / `Failed`), queued apart so that queueing it
    /// never sends anything: it joins the outbox when that has room.
    end_frame: BytesMut,
    /// The request being served, and where its body and life stand. `serving` is true from
    /// taking the request until the app is done with it (`queue_end`).
    current: u64,
    serving: bool,
    body_done: bool,
    aborted: bool,
    /// The doorbell woke this slot and it has not looked at the ring since (see
    /// `corral_proto::doorbells`).
    woken: bool,
}

impl SlotChannel {
    /// The channel of scoreboard slot `board_slot`, talking to the master over `sock`.
    pub fn new(sock: OwnedFd, pool: PoolShare, board_slot: usize) -> SlotChannel {
        let process = pool.process_of(board_slot);
        SlotChannel {
            sock,
            pool,
            board_slot,
            process,
            board_word: board::slot_word(board_slot),
            read_word: board::read_word(board_slot),
            mail_word: board::mail_word(board_slot),
            wake_word: board::wake_word(board_slot),
            on_socket: false,
            socket_used: false,
            inbox: VecDeque::new(),
            rx: BytesMut::with_capacity(MAX_PACKET),
            outbox: Outbox::with_capacity(MAX_PACKET),
            end_frame: BytesMut::new(),
            current: 0,
            serving: false,
            body_done: true,
            aborted: false,
            woken: false,
        }
    }

    pub(crate) fn send_ready(&mut self) -> io::Result<()> {
        self.send_now(&ToMaster::Ready {
            pid: std::process::id(),
            version: WIRE_VERSION,
        })
    }

    /// Sends one message at once, alone in its packet.
    pub fn send_now(&mut self, msg: &impl Encode) -> io::Result<()> {
        encode(msg, self.outbox.frames());
        self.flush_outbox()
    }

    /// Sends one message if that needs no waiting, else leaves it queued: the queue is read
    /// with Python's lock held, and what it answers then must not wait for the master (who
    /// may be slow to read this slot while a slow client takes its last response). The slot
    /// thread sends what is left (`send_queued`) without the lock, before it goes on.
    fn send_soon(&mut self, msg: &impl Encode) -> io::Result<()> {
        encode(msg, self.outbox.frames());
        self.deliver(None, Send::DontWait).map(drop)
    }

    /// Whether frames wait to be sent (see `send_soon`).
    pub(crate) fn has_queued(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Sends the frames that wait, waiting for room if need be (call without the GIL).
    pub(crate) fn send_queued(&mut self) -> io::Result<()> {
        self.flush_outbox()
    }

    /// Receives one packet (blocking unless `how` says otherwise) into the inbox.
    /// Returns false at end of stream.
    fn receive(&mut self, how: RecvFlags) -> io::Result<bool> {
        let mut fds = Vec::new();
        let n = recv_packet_into(self.sock.as_fd(), &mut self.rx, MAX_PACKET, &mut fds, how)?;
        if n == 0 {
            return Ok(false);
        }
        let mut packet = self.rx.split();
        while let Some(msg) = decode_to_worker(&mut packet).map_err(invalid)? {
            self.inbox.push_back(msg);
        }
        if !packet.is_empty() {
            return Err(invalid("packet ends inside a frame"));
        }
        Ok(true)
    }

    fn next_message(&mut self) -> io::Result<Option<ToWorker>> {
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return Ok(Some(m));
            }
            if !self.receive(RecvFlags::Wait)? {
                return Ok(None);
            }
        }
    }

    /// Blocks until this slot takes the next request from the queue. Requests whose client
    /// left while they waited are skipped. (The slot thread does the same in two halves, with
    /// and without Python's lock.)
    #[cfg(test)]
    pub(crate) fn next_request(&mut self) -> Next {
        loop {
            let alive = match self.try_next_request() {
                Some(Next::Stalled) => self.wait_until_delivered(),
                Some(next) => return next,
                None => self.sleep_until_rung(),
            };
            if !alive {
                return Next::Closed;
            }
        }
    }

    /// The next request if one is queued now; `None` if nothing was taken (the queue is
    /// empty, or its request was skipped). A slot of a threaded worker calls this with
    /// Python's lock held, so that the thread that holds it takes the packets while it can
    /// and a woken sibling waits for the lock before it looks (see `corral_proto::doorbells`).
    pub(crate) fn try_next_request(&mut self) -> Option<Next> {
        if self.stalled() {
            return Some(Next::Stalled);
        }
        match self.take_from_queue() {
            Ok(Some((id, head))) => Some(Next::Request { id, head }),
            Ok(None) => None,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            // The master closed this slot's socket (it retires the worker).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Some(Next::Closed),
            Err(e) => {
                tracing::error!("IPC error on the request queue: {e}");
                Some(Next::Closed)
            }
        }
    }

    /// Sleeps on its process's doorbell unless a packet arrived since the last look. False
    /// when the master closed the queue: the slot ends.
    pub(crate) fn sleep_until_rung(&mut self) -> bool {
        if let Err(e) = self.send_queued() {
            tracing::debug!("master gone while the slot answered the queue: {e}");
            return false;
        }
        // Woken, but it could not look (its channel was busy): it has all the same.
        self.done_looking();
        let doorbells = self.pool.doorbells();
        if !doorbells.start_sleeping(self.process, &self.pool.ring()) {
            return true;
        }
        match bell::wait(doorbells.bell(self.process)) {
            Ok(Bell::Rung) => {
                doorbells.stop_sleeping(self.process);
                self.woken = true;
                true
            }
            Ok(Bell::Closed) => false,
            Err(e) => {
                tracing::error!("cannot wait on the request queue's doorbell: {e}");
                false
            }
        }
    }

    /// Takes one packet from the queue: `None` if its request was cancelled.
    fn take_from_queue(&mut self) -> io::Result<Option<(u64, Box<RequestHead>)>> {
        self.discard_stale()?;
        if !self.take_packet()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut packet = self.rx.split();
        let Some(ToWorker::Request { id, head }) =
            decode_to_worker(&mut packet).map_err(invalid)?
        else {
            return Err(invalid("a queued packet does not start with a request"));
        };
        // First of all, so that the master can tell which request this process held.
        self.pool
            .board
            .word(self.board_word)
            .store(id, Ordering::Release);
        let mut body = Vec::new();
        while let Some(msg) = decode_to_worker(&mut packet).map_err(invalid)? {
            body.push(msg);
        }
        if !packet.is_empty() {
            return Err(invalid("packet ends inside a frame"));
        }
        let cancelled = self.pool.board.word(board::cancel_word(id));
        if cancelled.load(Ordering::Acquire) == id {
            self.send_soon(&ToMaster::Skipped { id })?;
            return Ok(None);
        }
        let whole = body
            .iter()
            .any(|m| matches!(m, ToWorker::BodyEnd { id: i, .. } if *i == id));
        self.inbox.extend(body);
        self.current = id;
        self.serving = true;
        self.body_done = false;
        self.aborted = false;
        if !whole {
            // The rest of the body comes on this slot: tell the master where to send it.
            self.send_soon(&ToMaster::Taken { id })?;
        }
        Ok(Some((id, head)))
    }

    /// A slot the doorbell woke has looked at the queue now (or will not): the doorbells stop
    /// counting it as on its way there, so that the next wake-up goes to its process again.
    fn done_looking(&mut self) {
        done_looking(&mut self.woken, &self.pool, self.process);
    }

    /// Takes the next packet from the request ring into `rx`; false if the ring is empty. A
    /// slot the doorbell woke has now looked; whoever takes a packet and sees more waiting
    /// wakes another sleeper (see `corral_proto::doorbells`), so that they are never left
    /// behind this slot's request.
    fn take_packet(&mut self) -> io::Result<bool> {
        let ring = self.pool.ring();
        let taken = ring.take(&mut self.rx);
        done_looking(&mut self.woken, &self.pool, self.process);
        match taken.map_err(invalid)? {
            Taken::Packet => {
                if !ring.is_empty() {
                    self.pool.wake_a_sleeper();
                }
                Ok(true)
            }
            Taken::Switch => Err(invalid("a switch marker in the request ring")),
            Taken::Empty => Ok(false),
        }
    }

    /// Between requests everything the master sent this slot is stale: frames of finished
    /// requests (an `Abort` that crossed an `End`). Drops what was read of them, and what
    /// waits on the socket when the master says some may (see `corral_proto::board`), so
    /// that they never fill the socket.
    fn discard_stale(&mut self) -> io::Result<()> {
        self.inbox.clear();
        let mail = self.pool.board.word(self.mail_word);
        if mail.load(Ordering::Acquire) == 0 || mail.swap(0, Ordering::AcqRel) == 0 {
            return Ok(());
        }
        loop {
            match self.receive(RecvFlags::DontWait) {
                Ok(true) => self.inbox.clear(),
                Ok(false) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues the frame that says how the request ended (sent by one of the two below); sends
    /// nothing itself, so it never blocks.
    pub(crate) fn queue_end(&mut self, outcome: Outcome) {
        self.serving = false;
        let id = self.current;
        let msg = match outcome {
            Outcome::Complete | Outcome::ClientGone => ToMaster::End { id },
            Outcome::FailedBeforeHead => ToMaster::Failed {
                id,
                kind: FailKind::AppError,
            },
            Outcome::Truncated => ToMaster::Failed {
                id,
                kind: FailKind::Truncated,
            },
        };
        encode(&msg, &mut self.end_frame);
    }

    /// Ends the request without waiting, if nothing needs waiting for: the body was read to
    /// its end, what is queued fits one packet, and the socket has room for it. False:
    /// `complete_finish`.
    pub(crate) fn try_complete_finish(&mut self) -> io::Result<bool> {
        if !self.body_done || self.outbox.len() + self.end_frame.len() > MAX_PACKET {
            return Ok(false);
        }
        self.outbox.frames().extend_from_slice(&self.end_frame);
        self.end_frame.clear();
        self.deliver(None, Send::DontWait)
    }

    /// Sends what is queued and skips whatever is left of the body (may block).
    pub(crate) fn complete_finish(&mut self) -> io::Result<()> {
        let id = self.current;
        if !self.end_frame.is_empty() {
            self.reserve(self.end_frame.len())?;
            self.outbox.frames().extend_from_slice(&self.end_frame);
            self.end_frame.clear();
        }
        self.flush_outbox()?;
        while !self.body_done {
            match self.next_message()? {
                Some(ToWorker::BodyEnd { id: i, .. }) if i == id => self.body_done = true,
                Some(ToWorker::Request { .. }) => return Err(invalid("request before BodyEnd")),
                Some(_) => {}
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
        Ok(())
    }

    fn flush_outbox(&mut self) -> io::Result<()> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        self.deliver(None, Send::Wait).map(drop)
    }

    /// Sends the outbox as one packet (with `file` attached, if any): into the response ring
    /// if it can go there, else through the socket (see `corral_proto::ring`, "Response
    /// rings"). False: `Send::DontWait` and the socket is full (the outbox is kept).
    fn deliver(&mut self, file: Option<BorrowedFd<'_>>, how: Send) -> io::Result<bool> {
        let ring = self.pool.response_ring(self.board_slot);
        if !self.on_socket {
            if file.is_none() && ring.push(self.outbox.len(), self.outbox.parts()).is_ok() {
                self.outbox.clear();
                self.ring_doorbell_if_awaited()?;
                return Ok(true);
            }
            // The ring is full, or a descriptor is to pass: the socket from here on.
            ring.push_switch()
                .map_err(|_| invalid("no room for a switch marker"))?;
            self.on_socket = true;
        }
        // `BackToRing` rides on this packet only if the packet stays within the size every
        // reader expects (a body can fill a packet to the last byte).
        let back = file.is_none()
            && self.outbox.len() + BACK_TO_RING_FRAME <= MAX_PACKET
            && ring.has_room_for_switch();
        let kept = self.outbox.mark();
        if back {
            encode(&ToMaster::BackToRing, self.outbox.frames());
        }
        let files: Vec<BorrowedFd<'_>> = file.into_iter().collect();
        let parts = self.outbox.io_slices();
        let sent = match how {
            Send::Wait => send_packet_vectored(self.sock.as_fd(), &parts, &files),
            Send::DontWait => try_send_packet_vectored(self.sock.as_fd(), &parts),
        };
        match sent {
            Ok(_) => {
                self.outbox.clear();
                self.on_socket = !back;
                self.socket_used = true;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && how == Send::DontWait => {
                self.outbox.truncate(kept);
                Ok(false)
            }
            Err(e) => {
                // Not sent: a retry must not find `BackToRing` in the middle of its packet.
                self.outbox.truncate(kept);
                Err(e)
            }
        }
    }

    /// After a push into the response ring: if the master said it waits for this slot, rings
    /// the doorbell on the socket.
    fn ring_doorbell_if_awaited(&self) -> io::Result<()> {
        let wake = self.pool.board.word(self.wake_word);
        if wake.load(Ordering::SeqCst) == 0 || wake.swap(0, Ordering::SeqCst) == 0 {
            return Ok(());
        }
        corral_sys::ring_doorbell(self.sock.as_fd())
    }

    /// Queues `End`, `Complete` or `Failed` after what is queued, in a packet of its own if the
    /// current one is too full (a body can fill a packet to the last byte).
    fn queue_closing_frame(&mut self, msg: &ToMaster) -> io::Result<()> {
        self.reserve(CLOSING_FRAME)?;
        encode(msg, self.outbox.frames());
        Ok(())
    }

    /// Queues `len` bytes of body as `Chunk` frames, each as large as the packet allows (a
    /// full packet is sent first); `put` queues the frame for a range of the bytes.
    fn queue_in_chunks(
        &mut self,
        len: usize,
        mut put: impl FnMut(&mut Self, std::ops::Range<usize>),
    ) -> io::Result<()> {
        let mut at = 0;
        while at < len {
            self.reserve(CHUNK_OVERHEAD + (len - at).min(MAX_CHUNK))?;
            let room = (MAX_PACKET - self.outbox.len()).saturating_sub(CHUNK_OVERHEAD);
            let n = (len - at).min(room).min(MAX_CHUNK);
            put(self, at..at + n);
            at += n;
        }
        Ok(())
    }

    /// Whether a `Chunk` of `len` bytes fits the current packet.
    fn fits_one_chunk(&self, len: usize) -> bool {
        len <= MAX_CHUNK && self.outbox.len() + CHUNK_OVERHEAD + len <= MAX_PACKET
    }

    /// Queues a `Chunk` frame whose data stays where it is until the packet is sent.
    fn queue_shared_chunk(&mut self, piece: Bytes) {
        let header = chunk_frame_header(self.current, piece.len());
        self.outbox.frames().extend_from_slice(&header);
        self.outbox.push_shared(piece);
    }

    /// Makes room for `need` more bytes in the current packet.
    fn reserve(&mut self, need: usize) -> io::Result<()> {
        if self.outbox.len() + need > MAX_PACKET {
            self.flush_outbox()?;
        }
        Ok(())
    }
}

/// Whether sending may wait for room in the socket.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Send {
    Wait,
    DontWait,
}

/// The largest of `End`, `Complete` and `Failed`: length, tag, id, failure kind.
const CLOSING_FRAME: usize = 4 + 1 + 8 + 1;

/// Frame overhead of a `Chunk`: length, tag, id, byte-string length.
const CHUNK_OVERHEAD: usize = BODY_HEADER_LEN;

impl Transport for SlotChannel {
    fn serving(&self) -> Option<u64> {
        self.serving.then_some(self.current)
    }

    fn read_body(&mut self) -> io::Result<Option<Bytes>> {
        while !self.body_done {
            match self.next_message()? {
                Some(ToWorker::Body { id, chunk }) if id == self.current => return Ok(Some(chunk)),
                Some(ToWorker::BodyEnd { id, complete }) if id == self.current => {
                    self.body_done = true;
                    if !complete {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "the client disconnected before sending the whole body",
                        ));
                    }
                }
                Some(ToWorker::Abort { id }) if id == self.current => self.aborted = true,
                Some(ToWorker::Request { .. }) => return Err(invalid("request before BodyEnd")),
                Some(_) => {}
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
        Ok(None)
    }

    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        let msg = ToMaster::ResponseHead {
            id: self.current,
            head,
        };
        let before = self.outbox.mark();
        encode(&msg, self.outbox.frames());
        if self.outbox.len() > MAX_PACKET {
            // Move the head to a packet of its own.
            let head_frame = self.outbox.split_off(before);
            self.flush_outbox()?;
            self.outbox = head_frame;
            if self.outbox.len() > MAX_PACKET {
                self.outbox.clear();
                return Err(invalid("response head larger than one IPC packet"));
            }
        }
        Ok(())
    }

    fn send_data(&mut self, data: &[u8]) -> io::Result<()> {
        self.queue_in_chunks(data.len(), |chan, range| {
            encode_chunk(chan.current, &data[range], chan.outbox.frames());
        })
    }

    fn send_shared(&mut self, data: Bytes) -> io::Result<()> {
        self.queue_in_chunks(data.len(), |chan, range| {
            chan.queue_shared_chunk(data.slice(range));
        })
    }

    fn send_file(&mut self, file: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
        self.reserve(64)?;
        encode(
            &ToMaster::File {
                id: self.current,
                offset,
                len,
            },
            self.outbox.frames(),
        );
        self.deliver(Some(file), Send::Wait).map(drop)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_outbox()
    }

    fn try_queue_data(&mut self, data: &[u8]) -> bool {
        if !self.fits_one_chunk(data.len()) {
            return false;
        }
        encode_chunk(self.current, data, self.outbox.frames());
        true
    }

    fn try_queue_shared(&mut self, data: &Bytes) -> bool {
        if !self.fits_one_chunk(data.len()) {
            return false;
        }
        self.queue_shared_chunk(data.clone());
        true
    }

    fn try_queue_complete(&mut self) -> bool {
        if self.outbox.len() + CLOSING_FRAME > MAX_PACKET {
            return false;
        }
        encode(
            &ToMaster::Complete { id: self.current },
            self.outbox.frames(),
        );
        true
    }

    fn try_flush(&mut self) -> io::Result<bool> {
        if self.outbox.is_empty() {
            return Ok(true);
        }
        self.deliver(None, Send::DontWait)
    }

    fn body_complete(&mut self) -> io::Result<()> {
        self.queue_closing_frame(&ToMaster::Complete { id: self.current })?;
        self.flush_outbox()
    }

    fn client_gone(&mut self) -> bool {
        if self.aborted {
            return true;
        }
        loop {
            match self.receive(RecvFlags::DontWait) {
                Ok(true) => continue,
                Ok(false) => return true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return true,
            }
        }
        let current = self.current;
        self.aborted = self
            .inbox
            .iter()
            .any(|m| matches!(m, ToWorker::Abort { id } if *id == current));
        self.aborted
    }
}

fn invalid<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("IPC protocol error: {e}"),
    )
}

/// See `SlotChannel::done_looking` (apart, for callers that hold a borrow of the pool).
fn done_looking(woken: &mut bool, pool: &PoolShare, process: usize) {
    if std::mem::take(woken) {
        pool.doorbells().looked(process);
    }
}

mod delivery;
mod outbox;
#[cfg(test)]
mod tests;
