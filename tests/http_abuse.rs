//! The agent under a hostile client: 1,000 idle sockets and 200 slowloris clients
//! held open at once, over loopback, while scrapes and probes must still be answered. Before,
//! the server took 128 connections and left the rest in the listen backlog: scrapes took 10 s
//! or failed, and `/healthz` failed 7 times out of 7.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::load::{connect, raise_open_files_limit, rss_mib, Slowloris};
use common::{fixture, prom, Agent};

const IDLE: usize = 1000;
const SLOWLORIS: usize = 200;

/// GETs `path`, timing it: how long it took, and the status.
fn timed_get(agent: &Agent, path: &str) -> (Duration, u16) {
    let start = Instant::now();
    let r = agent.get(path, &[]);
    (start.elapsed(), r.status)
}

#[test]
fn scrapes_and_probes_are_answered_beside_1000_idle_and_200_slowloris_clients() {
    raise_open_files_limit((IDLE + SLOWLORIS + 200) as u64);
    let agent =
        Agent::with_scenario(&std::fs::read_to_string(fixture("scenarios/golden.yaml")).unwrap())
            .start();
    agent.wait_for(Duration::from_secs(20), "/readyz 200", |a| {
        a.get("/readyz", &[]).status == 200
    });

    let rss_idle = rss_mib(&agent);
    let idle: Vec<TcpStream> = (0..IDLE).map(|_| connect(agent.port)).collect();
    // The slowloris clients trickle a header line every 200 ms and never end the head.
    let slow = Slowloris::start(agent.port, SLOWLORIS);

    // Every client socket is accepted, not left in the backlog.
    let s = agent.scrape_until(
        Duration::from_secs(4),
        "every client connection accepted",
        |s| {
            s.value("gpu_pod_exporter_http_connections", &[])
                .is_some_and(|n| n >= (IDLE + SLOWLORIS) as f64)
        },
    );
    let open = s.value("gpu_pod_exporter_http_connections", &[]);
    let rss_held = rss_mib(&agent);

    // While they are all held (the header timeout is 5 s), scrapes and probes are answered.
    let mut latencies = Vec::new();
    for _ in 0..10 {
        for path in ["/metrics", "/healthz", "/readyz"] {
            let (took, status) = timed_get(&agent, path);
            assert_eq!(status, 200, "{path}");
            latencies.push((took, path));
        }
    }
    latencies.sort();
    let (max, worst) = latencies[latencies.len() - 1];
    let p50 = latencies[latencies.len() / 2].0;
    println!(
        "with {open:?} connections open (agent RSS {rss_held:.1} MiB, {rss_idle:.1} MiB before): {} requests, p50 {p50:?}, max {max:?} ({worst})",
        latencies.len()
    );
    // A functional bound, not a benchmark: a starved server took 10 s or never answered.
    assert!(
        max < Duration::from_secs(1),
        "{worst} took {max:?}; agent log:\n{}",
        agent.log_text()
    );

    // The header timeout closes them all, and each is counted.
    let slow = slow.stop();
    let s = agent.scrape_until(
        Duration::from_secs(15),
        "idle and slow clients closed by the header timeout",
        |s| {
            s.value(
                "gpu_pod_exporter_http_rejected_total",
                &[("reason", "header_timeout")],
            )
            .is_some_and(|n| n >= (IDLE + SLOWLORIS) as f64)
        },
    );
    assert!(s.value("gpu_pod_exporter_http_connections", &[]).unwrap() < 10.0);
    assert_eq!(
        s.value(
            "gpu_pod_exporter_http_rejected_total",
            &[("reason", "connection_limit")]
        ),
        Some(0.0)
    );
    drop((idle, slow));
    let _ = prom::parse(&agent.scrape());
}
