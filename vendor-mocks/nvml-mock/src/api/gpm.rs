//! GPU Performance Monitoring: device support, sample buffers and metrics.
//!
//! A sample is a heap block the mock hands out as `nvmlGpmSample_t`. The addresses of live
//! samples are kept in a registry and every use is checked against it under its lock, so a
//! stale, foreign or double-freed handle is `INVALID_ARGUMENT`, never undefined behaviour.
//! `nvmlGpmSampleGet` records which device (or MIG instance) the sample is of and copies its
//! scenario `gpm` values; `nvmlGpmMetricsGet` answers from the second sample.

use std::collections::BTreeSet;
use std::ffi::{c_char, c_uint, CStr};
use std::sync::{Mutex, MutexGuard, PoisonError};

use nvml_wrapper_sys::bindings::*;

use super::{device_call, in_out, inject, Price};
use crate::codes::{
    NvmlResult, ARGUMENT_VERSION_MISMATCH, GPU_IS_LOST, INVALID_ARGUMENT, NOT_SUPPORTED, SUCCESS,
};
use crate::ffi_guard;
use crate::scenario::{CostKey, Family, Gpm};
use crate::state;

/// What one sample holds once filled.
#[derive(Debug, Clone, Copy)]
struct Taken {
    /// Index of the device it was taken on; its `gpm` delay and error apply to metrics too.
    device: usize,
    values: Gpm,
}

/// The heap block behind an `nvmlGpmSample_t`.
#[derive(Debug, Default)]
struct SampleData {
    taken: Option<Taken>,
}

/// Addresses of the samples allocated and not yet freed.
static LIVE: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

fn live() -> MutexGuard<'static, BTreeSet<usize>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` on a live sample, holding the registry lock so it cannot be freed meanwhile.
fn with_sample<R>(sample: nvmlGpmSample_t, f: impl FnOnce(&mut SampleData) -> R) -> NvmlResult<R> {
    let guard = live();
    if !guard.contains(&sample.addr()) {
        return Err(INVALID_ARGUMENT);
    }
    // SAFETY: the address is in the registry, so it came from `Box::into_raw` in
    // `nvmlGpmSampleAlloc` and has not been freed; the lock keeps it that way.
    let data = unsafe { &mut *sample.cast::<SampleData>() };
    Ok(f(data))
}

