//! Kubernetes' own tables for stabilization, scaling policies and scale events
//! (`pkg/controller/podautoscaler/horizontal_test.go`) run against `hpa_sim::controller`: every
//! case keeps its upstream test function and case name.
//!
//! Ported: `TestConvertDesiredReplicasWithRules`, `TestCalculateScaleUpLimitWithScalingRules`,
//! `TestCalculateScaleDownLimitWithBehaviors`, `TestNormalizeDesiredReplicas`, `TestScalingWithRules`,
//! `TestStoreScaleEvents`, `TestNormalizeDesiredReplicasWithBehavior`.
//!
//! How upstream's calls map onto ours: upstream sets `hc.recommendations[key]`,
//! `hc.scaleUpEvents[key]` and `hc.scaleDownEvents[key]` and calls one private method; here
//! `Controller::seed` sets the same memory (entries as `(value, seconds ago)`) and
//! `Controller::normalize` runs stabilization followed by the policy/min/max conversion:
//! - `TestScalingWithRules` calls `convertDesiredReplicasWithBehaviorRate` alone; with no
//!   recommendations stored, our stabilization step returns the desired count unchanged, so
//!   `normalize` reduces to that call. `GenerateHPAScale{Up,Down}Rules` is the defaulting our
//!   spec applies to a present `behavior`.
//! - `TestNormalizeDesiredReplicasWithBehavior` calls `stabilizeRecommendationWithBehaviors` alone,
//!   with rules that carry only a stabilization window. Our spec needs policies, so each direction
//!   gets `1000 pods per 15 s`, which never binds in these cases, and `normalize` reduces to the
//!   stabilization.
//! - `TestNormalizeDesiredReplicas` calls `stabilizeRecommendation` alone; `normalize` also applies
//!   min/max and the `max(2 × current, 4)` limit, which never binds with current = 10, max = 100.
//! - `generateEventsUniformDistribution(events, period)` is reproduced by `uniform` below (event
//!   `i` of `n` sits `period - (i + 1)·period/n + period/2n` seconds ago, truncated like Go's
//!   `time.Duration(float)`).
//! - Conditions: our reasons start with upstream's condition reason (`ScaleUpLimit: …`); an empty
//!   reason is upstream's `DesiredWithinRange`.
//!
//! Not ported: `TestScalingWithRules` "prenormalized desired replicas within range when
//! minReplicas is 0" (`minReplicas: 0` needs the alpha HPAScaleToZero gate, which our spec
//! rejects; `TestConvertDesiredReplicasWithRules` covers the same numbers without a spec).
//! `TestConvertDesiredReplicasWithRules`' last case expects `calculateScaleUpLimit(3)`: upstream's
//! test binary sets `scaleUpLimitFactor = 8` in `init()`, the controller itself uses 2, so the
//! port asserts the production formula `max(2 × 3, 4) = 6`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hpa_sim::controller::testing::{
    change_in_period, convert_desired_replicas_with_rules, scale_down_limit, scale_up_limit,
};
use hpa_sim::controller::{Controller, ControllerConfig};
use hpa_sim::spec::{HpaSpec, Policy, PolicyType, Rules, SelectPolicy};

const NOW: i64 = 10_000_000;

/// `generateScalingRules(pods, podsPeriod, percent, percentPeriod, stabilizationWindow)`: a
/// `Max` rule with a Pods and/or a Percent policy, as YAML.
fn gen(pods: i32, pods_period: i32, percent: i32, percent_period: i32, window: i32) -> String {
    let mut policies = Vec::new();
    if pods != 0 {
        policies.push(format!(
            "{{type: Pods, value: {pods}, periodSeconds: {pods_period}}}"
        ));
    }
    if percent != 0 {
        policies.push(format!(
            "{{type: Percent, value: {percent}, periodSeconds: {percent_period}}}"
        ));
    }
    format!(
        "{{stabilizationWindowSeconds: {window}, selectPolicy: Max, policies: [{}]}}",
        policies.join(", ")
    )
}

