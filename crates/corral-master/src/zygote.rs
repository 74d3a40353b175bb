//! The master's side of a zygote: exec it, hand it its config, ask it for workers, hear back.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use bytes::BytesMut;
use corral_config::ZygoteConfig;
use corral_proto::{decode_from_zygote, encode, FromZygote, ToZygote, MAX_PACKET};
use corral_sys::{recv_packet, send_packet, RecvFlags, SharedWords};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::slot::{SlotConn, WorkerId};

pub struct ZygoteHandle {
    ctl: Arc<AsyncFd<OwnedFd>>,
    child: Option<Child>,
}

/// Starts `corral __zygote` and sends it `cfg`, with the scoreboard's descriptor (the request
/// queue is in the scoreboard). Messages from it arrive on the returned channel, which
/// closes when the zygote goes away.
pub fn start(
    cfg: &ZygoteConfig,
    board: OwnedFd,
) -> io::Result<(ZygoteHandle, mpsc::UnboundedReceiver<FromZygote>)> {
    let (ours, theirs) = corral_sys::seqpacket_pair()?;
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("__zygote")
        .arg("--ctl-fd")
        .arg(std::os::fd::AsRawFd::as_raw_fd(&theirs).to_string())
        .stdin(Stdio::null());
    let child = corral_sys::spawn_with_inherited_fd(&mut cmd, theirs.as_fd())?;
    drop(theirs);
    let json = serde_json::to_vec(cfg).map_err(io::Error::other)?;
    send_packet(ours.as_fd(), &json, &[board.as_fd()])?;
    corral_sys::set_nonblocking(ours.as_fd())?;
    let ctl = Arc::new(crate::slot::register(ours)?);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(read_loop(ctl.clone(), tx));
    Ok((
        ZygoteHandle {
            ctl,
            child: Some(child),
        },
        rx,
    ))
}

async fn read_loop(ctl: Arc<AsyncFd<OwnedFd>>, tx: mpsc::UnboundedSender<FromZygote>) {
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let Ok(mut guard) = ctl.readable().await else {
            return;
        };
        let got = guard.try_io(|fd| {
            recv_packet(
                fd.get_ref().as_fd(),
                &mut buf,
                &mut Vec::new(),
                RecvFlags::DontWait,
            )
        });
        let n = match got {
            Err(_would_block) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        let mut packet = BytesMut::from(&buf[..n]);
        while let Ok(Some(msg)) = decode_from_zygote(&mut packet) {
            if tx.send(msg).is_err() {
                return;
            }
        }
    }
}

impl ZygoteHandle {
    async fn send(&self, msg: &ToZygote, fds: &[OwnedFd]) -> io::Result<()> {
        let mut out = BytesMut::new();
        encode(msg, &mut out);
        let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        loop {
            let mut guard = self.ctl.writable().await?;
            match guard.try_io(|fd| send_packet(fd.get_ref().as_fd(), &out, &borrowed)) {
                Ok(r) => return r.map(drop),
                Err(_would_block) => continue,
            }
        }
    }

    /// Asks for one worker process with `slots` threads on slots `first ..` of the scoreboard
    /// `board`; returns the master ends of its slots (not ready until each says `Ready`).
    pub async fn spawn_worker(
        &self,
        worker: WorkerId,
        slots: usize,
        board: &Arc<SharedWords>,
        first: u32,
    ) -> io::Result<Vec<SlotConn>> {
        let mut ours = Vec::with_capacity(slots);
        let mut theirs = Vec::with_capacity(slots);
        for i in 0..slots {
            let (a, b) = corral_sys::seqpacket_pair()?;
            ours.push(SlotConn::new(a, worker, board.clone(), first as usize + i)?);
            theirs.push(b);
        }
        let spawn = ToZygote::Spawn {
            worker,
            slots: slots as u32,
            board: first,
        };
        self.send(&spawn, &theirs).await?;
        Ok(ours)
    }

    /// Tells the zygote to kill its workers and exit, then waits for it (bounded).
    pub async fn shutdown(&mut self) {
        let _ = self.send(&ToZygote::Shutdown, &[]).await;
        if let Some(mut child) = self.child.take() {
            let waited = tokio::task::spawn_blocking(move || {
                for _ in 0..100 {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
            });
            let _ = waited.await;
        }
    }

    /// Reaps the zygote after it exited on its own (startup failure).
    pub fn reap(&mut self) -> Option<std::process::ExitStatus> {
        self.child.take().and_then(|mut c| c.wait().ok())
    }
}
