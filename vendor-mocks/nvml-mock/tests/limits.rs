//! dcgm-exporter's counters: memory clock (`nvmlDeviceGetClockInfo(MEM)`), memory
//! temperature (field value `NVML_FI_DEV_MEMORY_TEMP`), enforced power limit, remapped rows,
//! violation counters, and the reserved framebuffer of `nvmlDeviceGetMemoryInfo_v2`. Values
//! round-trip in NVML's units; an absent field is `NOT_SUPPORTED`; each call is its own
//! family for errors, delays and costs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::mem::zeroed;
use std::ptr::null_mut;
use std::time::{Duration, Instant};

use common::{device, scenario, Mock};
use nvml_wrapper::enum_wrappers::device::{Clock, PerformancePolicy};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;
use nvml_wrapper_sys::bindings::field_id::{
    NVML_FI_DEV_MEMORY_TEMP, NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX,
};
use nvml_wrapper_sys::bindings::*;

/// An H200's figures (memory clock 2619 MHz, 700 W limit), rows remapped on an aged board.
const COUNTERS: &str = "    memory_clock_mhz: 2619
    memory_temperature_celsius: 55
    power_limit_milliwatts: 700000
    remapped_rows: {correctable: 2, uncorrectable: 1, pending: true, failure: false}
    violations_ns: {power: 1200000000, thermal: 5, sync_boost: 0, board_limit: 3, low_utilization: 4, reliability: 6}
    memory_reserved_bytes: 565182464
";

const MIG: &str = "    mig:
      - {uuid: MIG-1, gpu_instance_id: 1, compute_instance_id: 0, profile: 1g.10gb,
         memory_total_bytes: 10200547328, memory_used_bytes: 2000000000}
";

/// GPU 0 has every counter, GPU 1 none, GPU 2 every counter and MIG mode.
fn node() -> String {
    scenario(&[
        device("GPU-all", 1, COUNTERS),
        device("GPU-bare", 2, ""),
        device("GPU-mig", 3, &format!("{COUNTERS}{MIG}")),
    ])
}

fn not_supported<T: std::fmt::Debug>(r: Result<T, NvmlError>) -> bool {
    matches!(r, Err(NvmlError::NotSupported))
}

const POLICIES: [PerformancePolicy; 6] = [
    PerformancePolicy::Power,
    PerformancePolicy::Thermal,
    PerformancePolicy::SyncBoost,
    PerformancePolicy::BoardLimit,
    PerformancePolicy::LowUtilization,
    PerformancePolicy::Reliability,
];

/// `nvmlDeviceGetRemappedRows` through the raw call: its code and (corr, unc, pending, failure).
fn remapped_rows(nvml: &Nvml, dev: nvmlDevice_t) -> (u32, [u32; 4]) {
    let mut v = [9u32; 4];
    let [a, b, c, d] = &mut v;
    let rc = unsafe { nvml.lib().nvmlDeviceGetRemappedRows(dev, a, b, c, d) };
    (rc, v)
}

/// One field value asked through the raw call: the call's code, the field's code, its value
/// (as an `unsigned int`, the memory temperature's type).
fn field(nvml: &Nvml, dev: nvmlDevice_t, id: u32) -> (u32, u32, u32) {
    let mut v: nvmlFieldValue_t = unsafe { zeroed() };
    v.fieldId = id;
    v.nvmlReturn = 999;
    let rc = unsafe { nvml.lib().nvmlDeviceGetFieldValues(dev, 1, &mut v) };
    if id == NVML_FI_DEV_MEMORY_TEMP && v.nvmlReturn == SUCCESS {
        assert_eq!(v.valueType, nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT);
    }
    (rc, v.nvmlReturn, unsafe { v.value.uiVal })
}

const SUCCESS: u32 = nvmlReturn_enum_NVML_SUCCESS;
const NOT_SUPPORTED: u32 = nvmlReturn_enum_NVML_ERROR_NOT_SUPPORTED;
const INVALID: u32 = nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT;

