//! ROCm SMI (`librocm_smi64`, linked only with the `rocm-smi` cargo feature) as a second source
//! for amdgpu devices: it fills the gauges sysfs left empty and adds what amdgpu's sysfs does
//! not expose uniformly: the energy counter, ECC counts over the RAS blocks, PCIe replays.
//!
//! sysfs stays the first source, so a node reads the same with and without the feature; ROCm
//! SMI's process API is not used: it sums a process's VRAM and CU occupancy over all its GPUs
//! (5.x has no per-device query), where KFD's files, read by `kfd.rs`, are per device.
//!
//! ROCm SMI's device indices are joined to sysfs cards by PCI address. Initialisation is
//! retried with backoff (1 s to 30 s) while it fails, and again when a card appears that ROCm
//! SMI did not enumerate. Every call runs on one thread of its own (`RocmSource`), asked at
//! the start of each cycle and waited for until the cycle's deadline, so that a call blocked on
//! a GPU in reset holds up neither sysfs's readings nor the cycle.

use std::collections::HashMap;
use std::ffi::c_char;
use std::time::{Duration, Instant};

use rocm_smi_lib as rsmi;

use crate::backoff::Backoff;
use crate::collect::worker::{Asked, CycleWorker, Reply, Waited};
use crate::pci::PciAddress;
use crate::sample::{CallError, DeviceHealth, DeviceMetrics, ErrorLabel};

/// `rsmi_status_t` codes this module tells apart.
const SUCCESS: u32 = 0;
const NOT_SUPPORTED: u32 = 2;
const INIT_ERROR: u32 = 8;
const NOT_FOUND: u32 = 10;

/// Highest plausible readings, as for sysfs.
const MAX_MICROWATTS: u64 = 10_000_000_000;
const MILLIDEGREES: (i64, i64) = (-273_000, 200_000);

/// The name of a status, as the `error` label spells it (`PERMISSION`, `NOT_SUPPORTED`).
pub fn status_label(code: u32) -> ErrorLabel {
    const NAMES: [&str; 20] = [
        "SUCCESS",
        "INVALID_ARGS",
        "NOT_SUPPORTED",
        "FILE_ERROR",
        "PERMISSION",
        "OUT_OF_RESOURCES",
        "INTERNAL_EXCEPTION",
        "INPUT_OUT_OF_BOUNDS",
        "INIT_ERROR",
        "NOT_YET_IMPLEMENTED",
        "NOT_FOUND",
        "INSUFFICIENT_SIZE",
        "INTERRUPT",
        "UNEXPECTED_SIZE",
        "NO_DATA",
        "UNEXPECTED_DATA",
        "BUSY",
        "REFCOUNT_OVERFLOW",
        "SETTING_UNAVAILABLE",
        "AMDGPU_RESTART_ERR",
    ];
    match usize::try_from(code).ok().and_then(|i| NAMES.get(i)) {
        Some(name) => ErrorLabel::Driver(name),
        None if code == u32::MAX => ErrorLabel::Driver("UNKNOWN_ERROR"),
        None => ErrorLabel::Status(code),
    }
}

/// The PCI address of a `rsmi_dev_pci_id_get` BDFID: domain from bit 32, bus, device,
/// function in the low 16 bits. Newer libraries put a partition number in bits 28-31, which
/// is not part of the address.
pub fn bdfid_address(bdfid: u64) -> PciAddress {
    PciAddress {
        domain: (bdfid >> 32) as u32,
        bus: ((bdfid >> 8) & 0xff) as u8,
        device: ((bdfid >> 3) & 0x1f) as u8,
        function: (bdfid & 0x7) as u8,
    }
}

/// What ROCm SMI added to one device this cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Supplement {
    /// Gauges sysfs left empty, where ROCm SMI has them.
    pub metrics: DeviceMetrics,
    pub health: DeviceHealth,
    /// `rsmi_dev_name_get`, for a device sysfs could not name.
    pub name: Option<String>,
}

enum State {
    Down {
        retry_at: Instant,
        backoff: Backoff,
        /// The status of the last failed init, logged once per change.
        last: Option<u32>,
    },
    Up {
        /// Device index by PCI address.
        index: HashMap<PciAddress, u32>,
        /// Earliest time to re-enumerate for a card ROCm SMI does not know.
        recheck_at: Instant,
        backoff: Backoff,
    },
}