/// An HPA with one placeholder metric, `min`/`max` and the given `behavior` YAML (`None`: no
/// `behavior` at all).
fn controller(
    min: i32,
    max: i32,
    up: Option<String>,
    down: Option<String>,
    behavior: bool,
) -> Controller {
    let mut yaml = format!(
        "minReplicas: {min}\nmaxReplicas: {max}\nmetrics:\n- type: Pods\n  pods:\n    metric: {{name: qps}}\n    target: {{type: AverageValue, averageValue: 1}}\n"
    );
    if behavior {
        yaml.push_str("behavior:\n");
        match (&up, &down) {
            (None, None) => yaml.push_str("  {}\n"),
            _ => {
                if let Some(u) = &up {
                    yaml.push_str(&format!("  scaleUp: {u}\n"));
                }
                if let Some(d) = &down {
                    yaml.push_str(&format!("  scaleDown: {d}\n"));
                }
            }
        }
    }
    let spec: HpaSpec = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    Controller::new(spec, ControllerConfig::default()).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// `generateEventsUniformDistribution(rawEvents, periodSeconds)` as `(change, seconds ago)`.
fn uniform(raw: &[i32], period: i64) -> Vec<(i32, i64)> {
    let seg = period as f64 / raw.len() as f64;
    raw.iter()
        .enumerate()
        .map(|(i, c)| {
            (
                *c,
                (period as f64 - seg * (i + 1) as f64 + seg / 2.0) as i64,
            )
        })
        .collect()
}

/// Upstream's condition reason of one of our reasons.
fn condition(reason: &str) -> &str {
    if reason.is_empty() {
        "DesiredWithinRange"
    } else {
        reason.split(':').next().unwrap_or(reason)
    }
}

#[derive(Default)]
struct Report(Vec<String>);

impl Report {
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, case: &str, what: &str, got: T, want: T) {
        if got != want {
            self.0.push(format!(
                "{case}: {what}: got {got:?}, upstream expects {want:?}"
            ));
        }
    }
    fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} mismatch(es) with upstream:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

#[test]
fn the_uniform_event_spread_matches_upstreams_comment() {
    // generateEventsUniformDistribution([]int{1, 2, 3, 4}, 120): -105 s, -75 s, -45 s, -15 s.
    assert_eq!(
        uniform(&[1, 2, 3, 4], 120),
        vec![(1, 105), (2, 75), (3, 45), (4, 15)]
    );
    assert_eq!(uniform(&[1, 5, 9], 120), vec![(1, 100), (5, 60), (9, 20)]);
}

#[test]
fn test_convert_desired_replicas_with_rules() {
    // upstream: TestConvertDesiredReplicasWithRules
    // (current, desired, min, max, expected replicas, expected condition, annotation)
    let cases = [
        (
            5,
            7,
            3,
            8,
            7,
            "DesiredWithinRange",
            "prenormalized desired replicas within range",
        ),
        (
            3,
            1,
            2,
            8,
            2,
            "TooFewReplicas",
            "prenormalized desired replicas < minReplicas",
        ),
        (
            1,
            0,
            0,
            10,
            0,
            "DesiredWithinRange",
            "prenormalized desired zeroed replicas within range",
        ),
        (
            20,
            1000,
            1,
            10,
            10,
            "TooManyReplicas",
            "maxReplicas is the limit because maxReplicas < scaleUpLimit",
        ),
        // calculateScaleUpLimit(3) with the controller's factor 2 (see the file header).
        (
            3,
            1000,
            1,
            2000,
            6,
            "ScaleUpLimit",
            "scaleUpLimit is the limit because scaleUpLimit < maxReplicas",
        ),
    ];
    let mut r = Report::default();
    for (current, desired, min, max, want, cond, name) in cases {
        let (got, reason) = convert_desired_replicas_with_rules(current, desired, min, max);
        let case = format!("TestConvertDesiredReplicasWithRules/{name}");
        r.eq(&case, "replicas", got, want);
        r.eq(&case, "condition", condition(&reason), cond);
    }
    r.finish();
}