/// `isSupportedDevice` is 1 when the device has `gpm` in the scenario. `version` must be
/// `NVML_GPM_SUPPORT_VERSION`.
#[no_mangle]
pub unsafe extern "C" fn nvmlGpmQueryDeviceSupport(
    device: nvmlDevice_t,
    gpmSupport: *mut nvmlGpmSupport_t,
) -> nvmlReturn_t {
    device_call(device, Family::Gpm, |d, _| {
        // SAFETY: NVML's contract: NULL or a valid struct.
        let support = unsafe { in_out(gpmSupport) }?;
        if support.version != NVML_GPM_SUPPORT_VERSION {
            return Err(ARGUMENT_VERSION_MISMATCH);
        }
        support.isSupportedDevice = c_uint::from(d.gpm.is_some());
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlGpmSampleAlloc(gpmSample: *mut nvmlGpmSample_t) -> nvmlReturn_t {
    ffi_guard(|| {
        state::snapshot()?;
        if gpmSample.is_null() {
            return Err(INVALID_ARGUMENT);
        }
        let ptr = Box::into_raw(Box::<SampleData>::default());
        live().insert(ptr.addr());
        // SAFETY: checked non-NULL; NVML's contract makes it writable.
        unsafe { gpmSample.write(ptr.cast::<nvmlGpmSample_st>()) };
        Ok(())
    })
}

/// Frees a sample from `nvmlGpmSampleAlloc`. Works after `nvmlShutdown` too, so nothing
/// leaks; an unknown or already freed handle is `INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn nvmlGpmSampleFree(gpmSample: nvmlGpmSample_t) -> nvmlReturn_t {
    ffi_guard(|| {
        let removed = live().remove(&gpmSample.addr());
        if !removed {
            return Err(INVALID_ARGUMENT);
        }
        // SAFETY: it was live, so it is a `Box<SampleData>` from `nvmlGpmSampleAlloc`, and
        // removing it from the registry made this the only release.
        drop(unsafe { Box::from_raw(gpmSample.cast::<SampleData>()) });
        Ok(())
    })
}

/// `NOT_SUPPORTED` unless the device has `gpm`.
#[no_mangle]
pub unsafe extern "C" fn nvmlGpmSampleGet(
    device: nvmlDevice_t,
    gpmSample: nvmlGpmSample_t,
) -> nvmlReturn_t {
    device_call(device, Family::Gpm, |d, index| {
        let values = d.gpm.ok_or(NOT_SUPPORTED)?;
        with_sample(gpmSample, |s| {
            s.taken = Some(Taken {
                device: index,
                values,
            })
        })
    })
}

/// A sample of one MIG GPU instance: `NOT_SUPPORTED` unless the device has `mig`, and
/// unless that instance has `gpm`; an unknown `gpuInstanceId` is `INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn nvmlGpmMigSampleGet(
    device: nvmlDevice_t,
    gpuInstanceId: c_uint,
    gpmSample: nvmlGpmSample_t,
) -> nvmlReturn_t {
    device_call(device, Family::Gpm, |d, index| {
        let instances = d.mig.as_ref().ok_or(NOT_SUPPORTED)?;
        let instance = instances
            .iter()
            .find(|m| m.gpu_instance_id == gpuInstanceId)
            .ok_or(INVALID_ARGUMENT)?;
        let values = instance.gpm.ok_or(NOT_SUPPORTED)?;
        with_sample(gpmSample, |s| {
            s.taken = Some(Taken {
                device: index,
                values,
            })
        })
    })
}

/// Fills each requested metric from the second sample's values. NVML reports these metrics
/// in percent, so a ratio of 0.6 is 60.0. Metrics the mock does not model, or that the
/// scenario leaves out, get `NOT_SUPPORTED` in their own `nvmlReturn`.
///
/// Only the first `numMetrics` entries are touched, through raw pointers: a caller built
/// against an older `nvml.h` has a shorter `metrics` array than these bindings.
#[no_mangle]
pub unsafe extern "C" fn nvmlGpmMetricsGet(metricsGet: *mut nvmlGpmMetricsGet_t) -> nvmlReturn_t {
    ffi_guard(|| {
        let scenario = state::snapshot()?;
        if metricsGet.is_null() {
            return Err(INVALID_ARGUMENT);
        }
        // SAFETY: non-NULL; NVML's contract makes the header fields readable. Field reads
        // through the raw pointer, never a reference to the whole (maybe shorter) struct.
        let (version, count, sample1, sample2) = unsafe {
            let r = metricsGet;
            (
                (*r).version,
                (*r).numMetrics as usize,
                (*r).sample1,
                (*r).sample2,
            )
        };
        if version != NVML_GPM_METRICS_GET_VERSION {
            return Err(ARGUMENT_VERSION_MISMATCH);
        }
        if count > nvmlGpmMetricId_t_NVML_GPM_METRIC_MAX as usize {
            return Err(INVALID_ARGUMENT);
        }
        with_sample(sample1, |s| s.taken)?.ok_or(INVALID_ARGUMENT)?;
        let taken = with_sample(sample2, |s| s.taken)?.ok_or(INVALID_ARGUMENT)?;
        let dev = scenario.devices.get(taken.device).ok_or(GPU_IS_LOST)?;
        Price {
            key: CostKey::GpmMetrics,
            times: 1,
        }
        .pay(&scenario);
        inject(&dev.delays_ms, &dev.errors, Family::Gpm)?;
        // SAFETY: the caller's array holds `numMetrics` entries (NVML's contract).
        let first =
            unsafe { std::ptr::addr_of_mut!((*metricsGet).metrics) }.cast::<nvmlGpmMetric_t>();
        for i in 0..count {
            // SAFETY: `i < numMetrics`, see above.
            fill_metric(unsafe { &mut *first.add(i) }, &taken.values);
        }
        Ok(())
    })
}

fn fill_metric(metric: &mut nvmlGpmMetric_t, values: &Gpm) {
    let known = METRICS.iter().find(|m| m.id == metric.metricId);
    let value = known.and_then(|m| (m.value)(values));
    match (known, value) {
        (Some(m), Some(ratio)) => {
            metric.nvmlReturn = SUCCESS;
            metric.value = ratio * 100.0;
            metric.metricInfo = nvmlGpmMetric_t__bindgen_ty_1 {
                shortName: static_c(m.short_name),
                longName: static_c(m.long_name),
                unit: static_c(c"%"),
            };
        }
        _ => {
            metric.nvmlReturn = NOT_SUPPORTED;
            metric.value = 0.0;
            metric.metricInfo = nvmlGpmMetric_t__bindgen_ty_1 {
                shortName: std::ptr::null_mut(),
                longName: std::ptr::null_mut(),
                unit: std::ptr::null_mut(),
            };
        }
    }
}

/// NVML's `metricInfo` strings are `char *`, but callers only read them.
fn static_c(s: &'static CStr) -> *mut c_char {
    s.as_ptr().cast_mut()
}

/// A GPM metric the mock models, and which scenario ratio it reports.
struct Metric {
    id: nvmlGpmMetricId_t,
    short_name: &'static CStr,
    long_name: &'static CStr,
    value: fn(&Gpm) -> Option<f64>,
}

/// nvml.h's `NVML_GPM_METRIC_*` ids: graphics 1, SM 2, occupancy 3, any tensor 5, DRAM 10,
/// FP64/FP32/FP16 11-13.
const METRICS: &[Metric] = &[
    Metric {
        id: nvmlGpmMetricId_t_NVML_GPM_METRIC_GRAPHICS_UTIL,
        short_name: c"gr_util",
        long_name: c"Graphics Utilization",
        value: |g| g.graphics_active,
    },
    Metric {
        id: nvmlGpmMetricId_t_NVML_GPM_METRIC_SM_UTIL,
        short_name: c"sm_util",
        long_name: c"SM Utilization",
        value: |g| g.sm_active,
    },
    Metric {
        id: nvmlGpmMetricId_t_NVML_GPM_METRIC_SM_OCCUPANCY,
        short_name: c"sm_occupancy",
        long_name: c"SM Occupancy",
        value: |g| g.sm_occupancy,
    },
    Metric {
        id: nvmlGpmMetricId_t_NVML_GPM_METRIC_ANY_TENSOR_UTIL,
        short_name: c"any_tensor_util",
        long_name: c"Any Tensor Utilization",
        value: |g| g.tensor_active,
    },
    Metric {
        id: nvmlGpmMetricId_t_NVML_GPM_METRIC_DRAM_BW_UTIL,
        short_name: c"dram_bw_util",
        long_name: c"DRAM Bandwidth Utilization",
        value: |g| g.dram_active,
    },
    Metric {
        id: nvmlGpmMetricId_t_NVML_GPM_METRIC_FP64_UTIL,
        short_name: c"fp64_util",
        long_name: c"FP64 Utilization",
        value: |g| g.fp64_active,
    },
    Metric {
        id: nvmlGpmMetricId_t_NVML_GPM_METRIC_FP32_UTIL,
        short_name: c"fp32_util",
        long_name: c"FP32 Utilization",
        value: |g| g.fp32_active,
    },
    Metric {
        id: nvmlGpmMetricId_t_NVML_GPM_METRIC_FP16_UTIL,
        short_name: c"fp16_util",
        long_name: c"FP16 Utilization",
        value: |g| g.fp16_active,
    },
];
