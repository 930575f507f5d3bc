//! The example scenarios in `scenarios/` parse, and load through nvml-wrapper as described
//! in their comments.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::Mock;
use nvidia_ml_mock::scenario::Scenario;
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError, PcieUtilCounter};
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_example_parses() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(e) = Scenario::parse(&text) {
                panic!("{}: {e}", path.display());
            }
            seen += 1;
        }
    }
    assert!(seen >= 4, "only {seen} examples in {}", dir.display());
}

#[test]
fn h100_node() {
    let mock = Mock::new(&example("h100-node.yaml"));
    let nvml = mock.init().unwrap();
    assert_eq!(nvml.device_count().unwrap(), 3);
    let names: Vec<String> = (0..3)
        .map(|i| nvml.device_by_index(i).unwrap().name().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "NVIDIA H100 80GB HBM3",
            "NVIDIA H100 NVL",
            "NVIDIA A100-SXM4-80GB"
        ]
    );
    assert!(!nvml.device_by_index(2).unwrap().gpm_support().unwrap());
}

#[test]
fn faults() {
    let mock = Mock::new(&example("faults.yaml"));
    let nvml = mock.init().unwrap();
    let lost = nvml.device_by_index(1).unwrap();
    assert!(lost.uuid().is_ok());
    assert!(matches!(lost.utilization_rates(), Err(NvmlError::GpuLost)));
    let hung = nvml.device_by_index(2).unwrap();
    assert!(matches!(
        hung.temperature(nvml_wrapper::enum_wrappers::device::TemperatureSensor::Gpu),
        Err(NvmlError::NotSupported)
    ));
}

#[test]
fn no_process_util() {
    let mock = Mock::new(&example("no-process-util.yaml"));
    let nvml = mock.init().unwrap();
    for i in 0..3 {
        let d = nvml.device_by_index(i).unwrap();
        assert!(matches!(
            d.process_utilization_stats(None),
            Err(NvmlError::NotSupported)
        ));
        assert!(!d.running_compute_processes().unwrap().is_empty());
    }
}

#[test]
fn health_and_mig() {
    // XID 79 after 3 s and 48 after 10 s, shortened here to keep the test quick.
    let text = example("health-and-mig.yaml")
        .replace("after_ms: 3000", "after_ms: 30")
        .replace("after_ms: 10000", "after_ms: 60");
    let mock = Mock::new(&text);
    let nvml = mock.init().unwrap();
    assert_eq!(nvml.device_count().unwrap(), 2);

    let d = nvml.device_by_index(0).unwrap();
    assert_eq!(d.total_energy_consumption().unwrap(), 123456789);
    assert_eq!(
        d.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Aggregate)
            .unwrap(),
        1
    );
    assert_eq!(
        d.current_throttle_reasons().unwrap(),
        ThrottleReasons::SW_POWER_CAP
            | ThrottleReasons::HW_THERMAL_SLOWDOWN
            | ThrottleReasons::SYNC_BOOST
    );
    assert_eq!(d.pcie_throughput(PcieUtilCounter::Send).unwrap(), 1200000);
    assert_eq!(d.encoder_utilization().unwrap().utilization, 7);
    assert_eq!(d.decoder_utilization().unwrap().utilization, 12);
    let set = d
        .register_events(
            EventTypes::CRITICAL_XID_ERROR,
            nvml.create_event_set().unwrap(),
        )
        .map_err(|e| e.error)
        .unwrap();
    let xids: Vec<_> = (0..2).map(|_| set.wait(2000).unwrap().event_data).collect();
    assert_eq!(xids, [Some(XidError::Value(79)), Some(XidError::Value(48))]);

    let parent = nvml.device_by_index(1).unwrap();
    assert!(matches!(
        parent.utilization_rates(),
        Err(NvmlError::NotSupported)
    ));
    let instances: Vec<_> = (0..parent.mig_device_count().unwrap())
        .filter_map(|i| parent.mig_device_by_index(i).ok())
        .collect();
    let summary: Vec<_> = instances
        .iter()
        .map(|m| {
            (
                m.name().unwrap(),
                m.running_compute_processes().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("NVIDIA H100 80GB HBM3 MIG 3g.40gb".to_owned(), 2),
            ("NVIDIA H100 80GB HBM3 MIG 2g.20gb".to_owned(), 1),
            ("NVIDIA H100 80GB HBM3 MIG 1g.10gb".to_owned(), 0),
        ]
    );
    assert_eq!(parent.running_compute_processes().unwrap().len(), 3);
    // Each reported reason is active on exactly one GPU.
    let both = d.current_throttle_reasons().unwrap() | parent.current_throttle_reasons().unwrap();
    assert!(both.contains(
        ThrottleReasons::SW_POWER_CAP
            | ThrottleReasons::HW_SLOWDOWN
            | ThrottleReasons::HW_THERMAL_SLOWDOWN
            | ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN
            | ThrottleReasons::SW_THERMAL_SLOWDOWN
            | ThrottleReasons::SYNC_BOOST
    ));
    assert!(
        (d.current_throttle_reasons().unwrap() & parent.current_throttle_reasons().unwrap())
            .is_empty()
    );
}