fn min_rules() -> Rules {
    Rules {
        stabilization_window_seconds: Some(300),
        select_policy: SelectPolicy::Min,
        policies: vec![
            Policy {
                kind: PolicyType::Pods,
                value: 2,
                period_seconds: 60,
            },
            Policy {
                kind: PolicyType::Percent,
                value: 50,
                period_seconds: 60,
            },
        ],
        tolerance: None,
    }
}

#[test]
fn test_calculate_scale_up_limit_with_scaling_rules() {
    // upstream: TestCalculateScaleUpLimitWithScalingRules — Min of (1 + 2, ceil(1 × 1.5)).
    assert_eq!(scale_up_limit(1, &[], &[], &min_rules()), 2);
}

#[test]
fn test_calculate_scale_down_limit_with_behaviors() {
    // upstream: TestCalculateScaleDownLimitWithBehaviors — the smaller change of (5 - 2, ⌊5 × 0.5⌋).
    assert_eq!(scale_down_limit(5, &[], &[], &min_rules()), 3);
}

#[test]
fn test_normalize_desired_replicas() {
    // upstream: TestNormalizeDesiredReplicas (stabilizeRecommendation, 5-minute window)
    // (name, recommendations (replicas, seconds ago), prenormalized, stabilized, log length)
    type Case = (&'static str, &'static [(i32, i64)], i32, i32, usize);
    let cases: [Case; 5] = [
        ("empty log", &[], 5, 5, 1),
        ("stabilize", &[(4, 120), (5, 60)], 3, 5, 3),
        ("no stabilize", &[(1, 120), (2, 60)], 3, 3, 3),
        (
            "no stabilize - old recommendations",
            &[(10, 600), (9, 540)],
            3,
            3,
            2,
        ),
        (
            "stabilize - old recommendations",
            &[(10, 600), (4, 60), (5, 120), (9, 540)],
            3,
            5,
            4,
        ),
    ];
    let mut r = Report::default();
    for (name, recs, desired, want, len) in cases {
        let mut ctl = controller(1, 100, None, None, false);
        ctl.seed(NOW, recs, &[], &[]);
        let (got, _) = ctl.normalize(NOW, 10, desired);
        let case = format!("TestNormalizeDesiredReplicas/{name}");
        r.eq(&case, "stabilized replicas", got, want);
        r.eq(&case, "log length", ctl.recommendation_values().len(), len);
    }
    r.finish();
}

struct RulesCase {
    name: &'static str,
    up_events: Vec<(i32, i64)>,
    down_events: Vec<(i32, i64)>,
    min: i32,
    max: i32,
    up: Option<String>,
    down: Option<String>,
    current: i32,
    desired: i32,
    want: i32,
    cond: &'static str,
}

fn case(
    name: &'static str,
    min: i32,
    max: i32,
    current: i32,
    desired: i32,
    want: i32,
    cond: &'static str,
) -> RulesCase {
    RulesCase {
        name,
        up_events: vec![],
        down_events: vec![],
        min,
        max,
        up: None,
        down: None,
        current,
        desired,
        want,
        cond,
    }
}

impl RulesCase {
    fn up(mut self, r: String) -> Self {
        self.up = Some(r);
        self
    }
    fn down(mut self, r: String) -> Self {
        self.down = Some(r);
        self
    }
    fn up_events(mut self, e: Vec<(i32, i64)>) -> Self {
        self.up_events = e;
        self
    }
    fn down_events(mut self, e: Vec<(i32, i64)>) -> Self {
        self.down_events = e;
        self
    }
}

