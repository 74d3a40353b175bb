//! `wsgi.file_wrapper` responses sent with `sendfile(2)`, underneath hyper.
//!
//! hyper owns the response encoding (Content-Length or chunked framing, ordering with the
//! head), so file bytes still have to travel through its body. They travel as *stand-ins*:
//! the response body yields slices of one static, never-read [`STAND_IN`] buffer, exactly as
//! many bytes as the file range, and queues the file range on the connection's [`FileQueue`].
//! hyper frames and queues those slices without copying them (its vectored "queue" write
//! strategy, which `conn.rs` forces), and when it writes them the connection's I/O object
//! ([`crate::http::stream::ConnIo`]) recognises the stand-in by its address and `sendfile`s
//! the same number of bytes from the front of the queue instead.
//!
//! Invariants: ranges are queued in the order their stand-ins are yielded, each range is as
//! long as its stand-ins (a body never yields more than the response's Content-Length, so hyper
//! never cuts one short, and a body dropped early takes back the stand-ins it did not yield),
//! and a stand-in that does not fit the front range is an error (the connection is cut) —
//! stand-in bytes never reach a client.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use bytes::Bytes;

/// The stand-in buffer: only its address range matters.
static STAND_IN: [u8; STAND_IN_LEN] = [0; STAND_IN_LEN];
const STAND_IN_LEN: usize = 256 * 1024;

/// A stand-in for up to `len` file bytes (at most [`STAND_IN_LEN`]).
pub fn stand_in(len: u64) -> Bytes {
    let n = len.min(STAND_IN_LEN as u64) as usize;
    Bytes::from_static(&STAND_IN[..n])
}

/// True when `slice` lies inside the stand-in buffer (hyper may hand over a part of one).
pub fn is_stand_in(slice: &[u8]) -> bool {
    let start = STAND_IN.as_ptr() as usize;
    let p = slice.as_ptr() as usize;
    !slice.is_empty() && p >= start && p + slice.len() <= start + STAND_IN_LEN
}

/// A range of a file still to be sent.
#[derive(Debug)]
pub struct FileRange {
    pub file: OwnedFd,
    pub offset: u64,
    pub remaining: u64,
}

/// The file ranges of one connection, in the order their stand-ins were given to hyper.
#[derive(Debug, Default)]
pub struct FileQueue(Mutex<VecDeque<FileRange>>);

impl FileQueue {
    pub fn push(&self, range: FileRange) {
        if range.remaining > 0 {
            self.lock().push_back(range);
        }
    }

    /// Forgets the last `n` bytes of the newest range: its body will not yield their stand-ins.
    pub fn shrink_back(&self, n: u64) {
        let mut queue = self.lock();
        if let Some(back) = queue.back_mut() {
            back.remaining = back.remaining.saturating_sub(n);
            if back.remaining == 0 {
                queue.pop_back();
            }
        }
    }

    /// Runs `send` on the front range; drops the range once it is fully sent.
    pub fn with_front<R>(&self, send: impl FnOnce(Option<&mut FileRange>) -> R) -> R {
        let mut queue = self.lock();
        let result = send(queue.front_mut());
        if queue.front().is_some_and(|r| r.remaining == 0) {
            queue.pop_front();
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<FileRange>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_ins_are_recognised_by_address_only() {
        let s = stand_in(10_000_000);
        assert_eq!(s.len(), STAND_IN_LEN);
        assert!(is_stand_in(&s));
        assert!(is_stand_in(&s[100..200]));
        let copy = s.slice(..16).to_vec();
        assert!(
            !is_stand_in(&copy),
            "equal bytes elsewhere are not a stand-in"
        );
        assert!(!is_stand_in(&s[..0]));
        assert_eq!(stand_in(5).len(), 5);
    }

    #[test]
    fn ranges_leave_the_queue_when_sent() {
        let q = FileQueue::default();
        let fd = || OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        q.push(FileRange {
            file: fd(),
            offset: 0,
            remaining: 0,
        });
        q.push(FileRange {
            file: fd(),
            offset: 0,
            remaining: 3,
        });
        q.with_front(|r| r.unwrap().remaining -= 2);
        q.with_front(|r| r.unwrap().remaining -= 1);
        assert!(q.with_front(|r| r.is_none()));
        q.push(FileRange {
            file: fd(),
            offset: 0,
            remaining: 5,
        });
        q.shrink_back(2);
        assert!(q.with_front(|r| r.unwrap().remaining == 3));
        q.shrink_back(3);
        assert!(q.with_front(|r| r.is_none()));
    }
}
