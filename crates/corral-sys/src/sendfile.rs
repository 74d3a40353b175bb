//! `sendfile(2)`: bytes of a file to a socket without passing through user space.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Sends up to `count` bytes of `file`, starting at `*offset`, to the socket `out`, and
/// advances `*offset` by the number sent. On a non-blocking socket that is full this is
/// `WouldBlock`; `Ok(0)` means the file ended before `*offset`.
pub fn sendfile(
    out: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    let mut off = libc::off64_t::try_from(*offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
    // SAFETY: both descriptors are borrowed, hence open for the duration of the call; `off` is a
    // live local the kernel reads and updates; `count` bounds what is sent, nothing is written
    // into our memory.
    let n = unsafe { libc::sendfile64(out.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    *offset = off as u64;
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn sends_the_requested_range_and_advances_the_offset() {
        let path = std::env::temp_dir().join(format!("corral-sendfile-{}", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(b"0123456789")
            .unwrap();
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut offset = 3;
        assert_eq!(
            sendfile(b.as_fd(), file.as_fd(), &mut offset, 4).unwrap(),
            4
        );
        assert_eq!(offset, 7);
        assert_eq!(
            sendfile(b.as_fd(), file.as_fd(), &mut offset, 100).unwrap(),
            3
        );
        assert_eq!(
            sendfile(b.as_fd(), file.as_fd(), &mut offset, 100).unwrap(),
            0
        );
        drop(b);
        let mut got = String::new();
        a.read_to_string(&mut got).unwrap();
        assert_eq!(got, "3456789");
    }
}
