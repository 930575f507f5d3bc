//! A mock `librocm_smi64` (ROCm SMI): the functions the agent's `rocm-smi` feature calls, with
//! the C signatures of `rocm_smi.h` 5.x/6.x, answering from a scenario file named by
//! `MOCK_ROCM_SMI_SCENARIO` (see `scenario.rs`). Tests put it on `LD_LIBRARY_PATH` as
//! `librocm_smi64.so.1`, the soname the agent is linked against.
//!
//! Every call checks its pointers and device index (`INVALID_ARGS`), answers `INIT_ERROR`
//! outside `rsmi_init` .. `rsmi_shut_down`, `NOT_SUPPORTED` for a value the scenario leaves
//! out, and the status the scenario's `errors` names for that function, after the delay its
//! `delays_ms` names.

pub mod scenario;
pub mod state;
pub mod status;

use std::ffi::c_char;

use scenario::Device;
use status::{Status, INSUFFICIENT_SIZE, INVALID_ARGS, NOT_SUPPORTED, SUCCESS};

pub use state::SCENARIO_ENV;

/// `rsmi_error_count_t`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct ErrorCount {
    pub correctable_err: u64,
    pub uncorrectable_err: u64,
}

fn code(r: Result<(), Status>) -> u32 {
    match r {
        Ok(()) => SUCCESS.0,
        Err(s) => s.0,
    }
}

/// Runs `f` on device `dv` unless the scenario makes `call` fail.
fn with_device(dv: u32, call: &str, f: impl FnOnce(&Device) -> Result<(), Status>) -> u32 {
    code((|| {
        let scenario = state::snapshot()?;
        let device = scenario.devices.get(dv as usize).ok_or(INVALID_ARGS)?;
        if let Some(ms) = device.delays_ms.get(call) {
            // The scenario is a snapshot: other calls go on meanwhile.
            std::thread::sleep(std::time::Duration::from_millis(*ms));
        }
        if let Some(status) = device.error_status.get(call) {
            return Err(*status);
        }
        f(device)
    })())
}

/// Writes `value` through `out`, or `NOT_SUPPORTED` for an absent value.
///
/// # Safety
/// `out` is null or valid for a write of `T`.
unsafe fn put<T>(out: *mut T, value: Option<T>) -> Result<(), Status> {
    if out.is_null() {
        return Err(INVALID_ARGS);
    }
    let value = value.ok_or(NOT_SUPPORTED)?;
    // SAFETY: non-null, and the caller passes a pointer valid for a write of T.
    unsafe { out.write(value) };
    Ok(())
}

#[no_mangle]
pub extern "C" fn rsmi_init(_init_flags: u64) -> u32 {
    code(state::init())
}

#[no_mangle]
pub extern "C" fn rsmi_shut_down() -> u32 {
    code(state::shut_down())
}

/// # Safety
/// `num_devices` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn rsmi_num_monitor_devices(num_devices: *mut u32) -> u32 {
    code((|| {
        let scenario = state::snapshot()?;
        let n = u32::try_from(scenario.devices.len()).unwrap_or(u32::MAX);
        // SAFETY: as the caller promises.
        unsafe { put(num_devices, Some(n)) }
    })())
}

/// # Safety
/// `bdfid` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn rsmi_dev_pci_id_get(dv_ind: u32, bdfid: *mut u64) -> u32 {
    // SAFETY: as the caller promises.
    with_device(dv_ind, "rsmi_dev_pci_id_get", |d| unsafe {
        put(bdfid, Some(d.bdfid))
    })
}

/// Copies the name, truncated to `len - 1` bytes and NUL-terminated; `INSUFFICIENT_SIZE` when
/// it was truncated, as the real library answers.
///
/// # Safety
/// `name` is null or valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rsmi_dev_name_get(dv_ind: u32, name: *mut c_char, len: usize) -> u32 {
    with_device(dv_ind, "rsmi_dev_name_get", |d| {
        if name.is_null() || len == 0 {
            return Err(INVALID_ARGS);
        }
        let text = d.name.as_deref().ok_or(NOT_SUPPORTED)?.as_bytes();
        let n = text.len().min(len - 1);
        // SAFETY: `name` is valid for `len` bytes and `n < len`.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), name.cast::<u8>(), n);
            name.add(n).write(0);
        }
        if n < text.len() {
            Err(INSUFFICIENT_SIZE)
        } else {
            Ok(())
        }
    })
}

/// # Safety
/// `busy_percent` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn rsmi_dev_busy_percent_get(dv_ind: u32, busy_percent: *mut u32) -> u32 {
    // SAFETY: as the caller promises.
    with_device(dv_ind, "rsmi_dev_busy_percent_get", |d| unsafe {
        put(busy_percent, d.busy_percent)
    })
}

/// # Safety
/// `busy_percent` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn rsmi_dev_memory_busy_percent_get(
    dv_ind: u32,
    busy_percent: *mut u32,
) -> u32 {
    with_device(dv_ind, "rsmi_dev_memory_busy_percent_get", |d| {
        // SAFETY: as the caller promises.
        unsafe { put(busy_percent, d.memory_busy_percent) }
    })
}

