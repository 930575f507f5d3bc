//! Pod attribution: which pod and container a GPU process and a kubelet allocation belong to,
//! and the per-pod series that follow from the rules of docs/attribution.md.
//!
//! A pass ([`attribute`]) runs from scratch whenever the stage (`stage`) finds one due, once
//! per round of collector reports: nothing is carried from one pass to the next, so a
//! container whose processes and allocations are gone has no series in the next snapshot,
//! and a reused pid is read afresh.

pub mod cgroup;
pub mod deviceid;
pub mod dra;
mod mps;
pub mod names;
pub mod podresources;
pub mod stage;

use std::collections::{BTreeMap, HashMap};
use std::io::ErrorKind;
use std::path::Path;

use self::cgroup::ContainerRef;
use self::deviceid::DeviceRef;
use self::mps::Comm;
use self::names::NodeNames;
use self::podresources::KubeletView;
use crate::pod::{ContainerKey, Failure, PodProfiling, PodSample, Unattributed};
use crate::sample::{DeviceDown, DeviceSample, Vendor};

/// The outcome of one attribution pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attribution {
    pub pods: Vec<PodSample>,
    /// One entry per device, in device order.
    pub unattributed: Vec<Unattributed>,
    /// One entry per failure in this pass.
    pub failures: Vec<Failure>,
}

/// What a pid resolved to in this pass.
#[derive(Debug, Clone)]
enum Owner {
    Container(ContainerKey),
    /// Outside any pod (a host process), or unattributable (counted once).
    Other,
    /// An MPS server (rule 7): it runs its clients' kernels, so it is neither a pod's process
    /// (even when it runs in a pod) nor another holder of the device beside its clients.
    MpsServer,
}

/// Reads `/proc/<pid>/comm` (an MPS server?) and `/proc/<pid>/cgroup`, and names the container,
/// counting failures.
struct Resolver<'a> {
    procfs: &'a Path,
    names: &'a NodeNames,
    kubelet: &'a KubeletView,
    comms: HashMap<u32, Comm>,
    seen: HashMap<u32, Owner>,
    failures: Vec<Failure>,
}

impl Resolver<'_> {
    /// Who a process on a device belongs to. `nvml_says_server`: the device's MPS list names
    /// clients and not this process (one server may serve several devices, so this is asked
    /// per device; the command name and the cgroup are read once per pass).
    fn owner(&mut self, pid: u32, nvml_says_server: bool) -> Owner {
        let procfs = self.procfs;
        let comm = *self
            .comms
            .entry(pid)
            .or_insert_with(|| Comm::read(procfs, pid));
        if comm.is_mps_server(nvml_says_server) {
            return Owner::MpsServer;
        }
        if let Some(o) = self.seen.get(&pid) {
            return o.clone();
        }
        let o = self.resolve(pid);
        self.seen.insert(pid, o.clone());
        o
    }

    fn fail(&mut self, f: Failure) -> Owner {
        self.failures.push(f);
        Owner::Other
    }

    fn resolve(&mut self, pid: u32) -> Owner {
        let path = self.procfs.join(pid.to_string()).join("cgroup");
        let content = match std::fs::read_to_string(&path) {
            Ok(c) => c,
            Err(e)
                if matches!(e.kind(), ErrorKind::NotFound)
                    || e.raw_os_error() == Some(libc::ESRCH) =>
            {
                tracing::debug!(pid, "process vanished before its cgroup was read");
                return self.fail(Failure::ProcessVanished);
            }
            Err(e) => {
                tracing::debug!(pid, error = %e, "cannot read cgroup");
                return self.fail(Failure::CgroupUnreadable);
            }
        };
        let ContainerRef {
            pod_uid,
            container_id,
        } = match cgroup::parse(&content) {
            Ok(Some(r)) => r,
            Ok(None) => return Owner::Other,
            Err(e) => {
                tracing::debug!(pid, error = %e, "unusable cgroup file");
                return self.fail(Failure::CgroupMalformed);
            }
        };
        let Some((pod, container)) = self.names.lookup(&pod_uid, &container_id) else {
            tracing::debug!(pid, pod_uid, "pod UID not found under the pod log folder");
            return self.fail(Failure::PodUnknown);
        };
        let container = match container {
            Some(c) => c,
            None => {
                // The kubelet knows which containers of the pod hold devices; one is enough.
                let mut of_pod = self
                    .kubelet
                    .allocations
                    .iter()
                    .filter(|a| a.namespace == pod.namespace && a.pod == pod.pod)
                    .map(|a| a.container.as_str());
                match (of_pod.next(), of_pod.next()) {
                    (Some(c), None) => c.to_string(),
                    _ => {
                        self.failures.push(Failure::ContainerUnknown);
                        String::new()
                    }
                }
            }
        };
        Owner::Container(ContainerKey {
            namespace: pod.namespace,
            pod: pod.pod,
            container,
        })
    }
}

/// One container's share of one device, while it is being added up.
#[derive(Debug, Default)]
struct Share {
    ratio: f64,
    memory: Option<u64>,
    processes: usize,
    allocated: bool,
}

