//! The zygote's control loop: spawn requests from the master, SIGCHLD from the kernel.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use corral_config::ZygoteConfig;
use corral_proto::{decode_to_zygote, encode, ExitStatus, FromZygote, ToZygote, MAX_PACKET};
use corral_sys::{poll_readable, recv_packet, send_packet, RecvFlags};

use crate::Zygote;

/// What the master sends as the first packet: the configuration (JSON), with the
/// scoreboard's descriptor attached (the pool's request queue is in it).
pub struct Startup {
    pub cfg: ZygoteConfig,
    pub board: OwnedFd,
}

/// Reads the master's first packet.
pub fn read_config(ctl: BorrowedFd<'_>) -> Result<Startup, String> {
    let mut buf = vec![0u8; MAX_PACKET];
    let mut fds = Vec::new();
    let n = recv_packet(ctl, &mut buf, &mut fds, RecvFlags::Wait)
        .map_err(|e| format!("cannot read the zygote configuration: {e}"))?;
    let cfg =
        serde_json::from_slice(&buf[..n]).map_err(|e| format!("bad zygote configuration: {e}"))?;
    let mut fds = fds.into_iter();
    match (fds.next(), fds.next()) {
        (Some(board), None) => Ok(Startup { cfg, board }),
        _ => Err("the zygote configuration must carry the scoreboard, alone".into()),
    }
}

pub(crate) fn send(ctl: BorrowedFd<'_>, msg: &FromZygote) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    encode(msg, &mut out);
    send_packet(ctl, &out, &[]).map(drop)
}

/// Serves the master until it says `Shutdown` or disappears; returns the exit status.
pub(crate) fn serve(z: &mut Zygote) -> i32 {
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let ready = match poll_readable(&[z.ctl.as_fd(), z.sigchld.as_fd()], -1) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("zygote poll failed: {e}");
                return shutdown(z, 1);
            }
        };
        if ready[1] {
            z.sigchld.drain();
            report_exits(z);
        }
        if ready[0] {
            let mut fds = Vec::new();
            let n = match recv_packet(z.ctl.as_fd(), &mut buf, &mut fds, RecvFlags::DontWait) {
                Ok(0) => return shutdown(z, 0),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    tracing::error!("zygote control socket failed: {e}");
                    return shutdown(z, 1);
                }
            };
            let mut packet = BytesMut::from(&buf[..n]);
            match decode_to_zygote(&mut packet) {
                Ok(Some(ToZygote::Spawn {
                    worker,
                    slots,
                    board,
                })) => crate::spawn::spawn(z, worker, (slots, board), fds),
                Ok(Some(ToZygote::Shutdown)) => return shutdown(z, 0),
                Ok(None) | Err(_) => {
                    tracing::error!("zygote received a malformed control packet");
                    return shutdown(z, 1);
                }
            }
        }
    }
}

fn report_exits(z: &mut Zygote) {
    for reaped in corral_sys::reap_any() {
        z.workers.remove(&reaped.pid);
        let status = match reaped.status {
            Ok(code) => ExitStatus::Code(code),
            Err(sig) => ExitStatus::Signal(sig),
        };
        // The master may be gone already; the loop notices that on the socket.
        let _ = send(
            z.ctl.as_fd(),
            &FromZygote::Exited {
                pid: reaped.pid,
                status,
            },
        );
    }
}

/// Kills every worker's process group, reaps them (bounded), and returns `code`.
fn shutdown(z: &mut Zygote, code: i32) -> i32 {
    for &pid in &z.workers {
        let _ = corral_sys::kill_process_group(pid, corral_sys::process::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !z.workers.is_empty() && Instant::now() < deadline {
        for r in corral_sys::reap_any() {
            z.workers.remove(&r.pid);
        }
        let _ = poll_readable(&[z.sigchld.as_fd()], 50);
        z.sigchld.drain();
    }
    code
}

/// The zygote's own descriptors, which a forked worker must close.
pub(crate) fn raw_fds(z: &Zygote) -> [std::os::fd::RawFd; 2] {
    use std::os::fd::AsRawFd;
    [z.ctl.as_raw_fd(), z.sigchld.raw()]
}
