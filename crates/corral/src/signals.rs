//! The only place that listens to OS signals in the master: SIGTERM and SIGINT ask for a
//! graceful stop (a second one stops at once), SIGQUIT for an immediate stop.

use corral_master::Stop;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

pub fn watch() -> mpsc::UnboundedReceiver<Stop> {
    let (tx, rx) = mpsc::unbounded_channel();
    for (kind, stop) in [
        (SignalKind::terminate(), Stop::Graceful),
        (SignalKind::interrupt(), Stop::Graceful),
        (SignalKind::quit(), Stop::Immediate),
    ] {
        let tx = tx.clone();
        match signal(kind) {
            Ok(mut s) => {
                tokio::spawn(async move {
                    while s.recv().await.is_some() {
                        if tx.send(stop).is_err() {
                            return;
                        }
                    }
                });
            }
            Err(e) => tracing::error!("cannot watch signal {kind:?}: {e}"),
        }
    }
    rx
}