#[test]
fn test_scaling_with_rules() {
    // upstream: TestScalingWithRules (convertDesiredReplicasWithBehaviorRate)
    let e159 = || uniform(&[1, 5, 9], 120);
    let e_outdated = || uniform(&[8, 12, 9, 11], 120);
    let cases = vec![
        case("prenormalized desired replicas within range", 3, 8, 5, 7, 7, "DesiredWithinRange"),
        case("prenormalized desired replicas < minReplicas", 2, 8, 3, 1, 2, "TooFewReplicas"),
        case("maxReplicas is the limit because maxReplicas < scaleUpLimit", 1, 10, 20, 1000, 10, "TooManyReplicas"),
        case("desired replica count is more than the maximum replica count", 100, 150, 100, 1000, 150, "TooManyReplicas"),
        case(
            "scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
            1,
            2000,
            3,
            1000,
            4,
            "ScaleUpLimit",
        )
        .up(gen(0, 0, 1, 60, 0)),
        // ScaleUp without PeriodSeconds usage
        case("scaleUp with default behavior", 1, 1000, 10, 50, 20, "ScaleUpLimit"),
        case("scaleUp with pods policy larger than percent policy", 1, 1000, 10, 500, 110, "ScaleUpLimit")
            .up(gen(100, 60, 100, 60, 0)),
        case("scaleUp with percent policy larger than pods policy", 1, 1000, 10, 500, 20, "ScaleUpLimit")
            .up(gen(2, 60, 100, 60, 0)),
        case("scaleUp with spec MaxReplicas limitation with large pod policy", 1, 1000, 10, 50, 50, "DesiredWithinRange")
            .up(gen(100, 60, 0, 0, 0)),
        case("scaleUp with spec MaxReplicas limitation with large percent policy", 1, 1000, 10, 50, 50, "DesiredWithinRange")
            .up(gen(10000, 60, 0, 0, 0)),
        case("scaleUp with pod policy limitation", 1, 1000, 10, 50, 40, "ScaleUpLimit").up(gen(30, 60, 0, 0, 0)),
        case("scaleUp with percent policy limitation", 1, 1000, 10, 50, 30, "ScaleUpLimit").up(gen(0, 0, 200, 60, 0)),
        case("scaleDown with percent policy larger than pod policy", 1, 1000, 100, 2, 80, "ScaleDownLimit")
            .down(gen(20, 60, 1, 60, 300)),
        case("scaleDown with pod policy larger than percent policy", 1, 1000, 100, 2, 98, "ScaleDownLimit")
            .down(gen(2, 60, 1, 60, 300)),
        case("scaleDown with spec MinReplicas limitation with large pod policy", 1, 1000, 10, 0, 1, "TooFewReplicas")
            .down(gen(100, 60, 0, 0, 300)),
        case("scaleDown with spec MinReplicas limitation with large percent policy", 5, 1000, 10, 2, 5, "TooFewReplicas")
            .down(gen(0, 0, 100, 60, 300)),
        case("scaleDown with pod policy limitation", 1, 1000, 10, 2, 5, "ScaleDownLimit").down(gen(5, 60, 0, 0, 300)),
        case("scaleDown with percent policy limitation", 1, 1000, 10, 5, 5, "DesiredWithinRange")
            .down(gen(0, 0, 50, 60, 300)),
        case(
            "scaleUp with spec MaxReplicas limitation with large pod policy and events",
            1,
            200,
            100,
            500,
            200,
            "TooManyReplicas",
        )
        .up(gen(300, 60, 0, 0, 0))
        .up_events(e159()),
        case(
            "scaleUp with spec MaxReplicas limitation with large percent policy and events",
            1,
            200,
            100,
            500,
            200,
            "TooManyReplicas",
        )
        .up(gen(0, 0, 10000, 60, 0))
        .up_events(e159()),
        case(
            "scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up events",
            1,
            1000,
            100,
            500,
            100,
            "ScaleUpLimit",
        )
        .up(gen(5, 120, 0, 0, 0))
        .up_events(e159()),
        case("scaleUp with pod policy and previous scale up events", 1, 1000, 100, 500, 235, "ScaleUpLimit")
            .up(gen(150, 120, 0, 0, 0))
            .up_events(e159()),
        case("scaleUp with percent policy and previous scale up events", 1, 1000, 100, 500, 255, "ScaleUpLimit")
            .up(gen(0, 0, 200, 120, 0))
            .up_events(e159()),
        case("scaleUp with percent policy and previous scale up and down events", 1, 1000, 6, 24, 16, "ScaleUpLimit")
            .up(gen(0, 0, 300, 300, 0))
            .up_events(uniform(&[4], 120))
            .down_events(uniform(&[2], 120)),
        // ScaleDown with PeriodSeconds usage
        case("scaleDown with default policy and previous events", 1, 1000, 10, 5, 5, "DesiredWithinRange")
            .down_events(e159()),
        case(
            "scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events",
            1,
            1000,
            100,
            0,
            1,
            "TooFewReplicas",
        )
        .down(gen(115, 120, 0, 0, 300))
        .down_events(e159()),
        case(
            "scaleDown with spec MinReplicas limitation with large pod policy and previous events",
            5,
            1000,
            100,
            0,
            5,
            "TooFewReplicas",
        )
        .down(gen(130, 120, 0, 0, 300))
        .down_events(e159()),
        case(
            "scaleDown with spec MinReplicas limitation with large percent policy and previous events",
            5,
            1000,
            100,
            2,
            5,
            "TooFewReplicas",
        )
        .down(gen(0, 0, 100, 120, 300))
        .down_events(e159()),
        case("scaleDown with pod policy limitation and previous events", 1, 1000, 100, 2, 100, "ScaleDownLimit")
            .down(gen(5, 120, 0, 0, 300))
            .down_events(e159()),
        case("scaleDown with percent policy limitation and previous events", 1, 1000, 100, 0, 56, "ScaleDownLimit")
            .down(gen(0, 0, 50, 120, 300))
            .down_events(uniform(&[2, 4, 6], 120)),
        case("scaleDown with percent policy and previous scale up and down events", 1, 1000, 10, 1, 6, "ScaleDownLimit")
            .down(gen(0, 0, 50, 180, 0))
            .up_events(uniform(&[2], 120))
            .down_events(uniform(&[4], 120)),
        case("scaleDown with previous events preventing further scale down", 1, 1000, 100, 0, 100, "ScaleDownLimit")
            .down(gen(0, 0, 10, 120, 300))
            .down_events(uniform(&[10, 10, 10], 120)),
        case("scaleDown with with previous events still allowing more scale down", 1, 1000, 10, 5, 5, "DesiredWithinRange")
            .down(gen(0, 0, 1000, 120, 300))
            .down_events(uniform(&[10, 10, 10], 120)),
        case("check 'outdated' flag for events for one behavior for up", 1, 1000, 100, 200, 200, "DesiredWithinRange")
            .up(gen(1000, 60, 0, 0, 0))
            .up_events(e_outdated()),
        case(
            "check that events were not marked 'outdated' for two different policies in the behavior for up",
            1,
            1000,
            100,
            200,
            200,
            "DesiredWithinRange",
        )
        .up(gen(1000, 120, 100, 60, 0))
        .up_events(e_outdated()),
        case(
            "check that events were marked 'outdated' for two different policies in the behavior for up",
            1,
            1000,
            100,
            200,
            200,
            "DesiredWithinRange",
        )
        .up(gen(1000, 30, 100, 60, 0))
        .up_events(e_outdated()),
        case("check 'outdated' flag for events for one behavior for down", 1, 1000, 100, 5, 5, "DesiredWithinRange")
            .down(gen(1000, 60, 0, 0, 300))
            .down_events(e_outdated()),
        case(
            "check that events were not marked 'outdated' for two different policies in the behavior for down",
            1,
            1000,
            100,
            5,
            5,
            "DesiredWithinRange",
        )
        .down(gen(1000, 120, 100, 60, 300))
        .down_events(e_outdated()),
        case(
            "check that events were marked 'outdated' for two different policies in the behavior for down",
            1,
            1000,
            100,
            5,
            5,
            "DesiredWithinRange",
        )
        .down(gen(1000, 30, 100, 60, 300))
        .down_events(e_outdated()),
    ];
    let mut r = Report::default();
    for c in cases {
        let mut ctl = controller(c.min, c.max, c.up.clone(), c.down.clone(), true);
        ctl.seed(NOW, &[], &c.up_events, &c.down_events);
        let (got, reason) = ctl.normalize(NOW, c.current, c.desired);
        let name = format!("TestScalingWithRules/{}", c.name);
        r.eq(&name, "replicas", got, c.want);
        r.eq(&name, "condition", condition(&reason), c.cond);
    }
    r.finish();
}

