//! The command line, as clap sees it. Every option is optional here: defaults live in
//! `config.rs` and are applied only after the environment and the config file had their say.
//! The help texts repeat the defaults for users.

use clap::{Args, Parser, Subcommand};

use crate::keys::Key;
use crate::raw::{Origin, RawConfig};

const SOURCES_HELP: &str = "\
Every option can also be set in the environment as CORRAL_<OPTION> (CORRAL_MAX_BODY=10MiB; \
lists comma-separated, CORRAL_PYTHONPATH colon-separated) or in a config file: --config FILE, \
else ./corral.toml, else [tool.corral] in ./pyproject.toml (max-body = \"10MiB\"). \
Precedence: command line > environment > config file > defaults.

Sizes: 64KiB, 10MiB, 1GiB (binary), 10MB, 1GB (decimal), 64k, 10m, 1g (binary), or bytes. \
Durations: 500ms, 30s, 2m, 1h, 1m30s, or a number of seconds.";

/// An application server for Python WSGI apps.
#[derive(Debug, Parser)]
#[command(
    name = "corral",
    version = env!("CARGO_PKG_VERSION"),
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve a WSGI application
    #[command(after_help = SOURCES_HELP, allow_negative_numbers = true)]
    Serve(ServeArgs),
    /// Validate the configuration and import the application, then exit
    #[command(after_help = SOURCES_HELP, allow_negative_numbers = true)]
    Check(ServeArgs),
    /// Internal: the process that forks workers (started by corral itself)
    #[command(name = "__zygote", hide = true)]
    Zygote {
        /// File descriptor of the control socket shared with the master
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
        ctl_fd: i32,
    },
}

/// Options shared by `serve` and `check`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The WSGI application: "package.module:callable", "package.module" (callable
    /// "application"), "package.module:create_app()" (factory, called once), "path/to/app.py"
    /// or "path/to/app.py:callable" [env: CORRAL_APP, config key: app]
    #[arg(value_name = "APP")]
    pub app: Option<String>,

    /// Read settings from this TOML file; it must exist [default: ./corral.toml if present,
    /// else [tool.corral] in ./pyproject.toml] (gunicorn -c)
    #[arg(long, value_name = "FILE")]
    pub config: Option<String>,

    /// Address to listen on: HOST:PORT, [IPV6]:PORT or unix:PATH; repeat for several
    /// [default: 127.0.0.1:8000] (gunicorn -b)
    #[arg(short = 'b', long, value_name = "ADDR", help_heading = "Listening")]
    pub bind: Vec<String>,

    /// Pending connections the kernel queues before corral accepts them [default: 2048]
    /// (gunicorn --backlog)
    #[arg(long, value_name = "N", help_heading = "Listening")]
    pub backlog: Option<String>,

    /// Process model: "prefork" (one thread per worker process) or "worker" (threaded
    /// processes) [default: prefork]
    #[arg(long, value_name = "MPM", help_heading = "Workers")]
    pub mpm: Option<String>,

    /// Worker processes, 1 to 1024 [default: number of CPUs] (gunicorn -w)
    #[arg(short = 'w', long, value_name = "N", help_heading = "Workers")]
    pub workers: Option<String>,

    /// Threads per worker process, 1 to 256; needs --mpm worker [default: 1 with prefork,
    /// 8 with worker] (gunicorn --threads)
    #[arg(long, value_name = "N", help_heading = "Workers")]
    pub threads: Option<String>,

    /// Requests that may wait for a free worker; more get 503 [default: 1024]
    #[arg(long, value_name = "N", help_heading = "Workers")]
    pub max_queue: Option<String>,

    /// Time workers get to finish requests on shutdown or reload [default: 30s]
    /// (gunicorn --graceful-timeout)
    #[arg(long, value_name = "DURATION", help_heading = "Workers")]
    pub graceful_timeout: Option<String>,

    /// How the kernel schedules corral's processes: "batch" (a woken thread does not preempt
    /// the running one, so requests are handed over in batches) or "normal" [default: batch]
    #[arg(long, value_name = "POLICY", help_heading = "Workers")]
    pub scheduling: Option<String>,

    /// Directory to change into before loading the app [default: current directory]
    /// (gunicorn --chdir)
    #[arg(long, value_name = "DIR", help_heading = "Python")]
    pub chdir: Option<String>,

    /// Directory to add to the Python path, relative to --chdir; repeat for several
    /// (gunicorn --pythonpath)
    #[arg(long, value_name = "DIR", help_heading = "Python")]
    pub pythonpath: Vec<String>,

    /// Before forking, call the app once with a GET of this path (e.g. /), so that what it
    /// builds on its first request is built once and shared by every worker; repeat for
    /// several paths. Needs --preload. Only for paths without side effects
    #[arg(long, value_name = "PATH", help_heading = "Python")]
    pub warmup: Vec<String>,

    /// Virtualenv to run the app in; must contain bin/python [default: $VIRTUAL_ENV]
    #[arg(long, value_name = "DIR", help_heading = "Python")]
    pub virtualenv: Option<String>,

    /// Import the app once before forking workers [default] (gunicorn --preload)
    #[arg(long, overrides_with = "no_preload", help_heading = "Python")]
    pub preload: bool,

    /// Import the app in each worker instead (gunicorn's default)
    #[arg(long, overrides_with = "preload", help_heading = "Python")]
    pub no_preload: bool,

    /// Largest request body accepted; larger gets 413 [default: 1GiB]
    /// (Apache LimitRequestBody)
    #[arg(long, value_name = "SIZE", help_heading = "HTTP")]
    pub max_body: Option<String>,

    /// Request body bytes read before the request goes to a worker; larger bodies are
    /// streamed [default: 1MiB]
    #[arg(long, value_name = "SIZE", help_heading = "HTTP")]
    pub body_buffer: Option<String>,

    /// How long an idle keep-alive connection stays open; 0 disables keep-alive
    /// [default: 5s] (gunicorn --keep-alive, Apache KeepAliveTimeout)
    #[arg(long, value_name = "DURATION", help_heading = "HTTP")]
    pub keepalive_timeout: Option<String>,

    /// Time a client gets to send the complete request head; slower gets 408 [default: 10s]
    #[arg(long, value_name = "DURATION", help_heading = "HTTP")]
    pub header_timeout: Option<String>,

    /// How long the connection to a client that takes no more of its response (its socket
    /// stays full) is kept before it is closed and the worker released [default: 60s]
    /// (nginx send_timeout, Apache Timeout)
    #[arg(long, value_name = "DURATION", help_heading = "HTTP")]
    pub send_timeout: Option<String>,

    /// Longest request line in bytes, 1 to 65535; longer gets 414 [default: 8190]
    /// (gunicorn --limit-request-line)
    #[arg(long, value_name = "N", help_heading = "HTTP")]
    pub limit_request_line: Option<String>,

    /// Most header fields in a request, 1 to 32768; more gets 431 [default: 100]
    /// (gunicorn --limit-request-fields)
    #[arg(long, value_name = "N", help_heading = "HTTP")]
    pub limit_request_fields: Option<String>,

    /// Longest header field in bytes, 1 to 65535; longer gets 431 [default: 8190]
    /// (gunicorn --limit-request-field_size)
    #[arg(long, value_name = "N", help_heading = "HTTP")]
    pub limit_request_field_size: Option<String>,

    /// Write the access log to this file, or "-" for stdout [default: no access log]
    /// (gunicorn --access-logfile)
    #[arg(long, value_name = "PATH", help_heading = "Logging")]
    pub access_log: Option<String>,

    /// Access log line format, Apache style [default: combined:
    /// %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"] (gunicorn --access-logformat)
    #[arg(long, value_name = "FORMAT", help_heading = "Logging")]
    pub access_log_format: Option<String>,

    /// Write the error log to this file, or "-" for stderr [default: -]
    /// (gunicorn --error-logfile)
    #[arg(long, value_name = "PATH", help_heading = "Logging")]
    pub error_log: Option<String>,

    /// Least severe messages to log: debug, info, warning, error or critical [default: info]
    /// (gunicorn --log-level)
    #[arg(long, value_name = "LEVEL", help_heading = "Logging")]
    pub log_level: Option<String>,
}