/// VRAM only (`RSMI_MEM_TYPE_VRAM` = 0); visible VRAM and GTT are not supported.
///
/// # Safety
/// `used` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn rsmi_dev_memory_usage_get(
    dv_ind: u32,
    mem_type: u32,
    used: *mut u64,
) -> u32 {
    with_device(dv_ind, "rsmi_dev_memory_usage_get", |d| {
        let v = if mem_type == 0 {
            d.vram_used_bytes
        } else {
            None
        };
        // SAFETY: as the caller promises.
        unsafe { put(used, v) }
    })
}

/// # Safety
/// `total` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn rsmi_dev_memory_total_get(
    dv_ind: u32,
    mem_type: u32,
    total: *mut u64,
) -> u32 {
    with_device(dv_ind, "rsmi_dev_memory_total_get", |d| {
        let v = if mem_type == 0 {
            d.vram_total_bytes
        } else {
            None
        };
        // SAFETY: as the caller promises.
        unsafe { put(total, v) }
    })
}

/// Sensor 0 only, in microwatts.
///
/// # Safety
/// `power` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn rsmi_dev_power_ave_get(
    dv_ind: u32,
    sensor_ind: u32,
    power: *mut u64,
) -> u32 {
    with_device(dv_ind, "rsmi_dev_power_ave_get", |d| {
        if sensor_ind != 0 {
            return Err(INVALID_ARGS);
        }
        // SAFETY: as the caller promises.
        unsafe { put(power, d.power_microwatts) }
    })
}

/// `RSMI_TEMP_CURRENT` (0) of the edge (0), junction (1) or memory (2) sensor, in
/// millidegrees Celsius.
///
/// # Safety
/// `temperature` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn rsmi_dev_temp_metric_get(
    dv_ind: u32,
    sensor_type: u32,
    metric: u32,
    temperature: *mut i64,
) -> u32 {
    with_device(dv_ind, "rsmi_dev_temp_metric_get", |d| {
        let t = d.temperature_millicelsius;
        let v = match (sensor_type, metric) {
            (0, 0) => t.edge,
            (1, 0) => t.junction,
            (2, 0) => t.memory,
            (s, _) if s > 6 => return Err(INVALID_ARGS),
            _ => None,
        };
        // SAFETY: as the caller promises.
        unsafe { put(temperature, v) }
    })
}

/// The accumulated energy counter, its resolution (microjoules per count) and a timestamp
/// (nanoseconds since the Unix epoch, standing in for the GPU's clock).
///
/// # Safety
/// Each pointer is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn rsmi_dev_energy_count_get(
    dv_ind: u32,
    power: *mut u64,
    counter_resolution: *mut f32,
    timestamp: *mut u64,
) -> u32 {
    with_device(dv_ind, "rsmi_dev_energy_count_get", |d| {
        if power.is_null() || counter_resolution.is_null() || timestamp.is_null() {
            return Err(INVALID_ARGS);
        }
        let e = d.energy.ok_or(NOT_SUPPORTED)?;
        let ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        // SAFETY: all three checked non-null; the caller promises they are valid.
        unsafe {
            power.write(e.counter);
            counter_resolution.write(e.resolution_microjoules);
            timestamp.write(ns);
        }
        Ok(())
    })
}

/// # Safety
/// `counter` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn rsmi_dev_pci_replay_counter_get(dv_ind: u32, counter: *mut u64) -> u32 {
    // SAFETY: as the caller promises.
    with_device(dv_ind, "rsmi_dev_pci_replay_counter_get", |d| unsafe {
        put(counter, d.pcie_replays)
    })
}

/// The blocks with ECC enabled, as a mask of `rsmi_gpu_block_t` bits; `NOT_SUPPORTED` where
/// the scenario lists none.
///
/// # Safety
/// `enabled_blocks` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn rsmi_dev_ecc_enabled_get(dv_ind: u32, enabled_blocks: *mut u64) -> u32 {
    with_device(dv_ind, "rsmi_dev_ecc_enabled_get", |d| {
        let mask = (d.ecc_mask != 0).then_some(d.ecc_mask);
        // SAFETY: as the caller promises.
        unsafe { put(enabled_blocks, mask) }
    })
}

/// # Safety
/// `ec` is null or valid for a write of `rsmi_error_count_t`.
#[no_mangle]
pub unsafe extern "C" fn rsmi_dev_ecc_count_get(
    dv_ind: u32,
    block: u64,
    ec: *mut ErrorCount,
) -> u32 {
    with_device(dv_ind, "rsmi_dev_ecc_count_get", |d| {
        if block == 0 || !block.is_power_of_two() {
            return Err(INVALID_ARGS);
        }
        let v = d.ecc_by_bit.get(&block).map(|c| ErrorCount {
            correctable_err: c.correctable,
            uncorrectable_err: c.uncorrectable,
        });
        // SAFETY: as the caller promises.
        unsafe { put(ec, v) }
    })
}

/// # Safety
/// `status_string` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn rsmi_status_string(status: u32, status_string: *mut *const c_char) -> u32 {
    let name = Status(status).c_name().map(|c| c.as_ptr());
    match name {
        // SAFETY: as the caller promises; the string is static.
        Some(p) => code(unsafe { put(status_string, Some(p)) }),
        None => INVALID_ARGS.0,
    }
}
