//! The two sampling tiers end to end: health series are read every
//! `--collect.health-interval` and keep their last value in between, while the decision series
//! follow every `--collect.interval`; a slow health read never times the device out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{prom, Agent, WAIT};

const G0: [(&str, &str); 1] = [("gpu", "0")];

fn scenario(power_watts: u64, energy_joules: u64, extra: &str) -> String {
    format!(
        r#"driver_version: "550.54.15"
devices:
  - uuid: GPU-7a1c9e55-0d3b-4f6e-8a21-5c4b3d2e1f00
    name: NVIDIA H100 80GB HBM3
    pci_bus_id: "00000000:18:00.0"
    memory_total_bytes: 85520809984
    memory_used_bytes: 1000000000
    utilization_gpu_percent: 50
    utilization_memory_percent: 20
    power_milliwatts: {}
    temperature_celsius: 50
    sm_clock_mhz: 1980
    process_utilization: supported
    energy_millijoules: {}
    pcie: {{tx_kib_per_second: 1000, rx_kib_per_second: 2000, replay_errors: 3}}
    throttle_reasons: [sw_power_cap]
{extra}"#,
        power_watts * 1000,
        energy_joules * 1000,
    )
}

/// Scrapes until `cond` holds, checking on every scrape that the device is up and that every
/// health series is there (never dropped between health reads).
fn follow(agent: &Agent, what: &str, cond: impl Fn(&prom::Samples) -> bool) -> prom::Samples {
    let start = Instant::now();
    loop {
        let s = prom::parse(&agent.scrape());
        assert_eq!(s.value("gpu_up", &G0), Some(1.0), "{}", s.text);
        for series in [
            "gpu_energy_joules_total",
            "gpu_pcie_replay_errors_total",
            "gpu_pcie_transmit_bytes_per_second",
        ] {
            assert!(
                s.value(series, &G0).is_some(),
                "{series} dropped:\n{}",
                s.text
            );
        }
        if cond(&s) {
            return s;
        }
        assert!(
            start.elapsed() < WAIT,
            "timed out waiting for {what}; last scrape:\n{}\nlog:\n{}",
            s.text,
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn health_series_keep_their_last_read_until_the_health_interval() {
    let agent = Agent::with_scenario(&scenario(100, 1000, ""))
        .interval("1s")
        .arg("--collect.health-interval=2s")
        .start();
    // Every series is there from the first sample on (the first health read is waited for).
    let s = agent.scrape_until(WAIT, "the first sample", |s| {
        s.value("gpu_power_watts", &G0) == Some(100.0)
    });
    assert_eq!(s.value("gpu_energy_joules_total", &G0), Some(1000.0));

    // A change of both tiers: power follows on the next cycle; energy on the next health read,
    // which is every other cycle. On a cycle that is not a health read, the new power shows
    // beside the old energy. A round whose change lands just before a health read sees both
    // at once; the round after it starts right after that read, so its next cycle is not one.
    let mut saw_old_energy_with_new_power = false;
    for round in 1..=3u64 {
        let (power, energy) = (100 + round * 100, 1000 + round * 1000);
        agent.set_scenario(&scenario(power, energy, ""));
        let s = follow(&agent, "the new power", |s| {
            s.value("gpu_power_watts", &G0) == Some(power as f64)
        });
        let seen = s.value("gpu_energy_joules_total", &G0);
        let changed_at = Instant::now();
        follow(&agent, "the new energy", |s| {
            s.value("gpu_energy_joules_total", &G0) == Some(energy as f64)
        });
        // At most one health interval (and a cycle's slack) after the fast tier saw it.
        assert!(
            changed_at.elapsed() < Duration::from_millis(3500),
            "energy took {:?}",
            changed_at.elapsed()
        );
        if seen == Some((energy - 1000) as f64) {
            saw_old_energy_with_new_power = true;
            break;
        }
    }
    assert!(
        saw_old_energy_with_new_power,
        "energy was read on every cycle, not every health interval"
    );
}

#[test]
fn a_slow_health_read_does_not_time_the_device_out() {
    // The energy call blocks for twice the cycle's deadline (3/4 of 1 s): before the tiers, it
    // was on the device's worker and the device was reported down every cycle.
    let slow = "    delays_ms: {energy: 1500}\n";
    let agent = Agent::with_scenario(&scenario(100, 1000, slow))
        .interval("1s")
        .arg("--collect.health-interval=2s")
        .start();
    let first = Instant::now();
    let s = agent.scrape_until(WAIT, "energy, read late", |s| {
        s.value("gpu_energy_joules_total", &G0) == Some(1000.0)
    });
    assert_eq!(s.value("gpu_up", &G0), Some(1.0));
    // Then several cycles and health reads: up on every scrape, energy kept between reads,
    // and the fast tier follows a change within a cycle or two.
    agent.set_scenario(&scenario(250, 1000, slow));
    let s = follow(&agent, "the new power", |s| {
        s.value("gpu_power_watts", &G0) == Some(250.0)
    });
    assert_eq!(
        s.value(
            "gpu_pod_exporter_collector_success",
            &[("collector", "nvidia")]
        ),
        Some(1.0)
    );
    let until = Instant::now() + Duration::from_secs(4);
    follow(&agent, "four more seconds", |_| Instant::now() > until);
    assert!(first.elapsed() < WAIT * 2);
}

/// The golden node's GPU 0 (pid 4242 is the container llm/vllm-0/server in
/// `tests/fixtures/nodes/golden`, 4243 a host process), with `processes` as given.
fn shared_scenario(processes: &str) -> String {
    format!(
        r#"driver_version: "550.54.15"
devices:
  - uuid: GPU-0b7f3c2e-1a4d-4c55-9e1e-6b1f0c2d3e4f
    name: NVIDIA H100 80GB HBM3
    pci_bus_id: "00000000:18:00.0"
    memory_total_bytes: 85520809984
    memory_used_bytes: 40265318400
    utilization_gpu_percent: 87
    utilization_memory_percent: 45
    power_milliwatts: 350000
    temperature_celsius: 61
    sm_clock_mhz: 1980
    process_utilization: supported
    processes:
{processes}"#
    )
}

#[test]
fn per_process_utilization_is_asked_only_while_the_device_is_shared() {
    let pod = [("pod", "vllm-0"), ("gpu", "0")];
    let alone = "      - {pid: 4242, used_memory_bytes: 30000000000, sm_util_percent: 80, mem_util_percent: 40}\n";
    let shared = format!(
        "{alone}      - {{pid: 4243, used_memory_bytes: 10000000000, sm_util_percent: 7, mem_util_percent: 5}}\n"
    );
    let agent = Agent::with_scenario(&shared_scenario(alone))
        .rootfs(common::fixture("nodes/golden"))
        .start();
    // One process: after the first ask (which learns that the device reports per-process
    // utilization: the process's own 80 %), the call is skipped and the process has the
    // device's 87 %: the mock's per-process figure (80) no longer shows.
    agent.scrape_until(WAIT, "the device's utilization for the sole process", |s| {
        s.value("pod_gpu_utilization_ratio", &pod) == Some(0.87)
    });
    // A second process: asked again, each process has its own figure.
    agent.set_scenario(&shared_scenario(&shared));
    agent.scrape_until(WAIT, "the per-process figure on a shared device", |s| {
        s.value("pod_gpu_utilization_ratio", &pod) == Some(0.8)
    });
    // Alone again: skipped again.
    agent.set_scenario(&shared_scenario(alone));
    agent.scrape_until(WAIT, "the device's utilization again", |s| {
        s.value("pod_gpu_utilization_ratio", &pod) == Some(0.87)
    });
}

/// The shared device of [`shared_scenario`] with two processes, and the driver's sample buffer
/// (the mock's `process_utilization_buffer`): a sample every 100 ms, the last `samples` kept.
fn buffered_scenario(samples: u32) -> String {
    let two = "      - {pid: 4242, used_memory_bytes: 30000000000, sm_util_percent: 80, mem_util_percent: 40}
      - {pid: 4243, used_memory_bytes: 10000000000, sm_util_percent: 7, mem_util_percent: 5}\n";
    format!(
        "process_utilization_buffer: {{period_ms: 100, samples: {samples}}}\n{}",
        shared_scenario(two)
    )
}

/// Runs the agent at 1 s on [`buffered_scenario`] for five cycles after the first per-process
/// figure, and returns how many lines the mock wrote about samples lost from its buffer.
fn lost_sample_reports(samples: u32) -> usize {
    let pod = [("pod", "vllm-0"), ("gpu", "0")];
    let agent = Agent::with_scenario(&buffered_scenario(samples))
        .rootfs(common::fixture("nodes/golden"))
        .interval("1s")
        .start();
    agent.scrape_until(WAIT, "the per-process figure", |s| {
        s.value("pod_gpu_utilization_ratio", &pod) == Some(0.8)
    });
    std::thread::sleep(Duration::from_secs(5));
    // Every cycle in between kept the figure (a held answer is the last read's).
    let s = prom::parse(&agent.scrape());
    assert_eq!(s.value("pod_gpu_utilization_ratio", &pod), Some(0.8));
    agent
        .log_text()
        .lines()
        .filter(|l| l.contains("left the") && l.contains("sample buffer"))
        .count()
}

#[test]
fn reading_every_other_cycle_loses_no_sample_the_driver_keeps() {
    // A buffer of 3 s: reads 2 s apart, each continuing from the last, lose nothing.
    assert_eq!(lost_sample_reports(30), 0);
}

#[test]
fn a_buffer_shorter_than_two_cycles_would_lose_samples() {
    // The control: a buffer of 1.5 s would do for a read every cycle (1 s), not for one every
    // other cycle; the mock reports the loss, so the test above can fail.
    assert!(lost_sample_reports(15) > 0);
}

#[test]
fn the_mps_list_is_asked_only_where_two_processes_run() {
    // Every MPS list call fails, so each call shows in the error counter.
    let failing = "    errors: {mps: UNKNOWN}\n";
    let alone = "      - {pid: 4242, used_memory_bytes: 30000000000, sm_util_percent: 80, mem_util_percent: 40}\n";
    let two = format!(
        "{alone}      - {{pid: 4243, used_memory_bytes: 10000000000, sm_util_percent: 7, mem_util_percent: 5}}\n"
    );
    let mps_errors = [
        ("collector", "nvidia"),
        ("call", "mps"),
        ("error", "UNKNOWN"),
    ];
    let pod = [("pod", "vllm-0"), ("gpu", "0")];
    let agent = Agent::with_scenario(&format!("{}{failing}", shared_scenario(alone)))
        .rootfs(common::fixture("nodes/golden"))
        .interval("1s")
        .start();
    // One process: an MPS server would be a second entry of the compute list, so there is no
    // client to look for, and the failing call is never made.
    agent.scrape_until(WAIT, "the sole process's figure", |s| {
        s.value("pod_gpu_utilization_ratio", &pod) == Some(0.87)
    });
    std::thread::sleep(Duration::from_secs(3));
    let s = prom::parse(&agent.scrape());
    assert_eq!(
        s.value("gpu_pod_exporter_driver_call_errors_total", &mps_errors),
        None,
        "{}",
        s.text
    );
    // Two processes: asked (and failing) every cycle.
    agent.set_scenario(&format!("{}{failing}", shared_scenario(&two)));
    agent.scrape_until(WAIT, "failed MPS list calls", |s| {
        s.value("gpu_pod_exporter_driver_call_errors_total", &mps_errors)
            .is_some_and(|n| n >= 2.0)
    });
}
