//! corral's unsafe OS layer (Linux).
//!
//! This crate owns every raw system call the project makes outside CPython: `SOCK_SEQPACKET`
//! socket pairs and packets with file descriptors (`SCM_RIGHTS`), `sendfile`, `fork`, the
//! set-up a forked child needs (process group, parent-death signal, fd hygiene), reaping,
//! signals and process groups, the scheduling policy, a clock shared by processes, memory shared between processes
//! ([`SharedWords`]) and the futex doorbells in it ([`bell`]), and glibc's allocator settings.
//! Each function exposes a safe interface; each `unsafe` block says why it is sound.
//!
//! It must not know about Python, HTTP, the IPC messages or configuration types: it deals in file
//! descriptors, pids and byte slices only.

pub mod bell;
pub mod clock;
pub mod fork;
pub mod malloc;
pub mod packet;
pub mod process;
pub mod sched;
pub mod sendfile;
pub mod shared;

pub use clock::coarse_millis;
pub use fork::{fork, thread_count, Forked};
pub use malloc::keep_freed_heap;
pub use packet::{
    recv_packet, recv_packet_into, ring_doorbell, send_packet, send_packet_vectored,
    seqpacket_pair, set_nonblocking, shutdown_write, try_send_packet, try_send_packet_vectored,
    unread_by_peer, RecvFlags,
};
pub use process::{
    adopt_inherited_fd, block_signals, child_setup, exit_now, getpid, ignore_sigpipe, kill_pid,
    kill_process_group, own_process_group, poll_readable, reap_any, redirect_stderr,
    spawn_with_inherited_fd, unblock_all_signals, Reaped, SignalFd,
};
pub use sched::use_batch_scheduling;
pub use sendfile::sendfile;
pub use shared::SharedWords;
