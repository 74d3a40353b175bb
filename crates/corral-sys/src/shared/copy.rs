//! Bulk copies of bytes in and out of shared words: the payload of ring packets
//! (`corral_proto::ring`).
//!
//! Another process (or thread) may write the same words while a copy reads them: a consumer of
//! the request ring copies a packet first and claims it afterwards, and a producer that lapped
//! it may be overwriting the packet by then (the claim then fails and the copy is thrown away).
//! Such a race must not be undefined behaviour, so the copies never use plain loads and stores
//! of the words: on x86-64 they are one `rep movsb`, whose accesses the compiler cannot see and
//! the hardware performs as atomic bytes; elsewhere a relaxed atomic operation per word. Either
//! way a racing copy yields torn bytes, which the ring's claim detects, and never anything worse.
//!
//! Ordering comes from the ring: a producer copies first and then publishes with a release
//! store of the ring's head; a consumer acquires the head and then copies.

use std::sync::atomic::AtomicU64;

use bytes::BytesMut;

/// Copies `bytes` into `words`, starting `at` bytes into them. Panics when they do not fit.
pub fn copy_into_words(words: &[AtomicU64], at: usize, bytes: &[u8]) {
    let end = at.checked_add(bytes.len());
    assert!(
        end.is_some_and(|end| end <= words.len() * 8),
        "{} bytes at {at} into {} words",
        bytes.len(),
        words.len()
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the destination range lies inside `words` (checked above) and the source is the
    // whole of `bytes`; `AtomicU64` is an `UnsafeCell`, so writing through a pointer derived
    // from a shared reference is allowed.
    unsafe {
        movsb(
            bytes.as_ptr(),
            words.as_ptr().cast::<u8>().cast_mut().add(at),
            bytes.len(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    by_word::store(words, at, bytes);
}

/// Appends the first `len` bytes of `words` to `out`. Panics when `words` holds fewer.
pub fn append_from_words(words: &[AtomicU64], len: usize, out: &mut BytesMut) {
    assert!(
        len <= words.len() * 8,
        "{len} bytes out of {} words",
        words.len()
    );
    #[cfg(target_arch = "x86_64")]
    {
        out.reserve(len);
        let spare = out.spare_capacity_mut();
        // SAFETY: `reserve` made room for `len` more bytes in `out`; the source range lies
        // inside `words` (checked above). The copy initialises exactly the `len` bytes that
        // `set_len` then counts.
        unsafe {
            movsb(
                words.as_ptr().cast::<u8>(),
                spare.as_mut_ptr().cast::<u8>(),
                len,
            );
            out.set_len(out.len() + len);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    by_word::load(words, len, out);
}

/// Copies `len` bytes from `src` to `dst` with `rep movsb`: byte accesses, fast for every
/// size on processors with ERMS / FSRM, and opaque to the compiler, so a concurrent writer
/// of the source or reader of the destination races with it only as with atomic bytes.
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `len` bytes.
#[cfg(target_arch = "x86_64")]
unsafe fn movsb(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: the caller vouches for both ranges. The direction flag is clear on entry to an
    // `asm!` block (Rust's rule), so the copy runs forwards; `rep movsb` changes no flags and
    // uses no stack.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rsi") src => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags),
        );
    }
}

/// The portable copies: a relaxed atomic operation per word (compiled on x86-64 for the
/// tests, which check that both give the same bytes).
#[cfg(any(test, not(target_arch = "x86_64")))]
mod by_word {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use bytes::BytesMut;

    pub(super) fn store(words: &[AtomicU64], at: usize, bytes: &[u8]) {
        let (mut i, mut rest) = (at, bytes);
        while !rest.is_empty() {
            let (word, offset) = (&words[i / 8], i % 8);
            let n = (8 - offset).min(rest.len());
            let (part, more) = rest.split_at(n);
            if n == 8 {
                word.store(
                    u64::from_ne_bytes(part.try_into().expect("8 bytes")),
                    Relaxed,
                );
            } else {
                // Part of a word: keep the bytes around it (one producer writes, so this
                // never contends).
                let mut value = word.load(Relaxed).to_ne_bytes();
                value[offset..offset + n].copy_from_slice(part);
                word.store(u64::from_ne_bytes(value), Relaxed);
            }
            i += n;
            rest = more;
        }
    }

    pub(super) fn load(words: &[AtomicU64], len: usize, out: &mut BytesMut) {
        out.reserve(len);
        let mut left = len;
        for word in words {
            if left == 0 {
                break;
            }
            let n = left.min(8);
            out.extend_from_slice(&word.load(Relaxed).to_ne_bytes()[..n]);
            left -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::SharedWords;
    use std::os::fd::AsFd;
    use std::sync::atomic::Ordering;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    fn as_bytes(words: &[AtomicU64]) -> Vec<u8> {
        let mut out = BytesMut::new();
        by_word::load(words, words.len() * 8, &mut out);
        out.to_vec()
    }

    #[test]
    fn bytes_copied_into_one_mapping_come_out_of_another_whatever_the_offset() {
        let (a, fd) = SharedWords::create("corral-test", 8).unwrap();
        let b = SharedWords::map(fd.as_fd()).unwrap();
        copy_into_words(a.all(), 3, b"hello, ");
        copy_into_words(a.all(), 10, b"shared world");
        let mut out = BytesMut::from(&b"kept:"[..]);
        append_from_words(b.words(0, 8), 22, &mut out);
        assert_eq!(&out[..5], b"kept:", "what the buffer held stays in front");
        assert_eq!(&out[5 + 3..], b"hello, shared world");
        // The atomic view of the same memory holds the same bytes.
        let second = a.word(1).load(Ordering::Acquire).to_ne_bytes();
        assert_eq!(&second[..], b", shared");
    }

    #[test]
    fn the_bulk_and_the_word_copies_agree_at_every_offset_and_length() {
        let source: Vec<u8> = (0..200u8).map(|b| b.wrapping_mul(37)).collect();
        for at in 0..17 {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 150] {
                let (bulk, word) = (words(32), words(32));
                copy_into_words(&bulk, at, &source[..len]);
                by_word::store(&word, at, &source[..len]);
                assert_eq!(as_bytes(&bulk), as_bytes(&word), "store of {len} at {at}");
                let (mut a, mut b) = (BytesMut::from(&b"x"[..]), BytesMut::from(&b"x"[..]));
                append_from_words(&bulk, at + len, &mut a);
                by_word::load(&bulk, at + len, &mut b);
                assert_eq!(a, b, "load of {}", at + len);
                assert_eq!(&a[1 + at..], &source[..len]);
            }
        }
    }

    #[test]
    fn bytes_that_exactly_fill_the_words_fit() {
        let w = words(2);
        copy_into_words(&w, 0, b"sixteen bytes!!!");
        copy_into_words(&w, 16, b"");
        let mut out = BytesMut::new();
        append_from_words(&w, 16, &mut out);
        assert_eq!(&out[..], b"sixteen bytes!!!");
        append_from_words(&[], 0, &mut out);
        assert_eq!(out.len(), 16, "nothing from no words");
    }

    #[test]
    #[should_panic(expected = "bytes at 60 into 8 words")]
    fn bytes_that_overrun_the_words_are_refused() {
        copy_into_words(&words(8), 60, b"too long");
    }

    #[test]
    #[should_panic(expected = "into 8 words")]
    fn an_offset_that_overflows_is_refused() {
        copy_into_words(&words(8), usize::MAX - 2, b"overflow");
    }

    #[test]
    #[should_panic(expected = "65 bytes out of 8 words")]
    fn more_bytes_than_the_words_hold_are_not_read() {
        append_from_words(&words(8), 65, &mut BytesMut::new());
    }
}
