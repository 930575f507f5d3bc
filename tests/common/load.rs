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

/// A plain client connection to the agent on loopback.
pub fn connect(port: u16) -> std::net::TcpStream {
    std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()
}

/// `n` slowloris clients: each starts a `GET /metrics` head and trickles a header line every
/// 200 ms on a thread of its own, never ending the head, until `stop`.
pub struct Slowloris {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<std::net::TcpStream>>,
}

impl Slowloris {
    pub fn start(port: u16, n: usize) -> Slowloris {
        use std::io::Write as _;
        use std::sync::atomic::{AtomicBool, Ordering};
        let mut slow: Vec<_> = (0..n).map(|_| connect(port)).collect();
        for s in &mut slow {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
        }
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                for s in &mut slow {
                    let _ = s.write_all(b"X-Slow: 1\r\n");
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            slow
        });
        Slowloris { stop, thread }
    }

    /// Stops the trickle and hands back the sockets, still open.
    pub fn stop(self) -> Vec<std::net::TcpStream> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}
