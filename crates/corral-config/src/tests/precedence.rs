//! Where values come from: defaults, config file discovery, CLI > env > file > default.

use std::time::Duration;

use super::{serve, serve_err, TempDir};
use crate::{AppTarget, Bind, LogLevel, LogTarget, Mpm};

#[test]
fn defaults() {
    let dir = TempDir::new("prec-defaults");
    let c = serve(&["site.wsgi"], &[], dir.path());
    assert_eq!(
        c.listen.binds,
        [Bind::Tcp {
            host: "127.0.0.1".into(),
            port: 8000
        }]
    );
    assert_eq!(c.listen.backlog, 2048);
    assert_eq!(c.http.max_body, 1 << 30);
    assert_eq!(c.http.body_buffer, 1 << 20);
    assert_eq!(c.http.keepalive_timeout, Duration::from_secs(5));
    assert_eq!(c.http.header_timeout, Duration::from_secs(10));
    assert_eq!(c.http.send_timeout, Duration::from_secs(60));
    assert_eq!(c.http.limit_request_line, 8190);
    assert_eq!(c.http.limit_request_fields, 100);
    assert_eq!(c.http.limit_request_field_size, 8190);
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(1024);
    assert_eq!(
        (c.pool.mpm, c.pool.workers, c.pool.threads),
        (Mpm::Prefork, cpus, 1)
    );
    assert_eq!(c.pool.max_queue, 1024);
    assert_eq!(c.pool.graceful_timeout, Duration::from_secs(30));
    assert_eq!(c.python.chdir, dir.path());
    assert!(c.python.pythonpath.is_empty());
    assert!(c.python.warmup.is_empty());
    assert_eq!(c.python.virtualenv, None);
    assert!(c.python.preload);
    assert_eq!((c.python.mpm, c.python.threads), (Mpm::Prefork, 1));
    assert_eq!(c.python.app.target, AppTarget::Module("site.wsgi".into()));
    assert_eq!(c.log.access_log, None);
    assert_eq!(
        c.log.access_log_format,
        r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i""#
    );
    assert_eq!(c.log.error_log, LogTarget::Std);
    assert_eq!(c.log.level, LogLevel::Info);
}

#[test]
fn cli_beats_env_beats_file_beats_default() {
    let dir = TempDir::new("prec-layers");
    dir.write(
        "corral.toml",
        "app = \"a\"\nworkers = 3\nthreads = 3\nmpm = \"worker\"\nbacklog = 10\n",
    );
    let env = [("CORRAL_WORKERS", "2"), ("CORRAL_THREADS", "2")];
    let c = serve(&["-w", "1"], &env, dir.path());
    assert_eq!(c.pool.workers, 1, "CLI beats env");
    assert_eq!(c.pool.threads, 2, "env beats file");
    assert_eq!(c.pool.mpm, Mpm::Worker, "file beats default");
    assert_eq!(c.listen.backlog, 10, "file beats default");
    assert_eq!(c.pool.max_queue, 1024, "default");
    assert_eq!(c.python.app.raw, "a");
}

#[test]
fn cli_list_replaces_env_list() {
    let dir = TempDir::new("prec-lists");
    let env = [("CORRAL_BIND", "127.0.0.1:1,127.0.0.1:2")];
    let c = serve(&["app", "-b", "[::1]:3"], &env, dir.path());
    assert_eq!(
        c.listen.binds,
        [Bind::Tcp {
            host: "::1".into(),
            port: 3
        }]
    );
    let c = serve(&["app"], &env, dir.path());
    assert_eq!(c.listen.binds.len(), 2);
}

#[test]
fn app_from_env_or_file() {
    let dir = TempDir::new("prec-app");
    dir.write("corral.toml", "app = \"from_file:app\"\n");
    assert_eq!(serve(&[], &[], dir.path()).python.app.raw, "from_file:app");
    let env = [("CORRAL_APP", "from_env")];
    assert_eq!(serve(&[], &env, dir.path()).python.app.raw, "from_env");
    assert_eq!(
        serve(&["from_cli"], &env, dir.path()).python.app.raw,
        "from_cli"
    );
}

#[test]
fn app_given_nowhere() {
    let dir = TempDir::new("prec-no-app");
    let msg = serve_err(&[], &[], dir.path());
    assert!(
        msg.contains("no application given") && msg.contains("CORRAL_APP"),
        "{msg}"
    );
    assert!(msg.contains("app = "), "{msg}");
}

