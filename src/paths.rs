//! Every host path the agent reads, built once from `--path.*`; no other module names `/proc` or `/sys`.

use std::path::{Path, PathBuf};

/// Where the host's files are, as seen from the agent (which may run in a container with the
/// host's root mounted elsewhere, or in a test against a fixture tree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    pub rootfs: PathBuf,
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    /// `<rootfs>/var/log/pods`: one folder per pod, `<namespace>_<pod>_<uid>`.
    pub pod_logs: PathBuf,
    /// `<rootfs>/var/log/containers`: `<pod>_<namespace>_<container>-<id>.log` symlinks.
    pub container_logs: PathBuf,
    /// The kubelet's pod-resources socket; a missing socket is not an error.
    pub pod_resources_socket: PathBuf,
}

impl HostPaths {
    /// Paths under `rootfs`, with optional overrides for procfs, sysfs and the kubelet socket.
    pub fn new(
        rootfs: &Path,
        procfs: Option<&Path>,
        sysfs: Option<&Path>,
        pod_resources_socket: Option<&Path>,
    ) -> HostPaths {
        let under = |rel: &str| rootfs.join(rel);
        HostPaths {
            rootfs: rootfs.to_path_buf(),
            procfs: procfs.map_or_else(|| under("proc"), Path::to_path_buf),
            sysfs: sysfs.map_or_else(|| under("sys"), Path::to_path_buf),
            pod_logs: under("var/log/pods"),
            container_logs: under("var/log/containers"),
            pod_resources_socket: pod_resources_socket.map_or_else(
                || under("var/lib/kubelet/pod-resources/kubelet.sock"),
                Path::to_path_buf,
            ),
        }
    }

    /// The agent's own `/proc/self`. Always the agent's own procfs, never `--path.procfs`: a
    /// fixture tree has no `self`, and the agent's figures are the agent's wherever it runs.
    pub fn own_process() -> &'static Path {
        Path::new("/proc/self")
    }

    /// The agent's own `/proc/stat` (boot time), beside `own_process`.
    pub fn own_proc_stat() -> &'static Path {
        Path::new("/proc/stat")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_lives_under_rootfs_unless_overridden() {
        let p = HostPaths::new(Path::new("/host"), None, Some(Path::new("/s")), None);
        assert_eq!(p.procfs, Path::new("/host/proc"));
        assert_eq!(p.sysfs, Path::new("/s"));
        assert_eq!(p.pod_logs, Path::new("/host/var/log/pods"));
        assert_eq!(p.container_logs, Path::new("/host/var/log/containers"));
        assert_eq!(
            p.pod_resources_socket,
            Path::new("/host/var/lib/kubelet/pod-resources/kubelet.sock")
        );
    }
}
