//! One pass over `<procfs>/*/fdinfo/*` per cycle: every process's amdgpu DRM clients, each
//! counted once however many fds (or processes) share it.
//!
//! This is the expensive part of the AMD collector: a node has thousands of fds, nearly all
//! sockets, pipes and plain files. Where `<procfs>/<pid>/fd/<n>` can be read, its link target
//! rules an fd out before its fdinfo is opened (one `readlink` instead of open, read, close);
//! where it cannot (a fixture tree, a procfs without that permission), the fdinfo is read.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::ErrorKind;
use std::path::Path;

use super::fdinfo::{self, DrmFdinfo};
use super::files::io_error_label;
use crate::pci::PciAddress;
use crate::sample::{CallError, ErrorLabel};

/// How a client is told apart from others on its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientId {
    /// `drm-client-id`.
    Id(u64),
    /// No `drm-client-id` line: the fd number stands in (such a client cannot be deduplicated).
    Fd(u32),
}

/// One amdgpu client of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub pdev: PciAddress,
    pub id: ClientId,
    pub info: DrmFdinfo,
}

/// One process with amdgpu clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessClients {
    pub pid: u32,
    /// Field 22 of `<procfs>/<pid>/stat` (clock ticks after boot): with the pid, names the
    /// process for good, since pids are reused. `None` where `stat` cannot be read.
    pub start_time: Option<u64>,
    pub clients: Vec<Client>,
}

/// What one scan found, and what it cost.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub processes: Vec<ProcessClients>,
    /// Processes and fds looked at, fdinfo files read (for the benchmark).
    pub pids: usize,
    pub fds: usize,
    pub fdinfo_reads: usize,
}

/// The driver whose clients are collected.
const DRIVER: &str = "amdgpu";

/// Scans every process under `procfs` but `skip_pid` (the agent itself) for amdgpu clients.
/// Processes come out in pid order; a client shared by several processes is listed under the
/// lowest pid only. Failures are pushed onto `errors` (`fdinfo`, `procfs`); a process that
/// exits while being read is not a failure.
pub fn scan(procfs: &Path, skip_pid: u32, errors: &mut Vec<CallError>) -> Scan {
    let mut out = Scan::default();
    let entries = match std::fs::read_dir(procfs) {
        Ok(e) => e,
        Err(e) => {
            errors.push(CallError {
                call: "procfs",
                error: io_error_label(&e),
            });
            return out;
        }
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|pid| *pid != skip_pid)
        .collect();
    pids.sort_unstable();
    let mut seen: HashSet<(PciAddress, ClientId)> = HashSet::new();
    for pid in pids {
        out.pids += 1;
        let dir = procfs.join(pid.to_string());
        let clients = process_clients(&dir, &mut seen, &mut out, errors);
        if clients.is_empty() {
            continue;
        }
        let start_time = start_time(&dir, errors);
        out.processes.push(ProcessClients {
            pid,
            start_time,
            clients,
        });
    }
    out
}

/// The amdgpu clients of one process, not counting those already `seen`.
fn process_clients(
    dir: &Path,
    seen: &mut HashSet<(PciAddress, ClientId)>,
    out: &mut Scan,
    errors: &mut Vec<CallError>,
) -> Vec<Client> {
    let fdinfo_dir = dir.join("fdinfo");
    let entries = match std::fs::read_dir(&fdinfo_dir) {
        Ok(e) => e,
        Err(e) => {
            if !vanished(&e) {
                errors.push(CallError {
                    call: "fdinfo",
                    error: io_error_label(&e),
                });
            }
            return Vec::new();
        }
    };
    let mut fds: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    fds.sort_unstable();
    let fd_dir = dir.join("fd");
    let mut clients = Vec::new();
    for fd in fds {
        out.fds += 1;
        let name = fd.to_string();
        if let Ok(target) = std::fs::read_link(fd_dir.join(&name)) {
            if !may_be_drm(&target) {
                continue;
            }
        }
        out.fdinfo_reads += 1;
        let text = match std::fs::read_to_string(fdinfo_dir.join(&name)) {
            Ok(t) => t,
            Err(e) => {
                if !vanished(&e) {
                    errors.push(CallError {
                        call: "fdinfo",
                        error: io_error_label(&e),
                    });
                }
                continue;
            }
        };
        // Cheap test first: most files that get here are still not DRM files.
        if !text.contains("drm-driver:") {
            continue;
        }
        let Some(info) = fdinfo::parse(&text) else {
            continue;
        };
        if info.driver != DRIVER {
            continue;
        }
        for _ in 0..info.malformed {
            errors.push(CallError {
                call: "fdinfo",
                error: ErrorLabel::Malformed,
            });
        }
        let Some(pdev) = info.pdev else {
            // An amdgpu client that does not say which device: nothing to attribute it to.
            errors.push(CallError {
                call: "fdinfo",
                error: ErrorLabel::NoPdev,
            });
            continue;
        };
        let id = info.client_id.map_or(ClientId::Fd(fd), ClientId::Id);
        if seen.insert((pdev, id)) {
            clients.push(Client { pdev, id, info });
        }
    }
    clients
}

/// Whether an fd's link target can be a DRM device file: `/dev/dri/card0`,
/// `/dev/dri/renderD128`, or one bind-mounted elsewhere under such a name. Sockets, pipes,
/// anonymous inodes and other files are not.
fn may_be_drm(target: &Path) -> bool {
    let s = target.as_os_str().to_string_lossy();
    if !s.starts_with('/') {
        return false; // socket:[…], pipe:[…], anon_inode:[…]
    }
    let name = target.file_name().and_then(OsStr::to_str).unwrap_or("");
    s.contains("/dri/") || name.starts_with("renderD") || name.starts_with("card")
}

