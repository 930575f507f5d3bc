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
    // 15 requests/s for 30 minutes: about three quarters of what one replica serves within the
    // goal (hpa-sim's H200 replica serves ~20 requests/s).
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
fn the_shipped_hpa_meets_the_goal_on_the_diurnal_example_without_sitting_at_max() {
    // The day the recipe table of docs/autoscaling.md was computed on.
    let loaded = scenario::load(&repo("examples/diurnal-chat.yaml"), None).unwrap();
    let run = simulate::run(&loaded, &shipped(), &mut |_| {}).unwrap();
    let t = &run.totals;
    assert!(t.meets_goal, "{:?}", t.misses);
    assert_eq!(t.seconds_at_max_replicas, 0.0, "peak {}", t.peak_replicas);
    // The scenario's own HPA is the previous recipe: at maxReplicas for hours.
    let before = simulate::run(&loaded, &loaded.scenario.hpa, &mut |_| {}).unwrap();
    assert!(before.totals.seconds_at_max_replicas > 6.0 * 3600.0);
    assert!(before.totals.gpu_hours > 2.0 * t.gpu_hours);
}
