//! Scenario checks beyond what serde enforces: sizes that fit NVML's buffers, values NVML
//! could report, families in the right place, no duplicate UUIDs or pids.

use std::collections::BTreeSet;

use nvml_wrapper_sys::bindings::{
    NVML_DEVICE_NAME_V2_BUFFER_SIZE, NVML_DEVICE_UUID_V2_BUFFER_SIZE, NVML_NVLINK_MAX_LINKS,
    NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE, NVML_VALUE_NOT_AVAILABLE,
};

use crate::handle::MAX_GPU_INSTANCE_ID;

use super::{dcgm, Device, Errors, Family, Gpm, PciAddress, Process, Scenario};

/// `DCGM_MAX_INSTANCES_PER_GPU` (`dcgm_structs.h`): the mock DCGM numbers a GPU's instances
/// below it.
const DCGM_MAX_INSTANCES_PER_GPU: usize = 8;

impl Scenario {
    pub(super) fn validate(&mut self) -> Result<(), String> {
        check_c_string(
            "driver_version",
            &self.driver_version,
            NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE,
        )?;
        if self.init_error.is_some() && self.errors.contains_key(&Family::Init) {
            return Err("both `init_error` and `errors.init` are set; use one".into());
        }
        check_families(
            "top-level",
            self.errors.keys().chain(self.delays_ms.keys()),
            true,
        )?;
        check_dcgm_errors("top-level", &self.errors)?;
        self.costs.validate()?;
        if let Some(buffer) = &self.process_utilization_buffer {
            buffer.validate()?;
        }

        let mut uuids = BTreeSet::new();
        for (index, device) in self.devices.iter_mut().enumerate() {
            device
                .validate()
                .map_err(|e| format!("devices[{index}] ({}): {e}", device.uuid))?;
            device.sample_buffer = self.process_utilization_buffer;
            let mig_uuids = device.mig.iter().flatten().map(|m| &m.uuid);
            for uuid in std::iter::once(&device.uuid).chain(mig_uuids) {
                if !uuids.insert(uuid.clone()) {
                    return Err(format!("devices[{index}]: uuid `{uuid}` appears twice"));
                }
            }
        }
        Ok(())
    }
}

impl Device {
    fn validate(&mut self) -> Result<(), String> {
        check_c_string("uuid", &self.uuid, NVML_DEVICE_UUID_V2_BUFFER_SIZE)?;
        check_c_string("name", &self.name, NVML_DEVICE_NAME_V2_BUFFER_SIZE)?;
        self.pci = PciAddress::parse(&self.pci_bus_id).ok_or_else(|| {
            format!(
                "pci_bus_id `{}` is not `domain:bus:device.function` in hex, e.g. 00000000:18:00.0",
                self.pci_bus_id
            )
        })?;
        check_memory("", self.memory_used_bytes, self.memory_total_bytes)?;
        if self
            .memory_used_bytes
            .checked_add(self.memory_reserved_bytes)
            .is_none_or(|in_use| in_use > self.memory_total_bytes)
        {
            return Err(format!(
                "memory_used_bytes ({}) + memory_reserved_bytes ({}) exceeds memory_total_bytes ({})",
                self.memory_used_bytes, self.memory_reserved_bytes, self.memory_total_bytes
            ));
        }
        if let Some(t) = self.memory_temperature_celsius {
            check_celsius("memory_temperature_celsius", t)?;
        }
        check_percent("utilization_gpu_percent", self.utilization_gpu_percent)?;
        check_percent(
            "utilization_memory_percent",
            self.utilization_memory_percent,
        )?;
        check_gpm("gpm", self.gpm.as_ref())?;
        check_gpm("dcgm_profiling", self.dcgm_profiling.as_ref())?;
        check_processes("processes", &self.processes)?;
        check_families(
            "device",
            self.errors.keys().chain(self.delays_ms.keys()),
            false,
        )?;
        check_dcgm_errors("device", &self.errors)?;
        if self
            .mig
            .as_ref()
            .is_some_and(|m| m.len() > DCGM_MAX_INSTANCES_PER_GPU)
        {
            return Err(format!(
                "more than {DCGM_MAX_INSTANCES_PER_GPU} MIG instances; a GPU has at most 7"
            ));
        }
        if let Some(p) = self.encoder_percent {
            check_percent("encoder_percent", p)?;
        }
        if let Some(p) = self.decoder_percent {
            check_percent("decoder_percent", p)?;
        }
        if let Some(n) = &self.nvlink {
            if !(1..=NVML_NVLINK_MAX_LINKS).contains(&n.links) {
                return Err(format!(
                    "nvlink.links is {}; NVML devices have 1 to {NVML_NVLINK_MAX_LINKS} links",
                    n.links
                ));
            }
        }
        if let Some(server) = &self.mps_server {
            if server.pid == 0 {
                return Err("mps_server.pid is 0; pid 0 is no process".into());
            }
            if self.processes.iter().any(|p| p.pid == server.pid) {
                return Err(format!(
                    "pid {} is both the MPS server and one of its clients in `processes`",
                    server.pid
                ));
            }
            if self.mig.is_some() {
                return Err(
                    "mps_server on a GPU in MIG mode: the mock models MPS on whole GPUs only"
                        .into(),
                );
            }
        }
        let mut instance_ids = BTreeSet::new();
        for (i, m) in self.mig.iter().flatten().enumerate() {
            let at = format!("mig[{i}]");
            check_c_string(
                &format!("{at}.uuid"),
                &m.uuid,
                NVML_DEVICE_UUID_V2_BUFFER_SIZE,
            )?;
            check_memory(&format!("{at}."), m.memory_used_bytes, m.memory_total_bytes)?;
            check_gpm(&format!("{at}.gpm"), m.gpm.as_ref())?;
            check_gpm(&format!("{at}.dcgm_profiling"), m.dcgm_profiling.as_ref())?;
            check_processes(&format!("{at}.processes"), &m.processes)?;
            check_c_string(
                &format!("{at}.profile (in the MIG device's name)"),
                &m.name(self),
                NVML_DEVICE_NAME_V2_BUFFER_SIZE,
            )?;
            if m.profile.is_empty() {
                return Err(format!("{at}.profile must not be empty, e.g. 1g.10gb"));
            }
            if m.gpu_instance_id >= MAX_GPU_INSTANCE_ID {
                return Err(format!(
                    "{at}.gpu_instance_id is {}; the mock supports IDs below {MAX_GPU_INSTANCE_ID} (NVML's are small)",
                    m.gpu_instance_id
                ));
            }
            if m.compute_instance_id == NVML_VALUE_NOT_AVAILABLE as u32 {
                return Err(format!(
                    "{at}.compute_instance_id is 0xFFFFFFFF, NVML's \"not a MIG device\""
                ));
            }
            if !instance_ids.insert(m.gpu_instance_id) {
                return Err(format!(
                    "{at}: gpu_instance_id {} appears twice",
                    m.gpu_instance_id
                ));
            }
        }
        Ok(())
    }
}

