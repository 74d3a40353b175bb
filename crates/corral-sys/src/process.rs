//! Process groups, signals, reaping, and starting a program that inherits one descriptor.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Starts `cmd` with `fd` left open (same number) in the child; every other descriptor keeps
/// its close-on-exec flag. Used by the master to exec the zygote with its control socket.
pub fn spawn_with_inherited_fd(cmd: &mut Command, fd: BorrowedFd<'_>) -> io::Result<Child> {
    let raw = fd.as_raw_fd();
    // SAFETY: the pre_exec closure runs between fork and exec and only calls fcntl(2), which
    // is async-signal-safe; it touches no memory shared with other threads.
    unsafe {
        cmd.pre_exec(move || {
            let flags = libc::fcntl(raw, libc::F_GETFD);
            if flags < 0 || libc::fcntl(raw, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    };
    cmd.spawn()
}

/// Set-up of a freshly forked worker: its own process group (so the master can kill its whole
/// tree and a terminal's Ctrl-C does not reach it), death when its parent dies, default signal
/// handling, and none of the parent's private descriptors (`close`).
pub fn child_setup(close: &[RawFd]) -> io::Result<()> {
    // SAFETY: setpgid/prctl/getppid take integers only.
    unsafe {
        cvt(libc::setpgid(0, 0))?;
        cvt(libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ))?;
        if libc::getppid() == 1 {
            // The parent died before prctl took effect: nobody would ever reap us.
            libc::_exit(1);
        }
    }
    for &fd in close {
        // SAFETY: the caller names descriptors the child must not keep; nothing else in the
        // single-threaded child uses them afterwards.
        unsafe { libc::close(fd) };
    }
    unblock_all_signals()?;
    for sig in [
        libc::SIGCHLD,
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
    ] {
        // SAFETY: restoring the default disposition is always valid.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    Ok(())
}

/// Puts the calling process in a process group of its own.
pub fn own_process_group() -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::setpgid(0, 0) }).map(drop)
}

/// Ignores SIGPIPE (writes to a closed socket report EPIPE instead of killing us).
pub fn ignore_sigpipe() {
    // SAFETY: setting SIG_IGN for SIGPIPE is always valid.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set; sigaddset adds valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks `signals` for the calling thread (and so for a single-threaded process).
pub fn block_signals(signals: &[libc::c_int]) -> io::Result<()> {
    let set = sigset(signals);
    // SAFETY: `set` is initialised; the old mask is not requested.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Unblocks every signal for the calling thread.
pub fn unblock_all_signals() -> io::Result<()> {
    // SAFETY: an empty, initialised set replaces the mask.
    let set = sigset(&[]);
    // SAFETY: as above.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// A signalfd for a set of (blocked) signals, so a poll loop can wait on signals and sockets.
#[derive(Debug)]
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// Blocks `signals` and returns a descriptor that becomes readable when one arrives.
    pub fn new(signals: &[libc::c_int]) -> io::Result<SignalFd> {
        block_signals(signals)?;
        let set = sigset(signals);
        // SAFETY: -1 asks for a new descriptor; `set` is initialised.
        let fd = cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
        // SAFETY: signalfd returned a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd { fd })
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads and discards every pending signal record.
    pub fn drain(&self) {
        let mut buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>() * 8];
        loop {
            // SAFETY: buf is writable for its full length.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                )
            };
            if n <= 0 {
                break;
            }
        }
    }
}

/// Waits until one of `fds` is readable (or has hung up), or `timeout_ms` passes (-1: forever).
/// Returns one flag per descriptor. An interrupted wait returns all false.
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: pfds is a valid array of pfds.len() pollfd structs.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}

/// A child that `reap_any` collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    pub pid: u32,
    /// `Ok(code)` for a normal exit, `Err(signal)` when a signal killed it.
    pub status: Result<i32, i32>,
}

/// Collects every child that has exited, without blocking.
pub fn reap_any() -> Vec<Reaped> {
    let mut out = Vec::new();
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: status is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return out;
        }
        let status = if libc::WIFSIGNALED(status) {
            Err(libc::WTERMSIG(status))
        } else {
            Ok(libc::WEXITSTATUS(status))
        };
        out.push(Reaped {
            pid: pid as u32,
            status,
        });
    }
}

/// Sends `sig` to every process of the group `pgid`. A group that no longer exists is not an
/// error. Refuses pgid 0 and 1, which would reach the caller's own group or init.
pub fn kill_process_group(pgid: u32, sig: libc::c_int) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::other(format!(
            "refusing to signal process group {pgid}"
        )));
    }
    // SAFETY: kill(2) with a negative pid addresses a process group; integers only.
    match cvt(unsafe { libc::kill(-(pgid as libc::pid_t), sig) }) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        r => r.map(drop),
    }
}

/// Sends `sig` to one process. A process that no longer exists is not an error.
pub fn kill_pid(pid: u32, sig: libc::c_int) -> io::Result<()> {
    if pid <= 1 {
        return Err(io::Error::other(format!("refusing to signal pid {pid}")));
    }
    // SAFETY: integers only.
    match cvt(unsafe { libc::kill(pid as libc::pid_t, sig) }) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        r => r.map(drop),
    }
}

/// Exits at once, skipping atexit handlers and destructors (a forked worker must never run the
/// zygote's or Python's finalisation).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is always safe to call.
    unsafe { libc::_exit(code) }
}

/// This process's id.
pub fn getpid() -> u32 {
    std::process::id()
}

/// Takes ownership of a descriptor this process inherited by number (`--ctl-fd N`), after
/// checking that it is open, and marks it close-on-exec.
pub fn adopt_inherited_fd(raw: RawFd) -> io::Result<OwnedFd> {
    if raw < 3 {
        return Err(io::Error::other(format!(
            "refusing to adopt standard descriptor {raw}"
        )));
    }
    // SAFETY: F_GETFD/F_SETFD on an integer descriptor; fails with EBADF if it is not open.
    unsafe {
        let flags = cvt(libc::fcntl(raw, libc::F_GETFD))?;
        cvt(libc::fcntl(raw, libc::F_SETFD, flags | libc::FD_CLOEXEC))?;
    }
    // SAFETY: the descriptor is open (checked above) and was handed to this process to own;
    // nothing else in the process refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Points this process's stderr (fd 2) at `file`, so that everything written there — Rust logs,
/// Python tracebacks, child processes' output — lands in the error log.
pub fn redirect_stderr(file: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: dup2 onto fd 2 with a descriptor we borrow; the old stderr is closed by dup2.
    cvt(unsafe { libc::dup2(file.as_raw_fd(), 2) }).map(drop)
}

/// Signal numbers, so that callers need not depend on libc.
pub use libc::{SIGCHLD, SIGINT, SIGKILL, SIGQUIT, SIGTERM};
