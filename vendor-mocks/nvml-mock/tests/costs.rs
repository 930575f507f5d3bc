//! The scenario's `costs` (the mock's README, "Costs"): the `h200` preset burns each call's CPU in the calling
//! thread and takes at least its wall time; a map overrides families on top of the preset or
//! of free; absent and `none` are free; a malformed value fails init like any scenario error.
//!
//! CPU is measured with the calling thread's own CPU clock, so a loaded machine does not make
//! these tests flaky: a call must burn at least 70 % of its nominal CPU (the clock's and the
//! loop's granularity) and take at least its nominal wall time. Upper bounds are generous.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ffi::c_uint;
use std::ptr::null_mut;
use std::time::{Duration, Instant};

use common::{device, scenario, thread_cpu, Mock};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper_sys::bindings::*;

/// Thread CPU and wall time of `f`, and what it returned.
fn measure<T>(f: impl FnOnce() -> T) -> (Duration, Duration, T) {
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    let out = f();
    (thread_cpu() - cpu0, wall0.elapsed(), out)
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

/// Asserts a call cost about `cpu_us` of CPU and at least `wall_us` of wall time.
#[track_caller]
fn assert_costs(what: &str, (cpu, wall): (Duration, Duration), cpu_us: u64, wall_us: u64) {
    assert!(
        cpu >= us(cpu_us * 7 / 10),
        "{what}: {cpu:?} of CPU, nominal {cpu_us} µs"
    );
    assert!(
        cpu <= us(cpu_us) + Duration::from_millis(5),
        "{what}: {cpu:?} of CPU, nominal {cpu_us} µs"
    );
    assert!(
        wall >= us(wall_us),
        "{what}: {wall:?} of wall time, nominal {wall_us} µs"
    );
}

/// Asserts a call cost next to nothing: under 1 ms of CPU (far below the H200 figures of the
/// calls below, 2.9 ms and more).
#[track_caller]
fn assert_free(what: &str, (cpu, wall): (Duration, Duration)) {
    assert!(cpu < Duration::from_millis(1), "{what}: {cpu:?} of CPU");
    assert!(wall < Duration::from_millis(500), "{what}: {wall:?}");
}

const HEALTH: &str = "    energy_millijoules: 123456789
    pcie: {tx_kib_per_second: 1200000, rx_kib_per_second: 800000, replay_errors: 3}
    nvlink: {tx_bytes: 5368709120, rx_bytes: 4294967296}
";

/// One GPU with the health fields and no processes, under `costs`.
fn node(costs: &str) -> String {
    format!("{costs}{}", scenario(&[device("GPU-cost", 1, HEALTH)]))
}

/// The raw library, initialized, and GPU 0's handle; init's own cost is not measured here.
fn setup(mock: &Mock) -> (NvmlLib, nvmlDevice_t) {
    let lib = mock.raw();
    assert_eq!(mock.raw_init(&lib), 0);
    let mut dev = null_mut();
    assert_eq!(unsafe { lib.nvmlDeviceGetHandleByIndex_v2(0, &mut dev) }, 0);
    (lib, dev)
}

fn energy(lib: &NvmlLib, dev: nvmlDevice_t) -> (Duration, Duration) {
    let mut mj = 0;
    let (cpu, wall, rc) =
        measure(|| unsafe { lib.nvmlDeviceGetTotalEnergyConsumption(dev, &mut mj) });
    assert_eq!((rc, mj), (0, 123456789));
    (cpu, wall)
}

fn power(lib: &NvmlLib, dev: nvmlDevice_t) -> (Duration, Duration) {
    let mut mw: c_uint = 0;
    let (cpu, wall, rc) = measure(|| unsafe { lib.nvmlDeviceGetPowerUsage(dev, &mut mw) });
    assert_eq!(rc, 0);
    (cpu, wall)
}

#[test]
fn the_h200_preset_costs_what_the_h200_measured() {
    let mock = Mock::new(&node("costs: h200\n"));
    let lib = mock.raw();
    let (cpu, wall, rc) = measure(|| mock.raw_init(&lib));
    assert_eq!(rc, 0);
    assert_costs("nvmlInit_v2", (cpu, wall), 13_000, 13_000);
    let mut dev = null_mut();
    assert_eq!(unsafe { lib.nvmlDeviceGetHandleByIndex_v2(0, &mut dev) }, 0);

    assert_costs("energy", energy(&lib, dev), 3_400, 3_100);
    assert_costs("power", power(&lib, dev), 130, 2);

    let mut util = nvmlUtilization_t { gpu: 0, memory: 0 };
    let (cpu, wall, rc) = measure(|| unsafe { lib.nvmlDeviceGetUtilizationRates(dev, &mut util) });
    assert_eq!(rc, 0);
    assert_costs("utilization", (cpu, wall), 270, 4);

    // No processes: NOT_FOUND, and the full price all the same (docs/measurements.md, "NVML call costs").
    let mut count: c_uint = 0;
    let (cpu, wall, rc) =
        measure(|| unsafe { lib.nvmlDeviceGetProcessUtilization(dev, null_mut(), &mut count, 0) });
    assert_eq!(rc, nvmlReturn_enum_NVML_ERROR_NOT_FOUND);
    assert_costs("process utilization (NOT_FOUND)", (cpu, wall), 2_900, 2_900);

    // One direction: the driver samples the link for 20 ms, mostly asleep.
    let mut kib: c_uint = 0;
    let (cpu, wall, rc) = measure(|| unsafe {
        lib.nvmlDeviceGetPcieThroughput(
            dev,
            nvmlPcieUtilCounter_enum_NVML_PCIE_UTIL_TX_BYTES,
            &mut kib,
        )
    });
    assert_eq!((rc, kib), (0, 1_200_000));
    assert_costs("PCIe throughput", (cpu, wall), 930, 21_000);

    let mut replays: c_uint = 0;
    let (cpu, wall, rc) =
        measure(|| unsafe { lib.nvmlDeviceGetPcieReplayCounter(dev, &mut replays) });
    assert_eq!((rc, replays), (0, 3));
    assert_costs("PCIe replay counter", (cpu, wall), 420, 260);

    // Field values cost per requested field.
    let mut fields: [nvmlFieldValue_t; 2] = unsafe { std::mem::zeroed() };
    fields[0].fieldId = field_id::NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX;
    fields[0].scopeId = u32::MAX;
    fields[1].fieldId = field_id::NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX;
    fields[1].scopeId = u32::MAX;
    let (cpu, wall, rc) =
        measure(|| unsafe { lib.nvmlDeviceGetFieldValues(dev, 2, fields.as_mut_ptr()) });
    assert_eq!(rc, 0);
    assert_costs("2 NVLink fields", (cpu, wall), 50, 30);
}

#[test]
fn a_map_overrides_families_on_the_preset_or_on_free() {
    let mock = Mock::new(&node(
        "costs: {preset: h200, energy: {cpu_us: 0, wall_us: 0}, power: {cpu_us: 4000, wall_us: 20000}}\n",
    ));
    let (lib, dev) = setup(&mock);
    assert_free("energy, set free", energy(&lib, dev));
    assert_costs("power, overridden", power(&lib, dev), 4_000, 20_000);
    let mut replays: c_uint = 0;
    let (cpu, wall, _) =
        measure(|| unsafe { lib.nvmlDeviceGetPcieReplayCounter(dev, &mut replays) });
    assert_costs("PCIe replay, from the preset", (cpu, wall), 420, 260);

    // Without `preset`, on top of free.
    let mock = Mock::new(&node("costs: {power: {cpu_us: 2000, wall_us: 2000}}\n"));
    let (lib, dev) = setup(&mock);
    assert_free("energy", energy(&lib, dev));
    assert_costs("power", power(&lib, dev), 2_000, 2_000);
}

#[test]
fn absent_and_none_are_free() {
    for costs in ["", "costs: none\n", "costs: null\n"] {
        let mock = Mock::new(&node(costs));
        let lib = mock.raw();
        // Init parses the scenario (a few ms in a debug build): free is well under 13 ms.
        let (cpu, _, rc) = measure(|| mock.raw_init(&lib));
        assert_eq!(rc, 0);
        assert!(cpu < Duration::from_millis(8), "init, {costs:?}: {cpu:?}");
        let mut dev = null_mut();
        assert_eq!(unsafe { lib.nvmlDeviceGetHandleByIndex_v2(0, &mut dev) }, 0);
        assert_free(&format!("energy, {costs:?}"), energy(&lib, dev));
        let mut count: c_uint = 0;
        let (cpu, wall, _) = measure(|| unsafe {
            lib.nvmlDeviceGetProcessUtilization(dev, null_mut(), &mut count, 0)
        });
        assert_free(&format!("process utilization, {costs:?}"), (cpu, wall));
    }
}

#[test]
fn a_malformed_costs_is_a_scenario_error() {
    for costs in [
        "costs: h100\n",
        "costs: 5\n",
        "costs: {enrgy: {cpu_us: 1, wall_us: 1}}\n",
        "costs: {energy: {cpu: 1, wall_us: 1}}\n",
        "costs: {energy: {cpu_us: -1, wall_us: 1}}\n",
        "costs: {energy: {cpu_us: 20000000, wall_us: 1}}\n",
        "costs: {preset: h100}\n",
    ] {
        let mock = Mock::new(&node(costs));
        assert!(
            matches!(mock.init(), Err(NvmlError::Unknown)),
            "{costs:?} was accepted"
        );
    }
}