fn check_c_string(what: &str, value: &str, buffer_size: u32) -> Result<(), String> {
    if value.is_empty() || value.contains('\0') {
        return Err(format!("{what} must be a non-empty string without NUL"));
    }
    if value.len() >= buffer_size as usize {
        return Err(format!(
            "{what} is longer than NVML's {buffer_size}-byte buffer"
        ));
    }
    Ok(())
}

fn check_memory(prefix: &str, used: u64, total: u64) -> Result<(), String> {
    if used > total {
        return Err(format!(
            "{prefix}memory_used_bytes ({used}) exceeds {prefix}memory_total_bytes ({total})"
        ));
    }
    Ok(())
}

/// A temperature a GPU sensor could report: NVML gives whole degrees, and no GPU runs at
/// 200 °C (HBM throttles near 95 °C).
fn check_celsius(what: &str, value: u32) -> Result<(), String> {
    if value >= 200 {
        return Err(format!(
            "{what} is {value}; a GPU sensor reads below 200 °C"
        ));
    }
    Ok(())
}

fn check_percent(what: &str, value: u32) -> Result<(), String> {
    if value > 100 {
        return Err(format!("{what} is {value}, above 100"));
    }
    Ok(())
}

fn check_gpm(what: &str, gpm: Option<&Gpm>) -> Result<(), String> {
    let Some(g) = gpm else { return Ok(()) };
    for (name, value) in g.ratios() {
        if let Some(v) = value {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!(
                    "{what}.{name} is {v}; profiling values are ratios in 0..1"
                ));
            }
        }
    }
    Ok(())
}

fn check_processes(what: &str, processes: &[Process]) -> Result<(), String> {
    let mut pids = BTreeSet::new();
    for p in processes {
        if !pids.insert(p.pid) {
            return Err(format!("{what}: pid {} appears twice", p.pid));
        }
        check_percent(
            &format!("{what}[pid {}].sm_util_percent", p.pid),
            p.sm_util_percent,
        )?;
        check_percent(
            &format!("{what}[pid {}].mem_util_percent", p.pid),
            p.mem_util_percent,
        )?;
    }
    Ok(())
}

fn check_families<'a>(
    at: &str,
    families: impl Iterator<Item = &'a Family>,
    node_wide: bool,
) -> Result<(), String> {
    for family in families {
        if node_wide && family.is_also_node_wide() {
            continue;
        }
        if family.is_node_wide() != node_wide {
            let hint = if node_wide {
                "it is a per-device family; set it under the device"
            } else {
                "it is node-wide; set it in the top-level `errors`/`delays_ms`"
            };
            return Err(format!(
                "{at} errors/delays_ms name family `{}`: {hint}",
                family.name()
            ));
        }
    }
    Ok(())
}

/// The DCGM families take the NVML names that have a DCGM status ([`dcgm::status`]).
fn check_dcgm_errors(at: &str, errors: &Errors) -> Result<(), String> {
    for (family, code) in errors.iter().filter(|(f, _)| f.is_dcgm()) {
        if dcgm::status(*code).is_none() {
            return Err(format!(
                "{at} errors.{}: {} has no DCGM status; the DCGM families take {}",
                family.name(),
                code.name().unwrap_or("this code"),
                dcgm::names().join(", ")
            ));
        }
    }
    Ok(())
}
