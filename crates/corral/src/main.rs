//! The `corral` binary: parses the configuration, picks the process role, and maps how the role
//! ended to an exit status. No server logic lives here.
//!
//! Roles: `corral serve` / `corral check` run the master; `corral __zygote` (started by the
//! master, never by hand) runs the fork server. Exit statuses: 0 clean stop, 1 runtime failure,
//! 2 configuration error, 3 the app could not be imported.

mod logging;
mod signals;

use std::os::fd::AsFd;
use std::process::ExitCode;

use corral_config::{Config, Invocation, LogLevel, LogTarget, Scheduling};
use corral_master::Exit;

const EXIT_FAILED: u8 = 1;
const EXIT_CONFIG: u8 = 2;
const EXIT_LOAD_FAILED: u8 = 3;

fn main() -> ExitCode {
    corral_sys::keep_freed_heap();
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let env = |name: &str| std::env::var(name).ok();
    match corral_config::parse_invocation(std::env::args_os(), &env, &cwd) {
        Ok(Invocation::Serve(cfg)) => serve(cfg),
        Ok(Invocation::Check(cfg)) => check(cfg),
        Ok(Invocation::Zygote { ctl_fd }) => zygote(ctl_fd),
        Err(corral_config::ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("corral: configuration error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn setup_error_log(cfg: &Config) -> Result<(), ExitCode> {
    if let LogTarget::File(path) = &cfg.log.error_log {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        let redirected = file.and_then(|f| corral_sys::redirect_stderr(f.as_fd()));
        if let Err(e) = redirected {
            eprintln!("corral: cannot open error log {}: {e}", path.display());
            return Err(ExitCode::from(EXIT_CONFIG));
        }
    }
    logging::init(cfg.log.level);
    Ok(())
}

fn serve(cfg: Config) -> ExitCode {
    if let Err(code) = setup_error_log(&cfg) {
        return code;
    }
    apply_scheduling(cfg.pool.scheduling);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("corral: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let app = cfg.python.app.raw.clone();
    let exit = runtime.block_on(async {
        let stops = signals::watch();
        corral_master::run(cfg, stops).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    exit_code(exit, &app)
}

fn exit_code(exit: Exit, app: &str) -> ExitCode {
    match exit {
        Exit::Clean => ExitCode::SUCCESS,
        Exit::LoadFailed(summary) => {
            eprintln!(
                "corral: cannot load the app {app:?}: {summary}\n\
                 corral: fix the error above (the traceback shows where), or check APP, --chdir, \
                 --pythonpath and --virtualenv; not retrying."
            );
            ExitCode::from(EXIT_LOAD_FAILED)
        }
        Exit::Failed(why) => {
            eprintln!("corral: {why}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// `--scheduling`, set before the runtime starts its threads and the master starts the zygote:
/// both inherit it, and the workers inherit it from the zygote. A kernel or sandbox that refuses
/// costs speed, not correctness.
fn apply_scheduling(policy: Scheduling) {
    if policy == Scheduling::Batch {
        if let Err(e) = corral_sys::use_batch_scheduling() {
            tracing::warn!("corral keeps the normal scheduling policy, SCHED_BATCH refused: {e}");
        }
    }
}

/// `corral check`: the configuration is valid (we got here) and the app imports.
fn check(cfg: Config) -> ExitCode {
    if let Err(code) = setup_error_log(&cfg) {
        return code;
    }
    match corral_zygote::check(&cfg.python) {
        Ok(()) => {
            println!(
                "corral: configuration OK, app {} imports",
                cfg.python.app.raw
            );
            ExitCode::SUCCESS
        }
        Err(summary) => exit_code(Exit::LoadFailed(summary), &cfg.python.app.raw),
    }
}

fn zygote(ctl_fd: i32) -> ExitCode {
    let ctl = match corral_sys::adopt_inherited_fd(ctl_fd) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("corral: __zygote is started by `corral serve`, not by hand ({e})");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let startup = match corral_zygote::read_config(ctl.as_fd()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("corral: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    logging::init(LogLevel::parse(&startup.cfg.log_level).unwrap_or(LogLevel::Info));
    let code = corral_zygote::run(ctl, startup);
    ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FAILED))
}
