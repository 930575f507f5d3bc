//! Every export has exactly the C signature that `nvml-wrapper-sys` loads it as: this file
//! only compiles if each mock function coerces to the type of its `NvmlLib` field.

use std::marker::PhantomData;

use nvidia_ml_mock::api::{
    device::*, events::*, fields::*, gpm::*, health::*, limits::*, mig::*, processes::*, system::*,
};
use nvml_wrapper_sys::bindings::NvmlLib;

/// The function-pointer type of one `NvmlLib` field.
fn field<T, E>(_: for<'a> fn(&'a NvmlLib) -> &'a Result<T, E>) -> PhantomData<T> {
    PhantomData
}

/// Compiles only if `export` coerces to `T`.
fn is<T>(_: PhantomData<T>, _export: T) {}

macro_rules! same_signatures {
    ($($name:ident),* $(,)?) => { $( is(field(|lib| &lib.$name), $name); )* };
}

#[test]
fn exports_match_nvml_wrapper_sys() {
    same_signatures!(
        // system
        nvmlInit_v2,
        nvmlInitWithFlags,
        nvmlShutdown,
        nvmlErrorString,
        nvmlSystemGetDriverVersion,
        nvmlSystemGetNVMLVersion,
        nvmlDeviceGetCount_v2,
        // device
        nvmlDeviceGetHandleByIndex_v2,
        nvmlDeviceGetHandleByUUID,
        nvmlDeviceGetIndex,
        nvmlDeviceGetUUID,
        nvmlDeviceGetName,
        nvmlDeviceGetPciInfo_v3,
        nvmlDeviceGetMemoryInfo,
        nvmlDeviceGetMemoryInfo_v2,
        nvmlDeviceGetUtilizationRates,
        nvmlDeviceGetPowerUsage,
        nvmlDeviceGetTemperature,
        nvmlDeviceGetClockInfo,
        // processes
        nvmlDeviceGetComputeRunningProcesses_v3,
        nvmlDeviceGetMPSComputeRunningProcesses_v3,
        nvmlDeviceGetProcessUtilization,
        nvmlDeviceGetProcessesUtilizationInfo,
        // gpm
        nvmlGpmQueryDeviceSupport,
        nvmlGpmSampleAlloc,
        nvmlGpmSampleFree,
        nvmlGpmSampleGet,
        nvmlGpmMigSampleGet,
        nvmlGpmMetricsGet,
        // health
        nvmlDeviceGetTotalEnergyConsumption,
        nvmlDeviceGetTotalEccErrors,
        nvmlDeviceGetEccMode,
        nvmlDeviceGetCurrentClocksEventReasons,
        nvmlDeviceGetCurrentClocksThrottleReasons,
        nvmlDeviceGetSupportedClocksEventReasons,
        nvmlDeviceGetSupportedClocksThrottleReasons,
        nvmlDeviceGetPcieThroughput,
        nvmlDeviceGetPcieReplayCounter,
        nvmlDeviceGetEncoderUtilization,
        nvmlDeviceGetDecoderUtilization,
        // limits
        nvmlDeviceGetEnforcedPowerLimit,
        nvmlDeviceGetRemappedRows,
        nvmlDeviceGetViolationStatus,
        // fields
        nvmlDeviceGetFieldValues,
        // events
        nvmlEventSetCreate,
        nvmlEventSetFree,
        nvmlDeviceGetSupportedEventTypes,
        nvmlDeviceRegisterEvents,
        nvmlEventSetWait_v2,
        // mig
        nvmlDeviceGetMigMode,
        nvmlDeviceGetMaxMigDeviceCount,
        nvmlDeviceGetMigDeviceHandleByIndex,
        nvmlDeviceIsMigDeviceHandle,
        nvmlDeviceGetDeviceHandleFromMigDeviceHandle,
        nvmlDeviceGetGpuInstanceId,
        nvmlDeviceGetComputeInstanceId,
    );
}
