//! Injected errors and delays, and the ways `nvmlInit` fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{device, scenario, Mock};
use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::{Device, Nvml};

/// Calls the wrapper method of one family on `d`; `Ok` means the call succeeded.
fn call(nvml: &Nvml, d: &Device, family: &str) -> Result<(), NvmlError> {
    match family {
        "handle" => d.index().map(drop),
        "uuid" => d.uuid().map(drop),
        "name" => d.name().map(drop),
        "pci" => d.pci_info().map(drop),
        "memory" => d.memory_info().map(drop),
        "utilization" => d.utilization_rates().map(drop),
        "power" => d.power_usage().map(drop),
        "temperature" => d.temperature(TemperatureSensor::Gpu).map(drop),
        "clock" => d.clock_info(Clock::SM).map(drop),
        "processes" => d.running_compute_processes().map(drop),
        "process_utilization" => d.process_utilization_stats(None).map(drop),
        "gpm" => d.gpm_support().map(drop),
        "energy" => d.total_energy_consumption().map(drop),
        "ecc" => d
            .total_ecc_errors(MemoryError::Corrected, EccCounter::Aggregate)
            .map(drop),
        "events" => d.supported_event_types().map(drop),
        "throttle" => d.current_throttle_reasons().map(drop),
        "pcie" => d.pcie_replay_counter().map(drop),
        "nvlink" => d.field_values_for(&[FieldId(138)]).map(drop),
        "encoder" => d.encoder_utilization().map(drop),
        "decoder" => d.decoder_utilization().map(drop),
        // Answers on any GPU, in MIG mode or not (MIG mode would turn utilization off).
        "mig" => d.mig_is_mig_device_handle().map(drop),
        "count" => nvml.device_count().map(drop),
        "system" => nvml.sys_driver_version().map(drop),
        other => panic!("no call for family {other}"),
    }
}

const DEVICE_FAMILIES: [&str; 21] = [
    "handle",
    "uuid",
    "name",
    "pci",
    "memory",
    "utilization",
    "power",
    "temperature",
    "clock",
    "processes",
    "process_utilization",
    "gpm",
    "energy",
    "ecc",
    "events",
    "throttle",
    "pcie",
    "nvlink",
    "encoder",
    "decoder",
    "mig",
];

/// Healthy extras: every family answers when no error is injected.
const HEALTHY: &str = "    gpm: {sm_active: 0.5}
    processes: [{pid: 1, sm_util_percent: 10}]
    energy_millijoules: 1
    ecc: {corrected: 1, uncorrected: 0}
    xid_events: []
    throttle_reasons: []
    pcie: {tx_kib_per_second: 1, rx_kib_per_second: 1, replay_errors: 0}
    nvlink: {tx_bytes: 1024, rx_bytes: 1024}
    encoder_percent: 1
    decoder_percent: 1
";

#[test]
fn every_device_family_can_fail_alone() {
    for family in DEVICE_FAMILIES {
        let broken = format!("{HEALTHY}    errors: {{{family}: TIMEOUT}}\n");
        let mock = Mock::new(&scenario(&[
            device("GPU-bad", 1, &broken),
            device("GPU-ok", 2, HEALTHY),
        ]));
        let nvml = mock.init().unwrap();
        let (bad, ok) = (nvml.device_by_index(0), nvml.device_by_index(1).unwrap());
        let bad = match (family, bad) {
            // The handle family fails the handle lookup itself.
            ("handle", Err(e)) => {
                assert!(matches!(e, NvmlError::Timeout), "{e:?}");
                continue;
            }
            (_, bad) => bad.unwrap(),
        };
        for other in DEVICE_FAMILIES {
            let result = call(&nvml, &bad, other);
            if other == family {
                assert!(
                    matches!(result, Err(NvmlError::Timeout)),
                    "{family}: {result:?}"
                );
            } else {
                assert!(result.is_ok(), "{family} broke {other}: {result:?}");
            }
            assert!(
                call(&nvml, &ok, other).is_ok(),
                "{family} broke {other} on another device"
            );
        }
    }
}

#[test]
fn node_wide_families_fail() {
    let mock = Mock::new(&format!(
        "errors: {{count: GPU_IS_LOST, system: NO_PERMISSION}}\n{}",
        scenario(&[device("GPU-a", 1, "")])
    ));
    let nvml = mock.init().unwrap();
    assert!(matches!(nvml.device_count(), Err(NvmlError::GpuLost)));
    assert!(matches!(
        nvml.sys_driver_version(),
        Err(NvmlError::NoPermission)
    ));
    assert!(nvml.device_by_index(0).unwrap().power_usage().is_ok());
}

