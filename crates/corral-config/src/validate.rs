//! Validation: the merged raw layers become a [`Config`], with defaults filled in.
//!
//! Every error names the value, the place it came from (`--workers`, `CORRAL_WORKERS`,
//! `workers in /srv/app/corral.toml`) and what would be valid.

use std::fmt::Display;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::app::{parse_app, APP_FORMS};
use crate::bind::parse_bind;
use crate::config::{
    defaults, Config, HttpConfig, ListenConfig, LogConfig, LogLevel, LogTarget, Mpm, PoolConfig,
    PythonConfig, Scheduling,
};
use crate::env::EnvFn;
use crate::keys::Key;
use crate::raw::{Origin, RawConfig, Sourced};
use crate::units::{parse_bool, parse_duration, parse_int_in, parse_size};
use crate::ConfigError;

/// Requests a worker slot may have waiting; far above any sane setting, it only catches typos.
const MAX_QUEUE_LIMIT: u64 = 1_000_000;

/// Validates the merged layers. `env` is only consulted for `VIRTUAL_ENV`, the default of
/// `--virtualenv`; `cwd` anchors relative paths.
pub(crate) fn validate(raw: &RawConfig, env: EnvFn<'_>, cwd: &Path) -> Result<Config, ConfigError> {
    let pool = pool(raw)?;
    Ok(Config {
        listen: listen(raw)?,
        http: http(raw)?,
        python: python(raw, &pool, env, cwd)?,
        log: log(raw, cwd)?,
        pool,
    })
}

fn invalid(key: Key, origin: &Origin, value: &str, why: impl Display) -> ConfigError {
    ConfigError::Invalid(format!(
        "invalid value {value:?} for {}: {why}",
        origin.describe(key)
    ))
}

/// Parses `key` if some layer set it, blaming that layer on error.
fn parsed<T>(
    raw: &RawConfig,
    key: Key,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    raw.get(key)
        .map(|s| parse(&s.value).map_err(|why| invalid(key, &s.origin, &s.value, why)))
        .transpose()
}

fn int_in(raw: &RawConfig, key: Key, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
    parsed(raw, key, |v| parse_int_in(v, min, max))
}

fn duration(raw: &RawConfig, key: Key) -> Result<Option<Duration>, ConfigError> {
    parsed(raw, key, parse_duration)
}

/// Converts a bounded `u64` to `usize`; the bounds used here all fit in 32 bits.
fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn listen(raw: &RawConfig) -> Result<ListenConfig, ConfigError> {
    let mut out = ListenConfig::default();
    if let Some(Sourced {
        value: items,
        origin,
    }) = raw.get_list(Key::Bind)
    {
        let mut binds = Vec::with_capacity(items.len());
        for item in items {
            let bind = parse_bind(item).map_err(|why| invalid(Key::Bind, origin, item, why))?;
            if binds.contains(&bind) {
                return Err(ConfigError::Invalid(format!(
                    "{bind} is listed twice in {}; give each address once",
                    origin.describe(Key::Bind)
                )));
            }
            binds.push(bind);
        }
        out.binds = binds;
    }
    if let Some(n) = int_in(raw, Key::Backlog, 1, 65535)? {
        out.backlog = u32::try_from(n).unwrap_or(u32::MAX);
    }
    Ok(out)
}

fn http(raw: &RawConfig) -> Result<HttpConfig, ConfigError> {
    let mut out = HttpConfig::default();
    let at_least_one_byte = |v: &str| match parse_size(v)? {
        0 => Err(
            "must be at least 1 byte (0 would refuse every body; for no practical \
                  limit use a large size such as \"1TiB\")"
                .to_owned(),
        ),
        n => Ok(n),
    };
    let positive = |v: &str| match parse_duration(v)? {
        Duration::ZERO => Err("must be more than zero, e.g. \"10s\"".to_owned()),
        d => Ok(d),
    };
    out.max_body = parsed(raw, Key::MaxBody, at_least_one_byte)?.unwrap_or(out.max_body);
    out.body_buffer = parsed(raw, Key::BodyBuffer, parse_size)?.unwrap_or(out.body_buffer);
    out.keepalive_timeout = duration(raw, Key::KeepaliveTimeout)?.unwrap_or(out.keepalive_timeout);
    out.header_timeout = parsed(raw, Key::HeaderTimeout, positive)?.unwrap_or(out.header_timeout);
    out.send_timeout = parsed(raw, Key::SendTimeout, positive)?.unwrap_or(out.send_timeout);
    if let Some(n) = int_in(raw, Key::LimitRequestLine, 1, 65535)? {
        out.limit_request_line = to_usize(n);
    }
    if let Some(n) = int_in(raw, Key::LimitRequestFields, 1, 32768)? {
        out.limit_request_fields = to_usize(n);
    }
    if let Some(n) = int_in(raw, Key::LimitRequestFieldSize, 1, 65535)? {
        out.limit_request_field_size = to_usize(n);
    }
    Ok(out)
}

