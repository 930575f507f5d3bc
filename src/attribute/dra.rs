//! DRA claim devices joined to this node's GPUs: which of the kubelet's `dynamic_resources`
//! are GPUs, and which device each one is, by the names the NVIDIA and AMD DRA drivers publish.
//!
//! The join turns each claim device it recognizes into a device-plugin-style allocation naming
//! the device by its UUID (or, for AMD, its PCI address), so that the attribution rules treat
//! device-plugin and DRA allocations alike (`pod_gpu_allocated`, rule 3's exclusive case, rule
//! 4). A device of a GPU driver that matches nothing here is an attribution failure
//! (`device_unknown`), never a guess.
//!
//! What the drivers publish (`device_name`, the ResourceSlice device name, and the CDI names):
//!
//! | driver | device name | CDI device name |
//! |---|---|---|
//! | NVIDIA `gpu.nvidia.com` (kubernetes-sigs/dra-driver-nvidia-gpu, formerly NVIDIA/k8s-dra-driver-gpu) | `gpu-<minor>`; MIG `gpu-<minor>-mig-<profile>-<profile id>-<placement start>` (older releases `gpu-<minor>-mig-<profile id>-<start>-<size>`); `gpu-vfio-<n>` | `k8s.gpu.nvidia.com/claim=<claim uid>-<device name>` |
//! | AMD `gpu.amd.com` (ROCm/k8s-gpu-dra-driver) | `gpu-<card>-<render>` (`gpu-0-128`); auto-partition `gpu-<index>-<compute>-<memory>` (`gpu-0-cpx-nps4`); `gpu-vfio-<n>` | `k8s.gpu.amd.com/gpu=<claim uid>-<device name>`, plus `k8s.gpu.amd.com/gpu=common` |
//!
//! Sources: NVIDIA `cmd/gpu-kubelet-plugin/deviceinfo.go` (`GpuInfo.CanonicalName`,
//! `MigDeviceInfo.CanonicalName`), `mig.go` (`MigSpecTuple.ToCanonicalName`), `cdi.go`
//! (`GetClaimDeviceName`); AMD `cmd/gpu-kubeletplugin/deviceinfo.go` (`CanonicalName`),
//! `cdi.go` (`GetClaimDevices`), `docs/driver-attributes.md`, `pkg/consts` (`DriverName`).
//! Neither driver's CDI names carry a UUID (the UUID is a ResourceSlice attribute, which only
//! the API server has), so:
//!
//! - **A CDI name that carries a UUID** (`nvidia.com/gpu=GPU-…`, `…=MIG-…`, as the NVIDIA
//!   Container Toolkit's own specs name devices) is joined by that UUID, whatever the driver,
//!   and a UUID not on this node makes the device unknown whatever its device name says.
//! - **Kubelets 1.27 to 1.30** send no driver and no device name, only CDI names: the drivers'
//!   own (`k8s.gpu.nvidia.com/claim=<claim uid>-gpu-0`) carry the device name after the claim
//!   UID, which is then joined as below.
//! - **NVIDIA `gpu-<minor>`**: the number is the device minor (`/dev/nvidia<minor>`), which is
//!   *not* NVML's index in general: NVML orders GPUs by PCI address, the kernel numbers minors
//!   in probe order (a host with `Device Minor: 0` at NVML index 3 is on record). The minor is
//!   read from `<procfs>/driver/nvidia/gpus/<pci address>/information` (`Device Minor:`), and
//!   the folder's PCI address names the device. Where that file is unreadable the device is
//!   unknown, never taken for index `<minor>`. A MIG device is the MIG instance of that parent
//!   whose profile matches the name, where exactly one does (the placement in the name is not
//!   something NVML's MIG identity here carries); older names without a profile match only a
//!   parent with a single MIG instance.
//! - **AMD `gpu-<card>-<render>`**: `<sysfs>/class/drm/card<card>/device` names the PCI
//!   device, as in the AMD collector. Auto-partition names `gpu-<index>-<mode>-<mode>` count
//!   the node's AMD GPUs in PCI address order (the driver's `gpuIndex`), which is this node's
//!   AMD devices sorted by PCI address: the partition is on that physical GPU.
//! - `gpu-vfio-<n>` devices are bound to vfio for a VM and invisible to the GPU libraries: they
//!   are unknown here.
//!
//! Claim devices of other drivers (network, CPU, ...) whose CDI names carry no GPU UUID are not
//! GPUs and are left out, as device-plugin resources outside `nvidia.com/` and `amd.com/` are.

