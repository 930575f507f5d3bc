//! Names from the kubelet's log folders: pod UID -> namespace and pod (`/var/log/pods`), and
//! container ID -> container name (`/var/log/containers`).
//!
//! Kubernetes names cannot contain `_`, so both layouts split unambiguously on it:
//! `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log` and
//! `/var/log/containers/<pod>_<namespace>_<container>-<64 hex id>.log` (a symlink into the former).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// A pod's namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodName {
    pub namespace: String,
    pub pod: String,
}

/// What the log folders say about the pods and containers on this node, read once per cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeNames {
    /// Pod UID -> namespace and name, and the pod's log folder (listed only when needed).
    pub pods: HashMap<String, (PodName, PathBuf)>,
    /// Container ID -> (namespace, pod, container name).
    pub containers: HashMap<String, (PodName, String)>,
}

impl NodeNames {
    /// Reads both folders; a missing or unreadable folder gives no names, not an error (a node
    /// without the kubelet's logs still gets device series).
    pub fn read(pod_logs: &Path, container_logs: &Path) -> NodeNames {
        let mut names = NodeNames::default();
        for entry in read_dir_names(pod_logs) {
            if let Some((pod, uid)) = parse_pod_dir(&entry) {
                names.pods.insert(uid, (pod, pod_logs.join(&entry)));
            }
        }
        for entry in read_dir_names(container_logs) {
            match parse_container_log(&entry) {
                Some((pod, container, id)) => {
                    names.containers.insert(id, (pod, container));
                }
                // A name cut at 255 bytes loses the ID at its end; the symlink's target still
                // names the pod and container, but not which container ID, so it cannot be
                // joined here: attribution falls back to the pod's folder or the kubelet.
                None => continue,
            }
        }
        names
    }

    /// Names the container `container_id` of pod `pod_uid`: by its log symlink, else by the
    /// pod's only container folder. `None` for the container when neither tells.
    pub fn lookup(&self, pod_uid: &str, container_id: &str) -> Option<(PodName, Option<String>)> {
        let (pod, folder) = self.pods.get(pod_uid)?;
        if let Some((cpod, name)) = self.containers.get(container_id) {
            if cpod == pod {
                return Some((pod.clone(), Some(name.clone())));
            }
        }
        // Rare (a truncated or missing symlink): list the pod's container folders.
        let only = match read_dir_names(folder).as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        };
        Some((pod.clone(), only))
    }
}

fn read_dir_names(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

/// `<namespace>_<pod>_<uid>` -> (namespace/pod, uid).
pub fn parse_pod_dir(name: &str) -> Option<(PodName, String)> {
    let mut parts = name.split('_');
    let (ns, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || ns.is_empty() || pod.is_empty() || !is_uid(uid) {
        return None;
    }
    Some((
        PodName {
            namespace: ns.to_string(),
            pod: pod.to_string(),
        },
        uid.to_ascii_lowercase(),
    ))
}

/// `<pod>_<namespace>_<container>-<64 hex id>.log` -> (namespace/pod, container, id).
pub fn parse_container_log(name: &str) -> Option<(PodName, String, String)> {
    let stem = name.strip_suffix(".log")?;
    let (rest, id) = stem.rsplit_once('-')?;
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut parts = rest.split('_');
    let (pod, ns, container) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || pod.is_empty() || ns.is_empty() || container.is_empty() {
        return None;
    }
    Some((
        PodName {
            namespace: ns.to_string(),
            pod: pod.to_string(),
        },
        container.to_string(),
        id.to_ascii_lowercase(),
    ))
}

/// A pod UID as the kubelet writes it: 8-4-4-4-12 hex, or 32 hex for static pods.
fn is_uid(s: &str) -> bool {
    let hex = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_hexdigit());
    if s.len() == 32 {
        return hex(s);
    }
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| hex(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "acb62391578595ec849d87d8556369cee7f935f0425097fd5f870df0e8aabd3c";

    #[test]
    fn pod_folders() {
        let (p, uid) =
            parse_pod_dir("llm_vllm-7d9f8b6c5d-x2x9k_dde1244b-5bb5-4297-b544-85f3bc0d80bf")
                .unwrap();
        assert_eq!(
            (p.namespace.as_str(), p.pod.as_str()),
            ("llm", "vllm-7d9f8b6c5d-x2x9k")
        );
        assert_eq!(uid, "dde1244b-5bb5-4297-b544-85f3bc0d80bf");
        // Static pods: the UID is a 32-hex hash of the manifest.
        let (p, uid) =
            parse_pod_dir("kube-system_kube-apiserver-node1_e039200acb850c82bb901653cc38ff6e")
                .unwrap();
        assert_eq!(p.pod, "kube-apiserver-node1");
        assert_eq!(uid, "e039200acb850c82bb901653cc38ff6e");
        for bad in [
            "",
            "a_b",
            "a_b_c_d",
            "ns_pod_not-a-uid",
            "_pod_e039200acb850c82bb901653cc38ff6e",
        ] {
            assert!(parse_pod_dir(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn container_logs() {
        let name = format!("vllm-7d9f8b6c5d-x2x9k_llm_vllm-server-{ID}.log");
        let (p, c, id) = parse_container_log(&name).unwrap();
        assert_eq!(
            (
                p.namespace.as_str(),
                p.pod.as_str(),
                c.as_str(),
                id.as_str()
            ),
            ("llm", "vllm-7d9f8b6c5d-x2x9k", "vllm-server", ID)
        );
        // Truncated at 255 bytes: the ID is cut, so no entry.
        let long = format!("{}_llm_c-{}", "p".repeat(200), &ID[..40]);
        assert!(parse_container_log(&long).is_none());
        assert!(parse_container_log(&format!("a_b_c-{ID}.txt")).is_none());
    }

    #[test]
    fn lookup_falls_back_to_the_only_container_folder() {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().join("pods");
        let ctrs = dir.path().join("containers");
        let uid = "dde1244b-5bb5-4297-b544-85f3bc0d80bf";
        fs::create_dir_all(pods.join(format!("llm_vllm-0_{uid}/server"))).unwrap();
        fs::create_dir_all(&ctrs).unwrap();
        let names = NodeNames::read(&pods, &ctrs);
        let (p, c) = names.lookup(uid, ID).unwrap();
        assert_eq!(p.pod, "vllm-0");
        assert_eq!(c.as_deref(), Some("server"));
        assert!(names
            .lookup("00000000-0000-0000-0000-000000000000", ID)
            .is_none());
        // Missing folders: no names, no error.
        assert_eq!(
            NodeNames::read(&dir.path().join("x"), &dir.path().join("y")),
            NodeNames::default()
        );
    }
}