fn parse_mpm(s: &str) -> Result<Mpm, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "prefork" => Ok(Mpm::Prefork),
        "worker" => Ok(Mpm::Worker),
        _ => Err("must be \"prefork\" (one thread per process) or \"worker\" (threads)".to_owned()),
    }
}

fn parse_scheduling(s: &str) -> Result<Scheduling, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "batch" => Ok(Scheduling::Batch),
        "normal" => Ok(Scheduling::Normal),
        _ => Err(
            "must be \"batch\" (a woken thread does not preempt the running one) or \
             \"normal\" (the kernel's default policy)"
                .to_owned(),
        ),
    }
}

fn pool(raw: &RawConfig) -> Result<PoolConfig, ConfigError> {
    let mpm = parsed(raw, Key::Mpm, parse_mpm)?.unwrap_or(Mpm::Prefork);
    let workers = int_in(raw, Key::Workers, 1, defaults::MAX_WORKERS as u64)?;
    let threads = int_in(raw, Key::Threads, 1, defaults::MAX_THREADS as u64)?;
    if let (Mpm::Prefork, Some(n @ 2..)) = (mpm, threads) {
        return Err(threads_need_worker(raw, n));
    }
    let mut out = PoolConfig {
        mpm,
        workers: workers.map_or_else(defaults::workers, to_usize),
        threads: threads.map_or(defaults::threads(mpm), to_usize),
        ..PoolConfig::default()
    };
    if let Some(n) = int_in(raw, Key::MaxQueue, 0, MAX_QUEUE_LIMIT)? {
        out.max_queue = to_usize(n);
    }
    out.graceful_timeout = duration(raw, Key::GracefulTimeout)?.unwrap_or(out.graceful_timeout);
    out.scheduling = parsed(raw, Key::Scheduling, parse_scheduling)?.unwrap_or(out.scheduling);
    Ok(out)
}

/// `--threads 4 needs --mpm worker: ...`, also saying where prefork was chosen, if anywhere.
fn threads_need_worker(raw: &RawConfig, threads: u64) -> ConfigError {
    let shown = raw.get(Key::Threads).map_or_else(
        || format!("--threads {threads}"),
        |s| s.origin.show(Key::Threads, &s.value),
    );
    let chosen = raw
        .get(Key::Mpm)
        .map(|s| format!(" ({} selects prefork)", s.origin.show(Key::Mpm, &s.value)))
        .unwrap_or_default();
    ConfigError::Invalid(format!(
        "{shown} needs --mpm worker: prefork runs one thread per process{chosen}; use --mpm \
         worker (CORRAL_MPM=worker, or mpm = \"worker\" in the config file) for threads, or \
         more --workers instead"
    ))
}

/// `value` as an absolute path: relative values are taken against `base`, and "."
/// components are dropped. Empty values are refused.
fn absolute(key: Key, origin: &Origin, value: &str, base: &Path) -> Result<PathBuf, ConfigError> {
    if value.is_empty() {
        return Err(invalid(key, origin, value, "must not be empty"));
    }
    Ok(base
        .join(value)
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect())
}

fn python(
    raw: &RawConfig,
    pool: &PoolConfig,
    env: EnvFn<'_>,
    cwd: &Path,
) -> Result<PythonConfig, ConfigError> {
    let chdir = match raw.get(Key::Chdir) {
        None => cwd.to_path_buf(),
        Some(s) => {
            let dir = absolute(Key::Chdir, &s.origin, &s.value, cwd)?;
            if !dir.is_dir() {
                let why = format!("the directory {} does not exist", dir.display());
                return Err(invalid(Key::Chdir, &s.origin, &s.value, why));
            }
            dir
        }
    };
    let mut pythonpath = Vec::new();
    if let Some(s) = raw.get_list(Key::Pythonpath) {
        for item in &s.value {
            pythonpath.push(absolute(Key::Pythonpath, &s.origin, item, &chdir)?);
        }
    }
    let preload = parsed(raw, Key::Preload, parse_bool)?.unwrap_or(true);
    Ok(PythonConfig {
        app: app(raw, &chdir)?,
        virtualenv: virtualenv(raw, env, cwd)?,
        warmup: warmup(raw, preload)?,
        preload,
        chdir,
        pythonpath,
        mpm: pool.mpm,
        threads: pool.threads,
    })
}