use std::collections::HashMap;
use std::path::Path;

use super::deviceid::DeviceRef;
use super::podresources::{ClaimDevice, ContainerClaim, ContainerDevices};
use crate::pci::PciAddress;
use crate::sample::{DeviceSample, Vendor};

/// The NVIDIA DRA driver's name (its CDI vendor is `k8s.` + this).
pub const NVIDIA_DRIVER: &str = "gpu.nvidia.com";
/// The AMD DRA driver's name.
pub const AMD_DRIVER: &str = "gpu.amd.com";

/// What the join made of the kubelet's claims.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Joined {
    /// One entry per container and claim, naming the matched devices by UUID (AMD: PCI
    /// address); `resource_name` is the driver's name (or `dra` where the kubelet sent none).
    pub allocations: Vec<ContainerDevices>,
    /// GPU claim devices that match no device on this node, as `driver/pool/device` (or the
    /// first CDI name), one entry per container and device.
    pub unknown: Vec<String>,
}

/// Joins every GPU claim device to `devices`. `procfs` and `sysfs` are the host's (for the
/// NVIDIA minor numbers and the AMD card numbers), read only where a claim needs them.
pub fn join(
    claims: &[ContainerClaim],
    devices: &[DeviceSample],
    procfs: &Path,
    sysfs: &Path,
) -> Joined {
    let mut out = Joined::default();
    let mut host = HostNames::new(procfs, sysfs);
    for claim in claims {
        let mut ids: Vec<String> = Vec::new();
        let mut resource = String::new();
        for dev in &claim.devices {
            let Some(found) = resolve(dev, devices, &mut host) else {
                continue; // Not a GPU.
            };
            match found {
                Found::Devices(ix) => {
                    for i in ix {
                        let id = reference(&devices[i]);
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                }
                Found::Unknown => out.unknown.push(describe(dev)),
            }
            if resource.is_empty() {
                resource = if dev.driver.is_empty() {
                    "dra".to_string()
                } else {
                    dev.driver.clone()
                };
            }
        }
        if !ids.is_empty() {
            out.allocations.push(ContainerDevices {
                namespace: claim.namespace.clone(),
                pod: claim.pod.clone(),
                container: claim.container.clone(),
                resource_name: resource,
                device_ids: ids,
            });
        }
    }
    out
}

/// How an allocation names a matched device: a form `DeviceRef` reads back to that device.
fn reference(d: &DeviceSample) -> String {
    match d.vendor {
        Some(Vendor::Amd) if !d.identity.pci_bus_id.is_empty() => d.identity.pci_bus_id.clone(),
        _ => d.identity.uuid.clone(),
    }
}

fn describe(dev: &ClaimDevice) -> String {
    if dev.device.is_empty() {
        dev.cdi_devices.first().cloned().unwrap_or_default()
    } else {
        format!("{}/{}/{}", dev.driver, dev.pool, dev.device)
    }
}

/// One claim device: which of `devices` it is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    Devices(Vec<usize>),
    /// A GPU driver's device that matches nothing here.
    Unknown,
}

/// `None` for a device that is not a GPU's.
fn resolve(dev: &ClaimDevice, devices: &[DeviceSample], host: &mut HostNames) -> Option<Found> {
    // A UUID in a CDI name is the most direct name there is, and it decides: a UUID that is not
    // on this node is not overruled by a device name.
    let uuids: Vec<String> = dev.cdi_devices.iter().filter_map(|c| cdi_uuid(c)).collect();
    if !uuids.is_empty() {
        let ix: Vec<usize> = uuids
            .into_iter()
            .flat_map(|u| matching(devices, &DeviceRef::Uuid(u)))
            .collect();
        return Some(if ix.is_empty() {
            Found::Unknown
        } else {
            Found::Devices(dedup(ix))
        });
    }
    if dev.driver.is_empty() {
        // A kubelet before 1.31 names no driver and no device, but the drivers' own CDI names
        // carry both. Several names (the kubelet's cumulative list) are all this container's.
        let named: Vec<(&str, &str)> = dev
            .cdi_devices
            .iter()
            .filter_map(|c| cdi_device(c))
            .collect();
        if named.is_empty() {
            return None; // Not a GPU driver's.
        }
        let mut ix = Vec::new();
        for (driver, device) in named {
            match by_name(driver, device, devices, host) {
                Some(found) if !found.is_empty() => ix.extend(found),
                _ => return Some(Found::Unknown),
            }
        }
        return Some(Found::Devices(dedup(ix)));
    }
    if dev.driver != NVIDIA_DRIVER && dev.driver != AMD_DRIVER {
        return None; // Another driver's device: not a GPU.
    }
    Some(match by_name(&dev.driver, &dev.device, devices, host) {
        Some(ix) if !ix.is_empty() => Found::Devices(ix),
        _ => Found::Unknown,
    })
}

