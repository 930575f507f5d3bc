//! Per-process SM utilization from NVML, with `lastSeenTimeStamp` bookkeeping, through
//! `nvmlDeviceGetProcessUtilization` or, where that is not supported, the newer
//! `nvmlDeviceGetProcessesUtilizationInfo`.

use std::collections::HashMap;
use std::mem;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::tiers::window_start;
use nvml_wrapper::error::{nvml_sym, nvml_try, NvmlError};
use nvml_wrapper::{Device, Nvml};
use nvml_wrapper_sys::bindings::{
    nvmlProcessUtilizationInfo_v1_t, nvmlProcessUtilizationSample_t,
    nvmlProcessesUtilizationInfo_t, nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE,
};

/// One utilization sample of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ProcSample {
    pub pid: u32,
    /// Microseconds since the Unix epoch (NVML's CPU timestamp).
    pub timestamp: u64,
    pub sm_util_percent: u32,
}

/// Which call gives this device's per-process utilization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Legacy,
    Info,
    Unsupported,
}

/// The per-device state of per-process utilization: which call works, and the newest sample
/// timestamp seen, so each poll returns only samples taken since the previous one.
#[derive(Debug)]
pub(super) struct ProcessUtilization {
    source: Source,
    last_seen: u64,
    /// Whether the previous cycle asked, or held the answer before it (see
    /// `tiers::window_start`): then the next read continues from `last_seen`.
    asked_last_cycle: bool,
    /// The last answer and the distinct pids it was read for, held for the cycles that do
    /// not read (see [`ProcessUtilization::held`]).
    last_answer: Option<(Vec<u32>, HashMap<u32, f64>)>,
    /// Cycles since the last read that held its answer.
    cycles_held: u32,
    /// Whether a source has answered (samples or `NOT_FOUND`).
    answered: bool,
    /// Samples the legacy call's buffer holds: sized from the last answer, so that one call usually
    /// does (the call costs ~2.9 ms on an H200, docs/measurements.md; the size query would be a
    /// second one).
    capacity: usize,
}

impl ProcessUtilization {
    pub fn new() -> Self {
        ProcessUtilization {
            source: Source::Legacy,
            last_seen: 0,
            asked_last_cycle: false,
            last_answer: None,
            cycles_held: 0,
            answered: false,
            capacity: INITIAL_CAPACITY,
        }
    }

    /// Whether the device reports per-process utilization: `None` until it has answered once.
    pub fn supported(&self) -> Option<bool> {
        match self.source {
            Source::Unsupported => Some(false),
            _ if self.answered => Some(true),
            _ => None,
        }
    }

    /// Notes a cycle that did not ask (the answer was not needed).
    pub fn skipped(&mut self) {
        self.asked_last_cycle = false;
        self.last_answer = None;
        self.cycles_held = 0;
    }

    /// The last answer again, for a cycle that need not read (`tiers::holds_process_utilization`
    /// decides): the same processes (`pids`, distinct and sorted) as when it was read. The next
    /// read then starts where that one ended, so it covers the held cycles' samples too: none
    /// is lost, as long as the driver's buffer spans the cycles between two reads.
    pub fn held(&mut self, pids: &[u32]) -> Option<HashMap<u32, f64>> {
        let (read_for, answer) = self.last_answer.as_ref()?;
        if read_for.as_slice() != pids || !super::tiers::holds_process_utilization(self.cycles_held)
        {
            return None;
        }
        self.cycles_held += 1;
        Some(answer.clone())
    }

