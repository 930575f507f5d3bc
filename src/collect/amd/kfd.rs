//! ROCm compute through KFD (`/dev/kfd`), which DRM fdinfo does not show: ROCm queues are
//! user-mode queues the kernel's DRM scheduler never sees. Per process and GPU, KFD exports
//! `<sysfs>/class/kfd/kfd/proc/<pid>/vram_<gpu_id>` (bytes) and
//! `stats_<gpu_id>/cu_occupancy` (compute units with this process's waves in flight, from
//! kernel 5.10); `gpu_id` names a node of `<sysfs>/class/kfd/kfd/topology/nodes/*`, whose
//! `properties` give its PCI address (`domain`, `location_id`) and size (`simd_count`,
//! `simd_per_cu`).

use std::collections::HashMap;
use std::path::Path;

use super::files::{self, Unreadable};
use crate::pci::PciAddress;
use crate::sample::CallError;

const CALL: &str = "kfd";

/// One GPU node of the KFD topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KfdNode {
    pub gpu_id: u32,
    pub pci: PciAddress,
    /// `simd_count / simd_per_cu`; `None` where the properties do not say.
    pub compute_units: Option<u64>,
}

/// One process's use of one device through KFD (all of the device's nodes together).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KfdUse {
    pub vram_bytes: u64,
    /// Compute units with the process's waves in flight, when the kernel reports it.
    pub busy_units: Option<u64>,
    /// The device's compute units, when known.
    pub units: Option<u64>,
}

impl KfdUse {
    /// Occupied compute units over the device's: a point sample at the moment of reading, not
    /// an average over the interval.
    pub fn ratio(&self) -> Option<f64> {
        match (self.busy_units, self.units) {
            (Some(busy), Some(units)) if units > 0 => {
                Some((busy as f64 / units as f64).clamp(0.0, 1.0))
            }
            _ => None,
        }
    }
}

/// The values of a topology node's `properties` file: one `name value` pair a line.
pub fn parse_properties(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.trim(), v.trim().parse().ok()?))
        })
        .collect()
}

/// A node's PCI address from its properties. `location_id` holds the bus and devfn in its low
/// 16 bits (`pci_dev_id`); multi-partition GPUs put a partition number above them (newer
/// kernels) or into devfn's low bits (6.5-6.6), so the function is left out: an AMD GPU is
/// function 0.
pub fn node_pci(props: &HashMap<&str, u64>) -> Option<PciAddress> {
    let domain = u32::try_from(*props.get("domain")?).ok()?;
    let location = props.get("location_id")? & 0xffff;
    Some(PciAddress {
        domain,
        bus: (location >> 8) as u8,
        device: ((location & 0xff) >> 3) as u8,
        function: 0,
    })
}

/// The GPU nodes of the KFD topology; none where KFD is absent.
pub fn topology(sysfs: &Path, errors: &mut Vec<CallError>) -> Vec<KfdNode> {
    let dir = sysfs.join("class/kfd/kfd/topology/nodes");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut nodes = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let path = e.path();
        let mut gone = false;
        let gpu_id = files::value(&path.join("gpu_id"), CALL, errors, &mut gone, |s| {
            files::parse_u64(s).and_then(|v| u32::try_from(v).map_err(|_| Unreadable::OutOfRange))
        });
        // CPU nodes have gpu_id 0.
        let Some(gpu_id) = gpu_id.filter(|id| *id != 0) else {
            continue;
        };
        let text = match files::text(&path.join("properties")) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(bad) => {
                errors.push(bad.to_call_error(CALL));
                continue;
            }
        };
        let props = parse_properties(&text);
        let Some(pci) = node_pci(&props) else {
            errors.push(Unreadable::Malformed.to_call_error(CALL));
            continue;
        };
        let compute_units = match (props.get("simd_count"), props.get("simd_per_cu")) {
            (Some(&simds), Some(&per_cu)) if per_cu > 0 && simds > 0 => Some(simds / per_cu),
            _ => None,
        };
        nodes.push(KfdNode {
            gpu_id,
            pci,
            compute_units,
        });
    }
    nodes.sort_by_key(|n| n.gpu_id);
    nodes
}

