//! The messages, one enum per direction (named by where they go).

use bytes::Bytes;

use crate::head::{RequestHead, ResponseHead};

/// Master → worker slot (and, for a request's first packet, master → the pool's request
/// queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToWorker {
    /// A new request; its body follows as `Body` frames and always ends with `BodyEnd`. It
    /// arrives on the request queue, at the start of a packet that holds as much of the body
    /// as fits; whatever does not fit follows on the slot of the worker that took it.
    Request {
        id: u64,
        head: Box<RequestHead>,
    },
    Body {
        id: u64,
        chunk: Bytes,
    },
    /// No more body. `complete` is false when the client's body was cut short (the app sees
    /// an `IOError` from `wsgi.input` instead of a silently truncated body).
    BodyEnd {
        id: u64,
        complete: bool,
    },
    /// The client is gone: stop producing, call the iterable's `close()`, answer with `End`.
    Abort {
        id: u64,
    },
}

/// Why a request failed inside the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// The app raised before any header was sent: the master answers 500.
    AppError = 1,
    /// The app raised, or produced a body shorter than its Content-Length, after the head was
    /// sent: the master cuts the connection so the client cannot mistake it for a whole body.
    Truncated = 2,
}

/// Worker slot → master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToMaster {
    /// First frame on every slot: the worker is ready for requests.
    Ready {
        pid: u32,
        version: u32,
    },
    /// The app could not be imported in the worker (`--no-preload`): the message explains it.
    LoadFailed {
        message: String,
    },
    ResponseHead {
        id: u64,
        head: ResponseHead,
    },
    Chunk {
        id: u64,
        data: Bytes,
    },
    /// `wsgi.file_wrapper`: the packet carries a file descriptor; send `len` bytes from `offset`.
    File {
        id: u64,
        offset: u64,
        len: u64,
    },
    /// The response body is complete: the client can have it now. The worker goes on to call
    /// the iterable's `close()` and then sends `End`; until that `End` the slot is still
    /// finishing this request (a request sent meanwhile waits in the socket).
    Complete {
        id: u64,
    },
    End {
        id: u64,
    },
    /// The worker took this request from the queue, and its body did not all fit the
    /// request's packet: the rest is expected on this slot. (A request that arrived whole
    /// needs no such word: its first response frame tells the master where it went.)
    Taken {
        id: u64,
    },
    Failed {
        id: u64,
        kind: FailKind,
    },
    /// The slot took a request that was cancelled while it waited in the queue, and did not
    /// run it. (So the master hears of every request a slot takes, run or not.)
    Skipped {
        id: u64,
    },
    /// Last in a packet on the slot's socket: the slot's next packets come through its
    /// response ring again (see [`crate::ring`]). The master's slot reader consumes it.
    BackToRing,
}

/// Bytes of an encoded [`ToMaster::BackToRing`]: length and tag.
pub const BACK_TO_RING_FRAME: usize = 4 + 1;

impl ToMaster {
    /// The request a frame belongs to (`None` for the slot's own `Ready`, `LoadFailed` and
    /// `BackToRing`).
    pub fn id(&self) -> Option<u64> {
        match self {
            ToMaster::Ready { .. } | ToMaster::LoadFailed { .. } | ToMaster::BackToRing => None,
            ToMaster::ResponseHead { id, .. }
            | ToMaster::Chunk { id, .. }
            | ToMaster::File { id, .. }
            | ToMaster::Complete { id }
            | ToMaster::End { id }
            | ToMaster::Taken { id }
            | ToMaster::Skipped { id }
            | ToMaster::Failed { id, .. } => Some(*id),
        }
    }
}

/// Master → zygote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToZygote {
    /// Fork one worker process; the packet carries one socket per slot (thread). Its slots
    /// use the scoreboard words `board .. board + slots` (see [`crate::board`]).
    Spawn { worker: u64, slots: u32, board: u32 },
    /// Kill every worker and exit.
    Shutdown,
}

/// How a process ended, as `waitpid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

/// Zygote → master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromZygote {
    /// Python is initialised and the app is imported (when preloading): spawn requests welcome.
    Ready {
        pid: u32,
        version: u32,
    },
    /// The app failed to import; the traceback went to stderr, this is the one-line summary.
    LoadFailed {
        message: String,
    },
    Spawned {
        worker: u64,
        pid: u32,
    },
    SpawnFailed {
        worker: u64,
        message: String,
    },
    Exited {
        pid: u32,
        status: ExitStatus,
    },
}
