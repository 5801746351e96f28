//! How long a thread waited for a CPU while runnable: the kernel's run delay
//! (`/proc/thread-self/schedstat`, second field). On a busy host a plugin call can be ready to
//! run and not get a CPU for milliseconds (Docker, containerd and runc start the container at
//! that very moment); `kuryr stats` reports that wait apart from the call's own time.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::thread::ThreadId;
use std::time::Duration;

thread_local! {
    /// Opened once per thread: `thread-self` resolves to the thread that opens it.
    static SCHEDSTAT: Option<File> = File::open("/proc/thread-self/schedstat").ok();
}

/// A thread's run delay at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    thread: ThreadId,
    run_delay_ns: u64,
}

/// The current thread's run delay so far; None where the kernel does not keep it
/// (`CONFIG_SCHED_INFO` off).
pub fn mark() -> Option<Mark> {
    Some(Mark {
        thread: std::thread::current().id(),
        run_delay_ns: run_delay_ns()?,
    })
}

/// The time this thread waited for a CPU since `mark`; None when the call moved to another
/// runtime thread meanwhile (the two counters are not comparable) or the kernel cannot say.
pub fn since(mark: Option<Mark>) -> Option<Duration> {
    let mark = mark?;
    if mark.thread != std::thread::current().id() {
        return None;
    }
    let now = run_delay_ns()?;
    Some(Duration::from_nanos(now.saturating_sub(mark.run_delay_ns)))
}

fn run_delay_ns() -> Option<u64> {
    SCHEDSTAT.with(|file| {
        let mut buf = [0u8; 96];
        let n = file.as_ref()?.read_at(&mut buf, 0).ok()?;
        std::str::from_utf8(&buf[..n])
            .ok()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_sleeps_does_not_wait_for_a_cpu() {
        let Some(m) = mark() else {
            panic!(
                "/proc/thread-self/schedstat is not readable: the kernel lacks CONFIG_SCHED_INFO"
            );
        };
        std::thread::sleep(Duration::from_millis(200));
        let waited = since(Some(m)).expect("same thread");
        // Sleeping is not waiting for a CPU: only a little scheduling noise, never the 200 ms.
        assert!(waited < Duration::from_millis(200), "{waited:?}");
    }

    #[test]
    fn another_thread_has_no_comparable_mark() {
        let m = mark();
        let moved = std::thread::spawn(move || since(m)).join().unwrap();
        assert!(moved.is_none());
    }
}