impl State {
    /// Down after a failed start: the next try after the backoff's wait.
    fn retry(now: Instant, mut backoff: Backoff, code: u32) -> State {
        State::Down {
            retry_at: now + backoff.failed(),
            backoff,
            last: Some(code),
        }
    }
}

/// The ROCm SMI session of the AMD collector.
pub struct RocmSmi {
    state: State,
}

impl Default for RocmSmi {
    fn default() -> Self {
        RocmSmi {
            state: State::Down {
                retry_at: Instant::now(),
                backoff: Backoff::new(),
                last: None,
            },
        }
    }
}

impl Drop for RocmSmi {
    fn drop(&mut self) {
        if matches!(self.state, State::Up { .. }) {
            // SAFETY: no pointers; balances the successful rsmi_init.
            unsafe { rsmi::rsmi_shut_down() };
        }
    }
}

/// One call's failure, as the collector counts it.
fn failure(call: &'static str, code: u32) -> CallError {
    CallError::new(call, status_label(code))
}

/// A value of a call: `Ok(Some)` on success, `Ok(None)` when not supported, else the status.
fn answer<T>(code: u32, value: T) -> Result<Option<T>, u32> {
    match code {
        SUCCESS => Ok(Some(value)),
        NOT_SUPPORTED => Ok(None),
        other => Err(other),
    }
}

impl RocmSmi {
    /// Whether the library is initialised and enumerated.
    fn up(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// Initialises the library if it is down and its retry time has come.
    fn ensure_up(&mut self, now: Instant, errors: &mut Vec<CallError>) {
        let State::Down {
            retry_at,
            ref backoff,
            last,
        } = self.state
        else {
            return;
        };
        let backoff = backoff.clone();
        if now < retry_at {
            return;
        }
        // SAFETY: no pointers.
        let code = unsafe { rsmi::rsmi_init(0) };
        if code != SUCCESS {
            if last != Some(code) {
                tracing::warn!(
                    status = %status_label(code),
                    "ROCm SMI cannot initialise; the amd collector reads sysfs only, and retries with backoff"
                );
            }
            errors.push(failure("rsmi_init", code));
            self.state = State::retry(now, backoff, code);
            return;
        }
        let mut count = 0u32;
        // SAFETY: a valid pointer to a u32.
        let code = unsafe { rsmi::rsmi_num_monitor_devices(&mut count) };
        if code != SUCCESS {
            errors.push(failure("rsmi_num_monitor_devices", code));
            // SAFETY: balances the rsmi_init above.
            unsafe { rsmi::rsmi_shut_down() };
            self.state = State::retry(now, backoff, code);
            return;
        }
        let mut index = HashMap::new();
        for dv in 0..count {
            let mut bdfid = 0u64;
            // SAFETY: a valid pointer to a u64.
            let code = unsafe { rsmi::rsmi_dev_pci_id_get(dv, &mut bdfid) };
            if code == SUCCESS {
                index.insert(bdfid_address(bdfid), dv);
            } else {
                errors.push(failure("rsmi_dev_pci_id_get", code));
            }
        }
        tracing::info!(devices = index.len(), "ROCm SMI initialised");
        self.state = State::Up {
            index,
            recheck_at: now + backoff.peek(),
            backoff,
        };
    }

    /// Ends the session (after the library forgot it, or to re-enumerate): the next init is
    /// tried `retry_in` from now, with `backoff` after that.
    fn restart(&mut self, now: Instant, retry_in: Duration, backoff: Backoff) {
        if self.up() {
            // SAFETY: no pointers; balances the successful rsmi_init.
            unsafe { rsmi::rsmi_shut_down() };
        }
        self.state = State::Down {
            retry_at: now + retry_in,
            backoff,
            last: None,
        };
    }

    /// For each card (and whether it wants a name), what ROCm SMI reads of it. Cards ROCm SMI
    /// does not know get nothing, and are counted (`rsmi_dev_pci_id_get`, `NOT_FOUND`).
    pub fn supplement(
        &mut self,
        cards: &[(PciAddress, bool)],
        errors: &mut Vec<CallError>,
    ) -> HashMap<PciAddress, Supplement> {
        let now = Instant::now();
        self.ensure_up(now, errors);
        let mut out = HashMap::new();
        let mut unknown = false;
        let mut lost = false;
        if let State::Up { index, .. } = &self.state {
            for (pci, wants_name) in cards {
                let Some(dv) = index.get(pci).or_else(|| {
                    // A partition's BDFID may carry a function the card's address does not.
                    index
                        .iter()
                        .find(|(p, _)| {
                            (p.domain, p.bus, p.device) == (pci.domain, pci.bus, pci.device)
                        })
                        .map(|(_, dv)| dv)
                }) else {
                    unknown = true;
                    errors.push(failure("rsmi_dev_pci_id_get", NOT_FOUND));
                    continue;
                };
                let mut reader = DeviceCalls {
                    dv: *dv,
                    errors,
                    lost: false,
                };
                out.insert(*pci, reader.read(*wants_name));
                lost |= reader.lost;
            }
        }
        if let State::Up {
            recheck_at,
            ref backoff,
            ..
        } = self.state
        {
            let mut backoff = backoff.clone();
            if lost {
                // The library forgot its session (a driver reload): initialise it again, the
                // first time at the next cycle, then less and less often if it keeps happening.
                tracing::warn!("ROCm SMI answered INIT_ERROR; initialising it again");
                let first = backoff.peek() == Backoff::FIRST;
                let wait = backoff.failed();
                let retry_in = if first { Duration::ZERO } else { wait };
                self.restart(now, retry_in, backoff);
            } else if unknown && now >= recheck_at {
                // A card appeared after ROCm SMI enumerated: enumerate again, less and less
                // often while it stays unknown.
                backoff.failed();
                self.restart(now, Duration::ZERO, backoff);
            }
        }
        out
    }
}

/// ROCm SMI on a thread of its own (every library call is made on it): the collector asks at
/// the start of a cycle and takes the answer at its end. While a request is unanswered no
/// other is sent; the collector uses the last answer meanwhile and counts
/// `call="rsmi", error="TIMEOUT"` each cycle.
pub struct RocmSource {
    worker: CycleWorker<Vec<(PciAddress, bool)>, HashMap<PciAddress, Supplement>>,
    logged_late: bool,
}

impl RocmSource {
    /// The source; its thread starts at the first ask, with a library session of its own (a
    /// fresh one after a panic).
    pub fn new() -> Self {
        let worker = CycleWorker::new("amd-rocm-smi".into(), || {
            let mut rocm = RocmSmi::default();
            move |cards: Vec<(PciAddress, bool)>| {
                let mut errors = Vec::new();
                let value = rocm.supplement(&cards, &mut errors);
                Reply { value, errors }
            }
        });
        RocmSource {
            worker,
            logged_late: false,
        }
    }
}

impl Default for RocmSource {
    fn default() -> Self {
        RocmSource::new()
    }
}

impl RocmSource {
    /// Asks for this cycle's readings of `cards` (PCI address, whether it wants a name),
    /// unless the last request is still running.
    pub fn ask(&mut self, cards: Vec<(PciAddress, bool)>, errors: &mut Vec<CallError>) {
        if let Asked::NoThread = self.worker.ask(cards, errors) {
            errors.push(CallError::new("rsmi", ErrorLabel::NoThread));
        }
    }

