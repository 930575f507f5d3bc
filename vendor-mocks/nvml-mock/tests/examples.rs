//! The example scenarios in `scenarios/` parse, and load through nvml-wrapper as described
//! in their comments.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use common::Mock;
use nvidia_ml_mock::scenario::Scenario;
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
    assert!(seen >= 3, "only {seen} examples in {}", dir.display());
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