/// A GPU driver's device by its ResourceSlice name.
fn by_name(
    driver: &str,
    device: &str,
    devices: &[DeviceSample],
    host: &mut HostNames,
) -> Option<Vec<usize>> {
    match driver {
        NVIDIA_DRIVER => nvidia(device, devices, host),
        AMD_DRIVER => amd(device, devices, host),
        _ => None,
    }
}

/// The driver and device name in one of the GPU drivers' own CDI names,
/// `k8s.<driver>/<class>=<claim uid>-<device name>` (NVIDIA `cdi.go` `GetClaimDeviceName`,
/// AMD `cdi.go` `GetClaimDevices`); `None` for any other CDI name (AMD's
/// `k8s.gpu.amd.com/gpu=common` among them).
fn cdi_device(cdi: &str) -> Option<(&'static str, &str)> {
    let (kind, name) = cdi.split_once('=')?;
    let driver = match kind.split_once('/')?.0 {
        "k8s.gpu.nvidia.com" => NVIDIA_DRIVER,
        "k8s.gpu.amd.com" => AMD_DRIVER,
        _ => return None,
    };
    // A Kubernetes UID: 8-4-4-4-12 hex digits.
    let uid = name.get(..36)?;
    let is_uid = uid.split('-').map(str::len).eq([8, 4, 4, 4, 12])
        && uid.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit());
    let device = name.get(36..)?.strip_prefix('-')?;
    (is_uid && !device.is_empty()).then_some((driver, device))
}

fn dedup(mut ix: Vec<usize>) -> Vec<usize> {
    ix.sort_unstable();
    ix.dedup();
    ix
}

fn matching(devices: &[DeviceSample], r: &DeviceRef) -> Vec<usize> {
    devices
        .iter()
        .enumerate()
        .filter(|(_, d)| r.matches(&d.identity))
        .map(|(i, _)| i)
        .collect()
}

/// The UUID in a CDI device name whose device part is one (`nvidia.com/gpu=GPU-…`), also after
/// a claim UID prefix (`…=<claim uid>-GPU-…`).
fn cdi_uuid(cdi: &str) -> Option<String> {
    let (_, name) = cdi.split_once('=')?;
    let start = ["GPU-", "MIG-"].iter().filter_map(|p| name.find(p)).min()?;
    let rest = &name[start..];
    match DeviceRef::parse(rest)? {
        DeviceRef::Uuid(u) => Some(u),
        _ => None,
    }
}