    /// Mean SM utilization (0..1) per pid since the last poll, or over the last `interval` after
    /// a cycle that did not poll. `Ok(None)`: the device reports no per-process utilization at
    /// all. An empty map: no process ran since the last poll.
    /// `pids`: the distinct, sorted pids of the compute list the answer is for (`None` when
    /// it could not be read; such an answer is never held).
    pub fn poll(
        &mut self,
        nvml: &Nvml,
        device: &Device<'_>,
        interval: Duration,
        pids: Option<&[u32]>,
    ) -> Result<Option<HashMap<u32, f64>>, NvmlError> {
        self.cycles_held = 0;
        self.last_answer = None;
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        self.last_seen = window_start(self.last_seen, self.asked_last_cycle, now_us, interval);
        self.asked_last_cycle = true;
        loop {
            let samples = match self.source {
                Source::Unsupported => return Ok(None),
                Source::Legacy => {
                    process_utilization(nvml, device, self.last_seen, &mut self.capacity)
                }
                Source::Info => {
                    processes_utilization_info(nvml, device, self.last_seen, &mut self.capacity)
                }
            };
            match samples {
                Ok(samples) => {
                    let (ratios, last_seen) = aggregate(&samples, self.last_seen);
                    self.last_seen = last_seen;
                    return Ok(Some(self.answer(ratios, pids)));
                }
                // NOT_FOUND: no sample newer than last_seen, i.e. nothing ran. Not an error.
                Err(NvmlError::NotFound) => return Ok(Some(self.answer(HashMap::new(), pids))),
                // Older drivers lack the newer symbol: the same as not supported.
                Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) => {
                    self.source = match self.source {
                        Source::Legacy => Source::Info,
                        _ => Source::Unsupported,
                    };
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Keeps an answer (read for `pids`) to hold, and returns it.
    fn answer(&mut self, ratios: HashMap<u32, f64>, pids: Option<&[u32]>) -> HashMap<u32, f64> {
        self.answered = true;
        self.last_answer = pids.map(|p| (p.to_vec(), ratios.clone()));
        ratios
    }
}

/// Averages each pid's samples newer than `last_seen`; returns the ratios and the new
/// `last_seen` (the newest timestamp seen, never moving backwards).
pub(super) fn aggregate(samples: &[ProcSample], last_seen: u64) -> (HashMap<u32, f64>, u64) {
    let mut sums: HashMap<u32, (f64, u32)> = HashMap::new();
    let mut newest = last_seen;
    for s in samples.iter().filter(|s| s.timestamp > last_seen) {
        let e = sums.entry(s.pid).or_insert((0.0, 0));
        e.0 += f64::from(s.sm_util_percent.min(100));
        e.1 += 1;
        newest = newest.max(s.timestamp);
    }
    let ratios = sums
        .into_iter()
        .map(|(pid, (sum, n))| (pid, sum / f64::from(n) / 100.0))
        .collect();
    (ratios, newest)
}

/// The sample buffer's first size: more processes than a GPU usually holds.
const INITIAL_CAPACITY: usize = 32;

/// Both calls in one where the buffer suffices: NVML fills a caller's buffer of `count`
/// entries and answers `INSUFFICIENT_SIZE` with the count it needs only when it is too small
/// (then once more, with that count and headroom). nvml-wrapper always asks the size first,
/// which doubles a call that costs ~2.9 ms on an H200 (docs/measurements.md). `call(buffer, count)`
/// makes the call and returns its status, setting `count` to the entries written or needed.
fn sized_call<T: Clone>(
    capacity: &mut usize,
    zero: T,
    mut call: impl FnMut(&mut [T], &mut u32) -> u32,
) -> Result<Vec<T>, NvmlError> {
    for _ in 0..3 {
        let cap = (*capacity).max(1);
        let mut buf = vec![zero.clone(); cap];
        let mut count = cap as u32;
        let rc = call(&mut buf, &mut count);
        let count = count as usize;
        if rc == nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE {
            *capacity = count.max(cap) + 8;
            continue;
        }
        nvml_try(rc)?;
        // Room for a few more processes next time, never below the start.
        *capacity = (count + 8).max(INITIAL_CAPACITY).max(*capacity / 2);
        buf.truncate(count.min(cap));
        return Ok(buf);
    }
    Err(NvmlError::InsufficientSize(Some(*capacity)))
}

/// `nvmlDeviceGetProcessUtilization`, in one call where the buffer suffices.
fn process_utilization(
    nvml: &Nvml,
    device: &Device<'_>,
    last_seen: u64,
    capacity: &mut usize,
) -> Result<Vec<ProcSample>, NvmlError> {
    let sym = nvml_sym(nvml.lib().nvmlDeviceGetProcessUtilization.as_ref())?;
    // SAFETY: a zeroed C struct is a valid value.
    let zero: nvmlProcessUtilizationSample_t = unsafe { mem::zeroed() };
    let samples = sized_call(capacity, zero, |buf, count| {
        // SAFETY: the handle comes from this NVML instance and outlives the call; the buffer
        // holds `*count` entries, and NVML writes at most that many.
        unsafe { sym(device.handle(), buf.as_mut_ptr(), count, last_seen) }
    })?;
    Ok(samples
        .into_iter()
        .map(|s| ProcSample {
            pid: s.pid,
            timestamp: s.timeStamp,
            sm_util_percent: s.smUtil,
        })
        .collect())
}

/// `nvmlDeviceGetProcessesUtilizationInfo` (which nvml-wrapper does not wrap), in one call
/// where the buffer suffices.
fn processes_utilization_info(
    nvml: &Nvml,
    device: &Device<'_>,
    last_seen: u64,
    capacity: &mut usize,
) -> Result<Vec<ProcSample>, NvmlError> {
    let sym = nvml_sym(nvml.lib().nvmlDeviceGetProcessesUtilizationInfo.as_ref())?;
    let version = mem::size_of::<nvmlProcessesUtilizationInfo_t>() as u32 | (1 << 24);
    // SAFETY: a zeroed C struct is a valid value.
    let zero: nvmlProcessUtilizationInfo_v1_t = unsafe { mem::zeroed() };
    let samples = sized_call(capacity, zero, |buf, count| {
        // SAFETY: as above; `info` is valid for the call and points at `buf`'s `*count` entries.
        unsafe {
            let mut info: nvmlProcessesUtilizationInfo_t = mem::zeroed();
            info.version = version;
            info.lastSeenTimeStamp = last_seen;
            info.processSamplesCount = *count;
            info.procUtilArray = buf.as_mut_ptr();
            let rc = sym(device.handle(), &mut info);
            *count = info.processSamplesCount;
            rc
        }
    })?;
    Ok(samples
        .into_iter()
        .map(|s| ProcSample {
            pid: s.pid,
            timestamp: s.timeStamp,
            sm_util_percent: s.smUtil,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pid: u32, timestamp: u64, sm: u32) -> ProcSample {
        ProcSample {
            pid,
            timestamp,
            sm_util_percent: sm,
        }
    }

    #[test]
    fn an_answer_is_held_one_cycle_and_only_for_the_same_processes() {
        let mut u = ProcessUtilization::new();
        // Nothing read yet: nothing to hold.
        assert_eq!(u.held(&[1, 2]), None);
        let answer = HashMap::from([(1, 0.5), (2, 0.25)]);
        assert_eq!(u.answer(answer.clone(), Some(&[1, 2])), answer);
        // Another process came or went: read at once.
        assert_eq!(u.held(&[1, 2, 3]), None);
        assert_eq!(u.held(&[1]), None);
        // The same processes: held for one cycle, then read again.
        assert_eq!(u.held(&[1, 2]), Some(answer.clone()));
        assert_eq!(u.held(&[1, 2]), None);
        // A cycle that did not need it forgets it.
        u.answer(answer.clone(), Some(&[1, 2]));
        u.skipped();
        assert_eq!(u.held(&[1, 2]), None);
        // An answer read while the compute list failed is never held.
        u.answer(answer, None);
        assert_eq!(u.held(&[1, 2]), None);
    }

    #[test]
    fn averages_per_pid_and_advances_last_seen() {
        let (r, last) = aggregate(&[s(1, 10, 20), s(1, 20, 40), s(2, 15, 100)], 0);
        assert_eq!(r[&1], 0.3);
        assert_eq!(r[&2], 1.0);
        assert_eq!(last, 20);
    }

    #[test]
    fn ignores_samples_already_seen_and_never_moves_backwards() {
        let (r, last) = aggregate(&[s(1, 5, 90), s(2, 30, 10)], 20);
        assert!(!r.contains_key(&1));
        assert_eq!(r[&2], 0.1);
        assert_eq!(last, 30);
        let (r, last) = aggregate(&[], 30);
        assert!(r.is_empty());
        assert_eq!(last, 30);
    }

    #[test]
    fn clamps_absurd_percentages() {
        let (r, _) = aggregate(&[s(1, 1, 250)], 0);
        assert_eq!(r[&1], 1.0);
    }
}
