//! What the master hands a zygote at startup (serialised as JSON: startup, not the hot path).

use crate::config::PythonConfig;

/// The zygote's whole configuration: it sees nothing else of the master's config.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ZygoteConfig {
    pub python: PythonConfig,
    /// `wsgi.multiprocess`: more than one worker process serves the app.
    pub multiprocess: bool,
    /// The error log's level name (`info`, `debug`, …), for the zygote's own logger.
    pub log_level: String,
}
