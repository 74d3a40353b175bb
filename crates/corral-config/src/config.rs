//! The validated configuration tree handed to the other crates.
//!
//! Every value here has already been checked: consumers never re-validate, and never invent
//! defaults of their own (the `Default` impls below are the single source of them).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The whole validated configuration, split by the subsystem that consumes each part.
#[derive(Debug, Clone)]
pub struct Config {
    /// Sockets the master binds before it starts anything else.
    pub listen: ListenConfig,
    /// Limits the master's HTTP front end enforces before a request reaches Python.
    pub http: HttpConfig,
    /// How many worker processes and threads serve requests, and how long they get to stop.
    pub pool: PoolConfig,
    /// What the zygote and the workers need to import and run the application.
    pub python: PythonConfig,
    /// Where access and error logs go.
    pub log: LogConfig,
}

/// Listening sockets.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// Every address to accept connections on; never empty, no duplicates.
    pub binds: Vec<Bind>,
    /// listen(2) backlog: connections the kernel queues before the master accepts them.
    pub backlog: u32,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            binds: vec![Bind::Tcp {
                host: defaults::BIND_HOST.to_owned(),
                port: defaults::BIND_PORT,
            }],
            backlog: defaults::BACKLOG,
        }
    }
}

/// One address to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// A TCP socket. `host` is an IPv4 address, an IPv6 address *without* brackets (`::1`),
    /// or a host name to resolve; port 0 asks the kernel for a free port.
    Tcp { host: String, port: u16 },
    /// A Unix domain socket at this path (as given: relative paths are relative to the
    /// master's working directory).
    Unix(PathBuf),
}

/// Shows the bind in the notation the user writes it in: `127.0.0.1:8000`, `[::1]:8000`,
/// `unix:/run/app.sock`.
impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bind::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Bind::Tcp { host, port } => write!(f, "{host}:{port}"),
            Bind::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// HTTP limits and timeouts enforced by the master.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes (Apache LimitRequestBody); above it -> 413.
    pub max_body: u64,
    /// Bytes of a request body the master reads before dispatching to a worker; a body that
    /// fits is handed over whole, a bigger one is streamed.
    pub body_buffer: u64,
    /// How long an idle keep-alive connection stays open (Apache KeepAliveTimeout);
    /// zero disables keep-alive.
    pub keepalive_timeout: Duration,
    /// Time a client gets to send a complete request head (slowloris defence); never zero.
    /// Exceeding it -> 408.
    pub header_timeout: Duration,
    /// How long a response may sit unwritten because the client reads nothing (nginx
    /// send_timeout); then the connection is closed and the worker told to stop. Never zero.
    pub send_timeout: Duration,
    /// Longest request line in bytes (gunicorn --limit-request-line); above it -> 414.
    pub limit_request_line: usize,
    /// Most header fields in one request (gunicorn --limit-request-fields); above it -> 431.
    pub limit_request_fields: usize,
    /// Longest single header field in bytes (gunicorn --limit-request-field-size);
    /// above it -> 431.
    pub limit_request_field_size: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body: defaults::MAX_BODY,
            body_buffer: defaults::BODY_BUFFER,
            keepalive_timeout: defaults::KEEPALIVE_TIMEOUT,
            header_timeout: defaults::HEADER_TIMEOUT,
            send_timeout: defaults::SEND_TIMEOUT,
            limit_request_line: defaults::LIMIT_REQUEST_LINE,
            limit_request_fields: defaults::LIMIT_REQUEST_FIELDS,
            limit_request_field_size: defaults::LIMIT_REQUEST_FIELD_SIZE,
        }
    }
}

/// The multi-processing module: how request handling is spread over processes and threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mpm {
    /// One request at a time per worker process (one thread each).
    Prefork,
    /// Several threads per worker process, each handling one request.
    Worker,
}

impl Mpm {
    /// The name used on the command line and in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Mpm::Prefork => "prefork",
            Mpm::Worker => "worker",
        }
    }
}

impl fmt::Display for Mpm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the kernel schedules corral's processes (`--scheduling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    /// `SCHED_BATCH`: the same CPU share, but a woken corral thread does not preempt the one
    /// running on its CPU. Where the master and the workers share a CPU, the master reads and
    /// queues every ready request before a worker runs, a worker then takes them one after
    /// another, and a new connection's data no longer interrupts a worker in the middle of
    /// the app. The price: on a saturated CPU, the master may wait for the running worker's
    /// time slice to end before it reads new requests.
    Batch,
    /// `SCHED_OTHER`, the kernel's default: a woken thread may preempt the running one at once.
    Normal,
}

impl Scheduling {
    /// The name used on the command line and in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheduling::Batch => "batch",
            Scheduling::Normal => "normal",
        }
    }
}