#[test]
fn values_round_trip_in_nvml_units() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    assert_eq!(d.clock_info(Clock::Memory).unwrap(), 2619);
    assert_eq!(d.clock_info(Clock::SM).unwrap(), 1980, "SM clock unchanged");
    assert_eq!(d.enforced_power_limit().unwrap(), 700_000);
    let h = unsafe { d.handle() };
    assert_eq!(
        field(&nvml, h, NVML_FI_DEV_MEMORY_TEMP),
        (SUCCESS, SUCCESS, 55)
    );
    assert_eq!(remapped_rows(&nvml, h), (SUCCESS, [2, 1, 1, 0]));
    let before = Instant::now();
    let got: Vec<u64> = POLICIES
        .iter()
        .map(|p| d.violation_status(*p).unwrap().violation_time)
        .collect();
    assert_eq!(got, [1_200_000_000, 5, 0, 3, 4, 6]);
    // referenceTime: the CPU clock in µs since the epoch, as nvml.h says.
    let stamp = d
        .violation_status(PerformancePolicy::Power)
        .unwrap()
        .reference_time;
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert!(stamp <= now_us && now_us - stamp < 60_000_000 + before.elapsed().as_micros() as u64);
    // The policies the mock does not model.
    for p in [
        PerformancePolicy::TotalAppClocks,
        PerformancePolicy::TotalBaseClocks,
    ] {
        assert!(not_supported(d.violation_status(p)));
    }

    let mem = d.memory_info().unwrap();
    assert_eq!(mem.reserved, 565_182_464);
    assert_eq!(mem.used, 40_265_318_400);
    assert_eq!(mem.free, 85_520_809_984 - 40_265_318_400 - 565_182_464);
    // v1 counts reserved memory as used (nvml.h: "Sum of Reserved and Allocated").
    let mut v1: nvmlMemory_t = unsafe { zeroed() };
    assert_eq!(
        unsafe { nvml.lib().nvmlDeviceGetMemoryInfo(h, &mut v1) },
        SUCCESS
    );
    assert_eq!(v1.used, 40_265_318_400 + 565_182_464);
    assert_eq!(v1.free, mem.free);
}

#[test]
fn absent_fields_are_not_supported() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(1).unwrap();
    assert!(not_supported(d.clock_info(Clock::Memory)));
    assert!(not_supported(d.enforced_power_limit()));
    for p in POLICIES {
        assert!(not_supported(d.violation_status(p)));
    }
    let h = unsafe { d.handle() };
    // The call succeeds; the field says it is not supported.
    assert_eq!(field(&nvml, h, NVML_FI_DEV_MEMORY_TEMP).0, SUCCESS);
    assert_eq!(field(&nvml, h, NVML_FI_DEV_MEMORY_TEMP).1, NOT_SUPPORTED);
    assert_eq!(remapped_rows(&nvml, h).0, NOT_SUPPORTED);
    assert_eq!(d.memory_info().unwrap().reserved, 0, "default");
}

#[test]
fn a_policy_left_out_is_not_supported_alone() {
    let text = scenario(&[device("GPU-some", 1, "    violations_ns: {power: 7}\n")]);
    let mock = Mock::new(&text);
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    assert_eq!(
        d.violation_status(PerformancePolicy::Power)
            .unwrap()
            .violation_time,
        7
    );
    assert!(not_supported(
        d.violation_status(PerformancePolicy::Thermal)
    ));
}

/// A MIG device answers none of them; its parent all but the remapped rows, which NVML does
/// not report for a GPU with MIG instances (and does for one in MIG mode without any).
#[test]
fn a_mig_device_answers_none_of_them_and_its_parent_all_but_remapped_rows() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let parent = nvml.device_by_index(2).unwrap();
    assert_eq!(parent.clock_info(Clock::Memory).unwrap(), 2619);
    assert_eq!(parent.enforced_power_limit().unwrap(), 700_000);
    assert_eq!(
        parent
            .violation_status(PerformancePolicy::Power)
            .unwrap()
            .violation_time,
        1_200_000_000
    );
    assert_eq!(
        remapped_rows(&nvml, unsafe { parent.handle() }).0,
        NOT_SUPPORTED
    );
    let mig = parent.mig_device_by_index(0).unwrap();
    assert!(not_supported(mig.clock_info(Clock::Memory)));
    assert!(not_supported(mig.enforced_power_limit()));
    assert!(not_supported(
        mig.violation_status(PerformancePolicy::Power)
    ));
    let h = unsafe { mig.handle() };
    assert_eq!(field(&nvml, h, NVML_FI_DEV_MEMORY_TEMP).0, NOT_SUPPORTED);
    assert_eq!(remapped_rows(&nvml, h).0, NOT_SUPPORTED);
    assert_eq!(mig.memory_info().unwrap().reserved, 0);

    // MIG mode on, no instance yet: the rows are reported.
    mock.replace(&scenario(&[device(
        "GPU-empty",
        1,
        &format!("{COUNTERS}    mig: []\n"),
    )]));
    let d = nvml.device_by_index(0).unwrap();
    assert_eq!(
        remapped_rows(&nvml, unsafe { d.handle() }),
        (SUCCESS, [2, 1, 1, 0])
    );
}

