//! Scenario values come back unchanged through nvml-wrapper, for every call family.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{device, scenario, Mock};
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;

const NODE: &str = r#"
driver_version: "550.54.15"
devices:
  - uuid: GPU-0b7f3c2e-1a4d-4c55-9e1e-6b1f0c2d3e4f
    name: NVIDIA H100 80GB HBM3
    pci_bus_id: "00000000:18:00.0"
    memory_total_bytes: 85520809984
    memory_used_bytes: 40265318400
    utilization_gpu_percent: 87
    utilization_memory_percent: 45
    power_milliwatts: 350000
    temperature_celsius: 61
    sm_clock_mhz: 1980
    processes:
      - {pid: 4242, used_memory_bytes: 30000000000, sm_util_percent: 80, mem_util_percent: 40}
      - {pid: 4343, sm_util_percent: 5}
  - uuid: GPU-11111111-2222-3333-4444-555555555555
    name: NVIDIA A100-SXM4-40GB
    pci_bus_id: "0001:af:00.0"
    memory_total_bytes: 42949672960
    memory_used_bytes: 0
    utilization_gpu_percent: 0
    utilization_memory_percent: 0
    power_milliwatts: 52000
    temperature_celsius: 30
    sm_clock_mhz: 210
    mig: []
"#;

#[test]
fn system_values() {
    let mock = Mock::new(NODE);
    let nvml = mock.init().unwrap();
    assert_eq!(nvml.sys_driver_version().unwrap(), "550.54.15");
    assert_eq!(nvml.sys_nvml_version().unwrap(), "12.550.54.15");
    assert_eq!(nvml.device_count().unwrap(), 2);
}

#[test]
fn device_gauges() {
    let mock = Mock::new(NODE);
    let nvml = mock.init().unwrap();

    let d0 = nvml.device_by_index(0).unwrap();
    assert_eq!(d0.index().unwrap(), 0);
    assert_eq!(
        d0.uuid().unwrap(),
        "GPU-0b7f3c2e-1a4d-4c55-9e1e-6b1f0c2d3e4f"
    );
    assert_eq!(d0.name().unwrap(), "NVIDIA H100 80GB HBM3");
    let pci = d0.pci_info().unwrap();
    assert_eq!(pci.bus_id, "00000000:18:00.0");
    assert_eq!((pci.domain, pci.bus, pci.device), (0, 0x18, 0));
    let mem = d0.memory_info().unwrap();
    assert_eq!((mem.total, mem.used), (85520809984, 40265318400));
    assert_eq!(mem.free, 85520809984 - 40265318400);
    assert_eq!(mem.reserved, 0);
    let util = d0.utilization_rates().unwrap();
    assert_eq!((util.gpu, util.memory), (87, 45));
    assert_eq!(d0.power_usage().unwrap(), 350000);
    assert_eq!(d0.temperature(TemperatureSensor::Gpu).unwrap(), 61);
    assert_eq!(d0.clock_info(Clock::SM).unwrap(), 1980);
    assert_eq!(d0.clock_info(Clock::Graphics).unwrap(), 1980);
    assert!(matches!(
        d0.clock_info(Clock::Memory),
        Err(NvmlError::NotSupported)
    ));
    assert!(matches!(d0.mig_mode(), Err(NvmlError::NotSupported)));

    let d1 = nvml.device_by_index(1).unwrap();
    assert_eq!(d1.index().unwrap(), 1);
    assert_eq!(d1.name().unwrap(), "NVIDIA A100-SXM4-40GB");
    // NVML's own format: eight upper-case hex digits of domain.
    assert_eq!(d1.pci_info().unwrap().bus_id, "00000001:AF:00.0");
    assert_eq!(d1.mig_mode().unwrap().current, 1);

    let by_uuid = nvml
        .device_by_uuid("GPU-11111111-2222-3333-4444-555555555555")
        .unwrap();
    assert_eq!(by_uuid.index().unwrap(), 1);
    assert!(matches!(
        nvml.device_by_uuid("GPU-nope"),
        Err(NvmlError::NotFound)
    ));
    assert!(matches!(
        nvml.device_by_index(2),
        Err(NvmlError::InvalidArg)
    ));
}