/// `--warmup` targets: each starts with `/`, and they need a preloaded app to warm.
fn warmup(raw: &RawConfig, preload: bool) -> Result<Vec<String>, ConfigError> {
    let Some(s) = raw.get_list(Key::Warmup) else {
        return Ok(Vec::new());
    };
    for item in &s.value {
        if !item.starts_with('/') || item.chars().any(|c| c.is_ascii_control() || c == ' ') {
            let why = "must be a request path such as \"/\" or \"/health?full=1\"".to_owned();
            return Err(invalid(Key::Warmup, &s.origin, item, why));
        }
    }
    if !preload && !s.value.is_empty() {
        let why = "needs --preload: without it the app is imported in each worker, after the \
                   fork, so there is nothing to warm before it"
            .to_owned();
        return Err(invalid(Key::Warmup, &s.origin, &s.value[0], why));
    }
    Ok(s.value.clone())
}

fn app(raw: &RawConfig, chdir: &Path) -> Result<crate::AppSpec, ConfigError> {
    let Some(s) = raw.get(Key::App) else {
        return Err(ConfigError::Invalid(
            "no application given: name it as the APP argument (corral serve \
             mysite.wsgi:application), in CORRAL_APP, or as app = \"mysite.wsgi:application\" \
             in corral.toml"
                .to_owned(),
        ));
    };
    parse_app(&s.value, chdir)
        .map_err(|why| invalid(Key::App, &s.origin, &s.value, format!("{why}; {APP_FORMS}")))
}

/// `--virtualenv`, else the active virtualenv from `VIRTUAL_ENV`; it must hold bin/python.
fn virtualenv(raw: &RawConfig, env: EnvFn<'_>, cwd: &Path) -> Result<Option<PathBuf>, ConfigError> {
    let given = match raw.get(Key::Virtualenv) {
        Some(s) => s.clone(),
        None => match env("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
            Some(value) => Sourced {
                value,
                origin: Origin::Env("VIRTUAL_ENV".to_owned()),
            },
            None => return Ok(None),
        },
    };
    let root = absolute(Key::Virtualenv, &given.origin, &given.value, cwd)?;
    let python = root.join("bin").join("python");
    if !python.exists() {
        let why = format!(
            "{} does not exist; give the virtualenv's root directory (the one holding \
             bin/python), or create it with `python3 -m venv {}`",
            python.display(),
            root.display()
        );
        return Err(invalid(Key::Virtualenv, &given.origin, &given.value, why));
    }
    Ok(Some(root))
}

fn log(raw: &RawConfig, cwd: &Path) -> Result<LogConfig, ConfigError> {
    let mut out = LogConfig::default();
    if let Some(s) = raw.get(Key::AccessLog) {
        out.access_log = Some(log_target(Key::AccessLog, s, cwd)?);
    }
    if let Some(s) = raw.get(Key::ErrorLog) {
        out.error_log = log_target(Key::ErrorLog, s, cwd)?;
    }
    if let Some(s) = raw.get(Key::AccessLogFormat) {
        if s.value.trim().is_empty() {
            let why = "must not be empty (the default is Apache's combined format)";
            return Err(invalid(Key::AccessLogFormat, &s.origin, &s.value, why));
        }
        out.access_log_format = s.value.clone();
    }
    let level = |v: &str| {
        LogLevel::parse(v)
            .ok_or_else(|| "must be debug, info, warning, error or critical".to_owned())
    };
    out.level = parsed(raw, Key::LogLevel, level)?.unwrap_or(out.level);
    Ok(out)
}

/// "-" for the standard stream, else a file whose directory must exist.
fn log_target(key: Key, s: &Sourced<String>, cwd: &Path) -> Result<LogTarget, ConfigError> {
    if s.value == "-" {
        return Ok(LogTarget::Std);
    }
    let path = absolute(key, &s.origin, &s.value, cwd)?;
    if path.is_dir() {
        let why = "is a directory; name a file inside it, or \"-\" for the terminal";
        return Err(invalid(key, &s.origin, &s.value, why));
    }
    match path.parent() {
        Some(dir) if !dir.is_dir() => {
            let why = format!(
                "the directory {} does not exist; create it first",
                dir.display()
            );
            Err(invalid(key, &s.origin, &s.value, why))
        }
        _ => Ok(LogTarget::File(path)),
    }
}