#[test]
fn bad_arguments() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let lib = nvml.lib();
    let d = unsafe { nvml.device_by_index(0).unwrap().handle() };
    unsafe {
        let mut v = [0u32; 4];
        let [a, b, c, _] = &mut v;
        assert_eq!(
            lib.nvmlDeviceGetRemappedRows(d, a, b, c, null_mut()),
            INVALID
        );
        assert_eq!(lib.nvmlDeviceGetEnforcedPowerLimit(d, null_mut()), INVALID);
        let mut t: nvmlViolationTime_t = zeroed();
        // 6 to 9 are no policy; 12 is NVML_PERF_POLICY_COUNT.
        for policy in [6, 9, 12, 99] {
            assert_eq!(lib.nvmlDeviceGetViolationStatus(d, policy, &mut t), INVALID);
        }
        assert_eq!(
            lib.nvmlDeviceGetViolationStatus(
                d,
                nvmlPerfPolicyType_enum_NVML_PERF_POLICY_POWER,
                null_mut()
            ),
            INVALID
        );
        let mut clock = 0;
        assert_eq!(lib.nvmlDeviceGetClockInfo(d, 7, &mut clock), INVALID);
        assert_eq!(
            lib.nvmlDeviceGetClockInfo(d, nvmlClockType_enum_NVML_CLOCK_MEM, null_mut()),
            INVALID
        );
    }
}

/// Every new family fails alone: an error set for it leaves its neighbours (the SM clock,
/// NVLink field values, power draw, ECC, clock event reasons) answering, and vice versa.
#[test]
fn each_call_is_its_own_family() {
    let errors = "    errors: {memory_clock: GPU_IS_LOST, memory_temperature: UNKNOWN, power_limit: NO_PERMISSION, remapped_rows: CORRUPTED_INFOROM, violations: TIMEOUT}\n    nvlink: {tx_bytes: 1024, rx_bytes: 0}\n";
    let neighbours = "    errors: {clock: GPU_IS_LOST, nvlink: UNKNOWN, power: NO_PERMISSION, ecc: CORRUPTED_INFOROM, throttle: TIMEOUT}\n    nvlink: {tx_bytes: 1024, rx_bytes: 0}\n";
    let text = scenario(&[
        device("GPU-new", 1, &format!("{COUNTERS}{errors}")),
        device("GPU-old", 2, &format!("{COUNTERS}{neighbours}")),
    ]);
    let mock = Mock::new(&text);
    let nvml = mock.init().unwrap();

    let d = nvml.device_by_index(0).unwrap();
    let h = unsafe { d.handle() };
    assert!(matches!(
        d.clock_info(Clock::Memory),
        Err(NvmlError::GpuLost)
    ));
    assert_eq!(d.clock_info(Clock::SM).unwrap(), 1980);
    assert_eq!(
        field(&nvml, h, NVML_FI_DEV_MEMORY_TEMP).0,
        nvmlReturn_enum_NVML_ERROR_UNKNOWN
    );
    assert_eq!(
        field(&nvml, h, NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX).1,
        SUCCESS
    );
    assert!(matches!(
        d.enforced_power_limit(),
        Err(NvmlError::NoPermission)
    ));
    assert_eq!(d.power_usage().unwrap(), 350_000);
    assert!(matches!(
        d.violation_status(PerformancePolicy::Power),
        Err(NvmlError::Timeout)
    ));
    assert_eq!(
        remapped_rows(&nvml, h).0,
        nvmlReturn_enum_NVML_ERROR_CORRUPTED_INFOROM
    );

    let d = nvml.device_by_index(1).unwrap();
    let h = unsafe { d.handle() };
    assert!(matches!(d.clock_info(Clock::SM), Err(NvmlError::GpuLost)));
    assert_eq!(d.clock_info(Clock::Memory).unwrap(), 2619);
    assert_eq!(
        field(&nvml, h, NVML_FI_DEV_MEMORY_TEMP),
        (SUCCESS, SUCCESS, 55)
    );
    assert_eq!(
        field(&nvml, h, NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX).0,
        nvmlReturn_enum_NVML_ERROR_UNKNOWN
    );
    assert_eq!(d.enforced_power_limit().unwrap(), 700_000);
    assert_eq!(remapped_rows(&nvml, h), (SUCCESS, [2, 1, 1, 0]));
    assert_eq!(
        d.violation_status(PerformancePolicy::Thermal)
            .unwrap()
            .violation_time,
        5
    );
}

