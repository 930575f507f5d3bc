//! Busy ratios from fdinfo's cumulative engine times: each client's counters are remembered
//! from one cycle to the next, keyed by (pid, process start time) so that a reused pid starts
//! afresh, and forgotten as soon as the process or client is gone.
//!
//! A client's ratio is the largest of its `gfx` and `compute` engines' shares of the interval:
//! busy nanoseconds gained / engine capacity / interval. The largest, not the sum: both rings
//! feed the same shader array and run at once, so a sum would count the same busy shaders
//! twice and could pass 1. Copy (`dma`), video (`dec`, `enc`, `jpeg`) engines are not compute.
//! The first sample of a client gives no ratio.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::procscan::{ClientId, ProcessClients};
use crate::pci::PciAddress;

/// The engines whose busy time counts as the device's compute.
pub const COMPUTE_ENGINES: [&str; 2] = ["gfx", "compute"];

/// Intervals shorter than this measure nothing (the clock's resolution is 10 ms).
const MIN_INTERVAL_SECONDS: f64 = 0.001;

/// When a cycle read the counters: the agent's own monotonic clock, and the host's
/// `<procfs>/uptime` (CLOCK_BOOTTIME, in centiseconds).
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub mono: Instant,
    pub uptime: Option<f64>,
}

impl Stamp {
    /// Seconds from `earlier` to `self`. Where the procfs clock agrees with the agent's (a
    /// live host), the agent's finer monotonic interval is used; where it does not (a procfs
    /// that is not the live one, such as a fixture tree), the procfs clock is authoritative,
    /// since that is the clock the counters were read against.
    pub fn since(&self, earlier: &Stamp) -> f64 {
        let mono = self
            .mono
            .saturating_duration_since(earlier.mono)
            .as_secs_f64();
        match (earlier.uptime, self.uptime) {
            (Some(a), Some(b)) if ((b - a) - mono).abs() > 0.02 => b - a,
            _ => mono,
        }
    }
}

/// A client, as the tracker keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ClientKey {
    pdev: PciAddress,
    id: ClientId,
}

/// A process, for good: pids are reused, (pid, start time) are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ProcessKey {
    pid: u32,
    start_time: Option<u64>,
}

#[derive(Debug, Clone)]
struct ClientState {
    /// The largest value seen of each engine's counter. amdgpu estimates the time of jobs
    /// still running, and the estimate can exceed the final figure, so a counter can step
    /// back; measuring from the largest value never counts the same time twice.
    busy: BTreeMap<String, u64>,
    at: Stamp,
    /// The last ratio measured, repeated while no time passes between cycles.
    last_ratio: Option<f64>,
}

/// Engine counters of every live client, from the previous cycle.
#[derive(Debug, Default)]
pub struct EngineTracker {
    processes: HashMap<ProcessKey, HashMap<ClientKey, ClientState>>,
}

/// A client's busy ratio this cycle, by (pid, device).
pub type Ratios = HashMap<(u32, PciAddress), Vec<f64>>;

impl EngineTracker {
    /// Takes this cycle's clients (read at `now`) and returns each client's ratio since the
    /// previous cycle, grouped by (pid, device). Clients seen for the first time have none.
    /// State of processes and clients not in `scan` is dropped.
    pub fn update(&mut self, now: Stamp, scan: &[ProcessClients]) -> Ratios {
        let mut ratios: Ratios = HashMap::new();
        let mut next: HashMap<ProcessKey, HashMap<ClientKey, ClientState>> = HashMap::new();
        for p in scan {
            let pkey = ProcessKey {
                pid: p.pid,
                start_time: p.start_time,
            };
            let mut old = self.processes.remove(&pkey).unwrap_or_default();
            let clients = next.entry(pkey).or_default();
            for c in &p.clients {
                let ckey = ClientKey {
                    pdev: c.pdev,
                    id: c.id,
                };
                let state = match old.remove(&ckey) {
                    Some(prev) => advance(prev, &c.info.engines, &c.info.capacity, now),
                    None => ClientState {
                        busy: c.info.engines.clone(),
                        at: now,
                        last_ratio: None,
                    },
                };
                if let Some(r) = state.last_ratio {
                    ratios.entry((p.pid, c.pdev)).or_default().push(r);
                }
                clients.insert(ckey, state);
            }
        }
        self.processes = next;
        ratios
    }

    /// Processes with state (for tests of pruning).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.processes.len()
    }
}

/// A client's state after reading `engines` at `now`.
fn advance(
    prev: ClientState,
    engines: &BTreeMap<String, u64>,
    capacity: &BTreeMap<String, u64>,
    now: Stamp,
) -> ClientState {
    let seconds = now.since(&prev.at);
    if !seconds.is_finite() || seconds < MIN_INTERVAL_SECONDS {
        // No measurable time passed: keep the baseline, repeat the last ratio.
        return prev;
    }
    let ratio = busy_ratio(&prev.busy, engines, capacity, seconds);
    let mut busy = prev.busy;
    for (name, ns) in engines {
        let e = busy.entry(name.clone()).or_insert(0);
        *e = (*e).max(*ns);
    }
    ClientState {
        busy,
        at: now,
        last_ratio: Some(ratio),
    }
}

