//! MIG through nvml-wrapper and the raw calls: enumerating MIG devices, what a MIG device
//! handle answers (UUID, name, memory, processes, instance IDs), the parent in MIG mode, and
//! handles across reloads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{device, scenario, Mock};
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::gpm::gpm_metrics_get;
use nvml_wrapper::{Device, Nvml};
use nvml_wrapper_sys::bindings::*;

const INSTANCES: &str = "    mig:
      - uuid: MIG-11111111-1111-5111-8111-111111111111
        gpu_instance_id: 3
        compute_instance_id: 0
        profile: 1g.10gb
        memory_total_bytes: 10200547328
        memory_used_bytes: 2000000000
        gpm: {sm_active: 0.9}
        processes:
          - {pid: 100, used_memory_bytes: 1500000000}
          - {pid: 101, used_memory_bytes: 500000000}
      - uuid: MIG-22222222-2222-5222-8222-222222222222
        gpu_instance_id: 1
        compute_instance_id: 0
        profile: 3g.40gb
        memory_total_bytes: 40652242944
        memory_used_bytes: 30000000000
        processes:
          - {pid: 200, used_memory_bytes: 30000000000}
      - uuid: MIG-33333333-3333-5333-8333-333333333333
        gpu_instance_id: 2
        compute_instance_id: 1
        profile: 2g.20gb
        memory_total_bytes: 20401094656
        memory_used_bytes: 0
";

/// GPU 0 plain, GPU 1 in MIG mode with three instances (processes on two), GPU 2 in MIG
/// mode with none yet.
fn node() -> String {
    scenario(&[
        device("GPU-plain", 1, ""),
        device("GPU-mig", 2, INSTANCES),
        device("GPU-empty", 3, "    mig: []\n"),
    ])
}

fn migs<'n>(d: &Device<'n>) -> Vec<Device<'n>> {
    let max = d.mig_device_count().unwrap();
    (0..max)
        .filter_map(|i| match d.mig_device_by_index(i) {
            Ok(m) => Some(m),
            Err(NvmlError::NotFound) => None,
            Err(e) => panic!("index {i}: {e:?}"),
        })
        .collect()
}

fn instance_ids(nvml: &Nvml, m: &Device) -> (u32, u32) {
    let (mut gi, mut ci) = (0, 0);
    unsafe {
        assert_eq!(
            nvml.lib().nvmlDeviceGetGpuInstanceId(m.handle(), &mut gi),
            0
        );
        assert_eq!(
            nvml.lib()
                .nvmlDeviceGetComputeInstanceId(m.handle(), &mut ci),
            0
        );
    }
    (gi, ci)
}

#[test]
fn enumeration_like_nvml() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let parent = nvml.device_by_index(1).unwrap();
    assert_eq!(parent.mig_mode().unwrap().current, NVML_DEVICE_MIG_ENABLE);
    // The most a GPU can hold, not how many exist.
    assert_eq!(parent.mig_device_count().unwrap(), 7);
    assert!(parent.mig_device_by_index(2).is_ok());
    assert!(matches!(
        parent.mig_device_by_index(3),
        Err(NvmlError::NotFound)
    ));
    assert!(matches!(
        parent.mig_device_by_index(7),
        Err(NvmlError::InvalidArg)
    ));
    assert_eq!(migs(&parent).len(), 3);

    let empty = nvml.device_by_index(2).unwrap();
    assert_eq!(empty.mig_device_count().unwrap(), 7);
    assert!(migs(&empty).is_empty());

    let plain = nvml.device_by_index(0).unwrap();
    assert!(matches!(plain.mig_mode(), Err(NvmlError::NotSupported)));
    assert!(matches!(
        plain.mig_device_count(),
        Err(NvmlError::NotSupported)
    ));
    assert!(matches!(
        plain.mig_device_by_index(0),
        Err(NvmlError::NotSupported)
    ));
    assert!(!plain.mig_is_mig_device_handle().unwrap());
    assert!(!parent.mig_is_mig_device_handle().unwrap());
}

#[test]
fn each_mig_device_answers_for_its_instance() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let parent = nvml.device_by_index(1).unwrap();
    let m = migs(&parent);

    let uuids: Vec<String> = m.iter().map(|d| d.uuid().unwrap()).collect();
    assert_eq!(
        uuids,
        [
            "MIG-11111111-1111-5111-8111-111111111111",
            "MIG-22222222-2222-5222-8222-222222222222",
            "MIG-33333333-3333-5333-8333-333333333333",
        ]
    );
    assert_eq!(m[0].name().unwrap(), "NVIDIA H100 80GB HBM3 MIG 1g.10gb");
    assert_eq!(m[1].name().unwrap(), "NVIDIA H100 80GB HBM3 MIG 3g.40gb");

    let mem = m[1].memory_info().unwrap();
    assert_eq!((mem.total, mem.used), (40652242944, 30000000000));
    assert_eq!(mem.free, 40652242944 - 30000000000);

    let ids: Vec<_> = m.iter().map(|d| instance_ids(&nvml, d)).collect();
    assert_eq!(ids, [(3, 0), (1, 0), (2, 1)]);

    for d in &m {
        assert!(d.mig_is_mig_device_handle().unwrap());
        let p = d.mig_parent_device().unwrap();
        assert_eq!(p.uuid().unwrap(), "GPU-mig");
        assert_eq!(p.index().unwrap(), 1);
    }

    let procs = m[0].running_compute_processes().unwrap();
    let got: Vec<_> = procs
        .iter()
        .map(|p| {
            (
                p.pid,
                p.used_gpu_memory.clone(),
                p.gpu_instance_id,
                p.compute_instance_id,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (100, UsedGpuMemory::Used(1500000000), Some(3), Some(0)),
            (101, UsedGpuMemory::Used(500000000), Some(3), Some(0)),
        ]
    );
    assert!(m[2].running_compute_processes().unwrap().is_empty());
}

