//! Parses `/proc/<pid>/cgroup` into a process's pod UID and container ID (docs/attribution.md, rule 1).
//!
//! Each line is `hierarchy-id:controllers:path`: one line (`0::/…`) on cgroup v2, one per
//! hierarchy on v1. The path is read component by component, never by its prefix, because the
//! kubelet's tree is not always at the root: kind and docker-in-docker nodes put it under
//! `/docker/<id>/…`, and a reader in a private cgroup namespace sees `/../../…`.
//!
//! | component                                               | what                                   |
//! |---------------------------------------------------------|----------------------------------------|
//! | `pod<uid>`                                              | pod, cgroupfs driver                   |
//! | `[<prefix>-]kubepods[-burstable\|-besteffort]-pod<uid>.slice` | pod, systemd driver (`-` written `_`; kind's prefix is `kubelet`) |
//! | `<64 hex>`                                              | container, cgroupfs (containerd, docker) |
//! | `cri-containerd-<64 hex>.scope`                         | container, containerd with systemd     |
//! | `crio-<64 hex>[.scope]`                                 | container, CRI-O                       |
//! | `docker-<64 hex>.scope`                                 | container, docker with systemd         |
//!
//! A UID is 8-4-4-4-12 hex digits, or 32 hex digits for a static pod (the hash of its manifest).
//!
//! cgroup v1 with the systemd driver writes containerd's containers as
//! `<pod slice>:cri-containerd:<64 hex>`, so within a path `:` separates names just as `/` does.
//!
//! The pod is the last pod component of the path and the container the first container component
//! after it; anything deeper is still inside that container. A path with a pod but no container
//! after it (the pod's own cgroup, CRI-O's `crio-conmon-<id>.scope`, a `*.mount` unit) does not
//! place the process in a container, and gives nothing.
//!
//! Hex is accepted in either case and returned in lower case, as the kubelet and the runtimes
//! write it (and as [`super::names`] keys its maps), so a join never fails on case alone.

use std::fmt;

/// Where a process lives: its pod's UID and its container's runtime ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerRef {
    /// Canonical pod UID: lower-case 8-4-4-4-12 with dashes for API pods; the 32 lower-case hex
    /// digits as written for static (mirror) pods, which is how /var/log/pods names them.
    pub pod_uid: String,
    /// The container runtime's ID: 64 lower-case hex digits.
    pub container_id: String,
}

impl fmt::Display for ContainerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pod {} container {}", self.pod_uid, self.container_id)
    }
}

/// Why a cgroup file names no single container.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CgroupError {
    /// A line without two `:`. `line` is the line, cut to [`MAX_LINE_IN_ERROR`] characters.
    #[error("cgroup line is not `hierarchy-id:controllers:path`: {line:?}")]
    Malformed { line: String },
    /// Two hierarchies (cgroup v1) place the process in different containers.
    #[error("cgroup hierarchies disagree: one places the process in {first}, another in {second}")]
    Conflicting {
        first: ContainerRef,
        second: ContainerRef,
    },
}

/// How much of a malformed line an error keeps: enough to recognise it in a log, and a bound on
/// what a hostile or corrupt file can put there.
pub const MAX_LINE_IN_ERROR: usize = 200;

/// Parses a whole `/proc/<pid>/cgroup` file. `Ok(None)`: the process is not in a pod (a host
/// process, a system service, the kubelet's conmon...).
///
/// Blank lines are skipped (the kernel writes none; a trailing newline is not an error). On
/// cgroup v1 the hierarchies normally agree; lines that place the process nowhere are ignored,
/// and two lines that place it in different containers are [`CgroupError::Conflicting`].
pub fn parse(content: &str) -> Result<Option<ContainerRef>, CgroupError> {
    let mut found: Option<ContainerRef> = None;
    for line in content.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let Some(r) = parse_line(line)? else {
            continue;
        };
        match found {
            None => found = Some(r),
            Some(ref first) if *first == r => {}
            Some(first) => return Err(CgroupError::Conflicting { first, second: r }),
        }
    }
    Ok(found)
}