/// Applies the attribution rules (docs/attribution.md) to the devices of one snapshot.
pub fn attribute(
    devices: &[DeviceSample],
    procfs: &Path,
    names: &NodeNames,
    kubelet: &KubeletView,
) -> Attribution {
    let mut r = Resolver {
        procfs,
        names,
        kubelet,
        comms: HashMap::new(),
        seen: HashMap::new(),
        failures: Vec::new(),
    };

    let all_identified = devices.iter().all(|d| !d.identity.uuid.is_empty());
    // Kubelet allocations per device (rule 4 and "holds the device alone").
    let mut allocated: Vec<Vec<ContainerKey>> = vec![Vec::new(); devices.len()];
    for a in &kubelet.allocations {
        for id in &a.device_ids {
            let matched: Vec<usize> = match DeviceRef::parse(id) {
                Some(dref) => devices
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| vendor_fits(&dref, d.vendor) && dref.matches(&d.identity))
                    .map(|(i, _)| i)
                    .collect(),
                None => Vec::new(),
            };
            // A device that has not answered yet has no UUID to match: not a failure (yet).
            if matched.is_empty() && all_identified {
                r.failures.push(Failure::DeviceUnknown);
            }
            for i in matched {
                allocated[i].push(ContainerKey {
                    namespace: a.namespace.clone(),
                    pod: a.pod.clone(),
                    container: a.container.clone(),
                });
            }
        }
    }

    let mut pods = Vec::new();
    let mut unattributed = Vec::with_capacity(devices.len());
    for (i, d) in devices.iter().enumerate() {
        let mut shares: BTreeMap<ContainerKey, Share> = BTreeMap::new();
        let mut others = 0usize;
        let mut outside = Unattributed {
            device: i,
            ..Unattributed::default()
        };
        // NVML's MPS list named clients here: MPS runs on the device (rule 7).
        let nvml_mps = d.processes.iter().any(|p| p.mps_client);
        let mut mps = nvml_mps;
        for p in &d.processes {
            let owner = r.owner(p.pid, nvml_mps && !p.mps_client);
            match owner {
                Owner::Container(key) => {
                    let s = shares.entry(key).or_default();
                    s.processes += 1;
                    s.ratio += p.sm_utilization_ratio.unwrap_or(0.0);
                    if let Some(m) = p.used_memory_bytes {
                        s.memory = Some(s.memory.unwrap_or(0) + m);
                    }
                    continue;
                }
                Owner::Other => others += 1,
                Owner::MpsServer => mps = true,
            }
            outside.processes += 1;
            if let Some(m) = p.used_memory_bytes {
                outside.memory_bytes = Some(outside.memory_bytes.unwrap_or(0) + m);
            }
        }
        if outside.processes == 0 {
            outside.memory_bytes = Some(0);
        }
        for key in &allocated[i] {
            shares.entry(key.clone()).or_default().allocated = true;
        }
        pods.extend(device_shares(i, d, shares, others, mps));
        unattributed.push(outside);
    }
    Attribution {
        pods,
        unattributed,
        failures: r.failures,
    }
}

/// Rules 3 to 5, and 7, for one device. `mps`: an MPS server runs on it.
fn device_shares(
    index: usize,
    d: &DeviceSample,
    shares: BTreeMap<ContainerKey, Share>,
    others: usize,
    mps: bool,
) -> Vec<PodSample> {
    // A failed device reports nothing about its processes: only allocations stand.
    let failed = matches!(d.down, Some(DeviceDown::Failed(_)));
    let alone = holds_alone(&shares, others);
    // Profiling (GPM or DCGM) has no per-process figures: the device's values go to a
    // container holding it alone.
    let profiling = if alone && !failed {
        PodProfiling::of(d.profiling.as_ref())
    } else {
        PodProfiling::default()
    };
    // MIG instances report no NVML utilization; their SM activity (GPM or DCGM) stands in.
    let device_util = d
        .metrics
        .utilization_ratio
        .or(d.profiling.and_then(|p| p.values.sm_active));
    // Rule 7: under MPS, NVML gives the clients' SM use to the server, so the clients'
    // per-process figures (0) are no measure of their use: as if the device had none.
    let per_process = d.per_process_utilization && !mps;
    let mut out: Vec<PodSample> = shares
        .into_iter()
        .map(|(key, s)| {
            let (utilization_ratio, memory_used_bytes) = if failed {
                (None, None)
            } else if s.processes == 0 {
                // Rule 4: allocated, nothing running yet.
                (Some(0.0), Some(0.0))
            } else if per_process {
                // Rule 3: the sum of its processes' SM utilization.
                (Some(s.ratio.clamp(0.0, 1.0)), s.memory.map(|m| m as f64))
            } else if alone {
                // Rule 3: no per-process data, but the container holds the device alone.
                (device_util, s.memory.map(|m| m as f64))
            } else {
                // Shared, no per-process data: no ratio, never a guess.
                (None, s.memory.map(|m| m as f64))
            };
            PodSample {
                key,
                device: index,
                utilization_ratio,
                memory_used_bytes,
                allocated: s.allocated,
                profiling,
            }
        })
        .collect();
    // Rule 5: the containers' ratios never add up to more than the device's.
    let cap = device_util.unwrap_or(1.0);
    let sum: f64 = out.iter().filter_map(|p| p.utilization_ratio).sum();
    if sum > cap && sum > 0.0 {
        let scale = cap / sum;
        for p in &mut out {
            if let Some(r) = p.utilization_ratio.as_mut() {
                *r *= scale;
            }
        }
    }
    out
}

