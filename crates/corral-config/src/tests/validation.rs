//! One test per validation rule, checking the message names value, source and fix.

use std::time::Duration;

use super::{serve, serve_err, TempDir};
use crate::{AppTarget, Bind, LogLevel, LogTarget, Mpm, Scheduling};

fn err(args: &[&str]) -> String {
    let dir = TempDir::new("val");
    let mut full = vec!["app"];
    full.extend_from_slice(args);
    serve_err(&full, &[], dir.path())
}

#[test]
fn workers_range() {
    assert_eq!(
        err(&["-w", "0"]),
        "invalid value \"0\" for --workers: must be between 1 and 1024"
    );
    assert_eq!(
        err(&["--workers", "1025"]),
        "invalid value \"1025\" for --workers: must be between 1 and 1024"
    );
    assert!(err(&["-w", "four"]).contains("must be a whole number between 1 and 1024"));
}

#[test]
fn env_errors_name_the_variable() {
    let dir = TempDir::new("val-env");
    let msg = serve_err(&["app"], &[("CORRAL_WORKERS", "0")], dir.path());
    assert_eq!(
        msg,
        "invalid value \"0\" for CORRAL_WORKERS: must be between 1 and 1024"
    );
    let msg = serve_err(&["app"], &[("CORRAL_MAX_BODY", "lots")], dir.path());
    assert!(
        msg.starts_with("invalid value \"lots\" for CORRAL_MAX_BODY: not a valid size"),
        "{msg}"
    );
}

#[test]
fn file_errors_name_key_and_file() {
    let dir = TempDir::new("val-file");
    let path = dir.write(
        "corral.toml",
        "app = \"x\"\nkeepalive_timeout = \"5 seconds\"\n",
    );
    let msg = serve_err(&[], &[], dir.path());
    let prefix = format!(
        "invalid value \"5 seconds\" for keepalive_timeout in {}: ",
        path.display()
    );
    assert!(msg.starts_with(&prefix), "{msg}");
}

#[test]
fn threads_need_worker_mpm() {
    assert!(err(&["--threads", "4"])
        .starts_with("--threads 4 needs --mpm worker: prefork runs one thread per process;"));
    let msg = err(&["--threads", "4", "--mpm", "prefork"]);
    assert!(msg.contains("(--mpm prefork selects prefork)"), "{msg}");
    let dir = TempDir::new("val-threads-file");
    dir.write("corral.toml", "app = \"x\"\nthreads = 4\n");
    let msg = serve_err(&[], &[], dir.path());
    assert!(msg.starts_with("threads = 4 in "), "{msg}");
    let c = serve(&["app", "--threads", "1"], &[], dir.path());
    assert_eq!(c.pool.threads, 1, "one thread is what prefork runs anyway");
}

#[test]
fn worker_mpm_threads() {
    let dir = TempDir::new("val-worker");
    let c = serve(&["app", "--mpm", "worker"], &[], dir.path());
    assert_eq!((c.pool.mpm, c.pool.threads), (Mpm::Worker, 8));
    assert_eq!((c.python.mpm, c.python.threads), (Mpm::Worker, 8));
    let c = serve(
        &["app", "--mpm", "Worker", "--threads", "256"],
        &[],
        dir.path(),
    );
    assert_eq!(c.pool.threads, 256);
    assert!(err(&["--mpm", "worker", "--threads", "257"]).contains("between 1 and 256"));
    assert!(err(&["--mpm", "worker", "--threads", "0"]).contains("between 1 and 256"));
}

#[test]
fn mpm_names() {
    let msg = err(&["--mpm", "event"]);
    assert!(
        msg.starts_with("invalid value \"event\" for --mpm: must be \"prefork\""),
        "{msg}"
    );
}

#[test]
fn backlog_range() {
    let dir = TempDir::new("val-backlog");
    assert_eq!(
        serve(&["app", "--backlog", "64"], &[], dir.path())
            .listen
            .backlog,
        64
    );
    assert!(err(&["--backlog", "0"]).contains("between 1 and 65535"));
}

#[test]
fn binds() {
    let dir = TempDir::new("val-bind");
    let c = serve(
        &[
            "app",
            "-b",
            "0.0.0.0:80",
            "-b",
            "[::1]:0",
            "-b",
            "unix:/tmp/c.sock",
        ],
        &[],
        dir.path(),
    );
    assert_eq!(
        c.listen.binds,
        [
            Bind::Tcp {
                host: "0.0.0.0".into(),
                port: 80
            },
            Bind::Tcp {
                host: "::1".into(),
                port: 0
            },
            Bind::Unix("/tmp/c.sock".into()),
        ]
    );
    let msg = err(&["-b", "8000"]);
    assert!(
        msg.starts_with("invalid value \"8000\" for --bind:") && msg.contains("\"127.0.0.1:8000\""),
        "{msg}"
    );
    assert!(err(&["-b", ":8000"]).contains("missing host"));
    let msg = err(&["-b", "127.0.0.1:1", "-b", "127.0.0.1:1"]);
    assert!(
        msg.contains("127.0.0.1:1 is listed twice in --bind"),
        "{msg}"
    );
}

