//! Paying for a call: burning its CPU in the calling thread and waiting out the rest of its
//! wall time, as the scenario's `costs` say (see [`crate::scenario::Costs`]).
//!
//! The CPU is real work measured with the thread's own CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`), so a caller's CPU accounting (`/proc/<pid>/task/*/schedstat`,
//! `getrusage`) sees what a real driver call would cost it, however busy the machine is. The
//! wall time left after that is slept: a real driver waits in the kernel without using a CPU.
//!
//! Both are counted from the moment the exported function was entered ([`enter`], called by
//! `ffi_guard`), so that the mock's own work in a call (finding the scenario, checking the
//! file, resolving the handle) is part of the price rather than on top of it: a measured call
//! on a real driver includes all of its work too.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::scenario::Cost;

/// Whether the scenario in force prices any call: only then is the entry of every call
/// timed (a free scenario, the tests' default, pays nothing for the clock reads).
static COSTLY: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The thread CPU time and wall time at which the current exported call began.
    static ENTRY: Cell<Option<(Duration, Instant)>> = const { Cell::new(None) };
}

/// Notes whether the scenario now in force prices any call.
pub fn set_costly(costly: bool) {
    COSTLY.store(costly, Ordering::Relaxed);
}

/// Marks the start of an exported call on this thread (see the module's note).
pub fn enter() {
    let entry = if COSTLY.load(Ordering::Relaxed) {
        thread_cpu().map(|cpu| (cpu, Instant::now()))
    } else {
        None
    };
    ENTRY.with(|e| e.set(entry));
}

/// Burns `times` x `cost.cpu_us` of this thread's CPU and sleeps until at least `times` x
/// `cost.wall_us` have passed, both counted from the call's [`enter`] (or from now, outside
/// one). Free costs return at once.
pub fn pay(cost: Cost, times: u32) {
    if cost.is_free() || times == 0 {
        return;
    }
    let (cpu_begin, wall_begin) = match ENTRY.with(Cell::get) {
        Some((cpu, wall)) => (Some(cpu), wall),
        None => (thread_cpu(), Instant::now()),
    };
    let cpu = Duration::from_micros(cost.cpu_us.saturating_mul(u64::from(times)));
    let wall = Duration::from_micros(cost.wall_us.saturating_mul(u64::from(times)));
    burn(cpu, cpu_begin);
    if let Some(rest) = wall.checked_sub(wall_begin.elapsed()) {
        std::thread::sleep(rest);
    }
}

/// Spins until this thread has used `cpu` of CPU time since `begin`. Without a thread CPU
/// clock (it always exists on Linux), spins for that much wall time instead.
fn burn(cpu: Duration, begin: Option<Duration>) {
    if cpu.is_zero() {
        return;
    }
    match begin {
        Some(begin) => {
            while thread_cpu().is_some_and(|now| now.saturating_sub(begin) < cpu) {
                std::hint::spin_loop();
            }
        }
        None => {
            let begin = Instant::now();
            while begin.elapsed() < cpu {
                std::hint::spin_loop();
            }
        }
    }
}

/// CPU time used by the calling thread so far.
pub fn thread_cpu() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec).ok()?;
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burns_thread_cpu_and_waits_the_wall_time() {
        let cpu0 = thread_cpu().unwrap();
        let start = Instant::now();
        pay(
            Cost {
                cpu_us: 2_000,
                wall_us: 10_000,
            },
            2,
        );
        let cpu = thread_cpu().unwrap() - cpu0;
        assert!(cpu >= Duration::from_millis(4), "{cpu:?}");
        assert!(start.elapsed() >= Duration::from_millis(20));
    }
}