/// Rule 3's exclusive case: one container holds the device alone when it is the only container
/// allocated it or running on it, and no process outside it (a host process, one that could not
/// be attributed) runs there. An MPS server counts as neither (rule 7). `shares` holds every
/// container allocated the device or running on it. Decides both the device utilization and
/// the GPM values a container is handed.
fn holds_alone(shares: &BTreeMap<ContainerKey, Share>, others: usize) -> bool {
    shares.len() == 1 && others == 0
}

/// GKE's `nvidiaN` names NVIDIA devices only; UUIDs and PCI addresses are unambiguous.
fn vendor_fits(dref: &DeviceRef, vendor: Option<Vendor>) -> bool {
    match dref {
        DeviceRef::Minor { .. } | DeviceRef::MigOf { .. } => vendor == Some(Vendor::Nvidia),
        DeviceRef::Uuid(_) | DeviceRef::Pci(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::podresources::ContainerDevices;
    use super::*;
    use crate::sample::{
        DeviceIdentity, DeviceMetrics, ErrorLabel, GpuProcess, Profiling, ProfilingSource,
        ProfilingValues,
    };
    use std::fs;

    const UUID0: &str = "GPU-0b7f3c2e-1a4d-4c55-9e1e-6b1f0c2d3e4f";
    const UUID1: &str = "GPU-3c4d5e6f-7081-4a92-b3c4-d5e6f7081920";

    /// A fake node with pods `(ns, pod, uid, container, container id, pid)`.
    fn node(pods: &[(&str, &str, &str, &str, &str, u32)]) -> (tempfile::TempDir, NodeNames) {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("var/log/containers")).unwrap();
        for (ns, pod, uid, ctr, cid, pid) in pods {
            fs::create_dir_all(r.join(format!("var/log/pods/{ns}_{pod}_{uid}/{ctr}"))).unwrap();
            fs::write(
                r.join(format!("var/log/containers/{pod}_{ns}_{ctr}-{cid}.log")),
                "",
            )
            .unwrap();
            fs::create_dir_all(r.join(format!("proc/{pid}"))).unwrap();
            fs::write(
                r.join(format!("proc/{pid}/cgroup")),
                format!("0::/kubepods/burstable/pod{uid}/{cid}\n"),
            )
            .unwrap();
        }
        let names = NodeNames::read(&r.join("var/log/pods"), &r.join("var/log/containers"));
        (dir, names)
    }

    fn cid(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn uid(n: u8) -> String {
        format!("{n:08x}-0000-4000-8000-000000000000")
    }

    fn device(
        gpu: &str,
        uuid: &str,
        util: f64,
        per_process: bool,
        procs: &[(u32, f64, u64)],
    ) -> DeviceSample {
        DeviceSample {
            vendor: Some(Vendor::Nvidia),
            identity: DeviceIdentity {
                gpu: gpu.into(),
                uuid: uuid.into(),
                ..DeviceIdentity::default()
            },
            metrics: DeviceMetrics {
                utilization_ratio: Some(util),
                ..DeviceMetrics::default()
            },
            profiling: None,
            processes: procs
                .iter()
                .map(|(pid, r, m)| GpuProcess {
                    pid: *pid,
                    used_memory_bytes: Some(*m),
                    sm_utilization_ratio: per_process.then_some(*r),
                    ..GpuProcess::default()
                })
                .collect(),
            per_process_utilization: per_process,
            health: Default::default(),
            down: None,
        }
    }

    fn alloc(ns: &str, pod: &str, ctr: &str, ids: &[&str]) -> ContainerDevices {
        ContainerDevices {
            namespace: ns.into(),
            pod: pod.into(),
            container: ctr.into(),
            resource_name: "nvidia.com/gpu".into(),
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn find<'a>(a: &'a Attribution, pod: &str, dev: usize) -> Option<&'a PodSample> {
        a.pods.iter().find(|p| p.key.pod == pod && p.device == dev)
    }

    #[test]
    fn allocated_without_processes_reports_zero() {
        let (dir, names) = node(&[]);
        let kubelet = KubeletView {
            allocations: vec![alloc("llm", "vllm-0", "server", &[UUID0])],
            ..KubeletView::default()
        };
        let devs = [device("0", UUID0, 0.4, false, &[])];
        let a = attribute(&devs, &dir.path().join("proc"), &names, &kubelet);
        let p = find(&a, "vllm-0", 0).unwrap();
        assert_eq!(
            (p.utilization_ratio, p.memory_used_bytes, p.allocated),
            (Some(0.0), Some(0.0), true)
        );
        assert!(a.failures.is_empty());
    }

    #[test]
    fn exclusive_by_allocation_without_per_process_data_gets_the_device() {
        let (u, c) = (uid(1), cid(1));
        let (dir, names) = node(&[("llm", "vllm-0", &u, "server", &c, 100)]);
        let kubelet = KubeletView {
            allocations: vec![alloc("llm", "vllm-0", "server", &[&format!("{UUID0}::0")])],
            ..KubeletView::default()
        };
        let devs = [device("0", UUID0, 0.83, false, &[(100, 0.0, 5)])];
        let a = attribute(&devs, &dir.path().join("proc"), &names, &kubelet);
        let p = find(&a, "vllm-0", 0).unwrap();
        assert_eq!(
            (p.utilization_ratio, p.memory_used_bytes, p.allocated),
            (Some(0.83), Some(5.0), true)
        );
    }

    #[test]
    fn time_sliced_without_per_process_data_gets_no_ratio() {
        let (dir, names) = node(&[
            ("a", "p1", &uid(1), "c", &cid(1), 100),
            ("a", "p2", &uid(2), "c", &cid(2), 200),
        ]);
        let kubelet = KubeletView {
            allocations: vec![
                alloc("a", "p1", "c", &[&format!("{UUID0}::0")]),
                alloc("a", "p2", "c", &[&format!("{UUID0}::1")]),
            ],
            ..KubeletView::default()
        };
        let devs = [device(
            "0",
            UUID0,
            0.9,
            false,
            &[(100, 0.0, 1), (200, 0.0, 2)],
        )];
        let a = attribute(&devs, &dir.path().join("proc"), &names, &kubelet);
        assert_eq!(find(&a, "p1", 0).unwrap().utilization_ratio, None);
        assert_eq!(find(&a, "p2", 0).unwrap().memory_used_bytes, Some(2.0));
    }

    #[test]
    fn a_host_process_on_the_device_means_the_container_is_not_alone() {
        let (dir, names) = node(&[("a", "p1", &uid(1), "c", &cid(1), 100)]);
        fs::create_dir_all(dir.path().join("proc/300")).unwrap();
        fs::write(
            dir.path().join("proc/300/cgroup"),
            "0::/system.slice/foo.service\n",
        )
        .unwrap();
        let devs = [device(
            "0",
            UUID0,
            0.9,
            false,
            &[(100, 0.0, 1), (300, 0.0, 1)],
        )];
        let a = attribute(
            &devs,
            &dir.path().join("proc"),
            &names,
            &KubeletView::default(),
        );
        assert_eq!(find(&a, "p1", 0).unwrap().utilization_ratio, None);
        assert_eq!(a.pods.len(), 1, "the host process is not a pod series");
    }

    #[test]
    fn a_process_on_two_gpus_counts_on_each() {
        let (dir, names) = node(&[("ml", "trainer", &uid(1), "c", &cid(1), 100)]);
        let devs = [
            device("0", UUID0, 0.5, true, &[(100, 0.5, 10)]),
            device("1", UUID1, 0.7, true, &[(100, 0.6, 20)]),
        ];
        let a = attribute(
            &devs,
            &dir.path().join("proc"),
            &names,
            &KubeletView::default(),
        );
        assert_eq!(find(&a, "trainer", 0).unwrap().utilization_ratio, Some(0.5));
        assert_eq!(find(&a, "trainer", 1).unwrap().utilization_ratio, Some(0.6));
        assert_eq!(
            find(&a, "trainer", 1).unwrap().memory_used_bytes,
            Some(20.0)
        );
    }

    #[test]
    fn unknown_devices_and_pods_are_counted() {
        let (dir, names) = node(&[]);
        // A process in a pod whose log folder is gone.
        fs::create_dir_all(dir.path().join("proc/100")).unwrap();
        fs::write(
            dir.path().join("proc/100/cgroup"),
            format!("0::/kubepods/pod{}/{}\n", uid(9), cid(9)),
        )
        .unwrap();
        let kubelet = KubeletView {
            allocations: vec![alloc("a", "p", "c", &["GPU-not-on-this-node"])],
            ..KubeletView::default()
        };
        let devs = [device(
            "0",
            UUID0,
            0.5,
            true,
            &[(100, 0.5, 1), (101, 0.1, 1)],
        )];
        let a = attribute(&devs, &dir.path().join("proc"), &names, &kubelet);
        assert!(a.pods.is_empty());
        let mut f = a.failures.clone();
        f.sort();
        assert_eq!(
            f,
            [
                Failure::ProcessVanished,
                Failure::PodUnknown,
                Failure::DeviceUnknown
            ]
        );
    }

    #[test]
    fn the_container_name_falls_back_to_the_kubelet() {
        let (u, c) = (uid(1), cid(1));
        let (dir, _) = node(&[("a", "p", &u, "main", &c, 100)]);
        // Two container folders (a sidecar), and no log symlink for this container ID.
        fs::create_dir_all(dir.path().join(format!("var/log/pods/a_p_{u}/sidecar"))).unwrap();
        let names = NodeNames::read(
            &dir.path().join("var/log/pods"),
            &dir.path().join("nowhere"),
        );
        let kubelet = KubeletView {
            allocations: vec![alloc("a", "p", "main", &[UUID0])],
            ..KubeletView::default()
        };
        let devs = [device("0", UUID0, 0.5, true, &[(100, 0.4, 1)])];
        let a = attribute(&devs, &dir.path().join("proc"), &names, &kubelet);
        let p = find(&a, "p", 0).unwrap();
        assert_eq!(p.key.container, "main");
        assert_eq!(p.utilization_ratio, Some(0.4));
        // Without the kubelet: counted, and still a pod series.
        let a = attribute(
            &devs,
            &dir.path().join("proc"),
            &names,
            &KubeletView::default(),
        );
        assert_eq!(a.failures, [Failure::ContainerUnknown]);
        assert_eq!(find(&a, "p", 0).unwrap().key.container, "");
    }

    #[test]
    fn a_lost_device_keeps_allocations_only() {
        let (dir, names) = node(&[]);
        let kubelet = KubeletView {
            allocations: vec![alloc("a", "p", "c", &["nvidia0"])],
            ..KubeletView::default()
        };
        let mut d = device("0", UUID0, 0.5, true, &[]);
        d.down = Some(DeviceDown::Failed(ErrorLabel::Driver("GPU_IS_LOST")));
        let a = attribute(&[d], &dir.path().join("proc"), &names, &kubelet);
        let p = find(&a, "p", 0).unwrap();
        assert_eq!(
            (p.utilization_ratio, p.memory_used_bytes, p.allocated),
            (None, None, true)
        );
    }

    /// Profiling values `[sm_active, sm_occupancy, tensor_active, dram_active]` on a device,
    /// from `source`.
    fn with_profiling(mut d: DeviceSample, source: ProfilingSource, v: [f64; 4]) -> DeviceSample {
        d.profiling = Some(Profiling {
            source,
            values: ProfilingValues {
                sm_active: Some(v[0]),
                sm_occupancy: Some(v[1]),
                tensor_active: Some(v[2]),
                dram_active: Some(v[3]),
                ..ProfilingValues::default()
            },
        });
        d
    }

    /// GPM values `[sm_active, sm_occupancy, tensor_active, dram_active]` on a device.
    fn with_gpm(d: DeviceSample, v: [f64; 4]) -> DeviceSample {
        with_profiling(d, ProfilingSource::Gpm, v)
    }

    /// A MIG instance: a device of its own, with no NVML utilization and no per-process data.
    fn mig(gpu: &str, uuid: &str, procs: &[(u32, f64, u64)], v: [f64; 4]) -> DeviceSample {
        let mut d = with_gpm(device(gpu, uuid, 0.0, false, procs), v);
        d.metrics.utilization_ratio = None;
        d
    }

    fn gpm_of(p: &PodSample) -> Option<[f64; 4]> {
        let g = p.profiling;
        Some([
            g.sm_active_ratio?,
            g.sm_occupancy_ratio?,
            g.tensor_active_ratio?,
            g.dram_active_ratio?,
        ])
    }

    /// The per-pod GPM series: the device's values for a container that holds the device (or
    /// MIG instance) alone, by rule 3's exclusive case; absent anywhere else.
    #[test]
    fn gpm_goes_only_to_a_container_that_holds_the_device_alone() {
        const MIG1: &str = "MIG-7c2e9a10-4b3d-5f61-8e0a-1d2c3b4a5f60";
        const MIG5: &str = "MIG-1e8f4d22-9a7b-5c03-b6d5-3f4e2a1b0c97";
        // The H200 at about 41 % of a decode server's capacity, and at full load
        // (docs/measurements.md, "Which GPU series tracks an LLM decode load").
        const MID: [f64; 4] = [0.69, 0.097, 0.038, 0.64];
        const FULL: [f64; 4] = [0.92, 0.14, 0.094, 0.84];
        // Pods p1..p3 with one process each (pids 100, 200, 300); pid 400 is an MPS server
        // that runs in pod mps (as the NVIDIA device plugin's MPS daemon does); pid 900 a host
        // daemon; pid 901 an MPS server on the host.
        let (dir, names) = node(&[
            ("a", "p1", &uid(1), "c", &cid(1), 100),
            ("a", "p2", &uid(2), "c", &cid(2), 200),
            ("a", "p3", &uid(3), "c", &cid(3), 300),
            ("kube-system", "mps", &uid(4), "mps", &cid(4), 400),
        ]);
        let proc = dir.path().join("proc");
        for (pid, cgroup) in [
            (900, "0::/system.slice/nvidia-persistenced.service\n"),
            (901, "0::/system.slice/nvidia-mps.service\n"),
        ] {
            fs::create_dir_all(proc.join(format!("{pid}"))).unwrap();
            fs::write(proc.join(format!("{pid}/cgroup")), cgroup).unwrap();
        }
        // What the kernel shows of nvidia-cuda-mps-server's name: 15 bytes.
        for pid in [400, 901] {
            fs::write(proc.join(format!("{pid}/comm")), "nvidia-cuda-mps\n").unwrap();
        }
        fs::write(proc.join("100/comm"), "python3\n").unwrap();

        let (mid, full) = (Some(MID), Some(FULL));
        let amd = {
            let mut d = device("0", UUID0, 0.5, true, &[(100, 0.5, 1)]);
            d.vendor = Some(Vendor::Amd);
            d
        };
        let failed = {
            let mut d = with_gpm(device("0", UUID0, 0.5, true, &[]), MID);
            d.down = Some(DeviceDown::Failed(ErrorLabel::Driver("GPU_IS_LOST")));
            d
        };
        let timed_out = {
            let mut d = with_gpm(device("0", UUID0, 0.5, true, &[(100, 0.5, 1)]), MID);
            d.down = Some(DeviceDown::TimedOut);
            d
        };
        type Expect<'a> = Vec<(&'a str, usize, Option<[f64; 4]>)>;
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<DeviceSample>, Vec<ContainerDevices>, Expect)> = vec![
            ("exclusive by allocation, one process",
             vec![with_gpm(device("0", UUID0, 0.9, true, &[(100, 0.8, 1)]), MID)],
             vec![alloc("a", "p1", "c", &[UUID0])],
             vec![("p1", 0, mid)]),
            ("exclusive by allocation, nothing running yet (rule 4): the device's values",
             vec![with_gpm(device("0", UUID0, 0.0, true, &[]), [0.0; 4])],
             vec![alloc("a", "p1", "c", &[UUID0])],
             vec![("p1", 0, Some([0.0; 4]))]),
            ("exclusive as the only container running on it, no kubelet",
             vec![with_gpm(device("0", UUID0, 0.9, false, &[(100, 0.0, 1)]), MID)],
             vec![],
             vec![("p1", 0, mid)]),
            ("time-sliced: two containers allocated replicas, both running",
             vec![with_gpm(device("0", UUID0, 0.9, true, &[(100, 0.5, 1), (200, 0.3, 1)]), MID)],
             vec![alloc("a", "p1", "c", &[&format!("{UUID0}::0")]),
                  alloc("a", "p2", "c", &[&format!("{UUID0}::1")])],
             vec![("p1", 0, None), ("p2", 0, None)]),
            ("shared: one running, another allocated and idle",
             vec![with_gpm(device("0", UUID0, 0.9, true, &[(100, 0.5, 1)]), MID)],
             vec![alloc("a", "p1", "c", &[&format!("{UUID0}::0")]),
                  alloc("a", "p2", "c", &[&format!("{UUID0}::1")])],
             vec![("p1", 0, None), ("p2", 0, None)]),
            ("a host process beside the container",
             vec![with_gpm(device("0", UUID0, 0.9, true, &[(100, 0.5, 1), (900, 0.1, 1)]), MID)],
             vec![],
             vec![("p1", 0, None)]),
            ("MIG: each instance's own values, on its own scale",
             vec![mig("1:1", MIG1, &[(100, 0.0, 1)], FULL), mig("1:5", MIG5, &[(200, 0.0, 1)], MID)],
             vec![alloc("a", "p1", "c", &[MIG1])],
             vec![("p1", 0, full), ("p2", 1, mid)]),
            ("MIG: two containers on one instance",
             vec![mig("1:1", MIG1, &[(100, 0.0, 1), (200, 0.0, 1)], FULL)],
             vec![],
             vec![("p1", 0, None), ("p2", 0, None)]),
            ("one container on two GPUs: one series per device",
             vec![with_gpm(device("0", UUID0, 0.9, true, &[(100, 0.8, 1)]), MID),
                  with_gpm(device("1", UUID1, 0.9, true, &[(100, 0.9, 1)]), FULL)],
             vec![alloc("a", "p1", "c", &[UUID0, UUID1])],
             vec![("p1", 0, mid), ("p1", 1, full)]),
            ("DCGM's values on a GPU without GPM, held alone: the same rule",
             vec![with_profiling(device("0", UUID0, 0.9, true, &[(100, 0.8, 1)]), ProfilingSource::Dcgm, MID)],
             vec![alloc("a", "p1", "c", &[UUID0])],
             vec![("p1", 0, mid)]),
            ("DCGM's values on a shared GPU without GPM: none",
             vec![with_profiling(device("0", UUID0, 0.9, true, &[(100, 0.5, 1), (200, 0.3, 1)]), ProfilingSource::Dcgm, MID)],
             vec![],
             vec![("p1", 0, None), ("p2", 0, None)]),
            ("DCGM's values on a MIG instance held alone",
             vec![with_profiling(mig("1:1", MIG1, &[(100, 0.0, 1)], FULL), ProfilingSource::Dcgm, FULL)],
             vec![],
             vec![("p1", 0, full)]),
            ("a device without any profiling source (pre-Hopper without DCGM)",
             vec![device("0", UUID0, 0.9, true, &[(100, 0.8, 1)])],
             vec![alloc("a", "p1", "c", &[UUID0])],
             vec![("p1", 0, None)]),
            ("an AMD device: no GPM",
             vec![amd],
             vec![],
             vec![("p1", 0, None)]),
            ("MPS, server on the host, two client containers",
             vec![with_gpm(device("0", UUID0, 0.9, true, &[(901, 0.87, 1), (100, 0.0, 1), (200, 0.0, 1)]), MID)],
             vec![],
             vec![("p1", 0, None), ("p2", 0, None)]),
            ("MPS, server in a pod, three client containers",
             vec![with_gpm(device("0", UUID0, 0.9, true, &[(400, 0.87, 1), (100, 0.0, 1), (200, 0.0, 1), (300, 0.0, 1)]), MID)],
             vec![],
             vec![("p1", 0, None), ("p2", 0, None), ("p3", 0, None)]),
            ("MPS with one client container: it holds the device alone (rule 7)",
             vec![with_gpm(device("0", UUID0, 0.9, true, &[(901, 0.87, 1), (100, 0.0, 1)]), MID)],
             vec![],
             vec![("p1", 0, mid)]),
            ("a lost device: nothing but the allocation",
             vec![failed],
             vec![alloc("a", "p1", "c", &[UUID0])],
             vec![("p1", 0, None)]),
            ("a device that did not answer in time keeps its last values",
             vec![timed_out],
             vec![],
             vec![("p1", 0, mid)]),
        ];
        for (case, devs, allocations, expect) in cases {
            let kubelet = KubeletView {
                allocations,
                ..KubeletView::default()
            };
            let a = attribute(&devs, &proc, &names, &kubelet);
            let got: Vec<(&str, usize, Option<[f64; 4]>)> = a
                .pods
                .iter()
                .map(|p| (p.key.pod.as_str(), p.device, gpm_of(p)))
                .collect();
            assert_eq!(got, expect, "{case}");
            // A series is all four or none: never a partial set from one device.
            for p in &a.pods {
                let g = p.profiling;
                let present = [
                    g.sm_active_ratio,
                    g.sm_occupancy_ratio,
                    g.tensor_active_ratio,
                    g.dram_active_ratio,
                ]
                .map(|v| v.is_some());
                assert!(present.iter().all(|x| *x == present[0]), "{case}");
            }
            assert!(a.failures.is_empty(), "{case}: {:?}", a.failures);
        }
    }

    /// Rule 7: an MPS server is never a pod's process, and leaves its only client container
    /// holding the device alone, for its utilization too.
    #[test]
    fn an_mps_server_is_no_pod_and_no_other_holder() {
        let (dir, names) = node(&[
            ("a", "p1", &uid(1), "c", &cid(1), 100),
            ("kube-system", "mps", &uid(4), "mps", &cid(4), 400),
        ]);
        let proc = dir.path().join("proc");
        fs::write(proc.join("400/comm"), "nvidia-cuda-mps\n").unwrap();
        // No per-process data: the only client gets the device's utilization.
        let devs = [device(
            "0",
            UUID0,
            0.87,
            false,
            &[(400, 0.0, 66), (100, 0.0, 5)],
        )];
        let a = attribute(&devs, &proc, &names, &KubeletView::default());
        assert_eq!(a.pods.len(), 1, "{:?}", a.pods);
        let p = find(&a, "p1", 0).unwrap();
        assert_eq!(
            (p.utilization_ratio, p.memory_used_bytes),
            (Some(0.87), Some(5.0))
        );
    }

    /// A device under MPS as NVML reports it (docs/measurements.md, "MPS"): per-process utilization
    /// supported, every sample on the server (pid 4100, 66 MiB), the clients at 0.
    fn mps_device(procs: &[(u32, u64)], clients_listed: bool) -> DeviceSample {
        let mut d = device(
            "0",
            UUID0,
            0.87,
            true,
            &procs
                .iter()
                .map(|(pid, m)| (*pid, if *pid == 4100 { 0.87 } else { 0.0 }, *m))
                .collect::<Vec<_>>(),
        );
        for p in &mut d.processes {
            p.mps_client = clients_listed && p.pid != 4100;
        }
        d
    }

    /// Rule 7 with per-process data: the clients' 0 is no measure of their use, so they get
    /// no ratio (memory as usual); the server is no pod, and its memory is unattributed.
    #[test]
    fn mps_clients_get_no_false_zero() {
        let (dir, names) = node(&[
            ("a", "p1", &uid(1), "c", &cid(1), 100),
            ("a", "p2", &uid(2), "c", &cid(2), 200),
            ("kube-system", "mps", &uid(4), "mps", &cid(4), 4100),
        ]);
        let proc = dir.path().join("proc");
        fs::write(proc.join("4100/comm"), "nvidia-cuda-mps\n").unwrap();
        fs::write(proc.join("100/comm"), "python3\n").unwrap();
        for clients_listed in [true, false] {
            let devs = [mps_device(
                &[(4100, 66), (100, 5), (200, 7)],
                clients_listed,
            )];
            let a = attribute(&devs, &proc, &names, &KubeletView::default());
            let got: Vec<(&str, Option<f64>, Option<f64>)> = a
                .pods
                .iter()
                .map(|p| (p.key.pod.as_str(), p.utilization_ratio, p.memory_used_bytes))
                .collect();
            assert_eq!(
                got,
                [("p1", None, Some(5.0)), ("p2", None, Some(7.0))],
                "clients listed by NVML: {clients_listed}"
            );
            assert_eq!(
                a.unattributed,
                [Unattributed {
                    device: 0,
                    processes: 1,
                    memory_bytes: Some(66)
                }]
            );
            assert!(a.failures.is_empty());
        }
        // One client container: it holds the device alone, and gets the device's utilization.
        let devs = [mps_device(&[(4100, 66), (100, 5)], true)];
        let a = attribute(&devs, &proc, &names, &KubeletView::default());
        assert_eq!(a.pods.len(), 1);
        assert_eq!(find(&a, "p1", 0).unwrap().utilization_ratio, Some(0.87));
    }

    /// Where the server's command name cannot be read, NVML's MPS list tells it: a process in
    /// the compute list that the list does not name. A name that reads as another program
    /// outweighs NVML (a process that does not use MPS, beside MPS clients).
    #[test]
    fn nvml_tells_the_server_where_its_name_cannot_be_read() {
        let (dir, names) = node(&[
            ("a", "p1", &uid(1), "c", &cid(1), 100),
            ("a", "p2", &uid(2), "c", &cid(2), 200),
            ("kube-system", "mps", &uid(4), "mps", &cid(4), 4100),
        ]);
        let proc = dir.path().join("proc");
        // No comm for 4100; 200 is not an MPS client and says so by its name.
        fs::write(proc.join("200/comm"), "python3\n").unwrap();
        let mut d = mps_device(&[(4100, 66), (100, 5), (200, 7)], true);
        d.processes[2].mps_client = false;
        let a = attribute(&[d.clone()], &proc, &names, &KubeletView::default());
        let pods: Vec<&str> = a.pods.iter().map(|p| p.key.pod.as_str()).collect();
        assert_eq!(pods, ["p1", "p2"], "the server's pod is no pod series");
        assert_eq!(a.unattributed[0].processes, 1);
        assert_eq!(find(&a, "p1", 0).unwrap().utilization_ratio, None);
        // Without NVML's list, an unreadable name is no server: the pod keeps its process.
        for p in &mut d.processes {
            p.mps_client = false;
        }
        let a = attribute(&[d], &proc, &names, &KubeletView::default());
        assert!(find(&a, "mps", 0).is_some());
    }

    /// `gpu_unattributed_*`: host processes, an MPS server and vanished processes; memory
    /// the sum of the figures the driver gives, absent where it gives none.
    #[test]
    fn unattributed_use_per_device() {
        let (dir, names) = node(&[("a", "p1", &uid(1), "c", &cid(1), 100)]);
        let proc = dir.path().join("proc");
        for (pid, cgroup, comm) in [
            (
                900,
                "0::/system.slice/nvidia-persistenced.service\n",
                "nvidia-persiste\n",
            ),
            (
                901,
                "0::/system.slice/nvidia-mps.service\n",
                "nvidia-cuda-mps\n",
            ),
        ] {
            fs::create_dir_all(proc.join(format!("{pid}"))).unwrap();
            fs::write(proc.join(format!("{pid}/cgroup")), cgroup).unwrap();
            fs::write(proc.join(format!("{pid}/comm")), comm).unwrap();
        }
        // pid 999 has no /proc entry: it vanished. On GPU 1 the driver gives no memory for the
        // host process (a graphics client seen only in utilization samples), on GPU 3 for one
        // of two.
        let mut none = device("1", UUID1, 0.5, true, &[(900, 0.0, 3)]);
        none.processes[0].used_memory_bytes = None;
        let mut some = device("3", "GPU-3", 0.5, true, &[(900, 0.0, 3), (901, 0.0, 40)]);
        some.processes[0].used_memory_bytes = None;
        let devs = [
            device(
                "0",
                UUID0,
                0.5,
                true,
                &[
                    (100, 0.3, 10),
                    (900, 0.0, 20),
                    (901, 0.0, 40),
                    (999, 0.1, 80),
                ],
            ),
            none,
            device("2", "GPU-2", 0.0, true, &[]),
            some,
        ];
        let a = attribute(&devs, &proc, &names, &KubeletView::default());
        let got: Vec<(usize, usize, Option<u64>)> = a
            .unattributed
            .iter()
            .map(|u| (u.device, u.processes, u.memory_bytes))
            .collect();
        assert_eq!(
            got,
            [
                (0, 3, Some(140)),
                (1, 1, None),
                (2, 0, Some(0)),
                (3, 2, Some(40))
            ]
        );
        assert_eq!(a.failures, [Failure::ProcessVanished]);
        assert_eq!(find(&a, "p1", 0).unwrap().memory_used_bytes, Some(10.0));
    }
}