#[test]
fn legacy_memory_info_and_pci_legacy_bus_id() {
    let mock = Mock::new(NODE);
    let nvml = mock.init().unwrap();
    let lib = nvml.lib();
    let d0 = nvml.device_by_index(0).unwrap();
    unsafe {
        let mut mem = std::mem::zeroed();
        assert_eq!(lib.nvmlDeviceGetMemoryInfo(d0.handle(), &mut mem), 0);
        assert_eq!(
            (mem.total, mem.used, mem.free),
            (85520809984, 40265318400, 45255491584)
        );
        let mut pci = std::mem::zeroed();
        assert_eq!(lib.nvmlDeviceGetPciInfo_v3(d0.handle(), &mut pci), 0);
        let legacy = std::ffi::CStr::from_ptr(pci.busIdLegacy.as_ptr());
        assert_eq!(legacy.to_str().unwrap(), "0000:18:00.0");
    }
}

#[test]
fn processes_and_their_utilization() {
    let mock = Mock::new(NODE);
    let nvml = mock.init().unwrap();
    let d0 = nvml.device_by_index(0).unwrap();

    let procs = d0.running_compute_processes().unwrap();
    assert_eq!(procs.len(), 2);
    assert_eq!(procs[0].pid, 4242);
    assert_eq!(procs[0].used_gpu_memory, UsedGpuMemory::Used(30000000000));
    assert_eq!(
        (procs[0].gpu_instance_id, procs[0].compute_instance_id),
        (None, None)
    );
    assert_eq!(procs[1].used_gpu_memory, UsedGpuMemory::Unavailable);

    let before = now_us();
    let samples = d0.process_utilization_stats(None).unwrap();
    let after = now_us();
    assert_eq!(samples.len(), 2);
    assert_eq!(
        (samples[0].pid, samples[0].sm_util, samples[0].mem_util),
        (4242, 80, 40)
    );
    assert_eq!(
        (samples[1].pid, samples[1].sm_util, samples[1].mem_util),
        (4343, 5, 0)
    );
    for s in &samples {
        assert!(
            s.timestamp >= before && s.timestamp <= after + 1000,
            "{s:?} not in µs"
        );
    }
    // Asking again since the last sample: fresh samples, stamped later.
    let again = d0.process_utilization_stats(samples[0].timestamp).unwrap();
    assert!(again[0].timestamp > samples[0].timestamp);

    let d1 = nvml.device_by_index(1).unwrap();
    assert!(d1.running_compute_processes().unwrap().is_empty());
    assert!(matches!(
        d1.process_utilization_stats(None),
        Err(NvmlError::NotFound)
    ));
}

#[test]
fn a_node_without_devices() {
    let mock = Mock::new("devices: []");
    let nvml = mock.init().unwrap();
    assert_eq!(nvml.device_count().unwrap(), 0);
    assert_eq!(nvml.sys_driver_version().unwrap(), "550.54.15");
}

#[test]
fn nvml_version_follows_the_driver() {
    let mock = Mock::new(&scenario(&[device("GPU-a", 1, "")]).replace("550.54.15", "580.65.06"));
    let nvml = mock.init().unwrap();
    assert_eq!(nvml.sys_nvml_version().unwrap(), "13.580.65.06");
}

#[test]
fn error_strings() {
    let mock = Mock::new(NODE);
    let nvml = mock.init().unwrap();
    let text = |code| unsafe {
        std::ffi::CStr::from_ptr(nvml.lib().nvmlErrorString(code))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(text(0), "Success");
    assert_eq!(text(15), "GPU is lost");
    assert_eq!(text(4242), "Unknown Error");
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}
