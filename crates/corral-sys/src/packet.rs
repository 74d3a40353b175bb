//! `SOCK_SEQPACKET` socket pairs and packets that may carry file descriptors.

use std::io::{self, IoSlice};

use bytes::BytesMut;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The most descriptors one packet may carry (one per slot of a worker process).
pub const MAX_FDS_PER_PACKET: usize = 256;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Bytes this end sent that the peer has not read yet. For a Unix socket the kernel counts
/// the memory the packets take, so a little more than their bytes; 0 once all were read.
pub fn unread_by_peer(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (the same request number as TIOCOUTQ) writes one int through the
    // pointer, which points at `queued`; `fd` is an open descriptor for the whole call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut queued) })?;
    Ok(queued.max(0) as usize)
}

/// A connected pair of close-on-exec `SOCK_SEQPACKET` Unix sockets.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid, writable array of two ints, as socketpair(2) requires.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Puts `fd` in non-blocking mode (for tokio's `AsyncFd`).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we borrow, with integer arguments only.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// Half-closes a stream socket: what was written still goes out, followed by the end of the
/// stream (a TCP FIN); reading goes on. For a lingering close.
pub fn shutdown_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: shutdown on a descriptor we borrow, with an integer argument.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) })?;
    Ok(())
}

/// Sends one packet, with `fds` attached as `SCM_RIGHTS` when not empty. Never raises SIGPIPE:
/// a vanished peer is `EPIPE`.
pub fn send_packet(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    send_packet_vectored(sock, &[IoSlice::new(data)], fds)
}