/// NVIDIA: `gpu-<minor>` or `gpu-<minor>-mig-…`.
fn nvidia(name: &str, devices: &[DeviceSample], host: &mut HostNames) -> Option<Vec<usize>> {
    let rest = name.strip_prefix("gpu-")?;
    let (minor, mig) = match rest.split_once('-') {
        None => (rest, None),
        Some((m, tail)) => (m, Some(tail.strip_prefix("mig-")?)),
    };
    let minor: u32 = minor.parse().ok()?;
    let pci = host.nvidia_minor(minor)?;
    // The GPU at that address, and its MIG instances (which carry their parent's address).
    let on_gpu = |d: &DeviceSample| {
        d.vendor == Some(Vendor::Nvidia) && PciAddress::parse(&d.identity.pci_bus_id) == Some(pci)
    };
    let Some(spec) = mig else {
        let whole = devices
            .iter()
            .position(|d| on_gpu(d) && d.identity.mig.is_none())?;
        return Some(vec![whole]);
    };
    let instances: Vec<usize> = devices
        .iter()
        .enumerate()
        .filter(|(_, d)| on_gpu(d) && d.identity.mig.is_some())
        .map(|(i, _)| i)
        .collect();
    // `<profile>-<profile id>-<placement start>` (current; the profile made RFC 1123-safe, so
    // it may hold dashes itself) or `<profile id>-<start>-<size>` (older releases).
    let profile = spec
        .rsplitn(3, '-')
        .nth(2)
        .filter(|p| p.parse::<u32>().is_err())
        .map(profile_name);
    let candidates: Vec<usize> = match profile {
        Some(p) => instances
            .into_iter()
            .filter(|i| {
                devices[*i]
                    .identity
                    .mig
                    .as_ref()
                    .is_some_and(|m| profile_name(&m.profile) == *p)
            })
            .collect(),
        None => instances,
    };
    (candidates.len() == 1).then_some(candidates)
}

/// A MIG profile reduced to its lower-case letters and digits, the part of it that survives
/// the NVIDIA DRA driver's rewriting for device names (dots dropped, then made RFC 1123-safe):
/// `1g.10gb` and `1g10gb` -> `1g10gb`, `1g.10gb+me` and `1g10gb-me` -> `1g10gbme`.
fn profile_name(profile: &str) -> String {
    profile
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// AMD: `gpu-<card>-<render>` or `gpu-<index>-<compute mode>-<memory mode>`.
fn amd(name: &str, devices: &[DeviceSample], host: &mut HostNames) -> Option<Vec<usize>> {
    let mut parts = name.strip_prefix("gpu-")?.split('-');
    let first: u32 = parts.next()?.parse().ok()?;
    let second = parts.next()?;
    let third = parts.next();
    let amd: Vec<usize> = devices
        .iter()
        .enumerate()
        .filter(|(_, d)| d.vendor == Some(Vendor::Amd))
        .map(|(i, _)| i)
        .collect();
    match (second.parse::<u32>(), third) {
        // `gpu-<card>-<render>`.
        (Ok(_), None) => {
            let pci = host.drm_card(first)?;
            let found: Vec<usize> = amd
                .into_iter()
                .filter(|i| PciAddress::parse(&devices[*i].identity.pci_bus_id) == Some(pci))
                .collect();
            Some(found)
        }
        // Auto-partition: the `first`th GPU in PCI address order.
        (Err(_), Some(_)) if parts.next().is_none() => {
            let mut by_pci: Vec<(PciAddress, usize)> = amd
                .into_iter()
                .filter_map(|i| Some((PciAddress::parse(&devices[i].identity.pci_bus_id)?, i)))
                .collect();
            by_pci.sort_by_key(|(p, _)| (p.domain, p.bus, p.device, p.function));
            let (_, i) = by_pci.get(usize::try_from(first).ok()?)?;
            Some(vec![*i])
        }
        _ => None,
    }
}

/// The host's names for devices, read on first use in a pass.
struct HostNames<'a> {
    procfs: &'a Path,
    sysfs: &'a Path,
    /// NVIDIA device minor -> PCI address, from `<procfs>/driver/nvidia/gpus`.
    minors: Option<HashMap<u32, PciAddress>>,
}

impl<'a> HostNames<'a> {
    fn new(procfs: &'a Path, sysfs: &'a Path) -> Self {
        HostNames {
            procfs,
            sysfs,
            minors: None,
        }
    }

    fn nvidia_minor(&mut self, minor: u32) -> Option<PciAddress> {
        let procfs = self.procfs;
        self.minors
            .get_or_insert_with(|| nvidia_minors(&procfs.join("driver/nvidia/gpus")))
            .get(&minor)
            .copied()
    }

    /// The PCI address of `<sysfs>/class/drm/card<n>/device`: its link's target's name, else
    /// the `PCI_SLOT_NAME` of its `uevent`.
    fn drm_card(&self, n: u32) -> Option<PciAddress> {
        let device = self.sysfs.join(format!("class/drm/card{n}/device"));
        PciAddress::of_sysfs_device(&device).map(|(pci, _)| pci)
    }
}

