//! Per-pod values: what attribution makes of a snapshot's devices, which the snapshot holds and
//! encode writes. Attribution (`attribute`) fills them; nothing here reads a file.

use crate::sample::Profiling;

/// Why a process or an allocation could not be attributed; the `reason` label of
/// `gpu_pod_exporter_attribution_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    /// The process exited between the driver's list and the read of its cgroup.
    ProcessVanished,
    /// `/proc/<pid>/cgroup` could not be read (permissions, I/O).
    CgroupUnreadable,
    /// `/proc/<pid>/cgroup` could not be parsed, or its lines disagree.
    CgroupMalformed,
    /// The process is in a pod whose UID has no `/var/log/pods` folder.
    PodUnknown,
    /// The pod is known but not which of its containers the process is in.
    ContainerUnknown,
    /// A kubelet allocation names a device ID that matches no device on this node.
    DeviceUnknown,
}

impl Failure {
    pub const ALL: [Failure; 6] = [
        Failure::ProcessVanished,
        Failure::CgroupUnreadable,
        Failure::CgroupMalformed,
        Failure::PodUnknown,
        Failure::ContainerUnknown,
        Failure::DeviceUnknown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Failure::ProcessVanished => "process_vanished",
            Failure::CgroupUnreadable => "cgroup_unreadable",
            Failure::CgroupMalformed => "cgroup_malformed",
            Failure::PodUnknown => "pod_unknown",
            Failure::ContainerUnknown => "container_unknown",
            Failure::DeviceUnknown => "device_unknown",
        }
    }
}

/// A container, by the names its series carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerKey {
    pub namespace: String,
    pub pod: String,
    /// Empty when the container's name could not be told (counted as `container_unknown`).
    pub container: String,
}

/// The per-pod series of one container on one device.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSample {
    pub key: ContainerKey,
    /// Index of the device in the snapshot's device list.
    pub device: usize,
    /// `pod_gpu_utilization_ratio`; `None` where the rules give no value (a shared device
    /// without per-process data).
    pub utilization_ratio: Option<f64>,
    /// `pod_gpu_memory_used_bytes`; `None` where the driver reports no per-process memory.
    pub memory_used_bytes: Option<f64>,
    /// `pod_gpu_allocated`: the kubelet allocated this device to this container.
    pub allocated: bool,
    /// `pod_gpu_sm_active_ratio` and the other profiling series: the device's values where
    /// the container holds the device alone, else all `None`.
    pub profiling: PodProfiling,
}

/// The device's (or MIG instance's) profiling values (GPM or DCGM), handed to a container that
/// holds it alone. Never split between containers: neither source has per-process figures, so
/// a shared device gives none (never a guess).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PodProfiling {
    pub sm_active_ratio: Option<f64>,
    pub sm_occupancy_ratio: Option<f64>,
    pub tensor_active_ratio: Option<f64>,
    pub dram_active_ratio: Option<f64>,
}

impl PodProfiling {
    /// The device's own profiling values; `None` where it has none (no source, AMD, no sample
    /// yet).
    pub(crate) fn of(p: Option<&Profiling>) -> PodProfiling {
        let Some(p) = p else {
            return PodProfiling::default();
        };
        PodProfiling {
            sm_active_ratio: p.values.sm_active,
            sm_occupancy_ratio: p.values.sm_occupancy,
            tensor_active_ratio: p.values.tensor_active,
            dram_active_ratio: p.values.dram_active,
        }
    }
}

/// What no pod series carries on one device: processes outside any pod (host daemons), an MPS
/// server, and processes that could not be attributed (gone before their `/proc` was read,
/// unreadable, in a pod the node does not know).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unattributed {
    /// Index of the device in the snapshot's device list.
    pub device: usize,
    /// `gpu_unattributed_processes`.
    pub processes: usize,
    /// `gpu_unattributed_memory_bytes`: the memory the driver gives for those processes, as
    /// for a container's; `None` where there are some and it gives none (0 when there are none).
    pub memory_bytes: Option<u64>,
}
