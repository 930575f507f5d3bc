//! Per-process calls: the running compute processes, the MPS clients and the two per-process
//! utilization calls, with NVML's two-call size protocol.
//!
//! In MIG mode, processes live in the instances: a MIG device lists its instance's
//! processes, and its parent GPU lists every instance's, each with its `gpuInstanceId` and
//! `computeInstanceId`. Per-process utilization is `NOT_SUPPORTED` on a MIG device.
//!
//! Utilization samples are synthesized: every call makes one sample per scenario process,
//! stamped with the current time (microseconds since the Unix epoch), or with the newest
//! sample of the scenario's `process_utilization_buffer` (the driver's buffer, see
//! [`crate::scenario::SampleBuffer`]), and returns them only if that stamp is newer than the
//! caller's `lastSeenTimeStamp`; otherwise `NOT_FOUND`, which is also the answer for a device
//! without processes.
//!
//! Under MPS (a device's `mps_server`), as NVML answered on an H200 (docs/measurements.md, "MPS"):
//! the compute list holds the server, then its clients (`processes`); the MPS list holds the
//! clients; and every utilization sample is the server's, with the clients' summed SM and memory
//! utilization (at most 100).

use std::ffi::{c_uint, c_ulonglong};
use std::mem::size_of;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nvml_wrapper_sys::bindings::*;

use super::{c_count, device_call, in_out, target_call, Target};
use crate::codes::{
    NvmlResult, ARGUMENT_VERSION_MISMATCH, INSUFFICIENT_SIZE, INVALID_ARGUMENT, NOT_FOUND,
    NOT_SUPPORTED,
};
use crate::scenario::{Device, Family, MpsServer, Process, ProcessUtilization};

/// `NVML_STRUCT_VERSION(ProcessesUtilizationInfo, 1)` from `nvml.h`.
const PROCESSES_UTILIZATION_INFO_V1_VERSION: u32 =
    (size_of::<nvmlProcessesUtilizationInfo_v1_t>() as u32) | (1 << 24);

/// `gpuInstanceId` / `computeInstanceId` of a process outside MIG.
const NOT_AVAILABLE: u32 = NVML_VALUE_NOT_AVAILABLE as u32;

/// The two-call protocol: reports `needed` through `count`, and is `INSUFFICIENT_SIZE` when
/// the caller's buffer (NULL counts as none) holds fewer entries. The caller then writes.
///
/// # Safety
/// `count` is NULL or valid for reads and writes.
unsafe fn size_protocol(count: *mut c_uint, buffer_is_null: bool, needed: usize) -> NvmlResult {
    // SAFETY: forwarded from the caller.
    let count = unsafe { in_out(count) }?;
    let capacity = if buffer_is_null { 0 } else { *count as usize };
    *count = c_count(needed);
    if capacity < needed {
        return Err(INSUFFICIENT_SIZE);
    }
    Ok(())
}

/// `NULL` buffer: the count, and `INSUFFICIENT_SIZE` if there are processes (`SUCCESS` with 0
/// if none). A buffer too small: `INSUFFICIENT_SIZE` with the count needed.
///
/// A GPU lists its MPS server if it has one, its own `processes` (instance IDs `0xFFFFFFFF`),
/// then, in MIG mode, every instance's; a MIG device lists its instance's. Instance processes
/// carry their IDs.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetComputeRunningProcesses_v3(
    device: nvmlDevice_t,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
) -> nvmlReturn_t {
    target_call(device, Family::Processes, |t| {
        let list: Vec<nvmlProcessInfo_t> = match t {
            Target::Gpu(d, _) => {
                let server = d.mps_server.as_ref().map(server_process);
                let own = server
                    .iter()
                    .chain(&d.processes)
                    .map(|p| process_info(p, NOT_AVAILABLE, NOT_AVAILABLE));
                let in_instances = d.mig.iter().flatten().flat_map(|m| {
                    m.processes
                        .iter()
                        .map(|p| process_info(p, m.gpu_instance_id, m.compute_instance_id))
                });
                own.chain(in_instances).collect()
            }
            Target::Mig { instance: m, .. } => m
                .processes
                .iter()
                .map(|p| process_info(p, m.gpu_instance_id, m.compute_instance_id))
                .collect(),
        };
        // SAFETY: NVML's contract: `infoCount` is NULL or valid; `infos` holds `*infoCount`.
        unsafe { size_protocol(infoCount, infos.is_null(), list.len()) }?;
        for (i, info) in list.into_iter().enumerate() {
            // SAFETY: `size_protocol` checked the buffer holds that many entries.
            unsafe { infos.add(i).write(info) };
        }
        Ok(())
    })
}

