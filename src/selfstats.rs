//! The agent's own resource use (CPU seconds, memory, fds, threads), read from its own
//! `/proc/self`, and the HTTP server's connection figures, counted as they happen.

use std::fs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::paths::HostPaths;

/// The standard `process_*` figures of the agent itself.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SelfStats {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: f64,
    pub virtual_memory_bytes: f64,
    pub open_fds: f64,
    pub threads: f64,
    pub start_time_seconds: f64,
}

/// Reads the agent's own figures; `None` where `/proc/self` cannot be read or parsed.
pub fn read() -> Option<SelfStats> {
    let dir = HostPaths::own_process();
    let stat = fs::read_to_string(dir.join("stat")).ok()?;
    // The boot time never changes: `/proc/stat` (its `intr` line alone holds a number per
    // interrupt source) is read once, not on every snapshot.
    static BOOT_TIME: std::sync::OnceLock<Option<f64>> = std::sync::OnceLock::new();
    let boot_time = *BOOT_TIME.get_or_init(|| {
        fs::read_to_string(HostPaths::own_proc_stat())
            .ok()
            .and_then(|s| parse_boot_time(&s))
    });
    let open_fds = fs::read_dir(dir.join("fd")).map(|d| d.count()).unwrap_or(0);
    parse_stat(
        &stat,
        clock_ticks(),
        page_size(),
        boot_time.unwrap_or(0.0),
        open_fds,
    )
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`.
fn parse_stat(
    stat: &str,
    ticks_per_second: f64,
    page_size: f64,
    boot_time: f64,
    open_fds: usize,
) -> Option<SelfStats> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state); `field(n)` is proc(5)'s field n.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> Option<f64> { fields.get(n.checked_sub(3)?)?.parse::<f64>().ok() };
    let utime = field(14)?;
    let stime = field(15)?;
    let threads = field(20)?;
    let start_ticks = field(22)?;
    let vsize = field(23)?;
    let rss_pages = field(24)?;
    Some(SelfStats {
        cpu_seconds: (utime + stime) / ticks_per_second,
        resident_memory_bytes: rss_pages * page_size,
        virtual_memory_bytes: vsize,
        open_fds: open_fds as f64,
        threads,
        start_time_seconds: boot_time + start_ticks / ticks_per_second,
    })
}

fn parse_boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn page_size() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as f64
    } else {
        4096.0
    }
}

/// Why the HTTP server turned a client away (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Every connection slot was taken: answered 503 at once, and closed.
    ConnectionLimit,
    /// Every in-flight request slot was taken: answered 503 at once.
    InFlightLimit,
    /// No complete request head within the header timeout (an idle keep-alive connection, a
    /// silent or slow client): closed.
    HeaderTimeout,
    /// The TLS handshake failed or did not finish within the header timeout: closed.
    TlsHandshake,
    /// The client read nothing of a response for the write timeout (it sends requests but never
    /// reads the answers): closed.
    WriteTimeout,
    /// Every password-check slot was taken (a flood of credentials the cache does not know):
    /// answered 429 at once, before any bcrypt.
    PasswordChecks,
}

impl Rejection {
    pub const ALL: [Rejection; 6] = [
        Rejection::ConnectionLimit,
        Rejection::InFlightLimit,
        Rejection::HeaderTimeout,
        Rejection::TlsHandshake,
        Rejection::WriteTimeout,
        Rejection::PasswordChecks,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Rejection::ConnectionLimit => "connection_limit",
            Rejection::InFlightLimit => "in_flight_limit",
            Rejection::HeaderTimeout => "header_timeout",
            Rejection::TlsHandshake => "tls_handshake",
            Rejection::WriteTimeout => "write_timeout",
            Rejection::PasswordChecks => "password_checks",
        }
    }
}

/// How one attempt to reload the web config ended: the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new config is in force.
    Applied,
    /// The file (or a file it names) is broken: the last good config stays.
    Failed,
    /// The new config would lower security (TLS, client certificates or basic auth removed):
    /// the config in force stays; lowering security takes a restart.
    Refused,
}

impl ReloadResult {
    pub const ALL: [ReloadResult; 3] = [
        ReloadResult::Applied,
        ReloadResult::Failed,
        ReloadResult::Refused,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ReloadResult::Applied => "applied",
            ReloadResult::Failed => "failed",
            ReloadResult::Refused => "refused",
        }
    }
}

/// The HTTP server's own figures: open connections, clients turned away, web config reloads.
#[derive(Debug, Default)]
pub struct HttpStats {
    open: AtomicU64,
    rejected: [AtomicU64; Rejection::ALL.len()],
    reloads: [AtomicU64; ReloadResult::ALL.len()],
}

impl HttpStats {
    /// Counts a connection open until the returned guard is dropped.
    pub fn opened(self: &Arc<Self>) -> OpenConnection {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(self))
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    pub fn reject(&self, why: Rejection) {
        self.rejected[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every reason, with its count since start (0 until it happens).
    pub fn rejected(&self) -> [(Rejection, u64); Rejection::ALL.len()] {
        Rejection::ALL.map(|r| (r, self.rejected[r as usize].load(Ordering::Relaxed)))
    }

    pub fn reloaded(&self, result: ReloadResult) {
        self.reloads[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Web config reload attempts since start, by result (0 until it happens).
    pub fn reloads(&self) -> [(ReloadResult, u64); ReloadResult::ALL.len()] {
        ReloadResult::ALL.map(|r| (r, self.reloads[r as usize].load(Ordering::Relaxed)))
    }
}

/// One open connection, counted in [`HttpStats`] until dropped.
#[derive(Debug)]
pub struct OpenConnection(Arc<HttpStats>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_hostile_name() {
        // A command name with spaces and a ')' must not shift the fields.
        let line = "4242 (gpu) pod (x)) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 1000 104857600 2560 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(line, 100.0, 4096.0, 1_700_000_000.0, 7).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.threads, 9.0);
        assert_eq!(s.virtual_memory_bytes, 104857600.0);
        assert_eq!(s.resident_memory_bytes, 2560.0 * 4096.0);
        assert_eq!(s.start_time_seconds, 1_700_000_010.0);
        assert_eq!(s.open_fds, 7.0);
    }

    #[test]
    fn garbage_is_none_not_a_panic() {
        assert!(parse_stat("", 100.0, 4096.0, 0.0, 0).is_none());
        assert!(parse_stat("1 (x) S 1 2", 100.0, 4096.0, 0.0, 0).is_none());
    }

    #[test]
    fn reads_its_own_process() {
        let s = read().unwrap();
        assert!(s.resident_memory_bytes > 0.0 && s.threads >= 1.0);
    }

    #[test]
    fn boot_time() {
        assert_eq!(parse_boot_time("cpu 1 2\nbtime 1700000000\n"), Some(1.7e9));
    }

    #[test]
    fn http_stats_count_open_connections_and_rejections() {
        let stats = Arc::new(HttpStats::default());
        let a = stats.opened();
        let b = stats.opened();
        assert_eq!(stats.open(), 2);
        drop(a);
        assert_eq!(stats.open(), 1);
        drop(b);
        assert_eq!(stats.open(), 0);
        stats.reject(Rejection::HeaderTimeout);
        stats.reject(Rejection::HeaderTimeout);
        stats.reject(Rejection::ConnectionLimit);
        let counts: Vec<(&str, u64)> = stats
            .rejected()
            .iter()
            .map(|(r, n)| (r.label(), *n))
            .collect();
        assert_eq!(
            counts,
            [
                ("connection_limit", 1),
                ("in_flight_limit", 0),
                ("header_timeout", 2),
                ("tls_handshake", 0),
                ("write_timeout", 0),
                ("password_checks", 0),
            ]
        );
    }
}
