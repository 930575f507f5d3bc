//! The demo node's files (a fake node, docs/design.md): `/proc/<pid>/cgroup` of each GPU process,
//! the kubelet's pod and container log folders, kept in step with the pods as they come and go.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use anyhow::Context;

use crate::scenario::{DemoPod, HOST_PID};

/// Makes the node tree under `root` hold exactly `pods` (plus the host daemon).
pub fn sync(root: &Path, pods: &[DemoPod]) -> anyhow::Result<()> {
    let proc_dir = root.join("proc");
    let pod_logs = root.join("var/log/pods");
    let ctr_logs = root.join("var/log/containers");
    for d in [&proc_dir, &pod_logs, &ctr_logs] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    // pid 1: every procfs has one, and the agent refuses a procfs without it.
    let mut want_pids: BTreeSet<String> = BTreeSet::from(["1".to_string(), HOST_PID.to_string()]);
    write_if_changed(&proc_dir.join("1").join("cgroup"), "0::/init.scope\n")?;
    let mut want_pods = BTreeSet::new();
    let mut want_ctrs = BTreeSet::new();
    write_if_changed(
        &proc_dir.join(HOST_PID.to_string()).join("cgroup"),
        "0::/system.slice/nvidia-persistenced.service\n",
    )?;
    for p in pods {
        let (uid, cid) = (p.uid(), p.container_id());
        // cgroup v2, systemd driver, containerd: what most current nodes write.
        let cgroup = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{cid}.scope\n",
            uid.replace('-', "_")
        );
        write_if_changed(&proc_dir.join(p.pid.to_string()).join("cgroup"), &cgroup)?;
        want_pids.insert(p.pid.to_string());
        let pod_dir = format!("{}_{}_{uid}", p.namespace, p.pod);
        let log = pod_logs.join(&pod_dir).join(p.container).join("0.log");
        if !log.exists() {
            fs::create_dir_all(log.parent().context("log has a folder")?)?;
            fs::write(&log, "")?;
        }
        want_pods.insert(pod_dir.clone());
        let link_name = format!("{}_{}_{}-{cid}.log", p.pod, p.namespace, p.container);
        let link = ctr_logs.join(&link_name);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(
                format!("/var/log/pods/{pod_dir}/{}/0.log", p.container),
                &link,
            )?;
        }
        want_ctrs.insert(link_name);
    }
    // Pods that are gone: the kubelet removes their logs, the kernel their /proc entries.
    remove_others(&proc_dir, &want_pids)?;
    remove_others(&pod_logs, &want_pods)?;
    remove_others(&ctr_logs, &want_ctrs)?;
    Ok(())
}

fn write_if_changed(path: &Path, content: &str) -> anyhow::Result<()> {
    if fs::read_to_string(path).ok().as_deref() == Some(content) {
        return Ok(());
    }
    fs::create_dir_all(path.parent().context("file has a folder")?)?;
    fs::write(path, content).with_context(|| format!("writing {}", path.display()))
}

fn remove_others(dir: &Path, keep: &BTreeSet<String>) -> anyhow::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if keep.contains(&name) {
            continue;
        }
        let path = e.path();
        if e.file_type()?.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}
