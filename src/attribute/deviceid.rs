//! Device IDs as device plugins hand them to the kubelet, and matching them to our devices.

use crate::pci::PciAddress;
use crate::sample::DeviceIdentity;

/// A device ID from the kubelet's pod-resources API, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRef {
    /// `GPU-<uuid>`, `MIG-<uuid>`, or a time-sliced replica `GPU-<uuid>::<n>` (NVIDIA device
    /// plugin): the UUID as NVML spells it.
    Uuid(String),
    /// `MIG-GPU-<uuid>/<gi>/<ci>` (older NVIDIA device plugins): a MIG instance by parent UUID.
    MigOf {
        parent_uuid: String,
        gpu_instance: u32,
        compute_instance: u32,
    },
    /// GKE: `nvidia<minor>`, `nvidia<minor>/vgpu<n>` (time-shared), `nvidia<minor>/gi<gi>` (MIG).
    Minor {
        minor: u32,
        gpu_instance: Option<u32>,
    },
    /// AMD device plugin: the PCI address, `0000:19:00.0`.
    Pci(PciAddress),
}

impl DeviceRef {
    pub fn parse(id: &str) -> Option<DeviceRef> {
        let id = id.trim();
        if let Some(rest) = id.strip_prefix("MIG-GPU-") {
            let mut parts = rest.split('/');
            let uuid = parts.next()?;
            let gi = parts.next()?.parse().ok()?;
            let ci = parts.next()?.parse().ok()?;
            return parts.next().is_none().then(|| DeviceRef::MigOf {
                parent_uuid: format!("GPU-{uuid}"),
                gpu_instance: gi,
                compute_instance: ci,
            });
        }
        if id.starts_with("GPU-") || id.starts_with("MIG-") {
            // Time-slicing replicas: `GPU-<uuid>::<n>`.
            let uuid = id.split_once("::").map_or(id, |(u, _)| u);
            return Some(DeviceRef::Uuid(uuid.to_string()));
        }
        if let Some(rest) = id.strip_prefix("nvidia") {
            let (minor, sub) = match rest.split_once('/') {
                Some((m, s)) => (m, Some(s)),
                None => (rest, None),
            };
            let minor = minor.parse().ok()?;
            let gpu_instance = match sub {
                None => None,
                Some(s) if s.starts_with("vgpu") => None,
                Some(s) => Some(s.strip_prefix("gi")?.parse().ok()?),
            };
            return Some(DeviceRef::Minor {
                minor,
                gpu_instance,
            });
        }
        PciAddress::parse(id).map(DeviceRef::Pci)
    }

    /// Whether this reference names the device `d`. A minor number (GKE's `nvidia0/gi1`) is
    /// compared with the device's `gpu` label, its NVML index, which stands in for it here.
    pub fn matches(&self, d: &DeviceIdentity) -> bool {
        match self {
            DeviceRef::Uuid(u) => d.uuid.eq_ignore_ascii_case(u),
            DeviceRef::MigOf {
                parent_uuid,
                gpu_instance,
                compute_instance,
            } => d.mig.as_ref().is_some_and(|m| {
                m.parent_uuid.eq_ignore_ascii_case(parent_uuid)
                    && m.gpu_instance_id == *gpu_instance
                    && m.compute_instance_id == *compute_instance
            }),
            DeviceRef::Minor {
                minor,
                gpu_instance,
            } => {
                let want = match gpu_instance {
                    None => minor.to_string(),
                    Some(gi) => format!("{minor}:{gi}"),
                };
                d.gpu == want
            }
            DeviceRef::Pci(p) => PciAddress::parse(&d.pci_bus_id).is_some_and(|q| q == *p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "GPU-0b7f3c2e-1a4d-4c55-9e1e-6b1f0c2d3e4f";

    fn dev(gpu: &str, uuid: &str, pci: &str) -> DeviceIdentity {
        DeviceIdentity {
            gpu: gpu.into(),
            uuid: uuid.into(),
            pci_bus_id: pci.into(),
            ..DeviceIdentity::default()
        }
    }

    #[test]
    fn every_form_the_device_plugins_use() {
        // NVIDIA k8s-device-plugin: whole GPUs, time-slicing replicas, MIG (both strategies).
        assert_eq!(DeviceRef::parse(U), Some(DeviceRef::Uuid(U.into())));
        assert_eq!(
            DeviceRef::parse(&format!("{U}::3")),
            Some(DeviceRef::Uuid(U.into()))
        );
        assert_eq!(
            DeviceRef::parse("MIG-4f9c3e2a-8b7d-5c6e-9f0a-1b2c3d4e5f60"),
            Some(DeviceRef::Uuid(
                "MIG-4f9c3e2a-8b7d-5c6e-9f0a-1b2c3d4e5f60".into()
            ))
        );
        assert_eq!(
            DeviceRef::parse("MIG-GPU-0b7f3c2e-1a4d-4c55-9e1e-6b1f0c2d3e4f/1/0"),
            Some(DeviceRef::MigOf {
                parent_uuid: U.into(),
                gpu_instance: 1,
                compute_instance: 0
            })
        );
        // GKE's device plugin.
        assert_eq!(
            DeviceRef::parse("nvidia0"),
            Some(DeviceRef::Minor {
                minor: 0,
                gpu_instance: None
            })
        );
        assert_eq!(
            DeviceRef::parse("nvidia1/vgpu3"),
            Some(DeviceRef::Minor {
                minor: 1,
                gpu_instance: None
            })
        );
        assert_eq!(
            DeviceRef::parse("nvidia0/gi1"),
            Some(DeviceRef::Minor {
                minor: 0,
                gpu_instance: Some(1)
            })
        );
        // AMD device plugin: PCI addresses.
        assert_eq!(
            DeviceRef::parse("0000:19:00.0"),
            Some(DeviceRef::Pci(PciAddress {
                domain: 0,
                bus: 0x19,
                device: 0,
                function: 0
            }))
        );
        for bad in [
            "",
            "nvidiaX",
            "nvidia0/zz",
            "MIG-GPU-x/1",
            "19:00.0",
            "banana",
        ] {
            assert_eq!(DeviceRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn matching() {
        let d = dev("1", U, "00000000:19:00.0");
        assert!(DeviceRef::parse(&format!("{U}::0")).unwrap().matches(&d));
        assert!(DeviceRef::parse("nvidia1").unwrap().matches(&d));
        assert!(!DeviceRef::parse("nvidia0").unwrap().matches(&d));
        assert!(DeviceRef::parse("0000:19:00.0").unwrap().matches(&d));
        assert!(!DeviceRef::parse("0000:1a:00.0").unwrap().matches(&d));
        assert!(DeviceRef::parse("nvidia0/gi1")
            .unwrap()
            .matches(&dev("0:1", "MIG-x", "")));
    }
}