#[test]
fn explicit_config_file_from_flag_or_env() {
    let dir = TempDir::new("prec-config");
    dir.write("corral.toml", "app = \"x\"\nworkers = 1\n");
    dir.write("conf/a.toml", "app = \"x\"\nworkers = 2\n");
    dir.write("conf/b.toml", "app = \"x\"\nworkers = 3\n");
    assert_eq!(serve(&[], &[], dir.path()).pool.workers, 1);
    let env = [("CORRAL_CONFIG", "conf/a.toml")];
    assert_eq!(serve(&[], &env, dir.path()).pool.workers, 2);
    assert_eq!(
        serve(&["--config", "conf/b.toml"], &env, dir.path())
            .pool
            .workers,
        3
    );
    let msg = serve_err(&[], &[("CORRAL_CONFIG", "nope.toml")], dir.path());
    assert!(
        msg.contains("nope.toml") && msg.contains("CORRAL_CONFIG"),
        "{msg}"
    );
}

#[test]
fn pyproject_discovery() {
    let dir = TempDir::new("prec-pyproject");
    dir.write(
        "pyproject.toml",
        "[project]\nname = \"site\"\n\n[tool.corral]\napp = \"site.wsgi\"\nmax-body = \"10MiB\"\n",
    );
    let c = serve(&[], &[], dir.path());
    assert_eq!(c.python.app.raw, "site.wsgi");
    assert_eq!(c.http.max_body, 10 << 20);
    dir.write("corral.toml", "app = \"other\"\n");
    assert_eq!(
        serve(&[], &[], dir.path()).python.app.raw,
        "other",
        "corral.toml comes first"
    );
}

#[test]
fn pyproject_errors_name_the_table() {
    let dir = TempDir::new("prec-pyproject-err");
    dir.write("pyproject.toml", "[tool.corral]\nworkers = 0\n");
    let msg = serve_err(&["app"], &[], dir.path());
    let file = dir.path().join("pyproject.toml");
    let expected = format!(
        "invalid value \"0\" for tool.corral.workers in {}: must be between 1 and 1024",
        file.display()
    );
    assert_eq!(msg, expected);
}

#[test]
fn unknown_env_var_is_reported() {
    let dir = TempDir::new("prec-unknown-env");
    let msg = serve_err(&["app"], &[("CORRAL_WORKRES", "4")], dir.path());
    assert!(
        msg.contains("CORRAL_WORKRES") && msg.contains("CORRAL_WORKERS"),
        "{msg}"
    );
    serve(
        &["app"],
        &[("CORRAL_BIN", "x"), ("CORRAL_TEST_FOO", "y")],
        dir.path(),
    );
}

#[test]
fn unknown_file_key_is_reported() {
    let dir = TempDir::new("prec-unknown-key");
    dir.write("corral.toml", "app = \"x\"\nmax-bdy = 1\n");
    let msg = serve_err(&[], &[], dir.path());
    assert!(
        msg.contains("unknown key \"max-bdy\"") && msg.contains("did you mean \"max-body\"?"),
        "{msg}"
    );
}

#[test]
fn virtualenv_defaults_to_virtual_env() {
    let dir = TempDir::new("prec-venv");
    dir.write("venv1/bin/python", "");
    dir.write("venv2/bin/python", "");
    let active = dir.path().join("venv1");
    let active = active.to_str().expect("utf-8 temp path");
    let c = serve(&["app"], &[("VIRTUAL_ENV", active)], dir.path());
    assert_eq!(c.python.virtualenv, Some(dir.path().join("venv1")));
    let env = [("VIRTUAL_ENV", active), ("CORRAL_VIRTUALENV", "venv2")];
    assert_eq!(
        serve(&["app"], &env, dir.path()).python.virtualenv,
        Some(dir.path().join("venv2"))
    );
    let msg = serve_err(
        &["app"],
        &[("VIRTUAL_ENV", "/nonexistent/venv")],
        dir.path(),
    );
    assert!(
        msg.contains("VIRTUAL_ENV") && msg.contains("/nonexistent/venv/bin/python"),
        "{msg}"
    );
}

#[test]
fn preload_from_every_source() {
    let dir = TempDir::new("prec-preload");
    dir.write("corral.toml", "app = \"x\"\npreload = false\n");
    assert!(!serve(&[], &[], dir.path()).python.preload);
    assert!(
        serve(&[], &[("CORRAL_PRELOAD", "yes")], dir.path())
            .python
            .preload
    );
    assert!(
        !serve(&["--no-preload"], &[("CORRAL_PRELOAD", "1")], dir.path())
            .python
            .preload
    );
    assert!(
        serve(&["--preload"], &[("CORRAL_PRELOAD", "0")], dir.path())
            .python
            .preload
    );
}
