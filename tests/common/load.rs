//! What the load tests share: room for thousands of client sockets, and the agent's memory.

use super::Agent;

/// Raises this process's soft open-files limit to at least `need` (up to twice that, within the
/// hard limit) so that it can hold every client socket; the agent raises its own at startup.
pub fn raise_open_files_limit(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < need {
            assert!(
                lim.rlim_max >= need,
                "the hard open-files limit {} is below the {need} this test needs",
                lim.rlim_max
            );
            lim.rlim_cur = lim.rlim_max.min(need * 2);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

/// The resident memory of process `pid`, in KiB, from its `/proc/<pid>/status`; `None` once it
/// has exited.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The agent's resident memory, in MiB.
pub fn rss_mib(agent: &Agent) -> f64 {
    rss_kib(agent.child.id()).unwrap_or(0) as f64 / 1024.0
}
