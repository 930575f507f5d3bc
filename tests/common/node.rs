//! Fake node trees (a folder laid out as a real host, used as `--path.rootfs`) built by a
//! test: pods and processes with the cgroup and log-folder entries a real node has.

use std::fs;
use std::path::Path;

/// A pod with one container whose process is `pid`, laid out as a real node (cgroup v2,
/// systemd, containerd).
pub fn pod(root: &Path, n: u8, ns: &str, pod: &str, ctr: &str, pid: u32, comm: &str) {
    let uid = format!("{n:08x}-5c1d-4e2f-8a3b-9c0d1e2f3a4b");
    let cid = format!("{n:02x}").repeat(32);
    let log = format!("/var/log/pods/{ns}_{pod}_{uid}/{ctr}/0.log");
    fs::create_dir_all(root.join(log.trim_start_matches('/')).parent().unwrap()).unwrap();
    fs::write(root.join(log.trim_start_matches('/')), "").unwrap();
    fs::create_dir_all(root.join("var/log/containers")).unwrap();
    std::os::unix::fs::symlink(
        &log,
        root.join(format!("var/log/containers/{pod}_{ns}_{ctr}-{cid}.log")),
    )
    .unwrap();
    process(
        root,
        pid,
        &format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{cid}.scope\n",
            uid.replace('-', "_")
        ),
        Some(comm),
    );
}

pub fn process(root: &Path, pid: u32, cgroup: &str, comm: Option<&str>) {
    let dir = root.join(format!("proc/{pid}"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("cgroup"), cgroup).unwrap();
    if let Some(c) = comm {
        fs::write(dir.join("comm"), format!("{c}\n")).unwrap();
    }
}
