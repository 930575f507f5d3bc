//! A device's MPS clients, from `nvmlDeviceGetMPSComputeRunningProcesses_v3` (docs/attribution.md, rule 7).
//!
//! Under MPS the compute list holds the `nvidia-cuda-mps-server` and its clients, each with its own
//! memory; the MPS list holds the clients only (measured on an H200: docs/measurements.md, "MPS").
//! The call is made with NVML's two-call size protocol, with headroom for clients that start
//! between the two calls (nvml-wrapper's own wrapper has none and fails then).

use std::mem;
use std::ptr;

use nvml_wrapper::error::{nvml_sym, nvml_try, NvmlError};
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::{Device, Nvml};
use nvml_wrapper_sys::bindings::{nvmlProcessInfo_t, nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE};

/// Whether the device answers the MPS list; once it says `NOT_SUPPORTED` (or the driver lacks
/// the symbol) it is not asked again until the device is enumerated afresh.
#[derive(Debug)]
pub(super) struct MpsClients {
    supported: bool,
}

impl MpsClients {
    pub fn new() -> Self {
        MpsClients { supported: true }
    }

    /// The device's MPS clients. `Ok(None)`: the device does not report them. An empty list:
    /// no MPS client runs there (the usual answer on a GPU without MPS).
    pub fn poll(
        &mut self,
        nvml: &Nvml,
        device: &Device<'_>,
    ) -> Result<Option<Vec<ProcessInfo>>, NvmlError> {
        if !self.supported {
            return Ok(None);
        }
        match mps_processes(nvml, device) {
            Ok(v) => Ok(Some(v)),
            Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) => {
                self.supported = false;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Clients that may start between the count and the list.
const HEADROOM: usize = 8;

fn mps_processes(nvml: &Nvml, device: &Device<'_>) -> Result<Vec<ProcessInfo>, NvmlError> {
    let sym = nvml_sym(
        nvml.lib()
            .nvmlDeviceGetMPSComputeRunningProcesses_v3
            .as_ref(),
    )?;
    // SAFETY: the handle comes from this NVML instance and outlives the call; the buffer holds
    // the `count` entries NVML is told of, and NVML writes at most that many.
    unsafe {
        let handle = device.handle();
        let mut count: u32 = 0;
        let rc = sym(handle, &mut count, ptr::null_mut());
        if rc != nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE {
            // SUCCESS with a NULL buffer: no client.
            nvml_try(rc)?;
            return Ok(Vec::new());
        }
        let capacity = count as usize + HEADROOM;
        let mut buf: Vec<nvmlProcessInfo_t> = vec![mem::zeroed(); capacity];
        let mut count = capacity as u32;
        nvml_try(sym(handle, &mut count, buf.as_mut_ptr()))?;
        buf.truncate((count as usize).min(capacity));
        Ok(buf.into_iter().map(ProcessInfo::from).collect())
    }
}