/// The process exited (or its fd closed) between listing and reading: not a failure.
fn vanished(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Field 22 of `<pid>/stat`; `None` (and counted, unless the process is gone) when unreadable.
fn start_time(dir: &Path, errors: &mut Vec<CallError>) -> Option<u64> {
    match std::fs::read_to_string(dir.join("stat")) {
        Ok(text) => {
            let parsed = parse_start_time(&text);
            if parsed.is_none() {
                errors.push(CallError {
                    call: "procfs",
                    error: ErrorLabel::Malformed,
                });
            }
            parsed
        }
        Err(e) => {
            if !vanished(&e) {
                errors.push(CallError {
                    call: "procfs",
                    error: io_error_label(&e),
                });
            }
            None
        }
    }
}

/// Field 22 (`starttime`) of a `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let (_, after) = stat.rsplit_once(')')?;
    // Fields 3.. follow: field 22 is the 20th of them.
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn start_time_from_a_real_stat_line() {
        // A python process on Ubuntu 22.04; the comm holds a space and parentheses.
        let stat = "3001 (python3 (vllm)) S 1 3001 3001 0 -1 4194560 123456 0 12 0 4567 890 0 0 20 0 64 0 1234567 21474836480 1048576 18446744073709551615 1 1 0 0 0 0 0 16781312 1073745152 0 0 0 17 3 0 0 0 0 0";
        assert_eq!(parse_start_time(stat), Some(1_234_567));
        assert_eq!(parse_start_time("3001 (x) S 1 2"), None);
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn link_targets_that_can_be_drm() {
        for t in [
            "/dev/dri/renderD128",
            "/dev/dri/card0",
            "/host/dev/dri/renderD129",
        ] {
            assert!(may_be_drm(Path::new(t)), "{t}");
        }
        for t in [
            "socket:[123]",
            "pipe:[9]",
            "anon_inode:[eventfd]",
            "/var/log/app.log",
            "/dev/kfd",
            "/dev/null",
        ] {
            assert!(!may_be_drm(Path::new(t)), "{t}");
        }
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    const CLIENT_11: &str =
        "drm-driver:\tamdgpu\ndrm-pdev:\t0000:19:00.0\ndrm-client-id:\t11\ndrm-engine-gfx:\t5 ns\n";

    #[test]
    fn one_client_however_many_fds_or_processes_share_it() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "40/fdinfo/5", CLIENT_11);
        write(r, "40/fdinfo/9", CLIENT_11);
        write(r, "40/fdinfo/0", "pos:\t0\nflags:\t02\n");
        write(
            r,
            "40/stat",
            "40 (a) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0",
        );
        // A forked child holding the same client.
        write(r, "41/fdinfo/5", CLIENT_11);
        // Another driver, and the agent itself.
        write(
            r,
            "42/fdinfo/3",
            "drm-driver:\ti915\ndrm-pdev:\t0000:00:02.0\ndrm-client-id:\t1\n",
        );
        write(
            r,
            "43/fdinfo/3",
            "drm-driver:\tamdgpu\ndrm-pdev:\t0000:19:00.0\ndrm-client-id:\t99\n",
        );
        write(r, "self/fdinfo/3", CLIENT_11);
        let mut errors = Vec::new();
        let s = scan(r, 43, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.processes.len(), 1);
        let p = &s.processes[0];
        assert_eq!((p.pid, p.start_time), (40, Some(777)));
        assert_eq!(p.clients.len(), 1);
        assert_eq!(p.clients[0].id, ClientId::Id(11));
        assert_eq!(s.pids, 3);
    }

    #[test]
    fn links_rule_fds_out_before_their_fdinfo_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "40/fdinfo/3", CLIENT_11);
        write(r, "40/fdinfo/4", CLIENT_11);
        fs::create_dir_all(r.join("40/fd")).unwrap();
        std::os::unix::fs::symlink("socket:[4242]", r.join("40/fd/3")).unwrap();
        std::os::unix::fs::symlink("/dev/dri/renderD128", r.join("40/fd/4")).unwrap();
        let s = scan(r, 0, &mut Vec::new());
        assert_eq!((s.fds, s.fdinfo_reads), (2, 1));
        assert_eq!(s.processes[0].clients.len(), 1);
    }

    #[test]
    fn bad_files_are_counted_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "40/fdinfo/3", "drm-driver:\tamdgpu\ndrm-client-id:\t1\n");
        write(
            r,
            "40/fdinfo/4",
            "drm-driver:\tamdgpu\ndrm-pdev:\t0000:19:00.0\ndrm-engine-gfx:\tlots ns\n",
        );
        fs::create_dir_all(r.join("40/fdinfo/5")).unwrap();
        write(r, "40/stat", "not a stat line");
        let mut errors = Vec::new();
        let s = scan(r, 0, &mut errors);
        let mut names: Vec<(&str, String)> = errors
            .iter()
            .map(|e| (e.call, e.error.to_string()))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ("fdinfo", "IS_A_DIRECTORY".to_string()),
                ("fdinfo", "MALFORMED".to_string()),
                ("fdinfo", "NO_PDEV".to_string()),
                ("procfs", "MALFORMED".to_string())
            ]
        );
        // The client without an id is kept, keyed by its fd; the process without a start time too.
        assert_eq!(s.processes[0].clients[0].id, ClientId::Fd(4));
        assert_eq!(s.processes[0].start_time, None);
    }
}
