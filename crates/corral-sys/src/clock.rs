//! A cheap clock that every process reads alike.

/// The system's monotonic clock in milliseconds: coarse (it moves once per scheduler tick, a
/// few milliseconds) and cheap to read (no system call). Every process reads the same clock,
/// so a time one process stores in shared memory means the same to another.
pub fn coarse_millis() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through the pointer, which points at `ts`;
    // CLOCK_MONOTONIC_COARSE exists on every Linux since 2.6.32, so it does not fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_moves_forward() {
        let before = coarse_millis();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let after = coarse_millis();
        assert!(after >= before + 20, "{before} -> {after}");
    }
}