/// Every KFD process's use of each device, by (pid, device, ignoring the function), but
/// `skip_pid`'s. A process is listed on a device only where it holds VRAM or occupies compute
/// units there: the ROCm runtime opens every GPU it can see, used or not.
pub fn processes(
    sysfs: &Path,
    nodes: &[KfdNode],
    skip_pid: u32,
    errors: &mut Vec<CallError>,
) -> HashMap<(u32, PciAddress), KfdUse> {
    let mut out: HashMap<(u32, PciAddress), KfdUse> = HashMap::new();
    if nodes.is_empty() {
        return out;
    }
    let Ok(entries) = std::fs::read_dir(sysfs.join("class/kfd/kfd/proc")) else {
        return out;
    };
    for e in entries.filter_map(Result::ok) {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == skip_pid {
            continue;
        }
        let dir = e.path();
        for node in nodes {
            let mut gone = false;
            let Some(vram) = files::value(
                &dir.join(format!("vram_{}", node.gpu_id)),
                CALL,
                errors,
                &mut gone,
                files::parse_u64,
            ) else {
                continue; // not a GPU of this process, or it just exited
            };
            let busy = files::value(
                &dir.join(format!("stats_{}/cu_occupancy", node.gpu_id)),
                CALL,
                errors,
                &mut gone,
                files::parse_u64,
            );
            if vram == 0 && busy.unwrap_or(0) == 0 {
                continue;
            }
            let u = out.entry((pid, node.pci)).or_default();
            u.vram_bytes = u.vram_bytes.saturating_add(vram);
            if let Some(b) = busy {
                u.busy_units = Some(u.busy_units.unwrap_or(0) + b);
            }
            if let Some(n) = node.compute_units {
                u.units = Some(u.units.unwrap_or(0) + n);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// An MI300X node's properties (abridged; the kernel's `sysfs_show_32bit_prop` lines).
    const MI300X: &str = "cpu_cores_count 0\nsimd_count 1216\nmem_banks_count 1\n\
        caches_count 274\nio_links_count 1\ncpu_core_id_base 0\nsimd_id_base 2147488032\n\
        max_waves_per_simd 8\nlds_size_in_kb 64\ngds_size_in_kb 0\nnum_gws 64\n\
        wave_front_size 64\narray_count 32\nsimd_arrays_per_engine 1\ncu_per_simd_array 10\n\
        simd_per_cu 4\nmax_slots_scratch_cu 32\ngfx_target_version 90402\nvendor_id 4098\n\
        device_id 29857\nlocation_id 6400\ndomain 0\ndrm_render_minor 128\nhive_id 0\n\
        num_sdma_engines 2\nnum_sdma_xgmi_engines 6\nnum_cp_queues 120\n";

    #[test]
    fn pci_address_and_size_from_properties() {
        let p = parse_properties(MI300X);
        assert_eq!(node_pci(&p), PciAddress::parse("0000:19:00.0"));
        assert_eq!(p["simd_count"] / p["simd_per_cu"], 304);
        // A partition number in the high bits (6.7+) is not part of the address.
        let part = parse_properties("location_id 268441856\ndomain 2\n");
        assert_eq!(node_pci(&part), PciAddress::parse("0002:19:00.0"));
        assert_eq!(node_pci(&parse_properties("domain 0\n")), None);
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn processes_by_device_with_their_occupancy() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path();
        write(s, "class/kfd/kfd/topology/nodes/0/gpu_id", "0\n");
        write(
            s,
            "class/kfd/kfd/topology/nodes/0/properties",
            "cpu_cores_count 64\n",
        );
        write(s, "class/kfd/kfd/topology/nodes/1/gpu_id", "41437\n");
        write(s, "class/kfd/kfd/topology/nodes/1/properties", MI300X);
        write(s, "class/kfd/kfd/proc/3020/vram_41437", "17179869184\n");
        write(
            s,
            "class/kfd/kfd/proc/3020/stats_41437/cu_occupancy",
            "76\n",
        );
        // Opened the GPU but holds nothing there.
        write(s, "class/kfd/kfd/proc/3021/vram_41437", "0\n");
        write(s, "class/kfd/kfd/proc/3021/stats_41437/cu_occupancy", "0\n");
        // The agent itself, and a garbled file.
        write(s, "class/kfd/kfd/proc/77/vram_41437", "4096\n");
        write(s, "class/kfd/kfd/proc/3022/vram_41437", "lots\n");
        let mut errors = Vec::new();
        let nodes = topology(s, &mut errors);
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].compute_units, Some(304));
        let procs = processes(s, &nodes, 77, &mut errors);
        assert_eq!(procs.len(), 1);
        let u = procs[&(3020, PciAddress::parse("0000:19:00.0").unwrap())];
        assert_eq!(u.vram_bytes, 17179869184);
        assert_eq!(u.ratio(), Some(0.25));
        assert_eq!(errors, [Unreadable::Malformed.to_call_error("kfd")]);
    }
}