/// The MPS clients: a GPU's `processes` when it has an `mps_server`, else none (`SUCCESS` with
/// a count of 0, as NVML answers on a GPU without MPS). The same size protocol as the compute
/// list. A MIG device has none (the mock models MPS on whole GPUs only).
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMPSComputeRunningProcesses_v3(
    device: nvmlDevice_t,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
) -> nvmlReturn_t {
    target_call(device, Family::Mps, |t| {
        let list: Vec<nvmlProcessInfo_t> = match t {
            Target::Gpu(d, _) if d.mps_server.is_some() => d
                .processes
                .iter()
                .map(|p| process_info(p, NOT_AVAILABLE, NOT_AVAILABLE))
                .collect(),
            Target::Gpu(..) | Target::Mig { .. } => Vec::new(),
        };
        // SAFETY: NVML's contract: `infoCount` is NULL or valid; `infos` holds `*infoCount`.
        unsafe { size_protocol(infoCount, infos.is_null(), list.len()) }?;
        for (i, info) in list.into_iter().enumerate() {
            // SAFETY: `size_protocol` checked the buffer holds that many entries.
            unsafe { infos.add(i).write(info) };
        }
        Ok(())
    })
}

/// The MPS server as a process of the compute list.
fn server_process(s: &MpsServer) -> Process {
    Process {
        pid: s.pid,
        used_memory_bytes: s.used_memory_bytes,
        sm_util_percent: 0,
        mem_util_percent: 0,
    }
}

fn process_info(p: &Process, gpu_instance_id: u32, compute_instance_id: u32) -> nvmlProcessInfo_t {
    nvmlProcessInfo_t {
        pid: p.pid,
        usedGpuMemory: p
            .used_memory_bytes
            .unwrap_or(NVML_VALUE_NOT_AVAILABLE as u64),
        gpuInstanceId: gpu_instance_id,
        computeInstanceId: compute_instance_id,
    }
}

/// `NOT_SUPPORTED` unless `process_utilization: supported`, and on a MIG device.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetProcessUtilization(
    device: nvmlDevice_t,
    utilization: *mut nvmlProcessUtilizationSample_t,
    processSamplesCount: *mut c_uint,
    lastSeenTimeStamp: c_ulonglong,
) -> nvmlReturn_t {
    device_call(device, Family::ProcessUtilization, |d, _| {
        if processSamplesCount.is_null() {
            return Err(INVALID_ARGUMENT);
        }
        if d.process_utilization != ProcessUtilization::Supported {
            return Err(NOT_SUPPORTED);
        }
        let (stamp, processes) = samples(d, lastSeenTimeStamp)?;
        // SAFETY: NVML's contract: `utilization` holds `*processSamplesCount` entries.
        unsafe { size_protocol(processSamplesCount, utilization.is_null(), processes.len()) }?;
        for (i, p) in processes.iter().enumerate() {
            let sample = nvmlProcessUtilizationSample_t {
                pid: p.pid,
                timeStamp: stamp,
                smUtil: p.sm_util_percent,
                memUtil: p.mem_util_percent,
                encUtil: 0,
                decUtil: 0,
            };
            // SAFETY: `size_protocol` checked the buffer's size.
            unsafe { utilization.add(i).write(sample) };
        }
        Ok(())
    })
}