    /// This cycle's answer, waited for until `deadline`; the last one if it does not come.
    pub fn answer(
        &mut self,
        deadline: Instant,
        errors: &mut Vec<CallError>,
    ) -> HashMap<PciAddress, Supplement> {
        let waited = self.worker.wait(deadline, errors);
        let (late, fresh) = (
            matches!(waited, Waited::Late(_)),
            matches!(waited, Waited::Fresh(_)),
        );
        let out = waited.value().cloned().unwrap_or_default();
        if late {
            if !self.logged_late {
                tracing::warn!(
                    "ROCm SMI did not answer within the cycle; its last values stand until it does"
                );
                self.logged_late = true;
            }
            errors.push(CallError::new("rsmi", ErrorLabel::Timeout));
        } else if self.logged_late && fresh {
            tracing::info!("ROCm SMI answers again");
            self.logged_late = false;
        }
        out
    }
}

/// The calls for one device, counting failures.
struct DeviceCalls<'a> {
    dv: u32,
    errors: &'a mut Vec<CallError>,
    /// The library answered `INIT_ERROR`: its session is gone.
    lost: bool,
}

impl DeviceCalls<'_> {
    /// One call's value, or `None` (not supported, or failed and counted).
    fn get<T>(&mut self, call: &'static str, result: (u32, T)) -> Option<T> {
        match answer(result.0, result.1) {
            Ok(v) => v,
            Err(code) => {
                self.lost |= code == INIT_ERROR;
                self.errors.push(failure(call, code));
                None
            }
        }
    }

    /// A value that must lie in `range`; beyond it, counted as `OUT_OF_RANGE` and dropped.
    fn within<T: PartialOrd>(
        &mut self,
        call: &'static str,
        v: Option<T>,
        range: std::ops::RangeInclusive<T>,
    ) -> Option<T> {
        let v = v?;
        if range.contains(&v) {
            Some(v)
        } else {
            self.errors
                .push(CallError::new(call, ErrorLabel::OutOfRange));
            None
        }
    }

    fn percent(
        &mut self,
        call: &'static str,
        f: unsafe extern "C" fn(u32, *mut u32) -> u32,
    ) -> Option<f64> {
        let mut v = 0u32;
        // SAFETY: a valid pointer to a u32.
        let code = unsafe { f(self.dv, &mut v) };
        let v = self.get(call, (code, v));
        self.within(call, v, 0..=100).map(|p| f64::from(p) / 100.0)
    }

    /// A VRAM figure in bytes (`rsmi_dev_memory_usage_get`, `rsmi_dev_memory_total_get`).
    fn vram_bytes(
        &mut self,
        call: &'static str,
        f: unsafe extern "C" fn(u32, rsmi::rsmi_memory_type_t, *mut u64) -> u32,
    ) -> Option<f64> {
        let mut v = 0u64;
        // SAFETY: a valid pointer to a u64.
        let code = unsafe { f(self.dv, rsmi::rsmi_memory_type_t_RSMI_MEM_TYPE_VRAM, &mut v) };
        self.u64_of(call, code, v).map(|v| v as f64)
    }

    fn u64_of(&mut self, call: &'static str, code: u32, v: u64) -> Option<u64> {
        self.get(call, (code, v))
    }

    /// Every gauge ROCm SMI has (the collector keeps only those sysfs lacks), the health
    /// counters, and the name if asked for.
    fn read(&mut self, wants_name: bool) -> Supplement {
        let dv = self.dv;
        let mut m = DeviceMetrics {
            utilization_ratio: self
                .percent("rsmi_dev_busy_percent_get", rsmi::rsmi_dev_busy_percent_get),
            memory_bandwidth_utilization_ratio: self.percent(
                "rsmi_dev_memory_busy_percent_get",
                rsmi::rsmi_dev_memory_busy_percent_get,
            ),
            memory_used_bytes: self
                .vram_bytes("rsmi_dev_memory_usage_get", rsmi::rsmi_dev_memory_usage_get),
            memory_total_bytes: self
                .vram_bytes("rsmi_dev_memory_total_get", rsmi::rsmi_dev_memory_total_get),
            ..DeviceMetrics::default()
        };
        let mut v = 0u64;
        // SAFETY: a valid pointer to a u64.
        let code = unsafe { rsmi::rsmi_dev_power_ave_get(dv, 0, &mut v) };
        let uw = self.u64_of("rsmi_dev_power_ave_get", code, v);
        m.power_watts = self
            .within("rsmi_dev_power_ave_get", uw, 0..=MAX_MICROWATTS)
            .map(|uw| uw as f64 / 1e6);
        // The edge sensor; MI200/MI300 have none and report the junction (hotspot).
        let current = rsmi::rsmi_temperature_metric_t_RSMI_TEMP_CURRENT;
        for sensor in [
            rsmi::rsmi_temperature_type_t_RSMI_TEMP_TYPE_EDGE,
            rsmi::rsmi_temperature_type_t_RSMI_TEMP_TYPE_JUNCTION,
        ] {
            let mut v = 0i64;
            // SAFETY: a valid pointer to an i64.
            let code = unsafe { rsmi::rsmi_dev_temp_metric_get(dv, sensor, current, &mut v) };
            if code == NOT_SUPPORTED {
                continue;
            }
            let mc = self.get("rsmi_dev_temp_metric_get", (code, v));
            m.temperature_celsius = self
                .within(
                    "rsmi_dev_temp_metric_get",
                    mc,
                    MILLIDEGREES.0..=MILLIDEGREES.1,
                )
                .map(|mc| mc as f64 / 1000.0);
            break;
        }

        let mut health = DeviceHealth::default();
        let (mut counter, mut resolution, mut timestamp) = (0u64, 0f32, 0u64);
        // SAFETY: valid pointers to a u64, an f32 and a u64.
        let code = unsafe {
            rsmi::rsmi_dev_energy_count_get(dv, &mut counter, &mut resolution, &mut timestamp)
        };
        if let Some((counter, resolution)) =
            self.get("rsmi_dev_energy_count_get", (code, (counter, resolution)))
        {
            if resolution.is_finite() && resolution > 0.0 {
                // The counter counts `resolution` microjoules.
                health.energy_joules = Some(counter as f64 * f64::from(resolution) / 1e6);
            } else {
                self.errors.push(CallError::new(
                    "rsmi_dev_energy_count_get",
                    ErrorLabel::OutOfRange,
                ));
            }
        }
        let mut replays = 0u64;
        // SAFETY: a valid pointer to a u64.
        let code = unsafe { rsmi::rsmi_dev_pci_replay_counter_get(dv, &mut replays) };
        health.pcie_replay_errors = self
            .u64_of("rsmi_dev_pci_replay_counter_get", code, replays)
            .map(|v| v as f64);
        (health.ecc_corrected, health.ecc_uncorrected) = self.ecc();

        let name = if wants_name { self.name() } else { None };
        Supplement {
            metrics: m,
            health,
            name,
        }
    }

    /// ECC counts summed over the blocks with ECC enabled; `None` where ECC is off or not
    /// supported.
    fn ecc(&mut self) -> (Option<f64>, Option<f64>) {
        let mut mask = 0u64;
        // SAFETY: a valid pointer to a u64.
        let code = unsafe { rsmi::rsmi_dev_ecc_enabled_get(self.dv, &mut mask) };
        let Some(mask) = self.u64_of("rsmi_dev_ecc_enabled_get", code, mask) else {
            return (None, None);
        };
        let (mut corrected, mut uncorrected, mut any) = (0u64, 0u64, false);
        for bit in 0..14 {
            let block = 1u64 << bit;
            if mask & block == 0 {
                continue;
            }
            let mut ec = rsmi::rsmi_error_count_t {
                correctable_err: 0,
                uncorrectable_err: 0,
            };
            // SAFETY: a valid pointer to an rsmi_error_count_t.
            let code = unsafe { rsmi::rsmi_dev_ecc_count_get(self.dv, block as _, &mut ec) };
            if let Some(ec) = self.get("rsmi_dev_ecc_count_get", (code, ec)) {
                corrected = corrected.saturating_add(ec.correctable_err);
                uncorrected = uncorrected.saturating_add(ec.uncorrectable_err);
                any = true;
            }
        }
        if any {
            (Some(corrected as f64), Some(uncorrected as f64))
        } else {
            (None, None)
        }
    }

    fn name(&mut self) -> Option<String> {
        let mut buf = [0 as c_char; 256];
        // SAFETY: `buf` is valid for its length, and the library NUL-terminates within it.
        let code = unsafe { rsmi::rsmi_dev_name_get(self.dv, buf.as_mut_ptr(), buf.len()) };
        self.get("rsmi_dev_name_get", (code, ()))?;
        let bytes: Vec<u8> = buf
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        let name = String::from_utf8_lossy(&bytes).trim().to_string();
        (!name.is_empty()).then_some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdfids_decode_to_pci_addresses() {
        assert_eq!(
            bdfid_address(0x1900),
            PciAddress::parse("0000:19:00.0").unwrap()
        );
        assert_eq!(
            bdfid_address((1 << 32) | 0xc1ff),
            PciAddress::parse("0001:c1:1f.7").unwrap()
        );
        // A partition number above the bus (MI300 in CPX mode) is not part of the address.
        assert_eq!(
            bdfid_address((3 << 28) | 0x1900),
            PciAddress::parse("0000:19:00.0").unwrap()
        );
    }

    #[test]
    fn statuses_have_names() {
        assert_eq!(status_label(0).to_string(), "SUCCESS");
        assert_eq!(status_label(4).to_string(), "PERMISSION");
        assert_eq!(status_label(u32::MAX).to_string(), "UNKNOWN_ERROR");
        assert_eq!(status_label(77).to_string(), "STATUS_77");
        assert_eq!(answer(2, 5u32), Ok(None));
        assert_eq!(answer(0, 5u32), Ok(Some(5)));
        assert_eq!(answer(4, 5u32), Err(4));
    }
}
