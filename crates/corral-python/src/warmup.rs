//! `--warmup`: GET requests the zygote makes of the preloaded app before it forks, so that
//! what the app builds lazily on its first requests (routing tables, template caches, compiled
//! regular expressions) is built once, in memory every worker then shares.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use corral_proto::{RequestHead, ResponseHead};
use pyo3::prelude::*;

use crate::environ::ProcessFacts;
use crate::wsgi::{self, SlotPython};
use crate::{Outcome, Transport};

/// The request id of every warm-up request (real requests count from 1).
const WARMUP_ID: u64 = 0;

/// How one warm-up request went, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warmed {
    pub target: String,
    /// The status the app answered with, if it got as far as starting a response.
    pub status: Option<u16>,
    pub outcome: Outcome,
}

/// Calls `app` once per target (in order) with a GET from 127.0.0.1 and discards the answers.
/// The app's exceptions are logged like a request's; they do not stop the server.
pub fn warm(
    py: Python<'_>,
    app: &Py<PyAny>,
    facts: ProcessFacts,
    targets: &[String],
) -> Vec<Warmed> {
    let mut slot = match SlotPython::new(py, facts) {
        Ok(slot) => slot,
        Err(e) => {
            crate::errors::log_exception(py, 0, "cannot prepare the warm-up requests", &e);
            return Vec::new();
        }
    };
    targets
        .iter()
        .map(|target| {
            let sink = Arc::new(Mutex::new(Discard::default()));
            let outcome = wsgi::handle(py, app, &mut slot, WARMUP_ID, &head(target), sink.clone());
            let status = sink.lock().map(|s| s.status).unwrap_or(None);
            Warmed {
                target: target.clone(),
                status,
                outcome,
            }
        })
        .collect()
}

fn head(target: &str) -> RequestHead {
    RequestHead {
        method: Bytes::from_static(b"GET"),
        target: Bytes::copy_from_slice(target.as_bytes()),
        version: 11,
        headers: vec![(
            Bytes::from_static(b"host"),
            Bytes::from_static(b"localhost"),
        )],
        peer_ip: Bytes::from_static(b"127.0.0.1"),
        peer_port: 0,
        local_ip: Bytes::from_static(b"127.0.0.1"),
        local_port: 0,
        scheme: Bytes::from_static(b"http"),
        script_name: Bytes::new(),
        content_length: Some(0),
    }
}

/// A transport with an empty request body that keeps only the response status.
#[derive(Default)]
struct Discard {
    status: Option<u16>,
}

impl Transport for Discard {
    fn serving(&self) -> Option<u64> {
        // Every warm-up request has its own sink, and whatever reaches it is discarded: an
        // object a warm-up request kept cannot reach a real request.
        Some(WARMUP_ID)
    }
    fn read_body(&mut self) -> io::Result<Option<Bytes>> {
        Ok(None)
    }
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.status = Some(head.status);
        Ok(())
    }
    fn send_data(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn send_file(&mut self, _: BorrowedFd<'_>, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn send_shared(&mut self, _: Bytes) -> io::Result<()> {
        Ok(())
    }
    fn try_queue_data(&mut self, _: &[u8]) -> bool {
        true
    }
    fn try_queue_shared(&mut self, _: &Bytes) -> bool {
        true
    }
    fn try_queue_complete(&mut self) -> bool {
        true
    }
    fn try_flush(&mut self) -> io::Result<bool> {
        Ok(true)
    }
    fn body_complete(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn client_gone(&mut self) -> bool {
        false
    }
}
