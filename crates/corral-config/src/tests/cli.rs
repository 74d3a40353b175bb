//! The command line itself: subcommands, help, version, clap errors.

use super::{run, TempDir};
use crate::{ConfigError, Invocation};

#[test]
fn help_is_display_only() {
    let dir = TempDir::new("cli-help");
    for args in [&["--help"][..], &["serve", "--help"], &["check", "-h"]] {
        let err = run(args, &[], dir.path()).unwrap_err();
        assert!(err.is_display_only(), "{args:?}: {err:?}");
    }
}

#[test]
fn serve_help_mentions_defaults_and_gunicorn() {
    let dir = TempDir::new("cli-help-text");
    let err = run(&["serve", "--help"], &[], dir.path()).unwrap_err();
    let ConfigError::Cli(e) = err else {
        panic!("clap error expected")
    };
    let help = e
        .render()
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("[default: number of CPUs] (gunicorn -w)"),
        "{help}"
    );
    assert!(help.contains("CORRAL_<OPTION>"), "{help}");
    assert!(!help.contains("__zygote"), "{help}");
}

#[test]
fn version_is_display_only_and_shows_the_version() {
    let dir = TempDir::new("cli-version");
    let err = run(&["--version"], &[], dir.path()).unwrap_err();
    assert!(err.is_display_only());
    let ConfigError::Cli(e) = err else {
        panic!("clap error expected")
    };
    assert!(e.render().to_string().contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn missing_subcommand_and_unknown_flag_are_cli_errors() {
    let dir = TempDir::new("cli-errors");
    for args in [&[][..], &["serve", "--workres", "4"], &["frobnicate"]] {
        let err = run(args, &[], dir.path()).unwrap_err();
        assert!(matches!(err, ConfigError::Cli(_)), "{args:?}: {err:?}");
        assert!(!err.is_display_only(), "{args:?}");
    }
}

#[test]
fn zygote_subcommand() {
    let dir = TempDir::new("cli-zygote");
    match run(&["__zygote", "--ctl-fd", "7"], &[], dir.path()) {
        Ok(Invocation::Zygote { ctl_fd }) => assert_eq!(ctl_fd, 7),
        other => panic!("{other:?}"),
    }
    assert!(run(&["__zygote", "--ctl-fd", "-1"], &[], dir.path()).is_err());
    assert!(run(&["__zygote"], &[], dir.path()).is_err());
}

#[test]
fn zygote_ignores_config_sources() {
    let dir = TempDir::new("cli-zygote-env");
    dir.write("corral.toml", "this is not toml");
    let vars = [("CORRAL_WORKRES", "4")];
    assert!(matches!(
        run(&["__zygote", "--ctl-fd", "3"], &vars, dir.path()),
        Ok(Invocation::Zygote { ctl_fd: 3 })
    ));
}

#[test]
fn check_validates_like_serve() {
    let dir = TempDir::new("cli-check");
    match run(&["check", "site.wsgi", "-w", "2"], &[], dir.path()) {
        Ok(Invocation::Check(config)) => assert_eq!(config.pool.workers, 2),
        other => panic!("{other:?}"),
    }
    let err = run(&["check", "site.wsgi", "-w", "0"], &[], dir.path()).unwrap_err();
    assert!(matches!(err, ConfigError::Invalid(_)));
}

#[test]
fn repeated_flags() {
    let dir = TempDir::new("cli-repeat");
    let config = super::serve(
        &[
            "app",
            "-b",
            "127.0.0.1:1",
            "--bind",
            "unix:/tmp/x.sock",
            "--pythonpath",
            "a",
            "--pythonpath",
            "b",
        ],
        &[],
        dir.path(),
    );
    let binds: Vec<String> = config
        .listen
        .binds
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(binds, ["127.0.0.1:1", "unix:/tmp/x.sock"]);
    assert_eq!(
        config.python.pythonpath,
        [dir.path().join("a"), dir.path().join("b")]
    );
}
