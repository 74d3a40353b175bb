//! The scheduling policy of the calling thread.

use std::io;

/// Switches the calling thread to `SCHED_BATCH` (threads it creates later inherit it). A batch
/// thread keeps its CPU share and nice value, but waking it never preempts the thread running on
/// that CPU: the waker runs on until its slice ends or it sleeps. Needs no privilege.
pub fn use_batch_scheduling() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads the sched_param we pass by reference for the duration of
    // the call only; pid 0 means the calling thread.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's policy (`libc::SCHED_OTHER`, `libc::SCHED_BATCH`, …).
    fn scheduling_policy() -> io::Result<libc::c_int> {
        // SAFETY: sched_getscheduler takes a pid only; 0 means the calling thread.
        let r = unsafe { libc::sched_getscheduler(0) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r)
    }

    #[test]
    fn a_thread_switched_to_batch_reports_batch_and_its_children_inherit_it() {
        let before = scheduling_policy().unwrap();
        std::thread::spawn(|| {
            use_batch_scheduling().unwrap();
            assert_eq!(scheduling_policy().unwrap(), libc::SCHED_BATCH);
            let child = std::thread::spawn(|| scheduling_policy().unwrap());
            assert_eq!(child.join().unwrap(), libc::SCHED_BATCH);
        })
        .join()
        .unwrap();
        assert_eq!(scheduling_policy().unwrap(), before, "only that thread");
    }
}