#[test]
fn sizes() {
    let dir = TempDir::new("val-size");
    let c = serve(
        &["app", "--max-body", "10MB", "--body-buffer", "64k"],
        &[],
        dir.path(),
    );
    assert_eq!(
        (c.http.max_body, c.http.body_buffer),
        (10_000_000, 64 << 10)
    );
    let c = serve(&["app", "--body-buffer", "0"], &[], dir.path());
    assert_eq!(c.http.body_buffer, 0, "zero streams every body");
    assert!(err(&["--max-body", "0"]).contains("must be at least 1 byte"));
    assert!(err(&["--body-buffer", "1.5MiB"]).contains("for --body-buffer: not a valid size"));
}

#[test]
fn durations() {
    let dir = TempDir::new("val-duration");
    let args = [
        "app",
        "--keepalive-timeout",
        "0",
        "--header-timeout",
        "500ms",
        "--graceful-timeout",
        "1m30s",
    ];
    let c = serve(&args, &[], dir.path());
    assert_eq!(
        c.http.keepalive_timeout,
        Duration::ZERO,
        "zero disables keep-alive"
    );
    assert_eq!(c.http.header_timeout, Duration::from_millis(500));
    assert_eq!(c.pool.graceful_timeout, Duration::from_secs(90));
    assert!(err(&["--header-timeout", "0"]).contains("must be more than zero"));
    assert!(err(&["--send-timeout", "0"]).contains("must be more than zero"));
    assert!(err(&["--graceful-timeout", "soon"])
        .contains("for --graceful-timeout: not a valid duration"));
}

#[test]
fn request_head_limits() {
    let dir = TempDir::new("val-limits");
    let args = [
        "app",
        "--limit-request-line",
        "65535",
        "--limit-request-fields",
        "32768",
        "--limit-request-field-size",
        "1",
    ];
    let c = serve(&args, &[], dir.path());
    assert_eq!(
        (
            c.http.limit_request_line,
            c.http.limit_request_fields,
            c.http.limit_request_field_size
        ),
        (65535, 32768, 1)
    );
    assert!(err(&["--limit-request-line", "65536"]).contains("between 1 and 65535"));
    assert!(err(&["--limit-request-line", "0"]).contains("between 1 and 65535"));
    assert!(err(&["--limit-request-fields", "32769"]).contains("between 1 and 32768"));
    assert!(err(&["--limit-request-field-size", "0"]).contains("between 1 and 65535"));
}

#[test]
fn max_queue() {
    let dir = TempDir::new("val-queue");
    assert_eq!(
        serve(&["app", "--max-queue", "0"], &[], dir.path())
            .pool
            .max_queue,
        0
    );
    assert!(err(&["--max-queue", "-1"]).contains("for --max-queue"));
}

#[test]
fn chdir_must_exist_and_is_absolute() {
    let dir = TempDir::new("val-chdir");
    dir.mkdir("site");
    let c = serve(&["app", "--chdir", "./site"], &[], dir.path());
    assert_eq!(c.python.chdir, dir.path().join("site"));
    let msg = serve_err(&["app", "--chdir", "missing"], &[], dir.path());
    let missing = dir.path().join("missing");
    assert!(
        msg.contains(&format!(
            "the directory {} does not exist",
            missing.display()
        )),
        "{msg}"
    );
    assert!(serve_err(&["app", "--chdir", ""], &[], dir.path()).contains("must not be empty"));
}

#[test]
fn pythonpath_is_relative_to_chdir() {
    let dir = TempDir::new("val-pythonpath");
    dir.mkdir("site");
    let c = serve(
        &[
            "app",
            "--chdir",
            "site",
            "--pythonpath",
            "lib",
            "--pythonpath",
            "/opt/x",
        ],
        &[],
        dir.path(),
    );
    assert_eq!(
        c.python.pythonpath,
        [dir.path().join("site/lib"), "/opt/x".into()]
    );
    let c = serve(&["app"], &[("CORRAL_PYTHONPATH", "a:b")], dir.path());
    assert_eq!(
        c.python.pythonpath,
        [dir.path().join("a"), dir.path().join("b")]
    );
}