impl ServeArgs {
    /// The command-line layer of the configuration (everything but `--config`).
    pub(crate) fn into_raw(self) -> RawConfig {
        let mut raw = RawConfig::default();
        let scalars = [
            (Key::App, self.app),
            (Key::Backlog, self.backlog),
            (Key::Mpm, self.mpm),
            (Key::Workers, self.workers),
            (Key::Threads, self.threads),
            (Key::MaxQueue, self.max_queue),
            (Key::Scheduling, self.scheduling),
            (Key::GracefulTimeout, self.graceful_timeout),
            (Key::Chdir, self.chdir),
            (Key::Virtualenv, self.virtualenv),
            (Key::Preload, preload_flag(self.preload, self.no_preload)),
            (Key::MaxBody, self.max_body),
            (Key::BodyBuffer, self.body_buffer),
            (Key::KeepaliveTimeout, self.keepalive_timeout),
            (Key::HeaderTimeout, self.header_timeout),
            (Key::SendTimeout, self.send_timeout),
            (Key::LimitRequestLine, self.limit_request_line),
            (Key::LimitRequestFields, self.limit_request_fields),
            (Key::LimitRequestFieldSize, self.limit_request_field_size),
            (Key::AccessLog, self.access_log),
            (Key::AccessLogFormat, self.access_log_format),
            (Key::ErrorLog, self.error_log),
            (Key::LogLevel, self.log_level),
        ];
        for (key, value) in scalars {
            if let Some(value) = value {
                raw.set(key, value, Origin::Cli);
            }
        }
        raw.set_list(Key::Bind, self.bind, Origin::Cli);
        raw.set_list(Key::Pythonpath, self.pythonpath, Origin::Cli);
        raw.set_list(Key::Warmup, self.warmup, Origin::Cli);
        raw
    }
}

/// `--preload` / `--no-preload` as a raw boolean; clap already made the last one win.
fn preload_flag(preload: bool, no_preload: bool) -> Option<String> {
    match (preload, no_preload) {
        (true, _) => Some("true".to_owned()),
        (_, true) => Some("false".to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_key_has_a_flag() {
        let cmd = Cli::command();
        let serve = cmd.find_subcommand("serve").expect("serve exists");
        for key in Key::ALL {
            if key == Key::App {
                continue;
            }
            let found = serve
                .get_arguments()
                .any(|a| a.get_long() == Some(key.name()));
            assert!(found, "no --{} flag", key.name());
        }
    }

    #[test]
    fn last_preload_flag_wins() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).expect("parses");
            match cli.command {
                Command::Serve(a) => a.into_raw().get(Key::Preload).map(|s| s.value.clone()),
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(
            parse(&["corral", "serve", "--preload", "--no-preload"]).as_deref(),
            Some("false")
        );
        assert_eq!(
            parse(&["corral", "serve", "--no-preload", "--preload"]).as_deref(),
            Some("true")
        );
        assert_eq!(parse(&["corral", "serve"]), None);
    }
}