/// Rings a doorbell: a one-byte packet, without waiting. A socket too full to take it holds
/// unread doorbells already, which wake its reader just as well, so that is not an error.
pub fn ring_doorbell(sock: BorrowedFd<'_>) -> io::Result<()> {
    match try_send_packet(sock, &[1]) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sends one packet without waiting: `WouldBlock` if the socket buffer has no room for it.
pub fn try_send_packet(sock: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    // SAFETY: `data` is a live slice for the duration of the call; send(2) only reads it.
    cvt_size(unsafe {
        libc::send(
            sock.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })
}

/// Sends one packet made of `parts` in order (at most `IOV_MAX`, 1024 on Linux), as
/// [`send_packet`] does: the kernel gathers them, so large pieces need not be copied together
/// first.
pub fn send_packet_vectored(
    sock: BorrowedFd<'_>,
    parts: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    send_message(sock, parts, fds, libc::MSG_NOSIGNAL)
}

/// [`send_packet_vectored`] without waiting and without descriptors: `WouldBlock` if the
/// socket buffer has no room for the packet.
pub fn try_send_packet_vectored(sock: BorrowedFd<'_>, parts: &[IoSlice<'_>]) -> io::Result<usize> {
    send_message(sock, parts, &[], libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
}

fn send_message(
    sock: BorrowedFd<'_>,
    parts: &[IoSlice<'_>],
    fds: &[BorrowedFd<'_>],
    flags: libc::c_int,
) -> io::Result<usize> {
    let fd_bytes = std::mem::size_of_val(fds) as u32;
    let space = if fds.is_empty() {
        0
    } else {
        // SAFETY: CMSG_SPACE only computes a size.
        (unsafe { libc::CMSG_SPACE(fd_bytes) }) as usize
    };
    let mut control = vec![0u8; space];
    // SAFETY: an all-zero msghdr is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // std guarantees that `IoSlice` is ABI-compatible with `iovec` on Unix; sendmsg only reads
    // the array, so the `*mut` the struct field asks for is never written through.
    msg.msg_iov = parts.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = parts.len() as _;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` bytes, enough for one header holding `fds`
        // (CMSG_SPACE), so CMSG_FIRSTHDR is non-null and CMSG_DATA has room for every fd.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes) as _;
            let data_ptr = libc::CMSG_DATA(cmsg) as *mut RawFd;
            for (i, fd) in fds.iter().enumerate() {
                data_ptr.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    // SAFETY: msg points at live buffers (the iovecs of `parts` and what they borrow, control)
    // for the duration of the call.
    cvt_size(unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, flags) })
}

/// How `recv_packet` waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvFlags {
    /// Block until a packet arrives (blocking sockets).
    Wait,
    /// Return `WouldBlock` at once when nothing is queued.
    DontWait,
}

/// Receives one packet into `buf`, pushing any descriptors that came with it onto `fds`
/// (close-on-exec). Returns 0 at end of stream. A packet longer than `buf` is an error: senders
/// respect `corral_proto::MAX_PACKET`.
pub fn recv_packet(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    how: RecvFlags,
) -> io::Result<usize> {
    // SAFETY: `buf` is a live, writable slice of `buf.len()` bytes.
    unsafe { recv_raw(sock, buf.as_mut_ptr(), buf.len(), fds, how) }
}

/// Receives one packet of at most `max` bytes and appends it to `buf`, straight into its spare
/// capacity: no zero-filling and no copy. Frames decoded from the packet can then share its
/// memory (`BytesMut::split` + `freeze`). Otherwise as `recv_packet`.
pub fn recv_packet_into(
    sock: BorrowedFd<'_>,
    buf: &mut BytesMut,
    max: usize,
    fds: &mut Vec<OwnedFd>,
    how: RecvFlags,
) -> io::Result<usize> {
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    // SAFETY: `spare` is writable memory of at least `max` bytes (reserved above) owned by
    // `buf`; the kernel writes at most `max` bytes into it and reads none.
    let n = unsafe { recv_raw(sock, spare.as_mut_ptr().cast(), max, fds, how)? };
    // SAFETY: recvmsg initialised the first `n` bytes of the spare capacity (n <= max).
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Room for the control message of a packet carrying `MAX_FDS_PER_PACKET` descriptors, as
/// `u64`s so that the `cmsghdr` inside is aligned.
const CONTROL_WORDS: usize = (MAX_FDS_PER_PACKET * std::mem::size_of::<RawFd>()) / 8 + 4;

/// recvmsg(2) of one packet into `len` bytes at `data`.
///
/// # Safety
/// `data` must point at `len` writable bytes that stay valid for the call.
unsafe fn recv_raw(
    sock: BorrowedFd<'_>,
    data: *mut u8,
    len: usize,
    fds: &mut Vec<OwnedFd>,
    how: RecvFlags,
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: data as *mut libc::c_void,
        iov_len: len,
    };
    let mut control = [0u64; CONTROL_WORDS];
    // SAFETY: CMSG_SPACE only computes a size.
    let space =
        unsafe { libc::CMSG_SPACE((MAX_FDS_PER_PACKET * std::mem::size_of::<RawFd>()) as u32) }
            as usize;
    debug_assert!(space <= std::mem::size_of_val(&control));
    // SAFETY: an all-zero msghdr is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    let mut flags = libc::MSG_CMSG_CLOEXEC;
    if how == RecvFlags::DontWait {
        flags |= libc::MSG_DONTWAIT;
    }
    // SAFETY: msg points at live, writable buffers of the sizes it states (`data` by the
    // caller's promise, `control` on this stack frame).
    let n = cvt_size(unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags) })?;
    take_fds(&msg, fds);
    if msg.msg_flags & libc::MSG_TRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "IPC packet larger than buffer",
        ));
    }
    Ok(n)
}

/// Moves the descriptors of every `SCM_RIGHTS` header of a received message into `fds`.
fn take_fds(msg: &libc::msghdr, fds: &mut Vec<OwnedFd>) {
    // SAFETY: `msg` was filled by a successful recvmsg; the CMSG_* macros walk the control
    // buffer it describes and stay within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg) as *const RawFd;
                let header = libc::CMSG_LEN(0) as usize;
                let count = ((*cmsg).cmsg_len as usize - header) / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    // The kernel installed these descriptors for us: we own them now.
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    #[test]
    fn packets_keep_boundaries_and_carry_fds() {
        let (a, b) = seqpacket_pair().unwrap();
        let mut file = std::fs::File::from(tempfile_fd());
        file.write_all(b"passed along").unwrap();
        send_packet(a.as_fd(), b"one", &[]).unwrap();
        send_packet(a.as_fd(), b"two", &[file.as_fd()]).unwrap();
        let mut buf = [0u8; 64];
        let mut fds = Vec::new();
        let n = recv_packet(b.as_fd(), &mut buf, &mut fds, RecvFlags::Wait).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"one"[..], 0));
        let n = recv_packet(b.as_fd(), &mut buf, &mut fds, RecvFlags::Wait).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"two"[..], 1));
        let mut got = std::fs::File::from(fds.pop().unwrap());
        got.rewind().unwrap();
        let mut s = String::new();
        got.read_to_string(&mut s).unwrap();
        assert_eq!(s, "passed along");
    }

    #[test]
    fn unread_by_peer_counts_until_the_peer_reads() {
        let (a, b) = seqpacket_pair().unwrap();
        assert_eq!(unread_by_peer(a.as_fd()).unwrap(), 0);
        send_packet(a.as_fd(), &[1u8; 5000], &[]).unwrap();
        assert!(unread_by_peer(a.as_fd()).unwrap() >= 5000);
        let mut buf = [0u8; 8192];
        recv_packet(b.as_fd(), &mut buf, &mut Vec::new(), RecvFlags::Wait).unwrap();
        assert_eq!(unread_by_peer(a.as_fd()).unwrap(), 0);
    }

    #[test]
    fn a_vectored_send_is_one_packet_of_its_parts_in_order() {
        let (a, b) = seqpacket_pair().unwrap();
        let big = vec![7u8; 40_000];
        let parts = [
            IoSlice::new(b"head|"),
            IoSlice::new(&big),
            IoSlice::new(b"|end"),
        ];
        let sent = send_packet_vectored(a.as_fd(), &parts, &[]).unwrap();
        send_packet(a.as_fd(), b"next", &[]).unwrap();
        let mut buf = vec![0u8; 65_536];
        let n = recv_packet(b.as_fd(), &mut buf, &mut Vec::new(), RecvFlags::Wait).unwrap();
        assert_eq!((sent, n), (40_009, 40_009));
        assert_eq!(
            (&buf[..5], &buf[5..40_005], &buf[40_005..n]),
            (&b"head|"[..], &big[..], &b"|end"[..])
        );
        let n = recv_packet(b.as_fd(), &mut buf, &mut Vec::new(), RecvFlags::Wait).unwrap();
        assert_eq!(&buf[..n], b"next");
    }

    #[test]
    fn packets_received_into_spare_capacity_are_appended() {
        let (a, b) = seqpacket_pair().unwrap();
        send_packet(a.as_fd(), b"first", &[]).unwrap();
        send_packet(a.as_fd(), b"second", &[]).unwrap();
        let mut buf = BytesMut::new();
        let mut fds = Vec::new();
        let n = recv_packet_into(b.as_fd(), &mut buf, 64, &mut fds, RecvFlags::Wait).unwrap();
        let first = buf.split().freeze();
        let m = recv_packet_into(b.as_fd(), &mut buf, 64, &mut fds, RecvFlags::Wait).unwrap();
        assert_eq!((n, &first[..]), (5, &b"first"[..]));
        assert_eq!((m, &buf[..]), (6, &b"second"[..]));
        send_packet(a.as_fd(), &[7u8; 65], &[]).unwrap();
        let err = recv_packet_into(b.as_fd(), &mut buf, 64, &mut fds, RecvFlags::Wait);
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn end_of_stream_and_would_block() {
        let (a, b) = seqpacket_pair().unwrap();
        let mut buf = [0u8; 8];
        let err = recv_packet(b.as_fd(), &mut buf, &mut Vec::new(), RecvFlags::DontWait);
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        drop(a);
        assert_eq!(
            recv_packet(b.as_fd(), &mut buf, &mut Vec::new(), RecvFlags::Wait).unwrap(),
            0
        );
        let (c, d) = seqpacket_pair().unwrap();
        drop(d);
        let e = send_packet(c.as_fd(), b"x", &[]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
    }

    #[test]
    fn a_doorbell_on_a_full_socket_is_not_an_error_but_one_to_nobody_is() {
        let (a, b) = seqpacket_pair().unwrap();
        let mut rung = 0;
        while try_send_packet(a.as_fd(), &[1]).is_ok() {
            rung += 1;
            assert!(rung < 1_000_000, "a socket buffer is finite");
        }
        ring_doorbell(a.as_fd()).expect("a full socket has doorbells enough");
        let mut buf = [0u8; 8];
        assert_eq!(
            recv_packet(b.as_fd(), &mut buf, &mut Vec::new(), RecvFlags::Wait).unwrap(),
            1
        );
        drop(b);
        // ECONNRESET rather than EPIPE, since the reader left doorbells unread.
        let e = ring_doorbell(a.as_fd()).unwrap_err();
        assert!(
            matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)),
            "{e}"
        );
    }

    #[test]
    fn oversized_packet_is_an_error_not_a_silent_truncation() {
        let (a, b) = seqpacket_pair().unwrap();
        send_packet(a.as_fd(), &[7u8; 100], &[]).unwrap();
        let mut small = [0u8; 10];
        assert!(recv_packet(b.as_fd(), &mut small, &mut Vec::new(), RecvFlags::Wait).is_err());
    }

    fn tempfile_fd() -> OwnedFd {
        let path = std::env::temp_dir().join(format!("corral-sys-test-{}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.into()
    }
}
