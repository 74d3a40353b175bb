//! Words of memory shared between processes: an anonymous file (`memfd_create`) mapped
//! `MAP_SHARED`. The master creates one, passes its descriptor to the zygote, and every worker
//! the zygote forks inherits the mapping. The words are touched as atomics, which on the
//! targets Linux runs corral on are address-free (the same instructions work across processes
//! mapping the same page), or by the bulk copies of [`copy`], which behave as relaxed atomic
//! byte accesses (the payload of ring packets).

mod copy;

pub use copy::{append_from_words, copy_into_words};

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

/// A shared array of `AtomicU64`, unmapped on drop.
pub struct SharedWords {
    ptr: NonNull<AtomicU64>,
    len: usize,
}

// SAFETY: the mapping is only reached through `&AtomicU64`, which is Sync; nothing in the
// struct is tied to the thread that created it.
unsafe impl Send for SharedWords {}
// SAFETY: as above: every access is atomic (an `AtomicU64` operation, or a copy of `copy`,
// whose accesses are atomic bytes).
unsafe impl Sync for SharedWords {}

impl SharedWords {
    /// Creates `len` zeroed words and returns them with the descriptor that maps them
    /// elsewhere (close-on-exec; pass it with `SCM_RIGHTS`). The file is sealed at that
    /// size, so nobody holding the descriptor can shrink it under a mapping (which would
    /// turn the next access into SIGBUS).
    pub fn create(name: &str, len: usize) -> io::Result<(SharedWords, OwnedFd)> {
        let cname = std::ffi::CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a memfd name"))?;
        // SAFETY: cname is a valid NUL-terminated string; flags are plain integers.
        let raw = unsafe {
            libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: memfd_create succeeded, so `raw` is an open descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let bytes = byte_len(len)?;
        // SAFETY: ftruncate on a descriptor we own; a new memfd reads as zeroes once sized.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), bytes as libc::off_t) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: fcntl with integer arguments on a descriptor we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let words = SharedWords::map(fd.as_fd())?;
        Ok((words, fd))
    }

    /// Maps all the words of a descriptor made by [`SharedWords::create`] (in another
    /// process).
    pub fn map(fd: BorrowedFd<'_>) -> io::Result<SharedWords> {
        let size = file_size(fd)?;
        let len = usize::try_from(size / 8).map_err(io::Error::other)?;
        let bytes = byte_len(len)?;
        // SAFETY: a fresh shared mapping of `bytes` bytes of a file at least that long; the
        // kernel picks the address. Nothing else refers to the returned memory yet.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<AtomicU64>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(SharedWords { ptr, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Word `i`. Panics when `i` is out of range (a bug in the caller's layout).
    pub fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.len, "shared word {i} of {}", self.len);
        // SAFETY: `i` is in range of the mapping, which lives as long as `self`, is page
        // aligned (so every word is 8-byte aligned) and is only accessed atomically (see `copy`).
        unsafe { &*self.ptr.as_ptr().add(i) }
    }

    /// All the words.
    pub fn all(&self) -> &[AtomicU64] {
        self.words(0, self.len)
    }

    /// Words `start .. start + len`. Panics when the range is out of bounds.
    pub fn words(&self, start: usize, len: usize) -> &[AtomicU64] {
        let end = start.checked_add(len);
        assert!(
            end.is_some_and(|end| end <= self.len),
            "shared words {start}+{len} of {}",
            self.len
        );
        // SAFETY: the range lies inside the mapping (checked above), which lives as long as
        // `self`, is 8-byte aligned, and is only accessed atomically (see `copy`).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(start), len) }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        if let Ok(bytes) = byte_len(self.len) {
            // SAFETY: exactly the mapping made in `map`; no reference into it outlives `self`.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), bytes) };
        }
    }
}

fn byte_len(len: usize) -> io::Result<usize> {
    len.checked_mul(8)
        .filter(|&b| b > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad shared memory size"))
}

fn file_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: an all-zero stat is a valid out-buffer for fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into `st`, which lives for the call.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.st_size as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::sync::atomic::Ordering;

    #[test]
    fn two_mappings_of_one_descriptor_see_the_same_words() {
        let (a, fd) = SharedWords::create("corral-test", 16).unwrap();
        let b = SharedWords::map(fd.as_fd()).unwrap();
        assert_eq!(b.len(), 16);
        assert_eq!(
            b.word(3).load(Ordering::Acquire),
            0,
            "new memory reads as zero"
        );
        a.word(3).store(42, Ordering::Release);
        assert_eq!(b.word(3).load(Ordering::Acquire), 42);
        assert_eq!(b.word(15).fetch_add(1, Ordering::AcqRel), 0);
        assert_eq!(a.word(15).load(Ordering::Acquire), 1);
        assert_eq!(b.words(14, 2)[1].load(Ordering::Acquire), 1);
    }

    #[test]
    fn a_child_process_writes_what_the_parent_reads() {
        let (words, _fd) = SharedWords::create("corral-test", 4).unwrap();
        // SAFETY: the test binary may run other test threads, but the child only stores to
        // an atomic and calls _exit, both async-signal-safe.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            words.word(1).store(7, Ordering::Release);
            // SAFETY: _exit ends the child at once.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(words.word(1).load(Ordering::Acquire), 7);
    }

    #[test]
    fn the_file_cannot_be_shrunk_under_a_mapping() {
        let (_words, fd) = SharedWords::create("corral-test", 4).unwrap();
        // SAFETY: ftruncate on a descriptor the test owns.
        assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), 0) }, -1);
        assert_eq!(SharedWords::map(fd.as_fd()).unwrap().len(), 4);
    }
}