/// Parses one line `hierarchy-id:controllers:path`.
///
/// Only the first two `:` separate fields; the path may hold more (cgroup v1 with systemd).
pub fn parse_line(line: &str) -> Result<Option<ContainerRef>, CgroupError> {
    let mut fields = line.splitn(3, ':');
    let (Some(_hierarchy), Some(_controllers), Some(path)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Err(CgroupError::Malformed {
            line: excerpt(line),
        });
    };
    Ok(parse_path(path))
}

/// One name in a cgroup path.
enum Name<'a> {
    /// A pod's cgroup; the UID as written (systemd's `_` not yet turned back into `-`).
    Pod(&'a str),
    /// A container's cgroup; the 64 hex digits as written.
    Container(&'a str),
    /// Anything else: QoS slices, prefixes, conmon, mount units, `..`.
    Other,
}

fn parse_path(path: &str) -> Option<ContainerRef> {
    let mut pod: Option<&str> = None;
    let mut container: Option<&str> = None;
    for name in path.split(['/', ':']) {
        match classify(name) {
            // A pod nested in a container (kind inside a pod) is more specific: start again.
            Name::Pod(uid) => {
                pod = Some(uid);
                container = None;
            }
            Name::Container(id) if pod.is_some() && container.is_none() => container = Some(id),
            Name::Container(_) | Name::Other => {}
        }
    }
    let (pod, container) = (pod?, container?);
    Some(ContainerRef {
        pod_uid: pod
            .chars()
            .map(|c| {
                if c == '_' {
                    '-'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect(),
        container_id: container.to_ascii_lowercase(),
    })
}

fn classify(name: &str) -> Name<'_> {
    // cgroupfs: `pod<uid>`.
    if let Some(uid) = name.strip_prefix("pod") {
        if is_uid(uid, b'-') {
            return Name::Pod(uid);
        }
    }
    // systemd: `kubepods[-<qos>]-pod<uid>.slice`, with an optional prefix (kind: `kubelet-`).
    // A UID has no `-` and no `p`, so the last `-pod` is the one before it.
    if let Some((parent, uid)) = name
        .strip_suffix(".slice")
        .and_then(|stem| stem.rsplit_once("-pod"))
    {
        if is_kubepods(parent) && is_uid(uid, b'_') {
            return Name::Pod(uid);
        }
    }
    // Containers. `crio-conmon-<id>.scope` is not one: `conmon-<id>` is not 64 hex.
    if is_hex(name, 64) {
        return Name::Container(name);
    }
    let unscoped = name.strip_suffix(".scope").unwrap_or(name);
    for runtime in ["cri-containerd-", "crio-", "docker-"] {
        if let Some(id) = unscoped.strip_prefix(runtime) {
            if is_hex(id, 64) {
                return Name::Container(id);
            }
        }
    }
    Name::Other
}

/// The parent slice of a systemd pod slice: `kubepods`, `kubepods-burstable`,
/// `kubepods-besteffort`, each possibly after a prefix (`kubelet-kubepods-besteffort`).
fn is_kubepods(parent: &str) -> bool {
    let tree = parent
        .strip_suffix("-burstable")
        .or_else(|| parent.strip_suffix("-besteffort"))
        .unwrap_or(parent);
    tree == "kubepods" || tree.ends_with("-kubepods")
}

/// A pod UID: 32 hex digits (a static pod), or 8-4-4-4-12 hex digits joined by `sep`.
fn is_uid(s: &str, sep: u8) -> bool {
    if s.len() == 32 {
        return is_hex(s, 32);
    }
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == sep,
            _ => b.is_ascii_hexdigit(),
        })
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The start of `line`, at most [`MAX_LINE_IN_ERROR`] characters, `…` where it was cut.
fn excerpt(line: &str) -> String {
    let mut s: String = line.chars().take(MAX_LINE_IN_ERROR).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(pod_uid: &str, container_id: &str) -> Option<ContainerRef> {
        Some(ContainerRef {
            pod_uid: pod_uid.into(),
            container_id: container_id.into(),
        })
    }

    /// One real line per layout, with where it comes from. Lines marked "layout from
    /// docs/measurements.md" follow its "Cgroup paths" with IDs from our every-layout fixture.
    /// Shared with the fuzz seed corpus (fuzz/corpus/cgroup/), one file per case.
    const LAYOUTS: &[(&str, &str, &str, &str)] = &[
        (
            // GKE / kubeadm: cgroup v2, systemd driver, containerd, burstable pod
            // (docs/measurements.md).
            "v2-systemd-containerd-burstable",
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poddde1244b_5bb5_4297_b544_85f3bc0d80bf.slice/cri-containerd-acb62391578595ec849d87d8556369cee7f935f0425097fd5f870df0e8aabd3c.scope",
            "dde1244b-5bb5-4297-b544-85f3bc0d80bf",
            "acb62391578595ec849d87d8556369cee7f935f0425097fd5f870df0e8aabd3c",
        ),
        (
            // k3s (under colima): cgroup v2, systemd driver, best-effort pod (cryptnono/cryptnono#47).
            "k3s-v2-systemd-besteffort",
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod7fda01c4_0ece_403d_88b4_c371d66d132a.slice/cri-containerd-e58a24d4a722c99712cff74ef69d93311089584eb32617b3890e0dcb996133f1.scope",
            "7fda01c4-0ece-403d-88b4-c371d66d132a",
            "e58a24d4a722c99712cff74ef69d93311089584eb32617b3890e0dcb996133f1",
        ),
        (
            // cgroup v2 with the cgroupfs driver (k3s, older kubeadm defaults)
            // (docs/measurements.md).
            "v2-cgroupfs-burstable",
            "0::/kubepods/burstable/pod15513b48-e7a5-48fc-b9e3-92f713f36504/a51a9f7d073f848e7fc59e56e8f11524f330a2175a4ed26327da2dfe0d28015f",
            "15513b48-e7a5-48fc-b9e3-92f713f36504",
            "a51a9f7d073f848e7fc59e56e8f11524f330a2175a4ed26327da2dfe0d28015f",
        ),
        (
            // cgroup v1, cgroupfs driver, as on EKS AL2 and older GKE COS; this line is from a
            // GKE node with docker (elastic's container-info test fixture, 2019).
            "v1-cgroupfs-gke-docker",
            "11:devices:/kubepods/besteffort/pod74c13223-5a00-11e9-b385-42010a80018d/34dc0b5e626f2c5c4c5170e34b10e7654ce36f0fcd532739f4445baabea03376",
            "74c13223-5a00-11e9-b385-42010a80018d",
            "34dc0b5e626f2c5c4c5170e34b10e7654ce36f0fcd532739f4445baabea03376",
        ),
        (
            // cgroup v1, cgroupfs, seen from inside a minikube node (sustainable-computing-io/kepler#684).
            "v1-cgroupfs-minikube",
            "11:blkio:/kubepods/burstable/podf6adb0af-0855-4bab-b25b-c853f18d0ce2/35b97177dada20362ab90d90ac63cd54e8a41cf87bea34f270631b6da17f4a93",
            "f6adb0af-0855-4bab-b25b-c853f18d0ce2",
            "35b97177dada20362ab90d90ac63cd54e8a41cf87bea34f270631b6da17f4a93",
        ),
        (
            // cgroup v1, systemd driver, containerd: `:` inside the path (elastic/apm-nodejs-http-client#164).
            "v1-systemd-colon",
            "1:name=systemd:/system.slice/containerd.service/kubepods-burstable-podff49d0be_16b7_4a49_bb9e_8ec1f1f4e27f.slice:cri-containerd:0f99ad5f45163ed14ab8eaf92ed34bb4a631d007f8755a7d79be614bcb0df0ef",
            "ff49d0be-16b7-4a49-bb9e-8ec1f1f4e27f",
            "0f99ad5f45163ed14ab8eaf92ed34bb4a631d007f8755a7d79be614bcb0df0ef",
        ),
        (
            // The same layout on a hierarchy that containerd's service is not in
            // (open-telemetry/opentelemetry-java#4507).
            "v1-systemd-colon-no-service",
            "11:perf_event:/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:cri-containerd:ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459",
            "0125ec2f-b64a-4868-8f5b-94b56cbab864",
            "ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459",
        ),
        (
            // Guaranteed pod (no QoS slice), cgroup v1, systemd, containerd (tkestack/vcuda-controller#19).
            "guaranteed-v1-systemd",
            "12:hugetlb:/kubepods.slice/kubepods-pod019c1fe8_0d92_4aa0_b61c_4df58bdde71c.slice/cri-containerd-9e073649debeec6d511391c9ec7627ee67ce3a3fb508b0fa0437a97f8e58ba98.scope",
            "019c1fe8-0d92-4aa0-b61c-4df58bdde71c",
            "9e073649debeec6d511391c9ec7627ee67ce3a3fb508b0fa0437a97f8e58ba98",
        ),
        (
            // Guaranteed pod, cgroupfs: k3s on cgroup v1 (layout from docs/measurements.md).
            "guaranteed-cgroupfs",
            "4:memory:/kubepods/podfc75ec23-ba2d-487e-8e16-90ccbdc44440/72771e6e3bb0dce06f89d484641e724bf700b56024719bad9cd01bfdb6e9fc93",
            "fc75ec23-ba2d-487e-8e16-90ccbdc44440",
            "72771e6e3bb0dce06f89d484641e724bf700b56024719bad9cd01bfdb6e9fc93",
        ),
        (
            // OpenShift 4 / CRI-O, cgroup v2, systemd: a container (containerd/nri#227).
            "openshift-crio",
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod35550f44_f691_427e_b57d_ab6127d2cb65.slice/crio-805b902ed98fdc1409c76e9aa94964787a904c80f46fc3ee74283509108f5e73.scope",
            "35550f44-f691-427e-b57d-ab6127d2cb65",
            "805b902ed98fdc1409c76e9aa94964787a904c80f46fc3ee74283509108f5e73",
        ),
        (
            // OpenShift / CRI-O: the pod sandbox (infra) container, no `.scope` (containerd/nri#227).
            "openshift-crio-sandbox",
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod35550f44_f691_427e_b57d_ab6127d2cb65.slice/crio-468f848e2ebec7203ed55748d08337851af589ac42eb551c572446a5c68fe631",
            "35550f44-f691-427e-b57d-ab6127d2cb65",
            "468f848e2ebec7203ed55748d08337851af589ac42eb551c572446a5c68fe631",
        ),
        (
            // CRI-O with the cgroupfs driver, guaranteed pod (layout from docs/measurements.md).
            "crio-cgroupfs-guaranteed",
            "0::/kubepods/pod7bd85c42-39d4-4230-809c-e73dc8a66d43/crio-f06545118e4817090c791060acae7be2df4c9928af12b6cffcb24b558d2d86ce",
            "7bd85c42-39d4-4230-809c-e73dc8a66d43",
            "f06545118e4817090c791060acae7be2df4c9928af12b6cffcb24b558d2d86ce",
        ),
        (
            // docker (dockershim / cri-dockerd) with systemd, cgroup v1, best-effort (kinvolk/traceloop#34).
            "docker-v1-systemd",
            "1:name=systemd:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod5759a1ae_36ca_48a8_b20a_b0b5c8a90fb8.slice/docker-c8b38413c88eefe063b8cd3f01c16be5e3bda9693a19a68a88807baca9feb937.scope",
            "5759a1ae-36ca-48a8-b20a-b0b5c8a90fb8",
            "c8b38413c88eefe063b8cd3f01c16be5e3bda9693a19a68a88807baca9feb937",
        ),
        (
            // kind, read on the host: the node is a docker container, the kubelet's slices are
            // prefixed `kubelet-` (layout from docs/measurements.md).
            "kind-host-view",
            "0::/docker/23e60658111a240b11962ea4c36d8545c06271103792d48d4fe82c2f9c3bc3ba/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod890b0049_fbe0_4fb6_8b3a_9bf3ae71e1c9.slice/cri-containerd-2aebd9043e7de6a66ac76a0912764df783629a8443c68dab96a3ee992cd7a512.scope",
            "890b0049-fbe0-4fb6-8b3a-9bf3ae71e1c9",
            "2aebd9043e7de6a66ac76a0912764df783629a8443c68dab96a3ee992cd7a512",
        ),
        (
            // kind, read inside the node (its own cgroup namespace); the slices as reported in
            // sustainable-computing-io/kepler#684.
            "kind-node-view",
            "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod26822839_8c92_4c60_a921_ffc5991fa00f.slice/cri-containerd-594f6557dc0faa92e0ceac237b78c9e19ad12db5c471c3d2d950d4f2d6b98e4d.scope",
            "26822839-8c92-4c60-a921-ffc5991fa00f",
            "594f6557dc0faa92e0ceac237b78c9e19ad12db5c471c3d2d950d4f2d6b98e4d",
        ),
        (
            // minikube's docker driver (docker-in-docker), cgroup v1 (layout from
            // docs/measurements.md).
            "minikube-dind-v1",
            "5:memory:/docker/2a8c227a0a7b0a51085cc500f33f757f2914b554a13497f86c55a9519e2012e6/kubelet/kubepods/burstable/pode57e7a16-4d47-44b1-86c2-8969a70b0eb9/e5ce7959e1c8bb97f6a559c5976341605ef1e0f9f93217736b1b0a60e4bf6157",
            "e57e7a16-4d47-44b1-86c2-8969a70b0eb9",
            "e5ce7959e1c8bb97f6a559c5976341605ef1e0f9f93217736b1b0a60e4bf6157",
        ),
        (
            // Read from a private cgroup namespace, cgroupfs: a static pod's container
            // (docs/measurements.md; container ID from our fixture).
            "cgroupns-cgroupfs-static",
            "0::/../../pode039200acb850c82bb901653cc38ff6e/2ec0b8203b09542167b51b2a07f4aace73a8457a3a579f18decab53debda06a1",
            "e039200acb850c82bb901653cc38ff6e",
            "2ec0b8203b09542167b51b2a07f4aace73a8457a3a579f18decab53debda06a1",
        ),
        (
            // Read from a private cgroup namespace, systemd: the GKE line above as a containerd
            // agent pod sees it (the form shown in inspektor-gadget/inspektor-gadget#3085).
            "cgroupns-systemd",
            "0::/../../../kubepods-burstable.slice/kubepods-burstable-poddde1244b_5bb5_4297_b544_85f3bc0d80bf.slice/cri-containerd-acb62391578595ec849d87d8556369cee7f935f0425097fd5f870df0e8aabd3c.scope",
            "dde1244b-5bb5-4297-b544-85f3bc0d80bf",
            "acb62391578595ec849d87d8556369cee7f935f0425097fd5f870df0e8aabd3c",
        ),
        (
            // Static (mirror) pod, cgroupfs, cgroup v1: a kubeadm control-plane pod whose UID is
            // the manifest's hash (netdata/netdata#3369, path un-flattened).
            "static-pod-cgroupfs",
            "4:memory:/kubepods/burstable/pod16a4a44fea21553f3c41d03e478379f0/902093a5baef883ae52ad163ff157a2bc5d579d446d044735aa6c6a7de274a7e",
            "16a4a44fea21553f3c41d03e478379f0",
            "902093a5baef883ae52ad163ff157a2bc5d579d446d044735aa6c6a7de274a7e",
        ),
        (
            // Static pod with the systemd driver: the hash has no `-`, so nothing to turn back.
            "static-pod-systemd",
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod16a4a44fea21553f3c41d03e478379f0.slice/cri-containerd-902093a5baef883ae52ad163ff157a2bc5d579d446d044735aa6c6a7de274a7e.scope",
            "16a4a44fea21553f3c41d03e478379f0",
            "902093a5baef883ae52ad163ff157a2bc5d579d446d044735aa6c6a7de274a7e",
        ),
    ];

    #[test]
    fn every_layout() {
        for (name, line, uid, id) in LAYOUTS {
            assert_eq!(parse_line(line), Ok(r(uid, id)), "{name}: {line}");
            assert_eq!(parse(&format!("{line}\n")), Ok(r(uid, id)), "{name}");
        }
    }

    /// Processes that are not in a pod, or not in one of its containers.
    #[test]
    fn not_in_a_container() {
        for line in [
            // Host processes and services.
            "0::/system.slice/sshd.service",
            "0::/system.slice/nvidia-persistenced.service",
            "0::/user.slice/user-1000.slice/session-3.scope",
            "0::/init.scope",
            "0::/",
            "1:name=systemd:/",
            // The process's own view from a private cgroup namespace: nothing to go on.
            "0::/..",
            // A plain docker container on the host (not a pod).
            "4:memory:/docker/2403ccfe427f1dc7b6120dccb9ac58c2f8456950380d587a9f33ea7f00dd303d",
            "0::/system.slice/docker-9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d.scope",
            // The runtimes' own services.
            "0::/system.slice/containerd.service",
            "0::/system.slice/crio.service",
            // CRI-O's conmon in the pod's slice (OpenShift's conmon_cgroup = "pod") (opencontainers/runc#4620).
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod207aaad1_659f_4db8_88e0_46e0cdcc3004.slice/crio-conmon-32da98c8522068be05a7510a3eddb09cad6ed2f03286180d0e931d0d0b6224a6.scope",
            // A systemd mount unit under the pod's slice, and one in system.slice (netdata/netdata#4868).
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod5759a1ae_36ca_48a8_b20a_b0b5c8a90fb8.slice/var-lib-kubelet-pods-5759a1ae\\x2d36ca\\x2d48a8\\x2db20a\\x2db0b5c8a90fb8-volumes.mount",
            "0::/system.slice/run-containerd-io.containerd.runtime.v2.task-k8s.io-c203a2647ef1ad78e990157c50331f3b6ef0b03336cf08535d6bf7faa5421415-rootfs.mount",
            // The pod's own cgroup, with no container under it; QoS slices; the pod tree's root.
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poddde1244b_5bb5_4297_b544_85f3bc0d80bf.slice",
            "0::/kubepods/burstable/pod15513b48-e7a5-48fc-b9e3-92f713f36504",
            "0::/kubepods.slice/kubepods-burstable.slice",
            "0::/kubepods",
            // A container ID with no pod before it (the node container in kind).
            "0::/docker/23e60658111a240b11962ea4c36d8545c06271103792d48d4fe82c2f9c3bc3ba/kubelet.slice",
        ] {
            assert_eq!(parse_line(line), Ok(None), "{line}");
            assert_eq!(parse(line), Ok(None), "{line}");
        }
    }

    #[test]
    fn systemd_underscores_become_dashes() {
        let got = parse_line("0::/kubepods.slice/kubepods-pod79cdf447_480f_43f1_8447_b5a5e7d32c2e.slice/cri-containerd-ad12803937533e64a99be0a850a304ba7969451eeaa79865cdce502db738a9d1.scope");
        assert_eq!(
            got.unwrap().unwrap().pod_uid,
            "79cdf447-480f-43f1-8447-b5a5e7d32c2e"
        );
        // Each driver writes its own separator; the other one is not a UID.
        let id = "ad12803937533e64a99be0a850a304ba7969451eeaa79865cdce502db738a9d1";
        assert_eq!(
            parse_line(&format!(
                "0::/kubepods/pod79cdf447_480f_43f1_8447_b5a5e7d32c2e/{id}"
            )),
            Ok(None)
        );
        assert_eq!(
            parse_line(&format!(
                "0::/kubepods.slice/kubepods-pod79cdf447-480f-43f1-8447-b5a5e7d32c2e.slice/cri-containerd-{id}.scope"
            )),
            Ok(None)
        );
    }

    /// Upper-case hex is accepted and normalised to lower case, the form the kubelet's log folders
    /// and the runtimes use, so that joins with them work whatever wrote the cgroup.
    #[test]
    fn upper_case_hex_is_normalised() {
        let got = parse_line("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podDDE1244B_5BB5_4297_B544_85F3BC0D80BF.slice/cri-containerd-ACB62391578595EC849D87D8556369CEE7F935F0425097FD5F870DF0E8AABD3C.scope");
        assert_eq!(
            got,
            Ok(r(
                "dde1244b-5bb5-4297-b544-85f3bc0d80bf",
                "acb62391578595ec849d87d8556369cee7f935f0425097fd5f870df0e8aabd3c"
            ))
        );
        // Upper-case words are not: the forms are the runtimes' own spelling.
        let id = "acb62391578595ec849d87d8556369cee7f935f0425097fd5f870df0e8aabd3c";
        assert_eq!(
            parse_line(&format!(
                "0::/kubepods/POD15513b48-e7a5-48fc-b9e3-92f713f36504/{id}"
            )),
            Ok(None)
        );
    }

    #[test]
    fn ids_must_be_exact_length_hex() {
        let uid = "15513b48-e7a5-48fc-b9e3-92f713f36504";
        let id = "a51a9f7d073f848e7fc59e56e8f11524f330a2175a4ed26327da2dfe0d28015f";
        for line in [
            // 63 and 65 digits, and a non-hex digit.
            format!("0::/kubepods/pod{uid}/{}", &id[1..]),
            format!("0::/kubepods/pod{uid}/{id}0"),
            format!("0::/kubepods/pod{uid}/{}g", &id[1..]),
            format!("0::/kubepods/pod{uid}/cri-containerd-{}.scope", &id[1..]),
            // UIDs: 31 and 33 hex, wrong groups, non-hex.
            format!("0::/kubepods/pod{}/{id}", &"e039200acb850c82bb901653cc38ff6e"[1..]),
            format!("0::/kubepods/pode039200acb850c82bb901653cc38ff6e0/{id}"),
            format!("0::/kubepods/pod15513b48e-7a5-48fc-b9e3-92f713f36504/{id}"),
            format!("0::/kubepods/pod15513b48-e7a5-48fc-b9e3-92f713f3650x/{id}"),
            // A systemd pod slice whose parent is not the kubelet's.
            format!("0::/user.slice/user-pod15513b48_e7a5_48fc_b9e3_92f713f36504.slice/cri-containerd-{id}.scope"),
            // Another runtime's prefix.
            format!("0::/kubepods/pod{uid}/libpod-{id}.scope"),
        ] {
            assert_eq!(parse_line(&line), Ok(None), "{line}");
        }
    }

    /// A cgroup v1 file: every hierarchy places the process in the same container, and the v2
    /// line of a hybrid system adds nothing (EKS AL2-style node, cgroupfs driver).
    #[test]
    fn v1_hierarchies_that_agree() {
        let path = "/kubepods/besteffort/pod94241cbe-635e-4147-83ba-db48cfd5c484/920deb3633c4a3cba6e579eb9338308816a4bd72e0dfb756e0d5ba84a861ce58";
        let file: String = [
            "12:pids",
            "11:hugetlb",
            "10:memory",
            "9:devices",
            "8:cpu,cpuacct",
            "7:blkio",
            "6:perf_event",
            "5:freezer",
            "4:net_cls,net_prio",
            "3:cpuset",
            "2:rdma",
            "1:name=systemd",
        ]
        .iter()
        .map(|h| format!("{h}:{path}\n"))
        .chain(["0::/system.slice/containerd.service\n".to_string()])
        .collect();
        assert_eq!(
            parse(&file),
            Ok(r(
                "94241cbe-635e-4147-83ba-db48cfd5c484",
                "920deb3633c4a3cba6e579eb9338308816a4bd72e0dfb756e0d5ba84a861ce58"
            ))
        );
    }

    /// Hierarchies that spell the same container differently still agree; one at the root
    /// (rdma, not mounted per container on many kernels) places it nowhere and is ignored
    /// (open-telemetry/opentelemetry-java#4507, abridged).
    #[test]
    fn v1_hierarchies_in_different_spellings() {
        let file = "\
11:perf_event:/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:cri-containerd:ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459
10:blkio:/system.slice/containerd.service/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:cri-containerd:ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459
3:rdma:/
1:name=systemd:/system.slice/containerd.service/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:cri-containerd:ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459
";
        assert_eq!(
            parse(file),
            Ok(r(
                "0125ec2f-b64a-4868-8f5b-94b56cbab864",
                "ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459"
            ))
        );
    }

    #[test]
    fn v1_hierarchies_that_disagree() {
        let a = "acb62391578595ec849d87d8556369cee7f935f0425097fd5f870df0e8aabd3c";
        let b = "a51a9f7d073f848e7fc59e56e8f11524f330a2175a4ed26327da2dfe0d28015f";
        let uid = "15513b48-e7a5-48fc-b9e3-92f713f36504";
        let file =
            format!("4:memory:/kubepods/pod{uid}/{a}\n3:cpuset:/\n2:pids:/kubepods/pod{uid}/{b}\n");
        assert_eq!(
            parse(&file),
            Err(CgroupError::Conflicting {
                first: r(uid, a).unwrap(),
                second: r(uid, b).unwrap(),
            })
        );
    }

    /// conmon's own line does not count against the container's on the other hierarchies.
    #[test]
    fn a_conmon_line_does_not_conflict() {
        let pod = "kubepods-burstable-pod207aaad1_659f_4db8_88e0_46e0cdcc3004.slice";
        let id = "32da98c8522068be05a7510a3eddb09cad6ed2f03286180d0e931d0d0b6224a6";
        let file = format!(
            "2:memory:/kubepods.slice/kubepods-burstable.slice/{pod}/crio-{id}.scope\n\
             1:name=systemd:/kubepods.slice/kubepods-burstable.slice/{pod}/crio-conmon-{id}.scope\n"
        );
        assert_eq!(
            parse(&file),
            Ok(r("207aaad1-659f-4db8-88e0-46e0cdcc3004", id))
        );
    }

    /// Below the container's cgroup is still the container (systemd or a nested cgroup inside it).
    #[test]
    fn deeper_cgroups_stay_in_the_container() {
        let line = "0::/kubepods/burstable/pod15513b48-e7a5-48fc-b9e3-92f713f36504/a51a9f7d073f848e7fc59e56e8f11524f330a2175a4ed26327da2dfe0d28015f/init.scope";
        assert_eq!(
            parse_line(line),
            Ok(r(
                "15513b48-e7a5-48fc-b9e3-92f713f36504",
                "a51a9f7d073f848e7fc59e56e8f11524f330a2175a4ed26327da2dfe0d28015f"
            ))
        );
    }

    #[test]
    fn malformed_lines() {
        for line in ["garbage", "0:/kubepods", "12", ":"] {
            assert_eq!(
                parse_line(line),
                Err(CgroupError::Malformed { line: line.into() }),
                "{line:?}"
            );
        }
        // One bad line spoils the file: the file is not what the kernel writes.
        let file = "0::/system.slice/sshd.service\nnot a cgroup line\n";
        assert_eq!(
            parse(file),
            Err(CgroupError::Malformed {
                line: "not a cgroup line".into()
            })
        );
        // The error keeps only the start of a long line.
        let long = "x".repeat(10_000);
        let Err(CgroupError::Malformed { line }) = parse_line(&long) else {
            panic!("a long line without ':' is malformed");
        };
        assert_eq!(line.chars().count(), MAX_LINE_IN_ERROR + 1);
        assert!(line.ends_with('…'));
    }

    #[test]
    fn empty_and_blank_files() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("\n"), Ok(None));
        assert_eq!(parse("\n\n  \n"), Ok(None));
        assert_eq!(
            parse_line(""),
            Err(CgroupError::Malformed { line: "".into() })
        );
    }

    #[test]
    fn garbage_does_not_place_a_process() {
        for line in [
            "::",
            ":::::::",
            "0::pod",
            "0::/pod",
            "0::/pod/",
            "0::/-pod.slice",
            "0::/kubepods-pod.slice",
            "0::/kubepods-pod.slice/cri-containerd-.scope",
            "0::/crio-.scope",
            "0::/\u{0}\u{7f}é漢字/../..//",
            "0::/kubepods/podé5513b48-e7a5-48fc-b9e3-92f713f36504/a51a9f7d073f848e7fc59e56e8f11524f330a2175a4ed26327da2dfe0d28015f",
        ] {
            assert_eq!(parse_line(line), Ok(None), "{line:?}");
        }
    }

    /// Large hostile inputs finish (the parser is linear) and place nothing.
    #[test]
    fn large_inputs() {
        let uid = "15513b48_e7a5_48fc_b9e3_92f713f36504";
        for content in [
            "kubepods-pod".repeat(40_000),
            format!("0::/{}", format!("kubepods-pod{uid}").repeat(10_000)),
            format!("0::{}", "/pod".repeat(100_000)),
            format!("0::{}", ":".repeat(200_000)),
            "0::/\n".repeat(100_000),
        ] {
            assert!(matches!(
                parse(&content),
                Ok(None) | Err(CgroupError::Malformed { .. })
            ));
        }
    }

    /// The fuzz seed corpus is this file's table, one file per case. `UPDATE_FUZZ_CORPUS=1`
    /// rewrites it.
    #[test]
    fn fuzz_corpus_matches_the_table() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/cgroup");
        let update = std::env::var_os("UPDATE_FUZZ_CORPUS").is_some();
        for (name, line, _, _) in LAYOUTS {
            let path = dir.join(name);
            let want = format!("{line}\n");
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &want).unwrap();
            }
            assert_eq!(
                std::fs::read_to_string(&path).ok().as_deref(),
                Some(want.as_str()),
                "{} (rerun with UPDATE_FUZZ_CORPUS=1)",
                path.display()
            );
        }
    }
}