#[test]
fn the_parent_in_mig_mode() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let parent = nvml.device_by_index(1).unwrap();

    // Every instance's processes, each with its instance IDs.
    let procs: Vec<_> = parent
        .running_compute_processes()
        .unwrap()
        .iter()
        .map(|p| (p.pid, p.gpu_instance_id, p.compute_instance_id))
        .collect();
    assert_eq!(
        procs,
        [
            (100, Some(3), Some(0)),
            (101, Some(3), Some(0)),
            (200, Some(1), Some(0))
        ]
    );
    // Utilization is gone in MIG mode; the device-wide gauges stay.
    assert!(matches!(
        parent.utilization_rates(),
        Err(NvmlError::NotSupported)
    ));
    assert!(matches!(
        nvml.device_by_index(2).unwrap().utilization_rates(),
        Err(NvmlError::NotSupported)
    ));
    assert_eq!(parent.power_usage().unwrap(), 350000);
    assert_eq!(parent.temperature(TemperatureSensor::Gpu).unwrap(), 61);
    assert_eq!(parent.memory_info().unwrap().total, 85520809984);
    // A GPU handle has no instance IDs and no parent.
    unsafe {
        let mut id = 0;
        assert_eq!(
            nvml.lib()
                .nvmlDeviceGetGpuInstanceId(parent.handle(), &mut id),
            nvmlReturn_enum_NVML_ERROR_NOT_SUPPORTED
        );
    }
    assert!(matches!(
        parent.mig_parent_device(),
        Err(NvmlError::NotSupported)
    ));
}

#[test]
fn what_a_mig_device_does_not_answer() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let m = &migs(&nvml.device_by_index(1).unwrap())[0];
    let unsupported = |r: Result<(), NvmlError>| matches!(r, Err(NvmlError::NotSupported));
    assert!(unsupported(m.utilization_rates().map(drop)));
    assert!(unsupported(m.process_utilization_stats(None).map(drop)));
    assert!(unsupported(m.power_usage().map(drop)));
    assert!(unsupported(m.index().map(drop)));
    assert!(unsupported(m.mig_mode().map(drop)));
    assert!(unsupported(m.mig_device_count().map(drop)));
    assert!(unsupported(m.mig_device_by_index(0).map(drop)));
    assert!(unsupported(m.total_energy_consumption().map(drop)));
    assert!(unsupported(m.gpm_sample().map(drop)));
}

#[test]
fn gpm_per_instance() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let parent = nvml.device_by_index(1).unwrap();
    let (a, b) = (
        parent.gpm_mig_sample(3).unwrap(),
        parent.gpm_mig_sample(3).unwrap(),
    );
    let r = gpm_metrics_get(&nvml, &a, &b, &[GpmMetricId::SmUtil]).unwrap();
    assert!((r[0].as_ref().unwrap().value - 90.0).abs() < 1e-9);
    assert!(matches!(
        parent.gpm_mig_sample(1),
        Err(NvmlError::NotSupported)
    ));
}

#[test]
fn handles_across_reloads_and_faults() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let parent = nvml.device_by_index(1).unwrap();
    let second = &migs(&parent)[1];
    assert_eq!(
        second.uuid().unwrap(),
        "MIG-22222222-2222-5222-8222-222222222222"
    );

    // The first instance is destroyed: the handle still names the same instance, which is
    // now MIG device 0.
    let without_first = node().replace(
        &INSTANCES[INSTANCES.find("      - uuid: MIG-1111").unwrap()
            ..INSTANCES.find("      - uuid: MIG-2222").unwrap()],
        "",
    );
    mock.replace(&without_first);
    assert_eq!(
        second.uuid().unwrap(),
        "MIG-22222222-2222-5222-8222-222222222222"
    );
    assert_eq!(
        parent.mig_device_by_index(0).unwrap().uuid().unwrap(),
        second.uuid().unwrap()
    );

    // Its own instance destroyed: the handle is invalid. Back again: it works.
    mock.replace(&node().replace("gpu_instance_id: 1\n", "gpu_instance_id: 5\n"));
    assert!(matches!(second.uuid(), Err(NvmlError::InvalidArg)));
    mock.replace(&node());
    assert!(second.uuid().is_ok());

    // The parent's faults apply to its MIG devices.
    mock.replace(&node().replace(
        "    mig:\n",
        "    errors: {mig: GPU_IS_LOST, memory: NO_PERMISSION}\n    mig:\n",
    ));
    assert!(matches!(parent.mig_device_count(), Err(NvmlError::GpuLost)));
    assert!(matches!(
        parent.mig_device_by_index(0),
        Err(NvmlError::GpuLost)
    ));
    assert!(matches!(
        second.mig_parent_device(),
        Err(NvmlError::GpuLost)
    ));
    assert!(matches!(second.memory_info(), Err(NvmlError::NoPermission)));
    assert!(second.uuid().is_ok());

    // The parent falls off the bus.
    mock.replace(&scenario(&[device("GPU-plain", 1, "")]));
    assert!(matches!(second.uuid(), Err(NvmlError::GpuLost)));
}

#[test]
fn a_delayed_mig_enumeration() {
    let mock = Mock::new(&node().replace("    mig:\n", "    delays_ms: {mig: 300}\n    mig:\n"));
    let nvml = mock.init().unwrap();
    let parent = nvml.device_by_index(1).unwrap();
    let start = std::time::Instant::now();
    assert_eq!(parent.mig_device_count().unwrap(), 7);
    assert!(start.elapsed() >= std::time::Duration::from_millis(300));
}