/// The worker pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Process model.
    pub mpm: Mpm,
    /// Worker processes, 1..=1024.
    pub workers: usize,
    /// Request threads per worker: always 1 for prefork, 1..=256 for worker.
    pub threads: usize,
    /// Requests allowed to wait for a free worker slot; one more -> 503.
    pub max_queue: usize,
    /// How long workers get to finish in-flight requests on shutdown or reload (gunicorn).
    pub graceful_timeout: Duration,
    /// The kernel scheduling policy of the master, the zygote and the workers (set in the master
    /// before it starts any thread or process; the others inherit it).
    pub scheduling: Scheduling,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            mpm: Mpm::Prefork,
            workers: defaults::workers(),
            threads: defaults::threads(Mpm::Prefork),
            max_queue: defaults::MAX_QUEUE,
            graceful_timeout: defaults::GRACEFUL_TIMEOUT,
            scheduling: Scheduling::Batch,
        }
    }
}

/// What the Python side (zygote and workers) needs; serialisable because the master sends it
/// to the processes it spawns.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PythonConfig {
    /// The WSGI application to import.
    pub app: AppSpec,
    /// Absolute directory to change into before importing; it exists.
    pub chdir: PathBuf,
    /// Absolute directories to prepend to sys.path, in order.
    pub pythonpath: Vec<PathBuf>,
    /// Absolute virtualenv root whose `bin/python` exists, if any.
    pub virtualenv: Option<PathBuf>,
    /// Import the app once in the zygote before forking workers.
    pub preload: bool,
    /// Request targets (`/path?query`) the zygote GETs from the preloaded app before it
    /// freezes the heap and forks (DESIGN: "warm the app if asked").
    pub warmup: Vec<String>,
    /// Copied from [`PoolConfig::mpm`]: the worker sets `wsgi.multithread` from it.
    pub mpm: Mpm,
    /// Copied from [`PoolConfig::threads`]: the worker sizes its thread pool from it.
    pub threads: usize,
}

/// A parsed APP argument.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AppSpec {
    /// Exactly as the user wrote it, for messages.
    pub raw: String,
    /// Where the callable lives.
    pub target: AppTarget,
    /// A single Python identifier; "application" when not given (mod_wsgi convention).
    pub callable: String,
    /// `callable()` was written: call it once with no arguments at load to get the app.
    pub factory: bool,
}

/// Where the application callable lives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AppTarget {
    /// A dotted module name, imported with the normal import machinery.
    Module(String),
    /// An absolute path to an existing Python file, executed as a module.
    File(PathBuf),
}

/// Logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Where access log lines go; `None` means no access log (gunicorn's default).
    pub access_log: Option<LogTarget>,
    /// Apache-style format of an access log line.
    pub access_log_format: String,
    /// Where error/diagnostic messages go.
    pub error_log: LogTarget,
    /// The least severe level that is written.
    pub level: LogLevel,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            access_log: None,
            access_log_format: defaults::ACCESS_LOG_FORMAT.to_owned(),
            error_log: LogTarget::Std,
            level: LogLevel::Info,
        }
    }
}

/// A log destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard output for the access log, standard error for the error log (written `-`).
    Std,
    /// An absolute file path, appended to.
    File(PathBuf),
}

/// Log severity, ordered from most to least verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl LogLevel {
    /// The name used on the command line (`warning`, not `warn`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        }
    }

    /// Parses a level name, case-insensitively; "warn" is accepted for "warning".
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warning" | "warn" => Some(LogLevel::Warning),
            "error" => Some(LogLevel::Error),
            "critical" => Some(LogLevel::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default values. The help texts in `raw.rs` repeat them for users; keep both in step.
pub(crate) mod defaults {
    use super::Mpm;
    use std::time::Duration;

    /// gunicorn's default: only this machine can connect until the user says otherwise.
    pub const BIND_HOST: &str = "127.0.0.1";
    pub const BIND_PORT: u16 = 8000;
    /// gunicorn's default.
    pub const BACKLOG: u32 = 2048;
    /// Apache-like cap: large uploads work, runaway ones do not.
    pub const MAX_BODY: u64 = 1 << 30;
    /// Most form posts and JSON bodies fit, so they reach the worker in one piece.
    pub const BODY_BUFFER: u64 = 1 << 20;
    /// Apache KeepAliveTimeout.
    pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
    /// Long enough for slow mobile clients, short enough to shed slowloris connections.
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// nginx send_timeout and Apache Timeout: a client that reads nothing for a minute is gone.
    pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
    /// gunicorn's defaults for the three request-head limits.
    pub const LIMIT_REQUEST_LINE: usize = 8190;
    pub const LIMIT_REQUEST_FIELDS: usize = 100;
    pub const LIMIT_REQUEST_FIELD_SIZE: usize = 8190;
    /// Enough to ride out bursts without holding clients forever.
    pub const MAX_QUEUE: usize = 1024;
    /// gunicorn's default.
    pub const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(30);
    /// Apache's "combined" format.
    pub const ACCESS_LOG_FORMAT: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i""#;
    pub const MAX_WORKERS: usize = 1024;
    pub const MAX_THREADS: usize = 256;

    /// One worker per CPU, within the allowed range.
    pub fn workers() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, MAX_WORKERS)
    }

    /// Prefork runs one thread per process; the worker MPM defaults to a modest pool.
    pub fn threads(mpm: Mpm) -> usize {
        match mpm {
            Mpm::Prefork => 1,
            Mpm::Worker => 8,
        }
    }
}
