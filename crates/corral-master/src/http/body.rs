//! Bodies: the response body streamed from a worker slot (or a file it handed over, see
//! `http::file_send`), and the
//! task that streams a large request body to the worker.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use corral_proto::{encode, ToMaster, ToWorker, MAX_CHUNK};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::task::JoinHandle;

use crate::http::completion::Completion;
use crate::http::file_send::{stand_in, FileQueue, FileRange};
use crate::pool::Lease;
use crate::slot::{Gather, PacketWriter};

/// An error that makes hyper cut the connection (the response cannot be completed).
#[derive(Debug)]
pub struct BodyCut(pub &'static str);

impl std::fmt::Display for BodyCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for BodyCut {}

/// The task streaming the rest of a request body to the worker.
pub struct Pump {
    done: JoinHandle<()>,
}

impl Pump {
    /// Stops the pump at once (it may be waiting for room on a slot whose worker is busy
    /// writing). True if it had not sent the body's end: the caller ends the body, or a
    /// worker reading it would wait forever.
    async fn stop(self) -> bool {
        if self.done.is_finished() {
            let _ = self.done.await;
            return false;
        }
        self.done.abort();
        let _ = self.done.await;
        true
    }
}

/// Sends the worker what did not fit the request's first packet: the rest of the buffered
/// body (`buffered`), then, if the client is still sending (`still_coming`), the body as it
/// arrives, as `Body` frames, and `BodyEnd` last. It runs beside the response, so an app that
/// answers before it reads its body never waits on the master, nor the master on it. Ends the
/// body early (`BodyEnd{complete: false}`) when the client fails or goes past `max`.
pub fn spawn_pump(
    writer: PacketWriter,
    id: u64,
    buffered: Vec<Bytes>,
    still_coming: Option<Incoming>,
    mut seen: u64,
    max: u64,
) -> Pump {
    let done = tokio::spawn(async move {
        for data in buffered {
            if send_body_frames(&writer, id, data).await.is_err() {
                return;
            }
        }
        let complete = match still_coming {
            None => true,
            Some(mut body) => loop {
                let data = match body.frame().await {
                    None => break true,
                    Some(Ok(f)) => match f.into_data() {
                        Ok(d) => d,
                        Err(_trailers) => continue,
                    },
                    Some(Err(_)) => break false,
                };
                seen += data.len() as u64;
                if seen > max {
                    tracing::warn!(req = id, "request body exceeds --max-body; cutting it off");
                    break false;
                }
                if send_body_frames(&writer, id, data).await.is_err() {
                    return;
                }
            },
        };
        end_body(&writer, id, complete).await;
    });
    Pump { done }
}

async fn end_body(writer: &PacketWriter, id: u64, complete: bool) {
    let mut out = BytesMut::new();
    encode(&ToWorker::BodyEnd { id, complete }, &mut out);
    let _ = writer.send(&out).await;
}

async fn send_body_frames(writer: &PacketWriter, id: u64, data: Bytes) -> io::Result<()> {
    let mut packet = Gather::default();
    for piece in data.chunks(MAX_CHUNK) {
        packet.clear();
        packet.push_body(id, piece);
        writer.send_gathered(&packet).await?;
    }
    Ok(())
}

/// A request that reached a worker and has not finished yet. Dropping it before `finish`
/// (the client went away) tells the worker to stop and waits for it in the background, so the
/// slot is reused only once the worker is done with that request.
pub struct InFlight {
    pub id: u64,
    lease: Option<Lease>,
    pump: Option<Pump>,
    /// The worker has produced the whole declared body (hyper stopped asking because the
    /// Content-Length is met): if this is dropped before `End`, the worker is finishing
    /// normally, so no `Abort` (which would only wake it for nothing).
    delivered: bool,
}

impl InFlight {
    pub fn new(id: u64, lease: Lease, pump: Option<Pump>) -> InFlight {
        InFlight {
            id,
            lease: Some(lease),
            pump,
            delivered: false,
        }
    }

    pub fn lease(&mut self) -> &mut Lease {
        self.lease
            .as_mut()
            .expect("an unfinished request holds its lease")
    }

    pub fn pid(&self) -> u32 {
        self.lease.as_ref().map_or(0, |l| l.pid())
    }

    /// The response is whole (the worker said `Complete`) but the worker is still running the
    /// iterable's `close()`: the slot stays leased until its `End`, read in the background.
    pub fn finish_after_end(&mut self) {
        self.release_in_background(false);
    }

    /// The worker said End/Failed (healthy) or the slot broke: release the slot. A pump still
    /// running is stopped; a healthy worker then reads the body's end (it skips the rest of
    /// a body once it has answered), a broken slot is given up at once.
    pub fn finish(&mut self, healthy: bool) {
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        let Some(pump) = self.pump.take() else {
            if !healthy {
                lease.mark_broken();
            }
            return;
        };
        if !healthy {
            pump.done.abort();
            lease.mark_broken();
            return;
        }
        let id = self.id;
        tokio::spawn(async move {
            // The worker has answered (its End was read) and now skips the body up to its end.
            if pump.stop().await && !lease.end_body(id).await {
                lease.mark_broken();
            }
        });
    }

    /// Waits for the worker's `End` in a task of its own (after an `Abort` if asked, and
    /// ending a body the pump had not finished), then returns the slot, or retires it if the
    /// worker broke on the way.
    fn release_in_background(&mut self, abort: bool) {
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        let pump = self.pump.take();
        let id = self.id;
        tokio::spawn(async move {
            let body_open = match pump {
                Some(p) => p.stop().await,
                None => false,
            };
            if !lease.stop_and_drain(id, abort, body_open).await {
                lease.mark_broken();
            }
        });
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.release_in_background(!self.delivered);
    }
}

/// A response body streamed from a worker.
pub struct WorkerBody {
    flight: InFlight,
    /// Where handed-over files go, and how many stand-in bytes of the last one are still to
    /// be yielded (see `http::file_send`).
    files: Arc<FileQueue>,
    stand_ins_left: u64,
    /// What is left of the response's Content-Length, if it has one: no file range may go
    /// beyond it (hyper would cut the stand-ins short).
    declared_left: Option<u64>,
}

impl WorkerBody {
    pub fn new(flight: InFlight, files: Arc<FileQueue>, declared: Option<u64>) -> WorkerBody {
        WorkerBody {
            flight,
            files,
            stand_ins_left: 0,
            declared_left: declared,
        }
    }

    fn spend(&mut self, n: u64) -> u64 {
        match &mut self.declared_left {
            Some(left) => {
                let n = n.min(*left);
                *left -= n;
                n
            }
            None => n,
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyCut>>> {
        loop {
            if self.stand_ins_left > 0 {
                let data = stand_in(self.stand_ins_left);
                self.stand_ins_left -= data.len() as u64;
                return Poll::Ready(Some(Ok(data)));
            }
            if self.flight.lease.is_none() {
                return Poll::Ready(None);
            }
            let next = match self.flight.lease().conn().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            };
            match next {
                Ok(Some(ToMaster::Chunk { data, .. })) => {
                    self.spend(data.len() as u64);
                    return Poll::Ready(Some(Ok(data)));
                }
                Ok(Some(ToMaster::File { offset, len, .. })) => {
                    let Some(fd) = self.flight.lease().conn().take_fd() else {
                        self.flight.finish(false);
                        return Poll::Ready(Some(Err(BodyCut("File frame without a descriptor"))));
                    };
                    let len = self.spend(len);
                    self.files.push(FileRange {
                        file: fd,
                        offset,
                        remaining: len,
                    });
                    self.stand_ins_left = len;
                }
                Ok(Some(ToMaster::End { .. })) => {
                    self.flight.finish(true);
                    return Poll::Ready(None);
                }
                Ok(Some(ToMaster::Complete { .. })) => {
                    self.flight.finish_after_end();
                    return Poll::Ready(None);
                }
                Ok(Some(ToMaster::Failed { .. })) => {
                    self.flight.finish(true);
                    return Poll::Ready(Some(Err(BodyCut("the app failed mid-response"))));
                }
                Ok(Some(_)) | Ok(None) | Err(_) => {
                    tracing::error!(req = self.flight.id, "worker lost mid-response");
                    self.flight.finish(false);
                    return Poll::Ready(Some(Err(BodyCut("worker lost mid-response"))));
                }
            }
        }
    }
}

impl Drop for WorkerBody {
    fn drop(&mut self) {
        // hyper stopped asking mid-file: those stand-ins will never be written.
        if self.stand_ins_left > 0 {
            self.files.shrink_back(self.stand_ins_left);
        } else if self.declared_left == Some(0) {
            self.flight.delivered = true;
        }
    }
}

enum Kind {
    Full(Option<Bytes>),
    Worker(Box<WorkerBody>),
}

/// Every response body the master sends. Counts bytes for the access log; its completion
/// record is written when the body is done or dropped.
pub struct RespBody {
    kind: Kind,
    completion: Option<Completion>,
}

impl RespBody {
    pub fn full(data: Bytes) -> RespBody {
        RespBody {
            kind: Kind::Full(Some(data)),
            completion: None,
        }
    }

    pub fn worker(body: WorkerBody) -> RespBody {
        RespBody {
            kind: Kind::Worker(Box::new(body)),
            completion: None,
        }
    }

    pub fn with_completion(mut self, c: Completion) -> RespBody {
        self.completion = Some(c);
        self
    }

    fn count(&mut self, n: usize) {
        if let Some(c) = &mut self.completion {
            c.count(n);
        }
    }
}

impl http_body::Body for RespBody {
    type Data = Bytes;
    type Error = BodyCut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyCut>>> {
        let this = self.get_mut();
        let next = match &mut this.kind {
            Kind::Full(data) => Poll::Ready(data.take().filter(|d| !d.is_empty()).map(Ok)),
            Kind::Worker(w) => w.poll_next(cx),
        };
        match next {
            Poll::Ready(Some(Ok(data))) => {
                this.count(data.len());
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(d) => d.as_ref().is_none_or(|d| d.is_empty()),
            Kind::Worker(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(d) => SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Worker(_) => SizeHint::default(),
        }
    }
}