#[test]
fn gpu_is_lost_on_one_device() {
    let mock = Mock::new(&scenario(&[
        device(
            "GPU-lost",
            1,
            "    errors: {utilization: GPU_IS_LOST, power: GPU_IS_LOST}\n",
        ),
        device("GPU-ok", 2, ""),
    ]));
    let nvml = mock.init().unwrap();
    let lost = nvml.device_by_index(0).unwrap();
    assert!(matches!(lost.utilization_rates(), Err(NvmlError::GpuLost)));
    assert!(matches!(lost.power_usage(), Err(NvmlError::GpuLost)));
    assert_eq!(lost.uuid().unwrap(), "GPU-lost");
    assert_eq!(
        nvml.device_by_index(1)
            .unwrap()
            .utilization_rates()
            .unwrap()
            .gpu,
        87
    );
}

#[test]
fn a_delay_blocks_only_that_devices_call() {
    let mock = Mock::new(&scenario(&[
        device("GPU-slow", 1, "    delays_ms: {utilization: 2000}\n"),
        device("GPU-fast", 2, ""),
    ]));
    let nvml = mock.init().unwrap();
    let slow = nvml.device_by_index(0).unwrap();
    let fast = nvml.device_by_index(1).unwrap();

    std::thread::scope(|s| {
        let blocked = s.spawn(|| {
            let start = Instant::now();
            let util = slow.utilization_rates().unwrap();
            (start.elapsed(), util.gpu)
        });
        std::thread::sleep(Duration::from_millis(100));
        // While the slow call sleeps: other devices, and other calls on the slow device, answer.
        let start = Instant::now();
        assert_eq!(fast.utilization_rates().unwrap().gpu, 87);
        assert_eq!(slow.power_usage().unwrap(), 350000);
        assert_eq!(nvml.device_count().unwrap(), 2);
        assert!(
            start.elapsed() < Duration::from_millis(1000),
            "{:?}",
            start.elapsed()
        );
        assert!(!blocked.is_finished(), "the delayed call returned early");

        let (took, gpu) = blocked.join().unwrap();
        assert!(took >= Duration::from_millis(2000), "{took:?}");
        assert_eq!(gpu, 87);
    });
}

#[test]
fn delay_then_error() {
    let mock = Mock::new(&scenario(&[device(
        "GPU-hung",
        1,
        "    delays_ms: {power: 300}\n    errors: {power: TIMEOUT}\n",
    )]));
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    let start = Instant::now();
    assert!(matches!(d.power_usage(), Err(NvmlError::Timeout)));
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[test]
fn node_wide_delays() {
    let mock = Mock::new(&format!(
        "delays_ms: {{init: 200, count: 200}}\n{}",
        scenario(&[device("GPU-a", 1, "")])
    ));
    let start = Instant::now();
    let nvml = mock.init().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(200));
    let start = Instant::now();
    assert_eq!(nvml.device_count().unwrap(), 1);
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[test]
fn init_error_from_the_scenario() {
    let mock = Mock::new(&format!("init_error: DRIVER_NOT_LOADED\n{}", scenario(&[])));
    assert!(matches!(mock.init(), Err(NvmlError::DriverNotLoaded)));
    let mock = Mock::new(&format!(
        "errors: {{init: NO_PERMISSION}}\n{}",
        scenario(&[])
    ));
    assert!(matches!(mock.init(), Err(NvmlError::NoPermission)));
}

#[test]
fn init_without_a_scenario_file_then_with_one() {
    let mock = Mock::without_scenario();
    assert!(matches!(mock.init(), Err(NvmlError::DriverNotLoaded)));
    assert!(matches!(
        mock.init_with_env(None),
        Err(NvmlError::DriverNotLoaded)
    ));
    // The file appears: the caller's retry succeeds.
    mock.write(&scenario(&[device("GPU-late", 1, "")]));
    let nvml = mock.init().unwrap();
    assert_eq!(nvml.device_count().unwrap(), 1);
}

#[test]
fn malformed_or_invalid_scenarios_fail_init_with_unknown() {
    let cases = [
        "devices: [\n",                                                       // not YAML
        "drivers: []\n", // unknown top-level field
        &scenario(&[device("GPU-a", 1, "    utilisation_gpu_percent: 5\n")]), // typo in a device
        &scenario(&[device("GPU-a", 1, "    errors: {power: GPU_LOST}\n")]), // unknown error name
        &scenario(&[device("GPU-a", 1, "    delays_ms: {powr: 5}\n")]), // unknown family
        &scenario(&[device("GPU-a", 1, ""), device("GPU-a", 2, "")]), // duplicate UUID
    ];
    for text in cases {
        let mock = Mock::new(text);
        assert!(
            matches!(mock.init(), Err(NvmlError::Unknown)),
            "accepted:\n{text}"
        );
    }
}