#[test]
fn test_store_scale_events() {
    // upstream: TestStoreScaleEvents — each case runs once for scale-up events (10 → 10 + change)
    // and once for scale-down events (10 → 10 - change).
    // (name, change, previous events (change, seconds ago), rules, new events (change, outdated),
    //  expected change in the last 60 s before storing)
    type Case = (
        &'static str,
        i32,
        Vec<(i32, i64)>,
        Option<String>,
        Vec<(i32, bool)>,
        i32,
    );
    let cases: Vec<Case> = vec![
        (
            "empty entries with default behavior",
            5,
            vec![],
            None,
            vec![],
            0,
        ),
        (
            "empty entries with two-policy-behavior",
            5,
            vec![],
            Some(gen(10, 60, 100, 60, 0)),
            vec![(5, false)],
            0,
        ),
        (
            "one outdated entry to be kept untouched without behavior",
            5,
            vec![(7, 61)],
            None,
            vec![(7, false)],
            0,
        ),
        (
            "one outdated entry to be replaced with behavior",
            5,
            vec![(7, 61)],
            Some(gen(10, 60, 100, 60, 0)),
            vec![(5, false)],
            0,
        ),
        (
            "one actual entry to be not touched with behavior",
            5,
            vec![(7, 58)],
            Some(gen(10, 60, 100, 60, 0)),
            vec![(7, false), (5, false)],
            7,
        ),
        (
            "two entries, one of them to be replaced",
            5,
            vec![(7, 61), (6, 59)],
            Some(gen(10, 60, 0, 0, 0)),
            vec![(5, false), (6, false)],
            6,
        ),
        (
            "replace one entry, use policies with different periods",
            5,
            vec![(8, 29), (6, 59), (7, 61), (9, 61)],
            Some(gen(10, 60, 100, 30, 0)),
            vec![(8, false), (6, false), (7, true), (5, false)],
            14,
        ),
        (
            "two entries, both actual",
            5,
            vec![(7, 58), (6, 59)],
            Some(gen(10, 120, 100, 30, 0)),
            vec![(7, false), (6, false), (5, false)],
            13,
        ),
    ];
    let mut r = Report::default();
    for (name, change, prev, rules, new, want_change) in cases {
        let case = format!("TestStoreScaleEvents/{name}");
        r.eq(
            &case,
            "change in 60 s",
            change_in_period(60, &prev),
            want_change,
        );
        let behavior = rules.is_some();
        // Scale up: only behavior.scaleUp is given.
        let mut up = controller(1, 1000, rules.clone(), None, behavior);
        up.seed(NOW, &[], &prev, &[]);
        up.store_event(NOW, 10, 10 + change);
        r.eq(
            &case,
            "up: events",
            up.scale_events()[0].clone(),
            new.clone(),
        );
        // Scale down: only behavior.scaleDown is given.
        let mut down = controller(1, 1000, None, rules.clone(), behavior);
        down.seed(NOW, &[], &[], &prev);
        down.store_event(NOW, 10, 10 - change);
        r.eq(&case, "down: events", down.scale_events()[1].clone(), new);
    }
    r.finish();
}

