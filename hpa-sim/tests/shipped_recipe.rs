//! The shipped HPA (daemonset/autoscaling/hpa.yaml) in the simulator: under a moderate steady
//! load it holds the replicas the load needs, where the recipe shipped before it (NVML
//! utilization at 0.7 beside the queue) kept adding replicas (to maxReplicas on the diurnal
//! example, docs/autoscaling.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use hpa_sim::scenario;
use hpa_sim::simulate;
use hpa_sim::spec::HpaSpec;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

#[derive(serde::Deserialize)]
struct Manifest {
    spec: HpaSpec,
}

fn shipped() -> HpaSpec {
    let text = std::fs::read_to_string(repo("daemonset/autoscaling/hpa.yaml")).unwrap();
    serde_saphyr::from_str::<Manifest>(&text).unwrap().spec
}

/// The recipe shipped before: NVML utilization at 0.7 and the queue at 5, same behavior.
fn previous() -> HpaSpec {
    let mut h = shipped();
    let metrics = "
- type: Pods
  pods: {metric: {name: gpu_utilization_ratio}, target: {type: AverageValue, averageValue: 700m}}
- type: Pods
  pods: {metric: {name: vllm_num_requests_waiting}, target: {type: AverageValue, averageValue: \"5\"}}
";
    h.metrics = serde_saphyr::from_str(metrics).unwrap();
    h
}

#[test]
fn the_shipped_hpa_holds_what_a_moderate_steady_load_needs() {
    // 15 requests/s for 30 minutes: about three quarters of what one replica of the fixture's
    // slower step-time line serves within the goal (~20 requests/s).
    let loaded = scenario::load(&repo("hpa-sim/tests/fixtures/steady-queue.yaml"), None).unwrap();
    let hpa = shipped();
    assert_eq!(hpa.max_replicas, 8);
    let run = simulate::run(&loaded, &hpa, &mut |_| {}).unwrap();
    let t = &run.totals;
    assert!(t.meets_goal, "{:?}", t.misses);
    assert!(
        t.peak_replicas <= 2,
        "the shipped HPA went to {} replicas",
        t.peak_replicas
    );
    assert_eq!(t.seconds_at_max_replicas, 0.0);

    // The previous recipe: NVML utilization reads ~0.7-0.9 on every lightly loaded replica, so
    // it keeps adding replicas until each is nearly idle.
    let before = simulate::run(&loaded, &previous(), &mut |_| {}).unwrap();
    assert!(
        before.totals.peak_replicas >= 2 * t.peak_replicas.max(2),
        "the previous recipe peaked at only {}",
        before.totals.peak_replicas
    );
    assert!(
        before.totals.gpu_hours > 1.5 * t.gpu_hours,
        "{} against {}",
        before.totals.gpu_hours,
        t.gpu_hours
    );
}

#[test]
fn the_shipped_hpa_meets_the_latency_goal_on_the_diurnal_example_at_a_fraction_of_the_previous_cost(
) {
    // The day of docs/autoscaling.md's recipe table, on the bundled H200 decode profile (a peak
    // of 5-6 replicas' worth).
    let loaded = scenario::load(&repo("examples/diurnal-chat.yaml"), None).unwrap();
    let run = simulate::run(&loaded, &shipped(), &mut |_| {}).unwrap();
    let t = &run.totals;
    assert!(
        t.wait_p95 <= loaded.scenario.goal.p95_queue_wait_seconds,
        "p95 {}",
        t.wait_p95
    );
    assert_eq!(t.dropped, 0);
    // It reaches maxReplicas only in the day's largest burst (+90 % for 25 minutes), and its
    // only scale undone within 10 minutes is a scale-in that a burst follows (20:22, then
    // +70 % at 20:30): no oscillation.
    assert!(
        t.seconds_at_max_replicas < 1800.0,
        "{} s at maxReplicas",
        t.seconds_at_max_replicas
    );
    assert!(t.flaps <= 1, "{} flaps", t.flaps);
    // The scenario's own HPA is the previous recipe: at maxReplicas for hours, at twice the
    // GPU-hours.
    let before = simulate::run(&loaded, &loaded.scenario.hpa, &mut |_| {}).unwrap();
    assert!(before.totals.seconds_at_max_replicas > 6.0 * 3600.0);
    assert!(before.totals.gpu_hours > 2.0 * t.gpu_hours);
}
