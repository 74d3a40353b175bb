//! Binding listeners and accepting connections. Accept errors back off instead of spinning.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use corral_config::{Bind, ListenConfig};
use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio::sync::{mpsc, watch};

use crate::http::conn::{self, Addrs};
use crate::http::service::AppCtx;
use crate::http::stream::Stream;

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// How the listener is reachable, for the startup lines (`http://127.0.0.1:8000`).
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) if a.is_ipv6() => format!("http://[{}]:{}", a.ip(), a.port()),
                Ok(a) => format!("http://{a}"),
                Err(_) => "http://?".into(),
            },
            Listener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }
}

/// Binds every `--bind` address.
pub async fn bind_all(cfg: &ListenConfig) -> io::Result<Vec<Listener>> {
    let mut out = Vec::new();
    for bind in &cfg.binds {
        out.push(
            bind_one(bind, cfg.backlog)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {bind}: {e}")))?,
        );
    }
    Ok(out)
}

async fn bind_one(bind: &Bind, backlog: u32) -> io::Result<Listener> {
    match bind {
        Bind::Tcp { host, port } => {
            let addr = tokio::net::lookup_host((host.as_str(), *port))
                .await?
                .next()
                .ok_or_else(|| io::Error::other(format!("{host} resolves to no address")))?;
            let socket = if addr.is_ipv6() {
                TcpSocket::new_v6()?
            } else {
                TcpSocket::new_v4()?
            };
            socket.set_reuseaddr(true)?;
            socket.set_nodelay(true)?;
            socket.bind(addr)?;
            Ok(Listener::Tcp(socket.listen(backlog)?))
        }
        Bind::Unix(path) => {
            remove_stale_socket(path)?;
            Ok(Listener::Unix(UnixListener::bind(path)?, path.clone()))
        }
    }
}

/// A socket file left by a previous run would make bind fail; other files are not touched.
fn remove_stale_socket(path: &PathBuf) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Err(_) => Ok(()),
    }
}

/// Accepts until `stop` turns true; each connection gets a task holding a clone of `alive`.
pub async fn accept_loop(
    listener: Listener,
    ctx: Arc<AppCtx>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((stream, addrs)) => {
                backoff = Duration::from_millis(5);
                let task = conn::serve(stream, addrs, ctx.clone(), stop.clone(), alive.clone());
                tokio::spawn(task);
            }
            Err(e) => {
                // EMFILE and friends: wait for connections to close rather than spin.
                tracing::error!("accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn accept(listener: &Listener) -> io::Result<(Stream, Addrs)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            let _ = s.set_nodelay(true);
            let local = s.local_addr()?;
            let addrs = Addrs {
                peer_ip: peer.ip().to_string(),
                peer_port: peer.port(),
                local_ip: local.ip().to_string(),
                local_port: local.port(),
            };
            Ok((Stream::Tcp(s), addrs))
        }
        Listener::Unix(l, path) => {
            let (s, _) = l.accept().await?;
            let addrs = Addrs {
                peer_ip: String::new(),
                peer_port: 0,
                local_ip: path.display().to_string(),
                local_port: 0,
            };
            Ok((Stream::Unix(s), addrs))
        }
    }
}