/// The ratio of one client over `seconds`: the largest compute engine share, 0..1. An engine
/// absent before had not been busy yet (amdgpu prints an engine once its time is non-zero).
pub fn busy_ratio(
    before: &BTreeMap<String, u64>,
    now: &BTreeMap<String, u64>,
    capacity: &BTreeMap<String, u64>,
    seconds: f64,
) -> f64 {
    let mut ratio: f64 = 0.0;
    for engine in COMPUTE_ENGINES {
        let Some(&ns) = now.get(engine) else {
            continue;
        };
        let gained = ns.saturating_sub(before.get(engine).copied().unwrap_or(0));
        let engines = capacity.get(engine).copied().unwrap_or(1).max(1) as f64;
        ratio = ratio.max(gained as f64 / engines / (seconds * 1e9));
    }
    ratio.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::super::fdinfo::DrmFdinfo;
    use super::super::procscan::Client;
    use super::*;
    use std::time::Duration;

    fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn the_largest_compute_engine_share() {
        let none = BTreeMap::new();
        let before = map(&[("gfx", 1_000), ("compute", 0)]);
        let now = map(&[
            ("gfx", 1_250_001_000),
            ("compute", 5_000_000_000),
            ("dma", 9_000_000_000),
        ]);
        assert_eq!(busy_ratio(&before, &now, &none, 10.0), 0.5);
        // Four compute rings: the busy time covers four engines.
        assert_eq!(
            busy_ratio(&before, &now, &map(&[("compute", 4)]), 10.0),
            0.125
        );
        // An engine seen for the first time had been idle.
        assert_eq!(
            busy_ratio(&none, &map(&[("gfx", 2_500_000_000)]), &none, 10.0),
            0.25
        );
        // Never above 1.
        assert_eq!(
            busy_ratio(&none, &map(&[("gfx", 50_000_000_000)]), &none, 10.0),
            1.0
        );
        // Video and copy engines are not compute.
        assert_eq!(
            busy_ratio(&none, &map(&[("dec", 5_000_000_000)]), &none, 10.0),
            0.0
        );
    }

    fn process(pid: u32, start: u64, gfx: u64) -> ProcessClients {
        ProcessClients {
            pid,
            start_time: Some(start),
            clients: vec![Client {
                pdev: PciAddress::parse("0000:19:00.0").unwrap(),
                id: ClientId::Id(11),
                info: DrmFdinfo {
                    driver: "amdgpu".into(),
                    engines: map(&[("gfx", gfx)]),
                    ..DrmFdinfo::default()
                },
            }],
        }
    }

    fn stamp(base: Instant, uptime: f64) -> Stamp {
        Stamp {
            mono: base,
            uptime: Some(uptime),
        }
    }

    fn ratio(r: &Ratios, pid: u32) -> Option<f64> {
        r.get(&(pid, PciAddress::parse("0000:19:00.0").unwrap()))
            .map(|v| v[0])
    }

    #[test]
    fn ratios_over_the_procfs_clock_from_the_second_sample() {
        let t = Instant::now();
        let mut tr = EngineTracker::default();
        assert_eq!(
            ratio(&tr.update(stamp(t, 1000.0), &[process(40, 7, 1_000)]), 40),
            None
        );
        let r = tr.update(stamp(t, 1010.0), &[process(40, 7, 2_500_001_000)]);
        assert_eq!(ratio(&r, 40), Some(0.25));
        // No time passed: the last ratio stands, the baseline stays.
        let r = tr.update(stamp(t, 1010.0), &[process(40, 7, 2_500_001_000)]);
        assert_eq!(ratio(&r, 40), Some(0.25));
        // The counter stepped back: nothing gained until it passes its largest value.
        let r = tr.update(stamp(t, 1020.0), &[process(40, 7, 2_000_000_000)]);
        assert_eq!(ratio(&r, 40), Some(0.0));
        let r = tr.update(stamp(t, 1030.0), &[process(40, 7, 5_000_001_000)]);
        assert_eq!(ratio(&r, 40), Some(0.25));
    }

    #[test]
    fn a_reused_pid_starts_afresh_and_gone_processes_are_forgotten() {
        let t = Instant::now();
        let mut tr = EngineTracker::default();
        tr.update(
            stamp(t, 1000.0),
            &[process(40, 7, 9_000_000_000), process(41, 8, 0)],
        );
        // pid 40 is now another process (another start time) with a smaller counter.
        let r = tr.update(stamp(t, 1010.0), &[process(40, 99, 1_000)]);
        assert_eq!(ratio(&r, 40), None);
        assert_eq!(tr.tracked(), 1);
    }

    #[test]
    fn the_monotonic_clock_where_the_procfs_clock_agrees() {
        let t = Instant::now();
        let later = Stamp {
            mono: t + Duration::from_millis(5003),
            uptime: Some(1005.00),
        };
        assert!((later.since(&stamp(t, 1000.0)) - 5.003).abs() < 1e-9);
        // A fixture's clock, ten seconds on while the agent waited half a second.
        let fixture = Stamp {
            mono: t + Duration::from_millis(500),
            uptime: Some(1010.0),
        };
        assert_eq!(fixture.since(&stamp(t, 1000.0)), 10.0);
        // No procfs clock: the agent's own.
        let plain = |ms| Stamp {
            mono: t + Duration::from_millis(ms),
            uptime: None,
        };
        assert_eq!(plain(1500).since(&plain(0)), 1.5);
    }
}
