//! What happens when a response is done (or dropped): the connection's request count moves on
//! and the access log gets its line.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::access_log::{AccessLog, Record};
use crate::http::stream::Activity;

pub struct Completion {
    pub activity: Arc<Activity>,
    /// The request's access log line, when there is an access log (boxed: without one, a
    /// response carries and moves nothing of it).
    pub line: Option<Box<LogLine>>,
}

pub struct LogLine {
    pub log: AccessLog,
    /// Filled in as the response goes; `bytes` counts what was sent (a body cut short is
    /// logged with the bytes actually sent).
    pub record: Record,
    pub started: Instant,
}

impl Completion {
    /// `n` more bytes of the body went out.
    pub fn count(&mut self, n: usize) {
        if let Some(line) = &mut self.line {
            line.record.bytes += n as u64;
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        let activity = &self.activity;
        activity
            .finished_ms
            .store(activity.now_ms(), Ordering::Release);
        activity.requests_finished.fetch_add(1, Ordering::AcqRel);
        if let Some(line) = self.line.take() {
            let LogLine {
                log,
                mut record,
                started,
            } = *line;
            record.duration = started.elapsed();
            log.log(record);
        }
    }
}
