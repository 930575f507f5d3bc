//! Floods that must not starve the agent, over loopback against the release-shaped binary: a
//! connection slot's worth of clients that pipeline scrapes and never read, the connection cap
//! filled with idle and slowloris clients while the kubelet probes, a flood of wrong passwords
//! beside a verified scraper, SIGTERM in the middle of that flood, and wrong passwords for a cheap
//! and an unknown user timed against each other. Each prints its figures (`--nocapture`); what is
//! asserted is what must hold, with bounds far from the figures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::load::{connect, raise_open_files_limit, rss_kib, rss_mib, Slowloris};
use common::{fixture, prom, Agent, WAIT};

/// One flood at a time: each loads the machine (thousands of sockets, dozens of threads), and
/// two at once would measure each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn golden() -> String {
    std::fs::read_to_string(fixture("scenarios/golden.yaml")).unwrap()
}

/// The connection cap the agent chose (it says so when it starts serving).
fn max_connections(agent: &Agent) -> usize {
    let log = agent.log_text();
    log.lines()
        .find_map(|l| l.split("max_connections=").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no max_connections in the log:\n{log}"))
}

/// A connection with a 4 KiB receive buffer, set before it connects (so the window it
/// advertises stays small): a client that reads nothing then stalls the agent's writes after a
/// few responses, not after the megabytes loopback buffers otherwise take.
fn connect_small_window(port: u16) -> TcpStream {
    use std::os::fd::FromRawFd as _;
    // SAFETY: a fresh socket, set up and connected with plain syscalls on local values; the
    // descriptor is handed to the TcpStream, which owns and closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let size: libc::c_int = 4096;
        let set = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_ref(&size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(set, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            std::ptr::from_ref(&addr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

fn rejected(s: &prom::Samples, reason: &str) -> f64 {
    s.value(
        "gpu_pod_exporter_http_rejected_total",
        &[("reason", reason)],
    )
    .unwrap_or(0.0)
}

/// Probes `/healthz` and `/readyz` `rounds` times, `every` apart; how many of each answered
/// 200, and the slowest answer.
fn probe(agent: &Agent, rounds: usize, every: Duration) -> (usize, usize, Duration) {
    let (mut ok, mut failed, mut slowest) = (0, 0, Duration::ZERO);
    for _ in 0..rounds {
        for path in ["/healthz", "/readyz"] {
            let t = Instant::now();
            match agent.try_get(path, &[]) {
                Some(r) if r.status == 200 => ok += 1,
                _ => failed += 1,
            }
            slowest = slowest.max(t.elapsed());
        }
        thread::sleep(every);
    }
    (ok, failed, slowest)
}

/// How many of the slow readers keep sending requests until the agent closes them: enough
/// responses that the kernel's socket buffers fill (megabytes on loopback) and the agent's
/// writes stall.
const STALLERS: usize = 32;

/// Sends pipelined scrapes on `s`, never reading, until the agent closes the connection (the
/// write fails). Blocking writes, never cut short: a write timeout could tear a request.
fn pipeline_until_closed(mut s: TcpStream) {
    let burst = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(32);
    while s.write_all(&burst).is_ok() {}
}

/// A connection slot's worth of clients send pipelined scrapes and never read the answers.
/// Most send 16 and stop (the kernel takes their answers into its socket buffers, and the
/// header timeout closes them once idle); [`STALLERS`] of them keep sending until the agent's
/// writes stall, and the write timeout (10 s) must close those. Meanwhile memory stays bounded
/// (a connection's read buffer is capped, and it holds one answer at most) and probes are
/// answered (they arrive past the connection cap).
#[test]
fn clients_that_never_read_are_closed_and_memory_stays_bounded() {
    let _serial = one_at_a_time();
    raise_open_files_limit(8192);
    let agent = Agent::with_scenario(&golden()).start();
    agent.wait_for(WAIT, "/readyz 200", |a| a.get("/readyz", &[]).status == 200);
    let cap = max_connections(&agent);
    let rss_before = rss_mib(&agent);
    let started = Instant::now();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    for _ in 0..STALLERS {
        let (s, closed) = (connect_small_window(agent.port), closed_tx.clone());
        thread::spawn(move || {
            pipeline_until_closed(s);
            let _ = closed.send(());
        });
    }
    let pipelined = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(16);
    let readers: Vec<TcpStream> = (STALLERS..cap)
        .map(|_| {
            let mut s = connect_small_window(agent.port);
            s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
            let _ = s.write_all(&pipelined);
            s
        })
        .collect();
    // Memory and probes while they are held, until the write timeout has passed.
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (peak, pid) = (Arc::clone(&peak), agent.child.id());
        thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(14);
            while Instant::now() < until {
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let (ok, failed, slowest) = probe(&agent, 20, Duration::from_millis(300));
    sampler.join().unwrap();
    // A staller the agent never closes blocks in its write: counted as not closed here.
    let deadline = Instant::now() + Duration::from_secs(30);
    let closed = (0..STALLERS)
        .take_while(|_| {
            closed_rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .is_ok()
        })
        .count();
    let s = agent.scrape_until(WAIT, "every slow reader closed", |s| {
        s.value("gpu_pod_exporter_http_connections", &[])
            .unwrap_or(f64::MAX)
            < 10.0
            && rejected(s, "write_timeout") >= closed as f64
    });
    let peak_mib = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    println!(
        "{cap} clients pipelining scrapes, never reading ({STALLERS} until their answers stall): agent RSS \
         {rss_before:.1} MiB before, {peak_mib:.1} MiB at the peak; probes {ok} answered, {failed} not \
         (slowest {slowest:?}); {} closed by the write timeout, {} by the header timeout; every one \
         closed within {:?}",
        rejected(&s, "write_timeout"),
        rejected(&s, "header_timeout"),
        started.elapsed()
    );
    assert_eq!(
        failed, 0,
        "probes failed while slow readers held every slot"
    );
    assert!(peak_mib < 100.0, "RSS peaked at {peak_mib:.1} MiB");
    assert_eq!(
        closed, STALLERS,
        "a client that never reads was never closed"
    );
    assert!(rejected(&s, "write_timeout") >= STALLERS as f64);
    drop(readers);
}

/// The connection cap filled past its end with idle and slowloris clients (the kubelet's
/// probes arrive over the cap): a few connections over it are read just for a probe, so every
/// probe is answered, while a scrape over the cap gets 503 at once.
#[test]
fn probes_are_answered_past_the_connection_cap() {
    let _serial = one_at_a_time();
    raise_open_files_limit(8192);
    let agent = Agent::with_scenario(&golden()).start();
    agent.wait_for(WAIT, "/readyz 200", |a| a.get("/readyz", &[]).status == 200);
    let cap = max_connections(&agent);
    let (idle_n, slow_n) = (cap - 148, 200);
    let idle: Vec<TcpStream> = (0..idle_n).map(|_| connect(agent.port)).collect();
    let slow = Slowloris::start(agent.port, slow_n);
    // The probes while the clients are held (the header timeout closes them after 5 s).
    thread::sleep(Duration::from_millis(300));
    let (ok, failed, slowest) = probe(&agent, 10, Duration::from_millis(100));
    let over = agent.try_get("/metrics", &[]).map(|r| r.status);
    let slow = slow.stop();
    drop((idle, slow));
    let s = agent.scrape_until(WAIT, "the clients gone", |s| {
        s.value("gpu_pod_exporter_http_connections", &[])
            .unwrap_or(f64::MAX)
            < 10.0
    });
    println!(
        "{idle_n} idle + {slow_n} slowloris clients over a cap of {cap}: probes {ok} answered, {failed} not \
         (slowest {slowest:?}); a scrape over the cap got {over:?}; {} turned away at the cap",
        rejected(&s, "connection_limit")
    );
    assert_eq!(failed, 0, "a probe failed past the connection cap");
    assert_eq!(over, Some(503), "a scrape over the cap");
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// An agent behind basic auth: `scraper` (cost 10, password `good`) and `admin` (cost 12);
/// the folder holds its web config for as long as the agent runs.
fn agent_with_users() -> (Agent, tempfile::TempDir) {
    agent_with_users_and(&[])
}

fn agent_with_users_and(args: &[&str]) -> (Agent, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let users = format!(
        "basic_auth_users:\n  scraper: {}\n  admin: {}\n",
        bcrypt::hash("good", 10).unwrap(),
        bcrypt::hash("secret", 12).unwrap()
    );
    std::fs::write(&web, users).unwrap();
    let mut agent =
        Agent::with_scenario(&golden()).arg(format!("--web.config.file={}", web.display()));
    for a in args {
        agent = agent.arg(*a);
    }
    (agent.start(), dir)
}

/// `clients` threads that send wrong passwords as fast as they are answered, until `stop`;
/// their answers counted: 401, 429, anything else.
fn flood(
    port: u16,
    clients: usize,
    stop: &Arc<AtomicBool>,
) -> (Vec<thread::JoinHandle<()>>, Arc<[AtomicU64; 3]>) {
    let counts: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let handles = (0..clients)
        .map(|i| {
            let (stop, counts) = (Arc::clone(stop), Arc::clone(&counts));
            thread::spawn(move || {
                let auth = basic("admin", &format!("guess-{i}"));
                while !stop.load(Ordering::Relaxed) {
                    let status = common::http_get(port, "/metrics", &[("Authorization", &auth)])
                        .map(|r| r.status);
                    let slot = match status {
                        Some(401) => 0,
                        Some(429) => 1,
                        _ => 2,
                    };
                    counts[slot].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    (handles, counts)
}

/// 66 clients sending wrong passwords for a cost-12 user: checks past the few password-check
/// slots are shed with 429 before any bcrypt, and a scraper whose credentials were verified
/// before is never checked again, so its scrapes all answer 200.
#[test]
fn a_wrong_password_flood_never_blocks_a_verified_scraper() {
    let _serial = one_at_a_time();
    let (agent, _web) = agent_with_users();
    let good = basic("scraper", "good");
    assert_eq!(
        agent.get("/metrics", &[("Authorization", &good)]).status,
        200
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (handles, counts) = flood(agent.port, 66, &stop);
    thread::sleep(Duration::from_millis(500));
    let mut statuses = Vec::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        statuses.push(agent.get("/metrics", &[("Authorization", &good)]).status);
        slowest = slowest.max(t.elapsed());
        thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let [wrong, shed, other] = [0, 1, 2].map(|i| counts[i].load(Ordering::Relaxed));
    let good_ok = statuses.iter().filter(|s| **s == 200).count();
    println!(
        "66 wrong-password clients (cost 12): {wrong} answered 401 after bcrypt, {shed} shed with 429, \
         {other} otherwise; the verified scraper: {good_ok} of {} scrapes 200, slowest {slowest:?}",
        statuses.len()
    );
    assert_eq!(good_ok, statuses.len(), "{statuses:?}");
    assert!(shed > 0, "the flood was never shed");
    assert_eq!(other, 0);
}

/// SIGTERM in the middle of a wrong-password flood: the checks still waiting are dropped, and
/// the agent exits well within the 10 s before the pod is killed.
#[test]
fn sigterm_during_a_password_flood_exits_within_5_seconds() {
    let _serial = one_at_a_time();
    let (mut agent, _web) = agent_with_users_and(&["--log.level=info,gpu_pod_exporter::web=debug"]);
    let stop = Arc::new(AtomicBool::new(false));
    let (handles, _) = flood(agent.port, 66, &stop);
    thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(agent.child.id() as i32, libc::SIGTERM);
    }
    let status = loop {
        if let Some(st) = agent.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    println!("SIGTERM during a 66-client wrong-password flood: exited {status:?} after {took:?}");
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}:\n{}",
        agent.log_text()
    );
}

/// With users of different bcrypt costs, a wrong password for the cheap user takes as long as
/// any password for a user that does not exist (checked against the costly hash): every failure
/// is padded to the costliest hash's time, so timing tells no user names.
#[test]
fn a_wrong_password_takes_as_long_for_a_cheap_user_as_for_an_unknown_one() {
    let _serial = one_at_a_time();
    let (agent, _web) = agent_with_users();
    // Interleaved, so that the machine's load weighs on each user alike.
    let mut took: [Vec<Duration>; 3] = Default::default();
    for _ in 0..7 {
        for (i, user) in ["scraper", "admin", "mallory"].into_iter().enumerate() {
            let auth = basic(user, "wrong");
            let t = Instant::now();
            assert_eq!(
                agent.get("/metrics", &[("Authorization", &auth)]).status,
                401
            );
            took[i].push(t.elapsed());
        }
    }
    let [cheap, costly, unknown] = took.map(|mut t| {
        t.sort();
        t[t.len() / 2]
    });
    println!(
        "median of 7 wrong passwords: cost 10 user {cheap:?}, cost 12 user {costly:?}, unknown user {unknown:?}"
    );
    // Before, the cheap user answered in a quarter of the unknown user's time.
    assert!(
        cheap.as_secs_f64() > 0.8 * unknown.as_secs_f64(),
        "cheap {cheap:?} against unknown {unknown:?}"
    );
}