#[test]
fn virtualenv_needs_bin_python() {
    let dir = TempDir::new("val-venv");
    dir.mkdir("empty-venv");
    let msg = serve_err(&["app", "--virtualenv", "empty-venv"], &[], dir.path());
    let python = dir.path().join("empty-venv/bin/python");
    assert!(
        msg.starts_with("invalid value \"empty-venv\" for --virtualenv:"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{} does not exist", python.display())),
        "{msg}"
    );
}

#[test]
fn preload_values() {
    let dir = TempDir::new("val-preload");
    let msg = serve_err(&["app"], &[("CORRAL_PRELOAD", "sometimes")], dir.path());
    assert!(
        msg.starts_with("invalid value \"sometimes\" for CORRAL_PRELOAD: must be true or false"),
        "{msg}"
    );
}

#[test]
fn app_forms() {
    let dir = TempDir::new("val-app");
    dir.write("site/wsgi.py", "application = None\n");
    let c = serve(&["pkg.mod:create_app()"], &[], dir.path());
    assert_eq!(
        (c.python.app.callable.as_str(), c.python.app.factory),
        ("create_app", true)
    );
    let c = serve(&["site/wsgi.py:app"], &[], dir.path());
    assert_eq!(
        c.python.app.target,
        AppTarget::File(dir.path().join("site/wsgi.py"))
    );
    let c = serve(&["wsgi.py", "--chdir", "site"], &[], dir.path());
    assert_eq!(
        c.python.app.target,
        AppTarget::File(dir.path().join("site/wsgi.py"))
    );
    let msg = serve_err(&["my-app:app"], &[], dir.path());
    assert!(
        msg.starts_with("invalid value \"my-app:app\" for the APP argument:"),
        "{msg}"
    );
    assert!(msg.contains("\"mypackage.wsgi:application\""), "{msg}");
    let msg = serve_err(&["missing.py"], &[], dir.path());
    assert!(msg.contains("does not exist"), "{msg}");
}

#[test]
fn log_targets() {
    let dir = TempDir::new("val-log");
    dir.mkdir("logs");
    let c = serve(
        &["app", "--access-log", "-", "--error-log", "./logs/err.log"],
        &[],
        dir.path(),
    );
    assert_eq!(c.log.access_log, Some(LogTarget::Std));
    assert_eq!(
        c.log.error_log,
        LogTarget::File(dir.path().join("logs/err.log"))
    );
    let c = serve(&["app", "--access-log", "access.log"], &[], dir.path());
    assert_eq!(
        c.log.access_log,
        Some(LogTarget::File(dir.path().join("access.log")))
    );
    let msg = serve_err(&["app", "--access-log", "nodir/a.log"], &[], dir.path());
    assert!(
        msg.contains("nodir") && msg.contains("does not exist"),
        "{msg}"
    );
    assert!(serve_err(&["app", "--error-log", "."], &[], dir.path()).contains("is a directory"));
}

#[test]
fn log_level_and_format() {
    let dir = TempDir::new("val-level");
    assert_eq!(
        serve(&["app", "--log-level", "warn"], &[], dir.path())
            .log
            .level,
        LogLevel::Warning
    );
    assert_eq!(
        serve(&["app", "--log-level", "CRITICAL"], &[], dir.path())
            .log
            .level,
        LogLevel::Critical
    );
    assert!(err(&["--log-level", "verbose"])
        .contains("must be debug, info, warning, error or critical"));
    let c = serve(&["app", "--access-log-format", "%h %r"], &[], dir.path());
    assert_eq!(c.log.access_log_format, "%h %r");
    assert!(err(&["--access-log-format", " "]).contains("must not be empty"));
    assert!(LogLevel::Debug < LogLevel::Critical);
}

#[test]
fn warmup_paths() {
    let dir = TempDir::new("val-warmup");
    let args = ["app", "--warmup", "/", "--warmup", "/health?full=1"];
    let c = serve(&args, &[], dir.path());
    assert_eq!(c.python.warmup, vec!["/", "/health?full=1"]);
    assert!(err(&["--warmup", "health"]).contains("must be a request path"));
    assert!(err(&["--warmup", "/a b"]).contains("must be a request path"));
    assert!(err(&["--warmup", "/", "--no-preload"]).contains("needs --preload"));
}

#[test]
fn scheduling() {
    let dir = TempDir::new("val-sched");
    let pick = |args: &[&str]| serve(args, &[], dir.path());
    let default = pick(&["app"]);
    assert_eq!(default.pool.scheduling, Scheduling::Batch);
    let normal = pick(&["app", "--scheduling", "Normal"]);
    assert_eq!(normal.pool.scheduling, Scheduling::Normal);
    let msg = err(&["--scheduling", "fifo"]);
    assert!(
        msg.starts_with("invalid value \"fifo\" for --scheduling: must be \"batch\""),
        "{msg}"
    );
}
