//! The HTTP/1.1 front end on hyper: one task per client connection ([`conn`]), the request
//! handler ([`service`]), response and request bodies ([`body`]), and the one place that
//! decides the statuses corral produces itself ([`error`]); files sent with sendfile
//! underneath hyper ([`file_send`]); a connection's timers, polled only when they fire
//! ([`side_wake`]).

pub mod body;
pub mod completion;
pub mod conn;
pub mod error;
pub mod file_send;
pub mod service;
mod side_wake;
pub mod smuggle;
pub mod stream;
