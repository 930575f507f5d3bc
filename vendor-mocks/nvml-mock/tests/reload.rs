//! The scenario file is re-read when it changes, while the caller keeps its `Nvml` and
//! device handles: in-place writes, atomic renames, broken files, vanished devices.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{device, scenario, Mock};
use nvml_wrapper::error::NvmlError;

fn node(gpu_percent: u32) -> String {
    scenario(&[
        device("GPU-a", 1, "").replace(
            "utilization_gpu_percent: 87",
            &format!("utilization_gpu_percent: {gpu_percent}"),
        ),
        device("GPU-b", 2, ""),
    ])
}

#[test]
fn in_place_write_of_the_same_size_is_seen_at_once() {
    let mock = Mock::new(&node(87));
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    assert_eq!(d.utilization_rates().unwrap().gpu, 87);
    // Same length, written within the same clock tick: only the racy-timestamp re-read
    // notices this one.
    mock.write(&node(42));
    assert_eq!(d.utilization_rates().unwrap().gpu, 42);
    mock.write(&node(43));
    assert_eq!(d.utilization_rates().unwrap().gpu, 43);
}

#[test]
fn atomic_rename_is_seen() {
    let mock = Mock::new(&node(87));
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    assert_eq!(d.utilization_rates().unwrap().gpu, 87);
    mock.replace(&node(12));
    assert_eq!(d.utilization_rates().unwrap().gpu, 12);
    mock.replace(&node(13));
    assert_eq!(d.utilization_rates().unwrap().gpu, 13);
}

#[test]
fn a_broken_file_keeps_the_last_good_scenario() {
    let mock = Mock::new(&node(87));
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    mock.write(&node(50));
    assert_eq!(d.utilization_rates().unwrap().gpu, 50);

    mock.write("devices: [ this is not a scenario");
    assert_eq!(d.utilization_rates().unwrap().gpu, 50);
    mock.replace(&node(50).replace("name:", "nmae:"));
    assert_eq!(d.utilization_rates().unwrap().gpu, 50);
    std::fs::remove_file(&mock.scenario).unwrap();
    assert_eq!(d.utilization_rates().unwrap().gpu, 50);
    assert_eq!(nvml.device_count().unwrap(), 2);

    // Fixed: picked up again.
    mock.replace(&node(51));
    assert_eq!(d.utilization_rates().unwrap().gpu, 51);
}

#[test]
fn devices_come_and_go_behind_stable_handles() {
    let mock = Mock::new(&node(87));
    let nvml = mock.init().unwrap();
    let a = nvml.device_by_index(0).unwrap();
    let b = nvml.device_by_index(1).unwrap();
    assert_eq!(b.uuid().unwrap(), "GPU-b");

    mock.replace(&scenario(&[device("GPU-a", 1, "")]));
    assert_eq!(nvml.device_count().unwrap(), 1);
    assert_eq!(a.uuid().unwrap(), "GPU-a");
    // The device fell off the bus.
    assert!(matches!(b.uuid(), Err(NvmlError::GpuLost)));
    assert!(matches!(
        nvml.device_by_index(1),
        Err(NvmlError::InvalidArg)
    ));

    // Back again: the old handle works.
    mock.replace(&node(87));
    assert_eq!(b.uuid().unwrap(), "GPU-b");
}

#[test]
fn faults_can_be_switched_on_and_off() {
    let mock = Mock::new(&node(87));
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    mock.replace(&node(87).replace(
        "  - uuid: GPU-b",
        "    errors: {power: GPU_IS_LOST}\n  - uuid: GPU-b",
    ));
    assert!(matches!(d.power_usage(), Err(NvmlError::GpuLost)));
    assert!(nvml.device_by_index(1).unwrap().power_usage().is_ok());
    mock.replace(&node(87));
    assert_eq!(d.power_usage().unwrap(), 350000);
}
