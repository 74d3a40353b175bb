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
use tokio::sync::oneshot;
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
    cancel: Option<oneshot::Sender<()>>,
    done: JoinHandle<()>,
}

/// Streams the remainder of `body` to the worker as `Body` frames, then `BodyEnd`. Stops early
/// (with `BodyEnd{complete: false}`) when cancelled, when the client fails, or past `max_body`.
pub fn spawn_pump(
    writer: PacketWriter,
    id: u64,
    mut body: Incoming,
    mut seen: u64,
    max: u64,
) -> Pump {
    let (cancel, mut cancelled) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        let complete = loop {
            let frame = tokio::select! {
                f = body.frame() => f,
                _ = &mut cancelled => break false,
            };
            let data = match frame {
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
        };
        let mut out = BytesMut::new();
        encode(&ToWorker::BodyEnd { id, complete }, &mut out);
        let _ = writer.send(&out).await;
    });
    Pump {
        cancel: Some(cancel),
        done,
    }
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

    /// The worker said End/Failed (healthy) or the slot broke: release the slot.
    pub fn finish(&mut self, healthy: bool) {
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        if !healthy {
            lease.mark_broken();
        }
        if let Some(mut pump) = self.pump.take() {
            if let Some(c) = pump.cancel.take() {
                let _ = c.send(());
            }
            tokio::spawn(async move {
                let _ = pump.done.await;
                drop(lease);
            });
        }
    }

    /// Waits for the worker's `End` in a task of its own (after an `Abort` if asked), then
    /// returns the slot, or retires it if the worker broke on the way.
    fn release_in_background(&mut self, abort: bool) {
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        let pump = self.pump.take();
        let id = self.id;
        tokio::spawn(async move {
            let sent = !abort || lease.abort(id).await;
            let healthy = sent && lease.conn().drain_until_end().await;
            if let Some(mut pump) = pump {
                if let Some(c) = pump.cancel.take() {
                    let _ = c.send(());
                }
                let _ = pump.done.await;
            }
            if !healthy {
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
    completion: Option<Box<Completion>>,
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
        self.completion = Some(Box::new(c));
        self
    }

    fn count(&mut self, n: usize) {
        if let Some(c) = &mut self.completion {
            c.bytes += n as u64;
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
            Poll::Ready(Some(Err(e))) => {
                if let Some(c) = &mut this.completion {
                    c.cut = true;
                }
                Poll::Ready(Some(Err(e)))
            }
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
