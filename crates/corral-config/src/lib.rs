//! corral's configuration.
//!
//! This crate owns turning raw input — the command line, `CORRAL_*` environment variables
//! and a config file (`corral.toml`, or `[tool.corral]` in `pyproject.toml`) — into one
//! validated [`Config`], split into per-subsystem parts (listen, http, pool, python, log).
//! It is the only place defaults live: other crates take the values as given and never
//! re-check them.
//!
//! Precedence is explicit: command line > environment > config file > defaults. Each source
//! becomes a raw layer of strings that remembers where every value came from; the layers are
//! merged and validated once, so every error names the flag, variable or file key at fault.
//!
//! What it must not do: no I/O beyond reading the config file and checking that the paths it
//! is given exist; no tokio, no Python, no logging setup. It never reads the process
//! environment's values itself — the caller passes a lookup function.

#![forbid(unsafe_code)]

mod app;
mod bind;
mod cli;
mod config;
mod env;
mod file;
mod keys;
mod raw;
mod units;
mod validate;
mod zygote;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::path::Path;

use clap::Parser;

pub use config::{
    AppSpec, AppTarget, Bind, Config, HttpConfig, ListenConfig, LogConfig, LogLevel, LogTarget,
    Mpm, PoolConfig, PythonConfig, Scheduling,
};
pub use units::{parse_duration, parse_size};
pub use zygote::ZygoteConfig;

/// What the command line asked corral to do.
#[derive(Debug, Clone)]
pub enum Invocation {
    /// `corral serve APP`: run the server.
    Serve(Config),
    /// `corral check APP`: validate the configuration (the binary then imports the app).
    Check(Config),
    /// Hidden internal subcommand `corral __zygote --ctl-fd N`, started by the master.
    Zygote { ctl_fd: i32 },
}

/// Why no [`Invocation`] could be produced.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// clap's own error, including the `--help` and `--version` displays: `main` calls
    /// `.exit()` on it, which prints it and exits with the right status.
    #[error(transparent)]
    Cli(#[from] clap::Error),
    /// Anything else. The message names the key, where it came from (flag, environment
    /// variable or file) and what would be valid.
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// True for `--help` and `--version`: output the user asked for, not a failure.
    pub fn is_display_only(&self) -> bool {
        use clap::error::ErrorKind;
        match self {
            ConfigError::Cli(e) => {
                matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
            }
            ConfigError::Invalid(_) => false,
        }
    }
}

/// Parses the command line (`args` includes the program name, as `std::env::args_os()`
/// yields it), the environment seen through `env` and the config file, and validates them.
///
/// `cwd` is the absolute directory relative paths are resolved against and where
/// `corral.toml` / `pyproject.toml` are looked for.
///
/// Unknown `CORRAL_*` variables are errors. Their names are taken from the process
/// environment (a lookup function cannot list names), and a name counts only when `env`
/// returns a value for it, so callers passing a closure over a test map are unaffected by
/// the real environment.
pub fn parse_invocation<I, T>(
    args: I,
    env: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
) -> Result<Invocation, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("CORRAL_"))
        .collect();
    parse_with_env_names(args, env, &names, cwd)
}

/// [`parse_invocation`] with the candidate `CORRAL_*` variable names given explicitly.
pub(crate) fn parse_with_env_names<I, T>(
    args: I,
    env: env::EnvFn<'_>,
    env_names: &[String],
    cwd: &Path,
) -> Result<Invocation, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = cli::Cli::try_parse_from(args)?;
    match cli.command {
        cli::Command::Serve(args) => Ok(Invocation::Serve(build(args, env, env_names, cwd)?)),
        cli::Command::Check(args) => Ok(Invocation::Check(build(args, env, env_names, cwd)?)),
        cli::Command::Zygote { ctl_fd } => Ok(Invocation::Zygote { ctl_fd }),
    }
}

/// Layers command line, environment and config file, then validates.
fn build(
    args: cli::ServeArgs,
    env: env::EnvFn<'_>,
    env_names: &[String],
    cwd: &Path,
) -> Result<Config, ConfigError> {
    env::check_names(env, env_names)?;
    let explicit_file = match (&args.config, env::config_path(env)) {
        (Some(path), _) => Some(file::Explicit {
            path: path.clone(),
            given_by: "--config",
        }),
        (None, Some(path)) => Some(file::Explicit {
            path,
            given_by: keys::CONFIG_ENV,
        }),
        (None, None) => None,
    };
    let from_file = file::load(explicit_file, cwd)?;
    let merged = args.into_raw().over(env::load(env)).over(from_file);
    validate::validate(&merged, env, cwd)
}