/// `<dir>/<pci address>/information`'s `Device Minor:` line for every GPU the NVIDIA kernel
/// driver knows (`/proc/driver/nvidia/gpus`; the host's, not a pid namespace's).
fn nvidia_minors(dir: &Path) -> HashMap<u32, PciAddress> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.filter_map(Result::ok) {
        let Some(pci) = entry.file_name().to_str().and_then(PciAddress::parse) else {
            continue;
        };
        let Ok(info) = std::fs::read_to_string(entry.path().join("information")) else {
            continue;
        };
        let minor = info.lines().find_map(|l| {
            l.strip_prefix("Device Minor:")
                .and_then(|v| v.trim().parse::<u32>().ok())
        });
        if let Some(m) = minor {
            out.insert(m, pci);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{DeviceIdentity, MigIdentity};
    use std::fs;

    const U0: &str = "GPU-0b7f3c2e-1a4d-4c55-9e1e-6b1f0c2d3e4f";
    const U1: &str = "GPU-3c4d5e6f-7081-4a92-b3c4-d5e6f7081920";
    const MIG_A: &str = "MIG-7c2e9a10-4b3d-5f61-8e0a-1d2c3b4a5f60";
    const MIG_B: &str = "MIG-1e8f4d22-9a7b-5c03-b6d5-3f4e2a1b0c97";
    const CLAIM_UID: &str = "dab5ab50-d59a-42a6-af16-cfd4628c0f7a";

    fn dev(vendor: Vendor, gpu: &str, uuid: &str, pci: &str) -> DeviceSample {
        DeviceSample {
            vendor: Some(vendor),
            identity: DeviceIdentity {
                gpu: gpu.into(),
                uuid: uuid.into(),
                pci_bus_id: pci.into(),
                ..DeviceIdentity::default()
            },
            ..DeviceSample::default()
        }
    }

    fn mig(gpu: &str, uuid: &str, parent: &str, profile: &str, gi: u32) -> DeviceSample {
        let mut d = dev(Vendor::Nvidia, gpu, uuid, "00000000:19:00.0");
        d.identity.mig = Some(MigIdentity {
            parent_uuid: parent.into(),
            profile: profile.into(),
            gpu_instance_id: gi,
            compute_instance_id: 0,
        });
        d
    }

    /// Two NVIDIA GPUs whose minors run against NVML's order (index 0 is minor 1), one with two
    /// MIG instances; two AMD GPUs, card 1 at 0000:c1:00.0 and card 0 at 0000:c2:00.0.
    fn host() -> (tempfile::TempDir, Vec<DeviceSample>) {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for (pci, minor) in [("0000:18:00.0", 1), ("0000:19:00.0", 0)] {
            let d = r.join(format!("proc/driver/nvidia/gpus/{pci}"));
            fs::create_dir_all(&d).unwrap();
            // The kernel driver's layout (tab-separated), trimmed.
            fs::write(
                d.join("information"),
                format!("Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 156\nBus Location: \t {pci}\nDevice Minor: \t {minor}\nGPU Excluded:\t No\n"),
            )
            .unwrap();
        }
        for (card, pci) in [(1, "0000:c1:00.0"), (0, "0000:c2:00.0")] {
            let target = r.join(format!("sys/devices/pci0000:c0/{pci}"));
            fs::create_dir_all(&target).unwrap();
            fs::create_dir_all(r.join("sys/class/drm")).unwrap();
            fs::create_dir_all(r.join(format!("sys/class/drm/card{card}"))).unwrap();
            std::os::unix::fs::symlink(&target, r.join(format!("sys/class/drm/card{card}/device")))
                .unwrap();
        }
        let devices = vec![
            dev(Vendor::Nvidia, "0", U0, "00000000:18:00.0"),
            dev(Vendor::Nvidia, "1", U1, "00000000:19:00.0"),
            mig("1:1", MIG_A, U1, "1g.10gb", 1),
            mig("1:5", MIG_B, U1, "3g.40gb", 5),
            dev(Vendor::Amd, "2", "0x9f2b1c3d4e5f6071", "0000:c1:00.0"),
            dev(Vendor::Amd, "3", "0x1a2b3c4d5e6f7081", "0000:c2:00.0"),
        ];
        (dir, devices)
    }

    fn claim_dev(driver: &str, device: &str, cdi: &[&str]) -> ClaimDevice {
        ClaimDevice {
            driver: driver.into(),
            pool: "node-1".into(),
            device: device.into(),
            cdi_devices: cdi.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn resolve_one(d: &ClaimDevice) -> Option<Found> {
        let (dir, devices) = host();
        let (proc, sys) = (dir.path().join("proc"), dir.path().join("sys"));
        let mut h = HostNames::new(&proc, &sys);
        resolve(d, &devices, &mut h)
    }

    /// The device names and CDI names each driver publishes, and what they join to.
    #[test]
    fn every_name_the_drivers_publish() {
        let nv_cdi = |name: &str| format!("k8s.gpu.nvidia.com/claim={CLAIM_UID}-{name}");
        #[rustfmt::skip]
        let cases: Vec<(&str, ClaimDevice, Option<Found>)> = vec![
            ("NVIDIA gpu-<minor>: minor 0 is NVML index 1, by PCI address",
             claim_dev(NVIDIA_DRIVER, "gpu-0", &[&nv_cdi("gpu-0")]), Some(Found::Devices(vec![1]))),
            ("NVIDIA gpu-1 is index 0",
             claim_dev(NVIDIA_DRIVER, "gpu-1", &[&nv_cdi("gpu-1")]), Some(Found::Devices(vec![0]))),
            ("NVIDIA minor the kernel driver does not list: unknown, not index 7",
             claim_dev(NVIDIA_DRIVER, "gpu-7", &[]), Some(Found::Unknown)),
            ("NVIDIA MIG, current name: the parent's instance with that profile",
             claim_dev(NVIDIA_DRIVER, "gpu-0-mig-3g40gb-9-4", &[]), Some(Found::Devices(vec![3]))),
            ("NVIDIA MIG, a profile with a dash in the name",
             claim_dev(NVIDIA_DRIVER, "gpu-0-mig-1g10gb-me-20-0", &[]), Some(Found::Unknown)),
            ("NVIDIA MIG, a profile the parent has no instance of",
             claim_dev(NVIDIA_DRIVER, "gpu-0-mig-7g80gb-0-0", &[]), Some(Found::Unknown)),
            ("NVIDIA MIG, older name without a profile, two instances: ambiguous",
             claim_dev(NVIDIA_DRIVER, "gpu-0-mig-19-0-1", &[]), Some(Found::Unknown)),
            ("NVIDIA vfio passthrough: invisible to NVML",
             claim_dev(NVIDIA_DRIVER, "gpu-vfio-0", &[]), Some(Found::Unknown)),
            ("a CDI name with a UUID wins, whatever the device name",
             claim_dev(NVIDIA_DRIVER, "gpu-0", &[&format!("nvidia.com/gpu={U0}")]), Some(Found::Devices(vec![0]))),
            ("a CDI UUID not on this node is not overruled by the device name",
             claim_dev(NVIDIA_DRIVER, "gpu-0", &["nvidia.com/gpu=GPU-00000000-dead-beef-0000-000000000000"]), Some(Found::Unknown)),
            ("kubelet 1.27-1.30: no driver or device name, a CDI name with a MIG UUID",
             claim_dev("", "", &[&format!("nvidia.com/gpu={MIG_A}")]), Some(Found::Devices(vec![2]))),
            ("kubelet 1.27-1.30: a UUID not on this node",
             claim_dev("", "", &["nvidia.com/gpu=GPU-00000000-dead-beef-0000-000000000000"]), Some(Found::Unknown)),
            ("kubelet 1.27-1.30, the NVIDIA driver's claim CDI name: its device name, gpu-0",
             claim_dev("", "", &[&nv_cdi("gpu-0")]), Some(Found::Devices(vec![1]))),
            ("kubelet 1.27-1.30, the kubelet's cumulative CDI names: both devices",
             claim_dev("", "", &[&nv_cdi("gpu-0"), &nv_cdi("gpu-1")]), Some(Found::Devices(vec![0, 1]))),
            ("kubelet 1.27-1.30, an NVIDIA device this node does not have",
             claim_dev("", "", &[&nv_cdi("gpu-7")]), Some(Found::Unknown)),
            ("kubelet 1.27-1.30, AMD: the common CDI device is skipped",
             claim_dev("", "", &["k8s.gpu.amd.com/gpu=common", &format!("k8s.gpu.amd.com/gpu={CLAIM_UID}-gpu-1-129")]),
             Some(Found::Devices(vec![4]))),
            ("kubelet 1.27-1.30, another driver's CDI name",
             claim_dev("", "", &["dra.example.com/net=eth1"]), None),
            ("AMD gpu-<card>-<render>: card 0 is 0000:c2:00.0",
             claim_dev(AMD_DRIVER, "gpu-0-128", &[&format!("k8s.gpu.amd.com/gpu={CLAIM_UID}-gpu-0-128"), "k8s.gpu.amd.com/gpu=common"]),
             Some(Found::Devices(vec![5]))),
            ("AMD card without a PCI device",
             claim_dev(AMD_DRIVER, "gpu-4-132", &[]), Some(Found::Unknown)),
            ("AMD auto-partition: the GPUs in PCI order, index 0 is 0000:c1:00.0",
             claim_dev(AMD_DRIVER, "gpu-0-cpx-nps4", &[]), Some(Found::Devices(vec![4]))),
            ("AMD auto-partition beyond the node's GPUs",
             claim_dev(AMD_DRIVER, "gpu-2-spx-nps1", &[]), Some(Found::Unknown)),
            ("another driver: not a GPU",
             claim_dev("dra.example.com", "eth1", &["dra.example.com/net=eth1"]), None),
        ];
        for (case, d, want) in cases {
            assert_eq!(resolve_one(&d), want, "{case}");
        }
    }

    #[test]
    fn a_claim_joins_to_one_allocation_per_container() {
        let (dir, devices) = host();
        let claim = |ctr: &str, devs: Vec<ClaimDevice>| ContainerClaim {
            namespace: "ml".into(),
            pod: "trainer".into(),
            container: ctr.into(),
            claim_namespace: "ml".into(),
            claim_name: "two-gpus".into(),
            devices: devs,
        };
        // The kubelet's cumulative CDI names: the second device also carries the first's.
        let first = format!("nvidia.com/gpu={U0}");
        let second = format!("nvidia.com/gpu={U1}");
        let j = join(
            &[
                claim(
                    "main",
                    vec![
                        claim_dev(NVIDIA_DRIVER, "gpu-1", &[&first]),
                        claim_dev(NVIDIA_DRIVER, "gpu-0", &[&first, &second]),
                        claim_dev(NVIDIA_DRIVER, "gpu-9", &[]),
                    ],
                ),
                claim("net", vec![claim_dev("dra.example.com", "eth1", &[])]),
            ],
            &devices,
            &dir.path().join("proc"),
            &dir.path().join("sys"),
        );
        assert_eq!(
            j.allocations,
            [ContainerDevices {
                namespace: "ml".into(),
                pod: "trainer".into(),
                container: "main".into(),
                resource_name: NVIDIA_DRIVER.into(),
                device_ids: vec![U0.into(), U1.into()],
            }]
        );
        assert_eq!(j.unknown, ["gpu.nvidia.com/node-1/gpu-9"]);
    }

    #[test]
    fn without_the_kernel_drivers_list_no_minor_is_guessed() {
        let (_, devices) = host();
        let empty = tempfile::tempdir().unwrap();
        let (proc, sys) = (empty.path().join("proc"), empty.path().join("sys"));
        let mut h = HostNames::new(&proc, &sys);
        assert_eq!(
            resolve(&claim_dev(NVIDIA_DRIVER, "gpu-0", &[]), &devices, &mut h),
            Some(Found::Unknown)
        );
    }

    #[test]
    fn profile_names_as_the_driver_writes_them() {
        assert_eq!(profile_name("1g.10gb"), "1g10gb");
        assert_eq!(profile_name("1g.10gb+me"), "1g10gbme");
        assert_eq!(profile_name("1g10gb-me"), "1g10gbme");
        assert_eq!(cdi_uuid(&format!("nvidia.com/gpu={U0}")), Some(U0.into()));
        assert_eq!(cdi_uuid("nvidia.com/gpu=0"), None);
        assert_eq!(cdi_uuid("nvidia.com/gpu=all"), None);
    }
}