#[test]
fn test_normalize_desired_replicas_with_behavior() {
    // upstream: TestNormalizeDesiredReplicasWithBehavior (stabilizeRecommendationWithBehaviors).
    // (name, recommendations (replicas, seconds ago), current, prenormalized, stabilized,
    //  stored recommendations (None: not checked upstream), up window, down window)
    type Case = (
        &'static str,
        Vec<(i32, i64)>,
        i32,
        i32,
        i32,
        Option<Vec<i32>>,
        i32,
        i32,
    );
    let cases: Vec<Case> = vec![
        (
            "empty recommendations for scaling down",
            vec![],
            100,
            5,
            5,
            Some(vec![5]),
            0,
            0,
        ),
        (
            "simple scale down stabilization",
            vec![(4, 120), (5, 60)],
            100,
            3,
            5,
            Some(vec![4, 5, 3]),
            0,
            180,
        ),
        (
            "simple scale up stabilization",
            vec![(4, 120), (5, 60)],
            1,
            7,
            4,
            Some(vec![4, 5, 7]),
            300,
            0,
        ),
        (
            "no scale down stabilization",
            vec![(1, 120), (2, 60)],
            100,
            3,
            3,
            Some(vec![1, 2, 3]),
            300,
            0,
        ),
        (
            "no scale up stabilization",
            vec![(4, 120), (5, 60)],
            1,
            3,
            3,
            Some(vec![4, 5, 3]),
            0,
            300,
        ),
        (
            "no scale down stabilization, reuse recommendation element",
            vec![(10, 600), (9, 540)],
            100,
            3,
            3,
            Some(vec![10, 3]),
            0,
            0,
        ),
        (
            "no scale up stabilization, reuse recommendation element",
            vec![(10, 600), (9, 540)],
            1,
            100,
            100,
            Some(vec![10, 100]),
            0,
            0,
        ),
        (
            "scale down stabilization, reuse one of obsolete recommendation element",
            vec![(10, 600), (4, 60), (5, 120), (9, 540)],
            100,
            3,
            5,
            Some(vec![10, 4, 5, 3]),
            0,
            180,
        ),
        (
            "scale up stabilization, reuse one of obsolete recommendation element",
            vec![(10, 6000), (6, 60), (5, 120), (9, 180)],
            1,
            100,
            5,
            Some(vec![100, 6, 5, 9]),
            300,
            0,
        ),
        (
            "scale up and down stabilization, do not scale up when prenormalized rec goes down",
            vec![(2, 6000), (3, 180)],
            2,
            1,
            2,
            None,
            300,
            300,
        ),
        (
            "scale up and down stabilization, do not scale down when prenormalized rec goes up",
            vec![(2, 6000), (1, 180)],
            2,
            3,
            2,
            None,
            300,
            300,
        ),
    ];
    let mut r = Report::default();
    for (name, recs, current, desired, want, stored, up_window, down_window) in cases {
        let wide = "policies: [{type: Pods, value: 1000, periodSeconds: 15}]";
        let mut ctl = controller(
            1,
            1000,
            Some(format!(
                "{{stabilizationWindowSeconds: {up_window}, {wide}}}"
            )),
            Some(format!(
                "{{stabilizationWindowSeconds: {down_window}, {wide}}}"
            )),
            true,
        );
        ctl.seed(NOW, &recs, &[], &[]);
        let (got, _) = ctl.normalize(NOW, current, desired);
        let case = format!("TestNormalizeDesiredReplicasWithBehavior/{name}");
        r.eq(&case, "stabilized replicas", got, want);
        if let Some(stored) = stored {
            r.eq(
                &case,
                "stored recommendations",
                ctl.recommendation_values(),
                stored,
            );
        }
    }
    r.finish();
}