/// The versioned successor of `nvmlDeviceGetProcessUtilization`: `version` must be
/// `NVML_STRUCT_VERSION(ProcessesUtilizationInfo, 1)`, `processSamplesCount` is in/out, a
/// NULL `procUtilArray` asks for the count. Works for `supported` and `info_only`;
/// `NOT_SUPPORTED` on a MIG device.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetProcessesUtilizationInfo(
    device: nvmlDevice_t,
    procesesUtilInfo: *mut nvmlProcessesUtilizationInfo_t,
) -> nvmlReturn_t {
    device_call(device, Family::ProcessUtilization, |d, _| {
        // SAFETY: NVML's contract: NULL or a valid struct.
        let info = unsafe { in_out(procesesUtilInfo) }?;
        if info.version != PROCESSES_UTILIZATION_INFO_V1_VERSION {
            return Err(ARGUMENT_VERSION_MISMATCH);
        }
        if d.process_utilization == ProcessUtilization::NotSupported {
            return Err(NOT_SUPPORTED);
        }
        let (stamp, processes) = samples(d, info.lastSeenTimeStamp)?;
        let array = info.procUtilArray;
        // SAFETY: `processSamplesCount` is a field of a valid struct; `procUtilArray` holds
        // that many entries by NVML's contract.
        unsafe {
            size_protocol(
                &mut info.processSamplesCount,
                array.is_null(),
                processes.len(),
            )
        }?;
        for (i, p) in processes.iter().enumerate() {
            let sample = nvmlProcessUtilizationInfo_v1_t {
                timeStamp: stamp,
                pid: p.pid,
                smUtil: p.sm_util_percent,
                memUtil: p.mem_util_percent,
                encUtil: 0,
                decUtil: 0,
                jpgUtil: 0,
                ofaUtil: 0,
            };
            // SAFETY: `size_protocol` checked the array's size.
            unsafe { array.add(i).write(sample) };
        }
        Ok(())
    })
}

/// The samples a call returns: one per process, stamped with the newest sample of the
/// scenario's `process_utilization_buffer` (else now), or `NOT_FOUND` when there are none
/// newer than `last_seen`. Under MPS, one sample: the server's, with its clients' summed
/// utilization.
fn samples(d: &Device, last_seen: u64) -> NvmlResult<(u64, Vec<Process>)> {
    let stamp = match d.sample_buffer {
        None => sample_stamp(),
        Some(buffer) => {
            let read = buffer.read(now_us(), last_seen);
            if read.lost > 0 && !d.processes.is_empty() {
                crate::state::complain(&format!(
                    "{}: {} per-process utilization samples newer than lastSeenTimeStamp {last_seen} left the {}-sample buffer before this read",
                    d.uuid, read.lost, buffer.samples
                ));
            }
            read.newest.unwrap_or(0)
        }
    };
    if d.processes.is_empty() || stamp <= last_seen {
        return Err(NOT_FOUND);
    }
    let processes = match &d.mps_server {
        None => d.processes.clone(),
        Some(server) => {
            let sum = |f: fn(&Process) -> u32| d.processes.iter().map(f).sum::<u32>().min(100);
            vec![Process {
                sm_util_percent: sum(|p| p.sm_util_percent),
                mem_util_percent: sum(|p| p.mem_util_percent),
                ..server_process(server)
            }]
        }
    };
    Ok((stamp, processes))
}

/// Microseconds since the Unix epoch, strictly increasing across calls, so two calls in the
/// same microsecond still yield samples newer than each other's.
fn sample_stamp() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_us();
    let previous = LAST.fetch_max(now, Ordering::Relaxed);
    if previous >= now {
        // Another call already used this microsecond (or the clock stepped back).
        LAST.fetch_add(1, Ordering::Relaxed) + 1
    } else {
        now
    }
}

/// Microseconds since the Unix epoch (NVML's sample clock).
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
