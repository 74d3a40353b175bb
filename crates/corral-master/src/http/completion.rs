//! What happens when a response is done (or dropped): the connection's request count moves on
//! and the access log gets its line.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::access_log::{AccessLog, Record};
use crate::http::stream::Activity;

pub struct Completion {
    pub record: Record,
    pub bytes: u64,
    /// The body was cut short (logged with the bytes actually sent).
    pub cut: bool,
    pub started: Instant,
    pub activity: Arc<Activity>,
    pub log: Option<AccessLog>,
}

impl Drop for Completion {
    fn drop(&mut self) {
        let activity = &self.activity;
        activity
            .finished_ms
            .store(activity.now_ms(), Ordering::Release);
        activity.requests_finished.fetch_add(1, Ordering::AcqRel);
        if let Some(log) = &self.log {
            let mut r = std::mem::take(&mut self.record);
            r.bytes = self.bytes;
            r.duration = self.started.elapsed();
            log.log(r);
        }
    }
}
