//! Health counters through nvml-wrapper: energy, ECC, clock event reasons, PCIe, encoder and
//! decoder. Values round-trip in NVML's units; an absent field is `NOT_SUPPORTED`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{device, scenario, Mock};
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError, PcieUtilCounter};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Device;
use nvml_wrapper_sys::bindings::*;

const HEALTH: &str = "    energy_millijoules: 123456789012
    ecc: {corrected: 12, uncorrected: 3}
    throttle_reasons: [sw_power_cap, hw_slowdown, hw_thermal_slowdown, hw_power_brake_slowdown, sw_thermal_slowdown, sync_boost]
    pcie: {tx_kib_per_second: 1200000, rx_kib_per_second: 800000, replay_errors: 7}
    encoder_percent: 0
    decoder_percent: 12
";

/// GPU 0 has every health field, GPU 1 none, GPU 2 only reasons the exporter ignores.
fn node() -> String {
    scenario(&[
        device("GPU-health", 1, HEALTH),
        device("GPU-bare", 2, ""),
        device(
            "GPU-idle",
            3,
            "    throttle_reasons: [gpu_idle, applications_clocks_setting, display_clock_setting]\n",
        ),
    ])
}

fn not_supported<T: std::fmt::Debug>(r: Result<T, NvmlError>) -> bool {
    matches!(r, Err(NvmlError::NotSupported))
}

#[test]
fn values_round_trip() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();

    assert_eq!(d.total_energy_consumption().unwrap(), 123456789012);

    for counter in [EccCounter::Aggregate, EccCounter::Volatile] {
        assert_eq!(
            d.total_ecc_errors(MemoryError::Corrected, counter).unwrap(),
            12
        );
        assert_eq!(
            d.total_ecc_errors(MemoryError::Uncorrected, counter)
                .unwrap(),
            3
        );
    }
    let mode = d.is_ecc_enabled().unwrap();
    assert!(mode.currently_enabled && mode.pending_enabled);

    let reasons = d.current_throttle_reasons_strict().unwrap();
    assert_eq!(
        reasons,
        ThrottleReasons::SW_POWER_CAP
            | ThrottleReasons::HW_SLOWDOWN
            | ThrottleReasons::HW_THERMAL_SLOWDOWN
            | ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN
            | ThrottleReasons::SW_THERMAL_SLOWDOWN
            | ThrottleReasons::SYNC_BOOST
    );
    let supported = d.supported_throttle_reasons_strict().unwrap();
    assert!(supported.contains(reasons | ThrottleReasons::GPU_IDLE));

    assert_eq!(d.pcie_throughput(PcieUtilCounter::Send).unwrap(), 1200000);
    assert_eq!(d.pcie_throughput(PcieUtilCounter::Receive).unwrap(), 800000);
    assert_eq!(d.pcie_replay_counter().unwrap(), 7);

    let enc = d.encoder_utilization().unwrap();
    let dec = d.decoder_utilization().unwrap();
    assert_eq!((enc.utilization, dec.utilization), (0, 12));
    assert!(enc.sampling_period > 0 && enc.sampling_period == dec.sampling_period);
}

#[test]
fn throttle_bits_are_nvmls_constants() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let lib = nvml.lib();
    let (d, idle) = (
        nvml.device_by_index(0).unwrap(),
        nvml.device_by_index(2).unwrap(),
    );
    unsafe {
        // The newer name answers the same as the one nvml-wrapper calls.
        let (mut event, mut throttle) = (0u64, 0u64);
        assert_eq!(
            lib.nvmlDeviceGetCurrentClocksEventReasons(d.handle(), &mut event),
            0
        );
        assert_eq!(
            lib.nvmlDeviceGetCurrentClocksThrottleReasons(d.handle(), &mut throttle),
            0
        );
        assert_eq!(event, throttle);
        assert_eq!(event, 0x4 | 0x8 | 0x40 | 0x80 | 0x20 | 0x10);

        let mut mask = 0u64;
        assert_eq!(
            lib.nvmlDeviceGetCurrentClocksEventReasons(idle.handle(), &mut mask),
            0
        );
        assert_eq!(
            mask,
            u64::from(
                nvmlClocksEventReasonGpuIdle
                    | nvmlClocksEventReasonApplicationsClocksSetting
                    | nvmlClocksEventReasonDisplayClockSetting
            )
        );
        let (mut a, mut b) = (0u64, 0u64);
        assert_eq!(
            lib.nvmlDeviceGetSupportedClocksEventReasons(d.handle(), &mut a),
            0
        );
        assert_eq!(
            lib.nvmlDeviceGetSupportedClocksThrottleReasons(d.handle(), &mut b),
            0
        );
        assert_eq!((a, b), (0x1ff, 0x1ff));
    }
}

#[test]
fn absent_fields_are_not_supported() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let bare: Device = nvml.device_by_index(1).unwrap();
    assert!(not_supported(bare.total_energy_consumption()));
    assert!(not_supported(bare.total_ecc_errors(
        MemoryError::Corrected,
        EccCounter::Aggregate
    )));
    assert!(not_supported(bare.is_ecc_enabled()));
    assert!(not_supported(bare.current_throttle_reasons()));
    assert!(not_supported(bare.supported_throttle_reasons()));
    assert!(not_supported(bare.pcie_throughput(PcieUtilCounter::Send)));
    assert!(not_supported(bare.pcie_replay_counter()));
    assert!(not_supported(bare.encoder_utilization()));
    assert!(not_supported(bare.decoder_utilization()));
}

#[test]
fn bad_arguments() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let lib = nvml.lib();
    let d = unsafe { nvml.device_by_index(0).unwrap().handle() };
    let invalid = nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT;
    unsafe {
        let mut n = 0u64;
        assert_eq!(
            lib.nvmlDeviceGetTotalEccErrors(
                d,
                2,
                nvmlEccCounterType_enum_NVML_AGGREGATE_ECC,
                &mut n
            ),
            invalid
        );
        assert_eq!(
            lib.nvmlDeviceGetTotalEccErrors(
                d,
                nvmlMemoryErrorType_enum_NVML_MEMORY_ERROR_TYPE_CORRECTED,
                2,
                &mut n
            ),
            invalid
        );
        assert_eq!(
            lib.nvmlDeviceGetTotalEnergyConsumption(d, std::ptr::null_mut()),
            invalid
        );
        let mut v = 0u32;
        assert_eq!(
            lib.nvmlDeviceGetPcieThroughput(
                d,
                nvmlPcieUtilCounter_enum_NVML_PCIE_UTIL_COUNT,
                &mut v
            ),
            invalid
        );
        assert_eq!(
            lib.nvmlDeviceGetEncoderUtilization(d, &mut v, std::ptr::null_mut()),
            invalid
        );
    }
}

#[test]
fn a_reload_changes_the_counters() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    assert_eq!(d.total_energy_consumption().unwrap(), 123456789012);
    mock.replace(&node().replace("123456789012", "123456790000"));
    assert_eq!(d.total_energy_consumption().unwrap(), 123456790000);
    mock.replace(&node().replace("    energy_millijoules: 123456789012\n", ""));
    assert!(not_supported(d.total_energy_consumption()));
}