/// A delay set for a family holds that call alone; its cost key is its own.
#[test]
fn delays_and_costs_are_per_family() {
    let extra = "    delays_ms: {memory_clock: 150, violations: 150}\n";
    let costs = "costs: {memory_temperature: {cpu_us: 0, wall_us: 120000}, remapped_rows: {cpu_us: 0, wall_us: 120000}, power_limit: {cpu_us: 0, wall_us: 120000}}\n";
    let text = format!(
        "{costs}{}",
        scenario(&[device("GPU-slow", 1, &format!("{COUNTERS}{extra}"))])
    );
    let mock = Mock::new(&text);
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    let h = unsafe { d.handle() };
    let took = |f: &dyn Fn()| {
        let t = Instant::now();
        f();
        t.elapsed()
    };
    let slow = Duration::from_millis(110);
    assert!(took(&|| assert_eq!(d.clock_info(Clock::Memory).unwrap(), 2619)) >= slow);
    assert!(
        took(&|| {
            d.violation_status(PerformancePolicy::Power).unwrap();
        }) >= slow
    );
    assert!(took(&|| assert_eq!(field(&nvml, h, NVML_FI_DEV_MEMORY_TEMP).2, 55)) >= slow);
    assert!(took(&|| assert_eq!(remapped_rows(&nvml, h).0, SUCCESS)) >= slow);
    assert!(took(&|| assert_eq!(d.enforced_power_limit().unwrap(), 700_000)) >= slow);
    // Their neighbours are neither delayed nor priced.
    let fast = Duration::from_millis(100);
    assert!(took(&|| assert_eq!(d.clock_info(Clock::SM).unwrap(), 1980)) < fast);
    assert!(took(&|| assert_eq!(d.power_usage().unwrap(), 350_000)) < fast);
}

#[test]
fn a_reload_moves_the_counters() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    let h = unsafe { d.handle() };
    mock.replace(&node().replacen(
        "pending: true, failure: false",
        "pending: false, failure: true",
        1,
    ));
    assert_eq!(remapped_rows(&nvml, h), (SUCCESS, [2, 1, 0, 1]));
    mock.replace(&node().replacen("power: 1200000000", "power: 1500000000", 1));
    assert_eq!(
        d.violation_status(PerformancePolicy::Power)
            .unwrap()
            .violation_time,
        1_500_000_000
    );
}

#[test]
fn impossible_values_are_rejected() {
    for (extra, why) in [
        (
            "    memory_reserved_bytes: 45255491585\n",
            "memory_reserved_bytes",
        ),
        (
            "    memory_temperature_celsius: 250\n",
            "memory_temperature_celsius",
        ),
        ("    violations_ns: {powr: 1}\n", "powr"),
        (
            "    remapped_rows: {correctable: 1, uncorrectable: 0, pendng: true}\n",
            "pendng",
        ),
        ("    remapped_rows: {correctable: 1}\n", "uncorrectable"),
        ("    errors: {memory_clk: TIMEOUT}\n", "memory_clk"),
    ] {
        let text = scenario(&[device("GPU-bad", 1, extra)]);
        match nvidia_ml_mock::scenario::Scenario::parse(&text) {
            Ok(_) => panic!("{extra}: accepted"),
            Err(e) => assert!(e.to_string().contains(why), "{extra}: {e}"),
        }
    }
}
