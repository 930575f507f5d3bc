//! GPM through nvml-wrapper (support, samples, metrics in percent) and the raw sample
//! lifecycle (versions, unknown and double-freed samples).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ptr::null_mut;

use common::{device, scenario, Mock};
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::gpm::gpm_metrics_get;
use nvml_wrapper_sys::bindings::*;

fn node() -> String {
    scenario(&[
        device(
            "GPU-gpm",
            1,
            "    gpm: {sm_active: 0.6, sm_occupancy: 0.4, tensor_active: 0.3, dram_active: 0.5}\n",
        ),
        device("GPU-none", 2, ""),
        device("GPU-part", 3, "    gpm: {sm_active: 0.25}\n"),
        device(
            "GPU-mig",
            4,
            "    mig:
      - {uuid: MIG-a, gpu_instance_id: 1, compute_instance_id: 0, profile: 1g.10gb,
         memory_total_bytes: 10, memory_used_bytes: 1, gpm: {sm_active: 0.9}}
      - {uuid: MIG-b, gpu_instance_id: 2, compute_instance_id: 0, profile: 1g.10gb,
         memory_total_bytes: 10, memory_used_bytes: 1}
",
        ),
    ])
}

const ALL: [GpmMetricId; 5] = [
    GpmMetricId::SmUtil,
    GpmMetricId::SmOccupancy,
    GpmMetricId::AnyTensorUtil,
    GpmMetricId::DramBwUtil,
    GpmMetricId::GraphicsUtil,
];

#[test]
fn metrics_are_percent() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    assert!(d.gpm_support().unwrap());

    let first = d.gpm_sample().unwrap();
    let second = d.gpm_sample().unwrap();
    let results = gpm_metrics_get(&nvml, &first, &second, &ALL).unwrap();
    let values: Vec<f64> = results[..4]
        .iter()
        .map(|r| r.as_ref().unwrap().value)
        .collect();
    for (got, want) in values.iter().zip([60.0, 40.0, 30.0, 50.0]) {
        assert!((got - want).abs() < 1e-9, "{values:?}");
    }
    let info = &results[0].as_ref().unwrap().metric_info;
    assert!(!info.short_name.is_empty() && !info.long_name.is_empty());
    assert_eq!(info.unit, "%");
    assert_eq!(results[0].as_ref().unwrap().metric_id, GpmMetricId::SmUtil);
    // A metric the mock does not model fails on its own.
    assert!(matches!(results[4], Err(NvmlError::NotSupported)));
    first.free().unwrap();
}

#[test]
fn devices_without_gpm_or_with_some_metrics() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let none = nvml.device_by_index(1).unwrap();
    assert!(!none.gpm_support().unwrap());
    assert!(matches!(none.gpm_sample(), Err(NvmlError::NotSupported)));

    let part = nvml.device_by_index(2).unwrap();
    let (a, b) = (part.gpm_sample().unwrap(), part.gpm_sample().unwrap());
    let results = gpm_metrics_get(&nvml, &a, &b, &ALL).unwrap();
    assert!((results[0].as_ref().unwrap().value - 25.0).abs() < 1e-9);
    assert!(results[1..]
        .iter()
        .all(|r| matches!(r, Err(NvmlError::NotSupported))));
}

#[test]
fn mig_samples() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(3).unwrap();
    let (a, b) = (d.gpm_mig_sample(1).unwrap(), d.gpm_mig_sample(1).unwrap());
    let results = gpm_metrics_get(&nvml, &a, &b, &[GpmMetricId::SmUtil]).unwrap();
    assert!((results[0].as_ref().unwrap().value - 90.0).abs() < 1e-9);
    assert!(matches!(d.gpm_mig_sample(2), Err(NvmlError::NotSupported)));
    assert!(matches!(d.gpm_mig_sample(7), Err(NvmlError::InvalidArg)));
    let plain = nvml.device_by_index(0).unwrap();
    assert!(matches!(
        plain.gpm_mig_sample(1),
        Err(NvmlError::NotSupported)
    ));
}

#[test]
fn raw_sample_lifecycle() {
    let mock = Mock::new(&node());
    let lib = mock.raw();
    assert_eq!(mock.raw_init(&lib), 0);
    unsafe {
        let mut dev = null_mut();
        assert_eq!(lib.nvmlDeviceGetHandleByIndex_v2(0, &mut dev), 0);

        let mut support = nvmlGpmSupport_t {
            version: 2,
            isSupportedDevice: 0,
        };
        assert_eq!(
            lib.nvmlGpmQueryDeviceSupport(dev, &mut support),
            nvmlReturn_enum_NVML_ERROR_ARGUMENT_VERSION_MISMATCH
        );

        let (mut s1, mut s2) = (null_mut(), null_mut());
        assert_eq!(lib.nvmlGpmSampleAlloc(&mut s1), 0);
        assert_eq!(lib.nvmlGpmSampleAlloc(&mut s2), 0);
        assert_eq!(
            lib.nvmlGpmSampleAlloc(null_mut()),
            nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT
        );

        let mut request: nvmlGpmMetricsGet_t = std::mem::zeroed();
        request.version = NVML_GPM_METRICS_GET_VERSION;
        request.numMetrics = 1;
        request.sample1 = s1;
        request.sample2 = s2;
        request.metrics[0].metricId = nvmlGpmMetricId_t_NVML_GPM_METRIC_SM_UTIL;
        // Samples not taken yet.
        assert_eq!(
            lib.nvmlGpmMetricsGet(&mut request),
            nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT
        );
        assert_eq!(lib.nvmlGpmSampleGet(dev, s1), 0);
        assert_eq!(lib.nvmlGpmSampleGet(dev, s2), 0);
        assert_eq!(lib.nvmlGpmMetricsGet(&mut request), 0);
        assert_eq!(request.metrics[0].nvmlReturn, 0);
        request.version = 7;
        assert_eq!(
            lib.nvmlGpmMetricsGet(&mut request),
            nvmlReturn_enum_NVML_ERROR_ARGUMENT_VERSION_MISMATCH
        );

        assert_eq!(lib.nvmlGpmSampleFree(s1), 0);
        // Freed, foreign and NULL samples are refused, never dereferenced.
        assert_eq!(
            lib.nvmlGpmSampleFree(s1),
            nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT
        );
        assert_eq!(
            lib.nvmlGpmSampleGet(dev, s1),
            nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT
        );
        let mut local = 0u64;
        let foreign = (&mut local as *mut u64).cast::<nvmlGpmSample_st>();
        assert_eq!(
            lib.nvmlGpmSampleFree(foreign),
            nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT
        );
        assert_eq!(
            lib.nvmlGpmSampleFree(null_mut()),
            nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT
        );

        // Freeing after shutdown still works, so nothing leaks.
        assert_eq!(lib.nvmlShutdown(), 0);
        assert_eq!(lib.nvmlGpmSampleFree(s2), 0);
    }
}
