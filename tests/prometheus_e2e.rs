//! The whole path with a real Prometheus (Debian's package): the agent on a fake node with the
//! mock NVML and a fake kubelet, scraped with `honor_labels`, the shipped recording rules
//! loaded; then the Prometheus Adapter's query, rendered as the adapter renders it for the HPA,
//! the upstream HPA formula on its values, a load change that moves the recommendation, every
//! shipped PromQL expression evaluated, and the pod-label rules joined with `kube_pod_labels`
//! from a stand-in kube-state-metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_kubelet::{FakeKubelet, PodSpec};
use common::{fixture, Agent};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A Prometheus server on loopback, killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes the agent, and kube-state-metrics' stand-in at `ksm_port` (with `honor_labels`,
    /// as kube-state-metrics is scraped, so its `namespace` and `pod` labels stay as exported).
    fn start(dir: &Path, agent_port: u16, ksm_port: u16) -> Prometheus {
        let port = common::free_port();
        let config = dir.join("prometheus.yml");
        // The shipped rules with every group at this Prometheus's 1 s evaluation interval: what
        // this test checks is their expressions and joins, and the shipped groups' own intervals
        // (30 s to 2 min, for fleet scale) would chain minutes of waiting between the groups.
        let shipped =
            std::fs::read_to_string(repo("daemonset/rules/gpu-pod-exporter.rules.yaml")).unwrap();
        let every_second: String = shipped
            .lines()
            .filter(|l| !l.starts_with("    interval: "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(
            shipped.len(),
            every_second.len(),
            "the groups set no interval"
        );
        let rules = dir.join("gpu-pod-exporter.rules.yaml");
        std::fs::write(&rules, every_second).unwrap();
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 rule_files: [{rules:?}]\n\
                 scrape_configs:\n\
                 \x20 - job_name: gpu-pod-exporter\n\
                 \x20   honor_labels: true\n\
                 \x20   static_configs: [{{targets: ['127.0.0.1:{agent_port}'], labels: {{node: node1}}}}]\n\
                 \x20 - job_name: kube-state-metrics\n\
                 \x20   honor_labels: true\n\
                 \x20   static_configs: [{{targets: ['127.0.0.1:{ksm_port}']}}]\n"
            ),
        )
        .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus is required (Debian package `prometheus`; .ci/run installs it)");
        let p = Prometheus { child, port };
        let start = Instant::now();
        while p.get("/-/ready").is_none_or(|(status, _)| status != 200) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "prometheus did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        let a = Agent::client_for(self.port);
        a.try_get(path, &[]).map(|r| (r.status, r.body))
    }

    /// An instant query: (labels, value) per series.
    fn query(&self, q: &str) -> Vec<(serde_json::Map<String, serde_json::Value>, f64)> {
        let (status, body) = self
            .get(&format!("/api/v1/query?query={}", encode(q)))
            .unwrap();
        assert_eq!(status, 200, "{q}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let data = &v["data"];
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let labels = r["metric"].as_object().unwrap().clone();
                    let value = r["value"][1].as_str().unwrap().parse().unwrap();
                    (labels, value)
                })
                .collect(),
            Some("scalar") => vec![(
                Default::default(),
                data["result"][1].as_str().unwrap().parse().unwrap(),
            )],
            other => panic!("{q}: result type {other:?}"),
        }
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct AdapterValues {
    rules: AdapterRules,
}
#[derive(serde::Deserialize)]
struct AdapterRules {
    custom: Vec<AdapterRule>,
}
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdapterRule {
    name: AdapterName,
    metrics_query: String,
}
#[derive(serde::Deserialize)]
struct AdapterName {
    #[serde(rename = "as")]
    as_: String,
}

/// The adapter's metricsQuery for `metric`, rendered as the adapter does for an HPA asking
/// about `pods` in `namespace` (GroupBy = pod).
fn adapter_query(metric: &str, namespace: &str, pods: &[&str]) -> String {
    let text =
        std::fs::read_to_string(repo("daemonset/autoscaling/prometheus-adapter-values.yaml"))
            .unwrap();
    let values: AdapterValues = serde_saphyr::from_str(&text).unwrap();
    let rule = values
        .rules
        .custom
        .iter()
        .find(|r| r.name.as_ == metric)
        .unwrap();
    rule.metrics_query.replace("<<.GroupBy>>", "pod").replace(
        "<<.LabelMatchers>>",
        &format!("namespace=\"{namespace}\",pod=~\"{}\"", pods.join("|")),
    )
}

/// The HPA target of `metric` in daemonset/autoscaling/hpa.yaml, in milli-units.
fn hpa_target_milli(metric: &str) -> i64 {
    let text = std::fs::read_to_string(repo("daemonset/autoscaling/hpa.yaml")).unwrap();
    let after = &text[text.find(&format!("name: {metric}")).unwrap()..];
    let v = after
        .lines()
        .find_map(|l| l.trim().strip_prefix("averageValue:"))
        .unwrap()
        .trim()
        .trim_matches('"');
    match v.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => v.parse::<i64>().unwrap() * 1000,
    }
}

/// The upstream HPA's replica proposal for a Pods metric with an AverageValue target: the
/// adapter hands values as milli-quantities (truncated), the HPA averages them, and within the
/// 0.1 tolerance keeps the current count, else ceil(ratio x ready pods).
fn hpa_desired(values: &[f64], target_milli: i64, current: i64) -> i64 {
    let milli: Vec<i64> = values.iter().map(|v| (v * 1000.0) as i64).collect();
    let avg = milli.iter().sum::<i64>() / milli.len() as i64;
    let ratio = avg as f64 / target_milli as f64;
    if (1.0 - ratio).abs() <= 0.1 {
        current
    } else {
        (ratio * milli.len() as f64).ceil() as i64
    }
}

/// The every-layout node's scenario, with every health field on GPU 0 (so that every health
/// panel has data, the error panels included: a second XID, an ECC count and time throttled by
/// power that move with the load, a failing clock call, a row remap pending), pod
/// v2-systemd-containerd's load set to `sm` percent, and a sixth
/// GPU, an idle H100 with GPM and no process, for the allocated-but-idle panels and for the
/// per-pod GPM ones (the pod it is allocated to holds it alone).
fn scenario(sm: u32) -> String {
    let ecc = if sm > 20 { 13 } else { 12 };
    let power_ns = if sm > 20 {
        3_000_000_000u64
    } else {
        1_000_000_000
    };
    // A second XID 79 arrives with the load change, once Prometheus has seen the first.
    let xids = if sm > 20 {
        "[{xid: 79, after_ms: 0}, {xid: 79, after_ms: 0}]"
    } else {
        "[{xid: 79, after_ms: 0}]"
    };
    let base = std::fs::read_to_string(fixture("nodes/every-layout.yaml")).unwrap();
    let health = "    gpm: {sm_active: 0.6, sm_occupancy: 0.4, tensor_active: 0.3, dram_active: 0.5}\n\
                  \x20   energy_millijoules: 123456789\n\
                  \x20   ecc: {corrected: ECC, uncorrected: 1}\n\
                  \x20   xid_events: XIDS\n\
                  \x20   errors: {clock: UNKNOWN}\n\
                  \x20   throttle_reasons: [hw_thermal_slowdown]\n\
                  \x20   pcie: {tx_kib_per_second: 1200000, rx_kib_per_second: 800000, replay_errors: 3}\n\
                  \x20   nvlink: {tx_bytes: 5368709120, rx_bytes: 4294967296}\n\
                  \x20   encoder_percent: 7\n\
                  \x20   decoder_percent: 12\n\
                  \x20   memory_clock_mhz: 2619\n\
                  \x20   memory_temperature_celsius: 48\n\
                  \x20   power_limit_milliwatts: 700000\n\
                  \x20   remapped_rows: {correctable: 1, uncorrectable: 0, pending: true, failure: false}\n\
                  \x20   violations_ns: {power: POWER, thermal: 0}\n";
    base.replacen(
        "    gpm: null\n",
        &health
            .replace("ECC", &ecc.to_string())
            .replace("XIDS", xids)
            .replace("POWER", &power_ns.to_string()),
        1,
    )
    .replace(
        "{pid: 1001, used_memory_bytes: 1048576000, sm_util_percent: 20,",
        &format!("{{pid: 1001, used_memory_bytes: 1048576000, sm_util_percent: {sm},"),
    ) + &IDLE_GPU.replace("TENSOR", if sm > 20 { "0.09" } else { "0.03" })
}

/// GPU 5 of the Prometheus node: no process and NVML utilization 0 (allocated but idle), with
/// GPM tensor activity `TENSOR` (the load of the pod that holds it alone, for the shipped
/// recipe's HPA arithmetic).
const IDLE_GPU: &str = "  - uuid: GPU-5e6f7a8b-0000-4000-8000-5e6f7a8b9c0d
    name: NVIDIA H100 80GB HBM3
    pci_bus_id: \"00000000:1D:00.0\"
    memory_total_bytes: 85520809984
    memory_used_bytes: 0
    utilization_gpu_percent: 0
    utilization_memory_percent: 0
    power_milliwatts: 70000
    temperature_celsius: 30
    sm_clock_mhz: 345
    process_utilization: supported
    gpm: {sm_active: 0.0, sm_occupancy: 0.0, tensor_active: TENSOR, dram_active: 0.0}
    processes: []
";

/// kube-state-metrics' `kube_pod_labels` for the pods below, as it exports them with
/// `--metric-labels-allowlist=pods=[team,app]`; v2-cgroupfs's twice, from two replicas (HA).
const KUBE_POD_LABELS: &str = r#"# HELP kube_pod_labels Kubernetes labels converted to Prometheus labels.
# TYPE kube_pod_labels gauge
kube_pod_labels{namespace="llm",pod="v2-systemd-containerd",uid="fa52a56a-fc5e-4333-8562-260e43a61db9",label_team="search",label_app="vllm"} 1
kube_pod_labels{namespace="llm",pod="v2-cgroupfs",uid="fc75ec23-ba2d-487e-8e16-90ccbdc44440",label_team="search",label_app="vllm"} 1
kube_pod_labels{namespace="llm",pod="v2-cgroupfs",uid="fc75ec23-ba2d-487e-8e16-90ccbdc44440",label_team="search",label_app="vllm",replica="ksm-1"} 1
kube_pod_labels{namespace="llm",pod="vllm-idle",uid="0a1b2c3d-0000-4000-8000-0a1b2c3d4e5f",label_team="research",label_app="vllm-idle"} 1
kube_pod_labels{namespace="web",pod="frontend",uid="1b2c3d4e-0000-4000-8000-1b2c3d4e5f60",label_team="web",label_app="frontend"} 1
"#;

/// A stand-in for kube-state-metrics: answers every request with `body`, on a thread that lives
/// as long as the test process.
fn serve_metrics(body: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // A scrape is one small GET: its first read holds the request line and headers.
            let mut request = [0u8; 8192];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    port
}

#[test]
fn adapter_query_hpa_formula_and_every_shipped_expression_against_real_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    common::copy_tree(&fixture("nodes/every-layout"), &root);
    let kubelet = FakeKubelet::start_at(root.join("var/lib/kubelet/pod-resources/kubelet.sock"));
    kubelet.set_pods(vec![
        PodSpec::new("llm", "v2-systemd-containerd")
            .container("server", &[("nvidia.com/gpu", &["nvidia0"])]),
        PodSpec::new("llm", "v2-cgroupfs").container("server", &[("nvidia.com/gpu", &["nvidia0"])]),
        // An idle allocation of a GPU of its own, for the allocated-but-idle and GPM panels.
        PodSpec::new("llm", "vllm-idle").container("server", &[("nvidia.com/gpu", &["nvidia5"])]),
    ]);
    let agent = Agent::with_scenario(&scenario(20))
        .rootfs(&root)
        .interval("1s")
        .start();
    agent.scrape_until(Duration::from_secs(20), "pod series and the XID", |s| {
        s.has("pod_gpu_allocated")
            && s.has("gpu_xid_errors_total")
            && s.has("gpu_sm_active_ratio")
            && s.has("pod_gpu_tensor_active_ratio")
    });
    let ksm = serve_metrics(KUBE_POD_LABELS);
    let prom = Prometheus::start(dir.path(), agent.port, ksm);

    // The adapter's query for two vLLM-like pods that share GPU 0: their GPU utilization.
    let pods = ["v2-systemd-containerd", "v2-cgroupfs"];
    let q = adapter_query("gpu_utilization_ratio", "llm", &pods);
    let per_pod = |prom: &Prometheus, q: &str| -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = prom
            .query(q)
            .into_iter()
            .map(|(l, v)| (l["pod"].as_str().unwrap().to_string(), v))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let start = Instant::now();
    let mut values = per_pod(&prom, &q);
    while values.len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no adapter values; prometheus log in {}",
            dir.path().display()
        );
        std::thread::sleep(Duration::from_millis(500));
        values = per_pod(&prom, &q);
    }
    // Grouped by pod, only the pods asked for, with the labels as the agent wrote them.
    assert_eq!(
        values.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(),
        ["v2-cgroupfs", "v2-systemd-containerd"]
    );
    // The values the rules imply: 0.3 and 0.2 (GPU 0 at 90 %, shares within it).
    assert!(
        (values[0].1 - 0.3).abs() < 1e-9 && (values[1].1 - 0.2).abs() < 1e-9,
        "{values:?}"
    );

    // The shipped recipe (hpa.yaml): the pods' tensor activity. Asked for all three pods, the
    // adapter answers only for vllm-idle, which holds GPU 5 alone: the two on shared GPU 0 have
    // no per-pod GPM (never a guess), so the HPA would count them as missing.
    let all = ["v2-systemd-containerd", "v2-cgroupfs", "vllm-idle"];
    let tq = adapter_query("gpu_tensor_active_ratio", "llm", &all);
    let target = hpa_target_milli("gpu_tensor_active_ratio");
    assert_eq!(target, 76, "hpa.yaml's tensor target");
    let tensor = |prom: &Prometheus| -> Vec<(String, f64)> { per_pod(prom, &tq) };
    let start = Instant::now();
    let mut t = tensor(&prom);
    while t.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no tensor values"
        );
        std::thread::sleep(Duration::from_millis(500));
        t = tensor(&prom);
    }
    assert_eq!(
        t.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(),
        ["vllm-idle"]
    );
    assert!((t[0].1 - 0.03).abs() < 1e-9, "{t:?}");
    // 30m against 76m with one replica: ratio 0.39, ceil(0.39 x 1) = 1.
    let before = hpa_desired(&t.iter().map(|v| v.1).collect::<Vec<_>>(), target, 1);
    assert_eq!(before, 1);

    // Load rises: GPU 0's pods to 60 % SM, GPU 5's tensor activity to 0.09.
    agent.set_scenario(&scenario(60));
    let start = Instant::now();
    let after = loop {
        let v = tensor(&prom);
        let desired = hpa_desired(&v.iter().map(|x| x.1).collect::<Vec<_>>(), target, 1);
        if desired > before {
            break desired;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the recommendation did not move: {v:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // The 1-minute average climbs from 30m towards 90m: it proposes 2 once past 83.6m (76m
    // x 1.1, the tolerance), and never more (90m / 76m = 1.18).
    assert_eq!(after, 2);

    // Every shipped expression returns data on this node, except those that need another
    // exporter (kube-state-metrics, vLLM) and alerts (empty while nothing is wrong, by design).
    let python = repo("target/deploy-tools/venv/bin/python");
    let python = if python.exists() {
        python
    } else {
        PathBuf::from("python3")
    };
    let out = Command::new(&python)
        .arg(repo("scripts/check_deploy.py"))
        .args([
            "expressions",
            "--var",
            "namespace=llm",
            "--var",
            "pod=.*",
            "--var",
            "pods=.*",
            "--var",
            "node=node1",
            "--var",
            "gpu=.*",
            "--var",
            "hpa=vllm",
        ])
        .output()
        .expect("python3 is required");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut pending = Vec::new();
    let mut checked = 0;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let needs_other = !e["needs"].as_array().unwrap().is_empty();
        if needs_other || e["kind"] == "alert" {
            continue;
        }
        checked += 1;
        let mut expr = e["expr"].as_str().unwrap().to_string();
        // The adapter and KEDA queries name the example Deployment's pods: ask about this
        // node's instead (the same rendering as above), and vllm-idle, which holds its GPU
        // alone, for the per-pod GPM series (the two above share theirs, so they have none).
        if e["kind"] == "adapter" || e["kind"] == "keda" {
            if let Some(i) = expr.find("pod=~\"") {
                let end = i + 6 + expr[i + 6..].find('"').unwrap();
                expr.replace_range(i + 6..end, &format!("{}|vllm-idle", pods.join("|")));
            }
        }
        pending.push((e["where"].as_str().unwrap().to_string(), expr));
    }
    // Error panels show only what is new in their window (the second XID, the ECC change):
    // give them time to get there.
    let start = Instant::now();
    let no_data = loop {
        pending.retain(|(_, expr)| prom.query(expr).is_empty());
        if pending.is_empty() || start.elapsed() > Duration::from_secs(30) {
            break pending
                .iter()
                .map(|(w, e)| format!("{w}: {e}"))
                .collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(checked > 50, "only {checked} expressions");
    assert!(
        no_data.is_empty(),
        "expressions without data on the demo node:\n{}",
        no_data.join("\n")
    );

    // Pod labels without API access: the shipped rules join kube_pod_labels onto the per-pod
    // records, the HA copy of v2-cgroupfs's series counted once.
    let labelled = |q: &str| -> Vec<(String, String, String, f64)> {
        let mut v: Vec<_> = prom
            .query(q)
            .into_iter()
            .map(|(l, v)| {
                let s = |k: &str| l.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
                (s("pod"), s("label_team"), s("label_app"), v)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        v
    };
    let rule = "namespace_pod:pod_gpu_utilization_ratio_with_labels:avg1m";
    let start = Instant::now();
    let mut with_labels = labelled(rule);
    while with_labels.len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{rule}: {with_labels:?}; prometheus log in {}",
            dir.path().display()
        );
        std::thread::sleep(Duration::from_millis(500));
        with_labels = labelled(rule);
    }
    let names: Vec<(&str, &str, &str)> = with_labels
        .iter()
        .map(|(p, t, a, _)| (p.as_str(), t.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("v2-cgroupfs", "search", "vllm"),
            ("v2-systemd-containerd", "search", "vllm"),
            ("vllm-idle", "research", "vllm-idle"),
        ]
    );
    // Allocated with nothing running (rule 4): 0, carried through the join.
    assert_eq!(with_labels[2].3, 0.0);
    let per_team = labelled("label_team:pod_gpu_allocated:sum");
    let teams: Vec<(&str, f64)> = per_team
        .iter()
        .map(|(_, t, _, v)| (t.as_str(), *v))
        .collect();
    assert_eq!(teams, [("research", 1.0), ("search", 2.0)]);
    // The ad-hoc join docs/metrics.md documents, on a raw agent series.
    let adhoc = labelled(
        "pod_gpu_memory_used_bytes{pod=\"v2-cgroupfs\"} * on (namespace, pod) \
         group_left (label_team, label_app) topk by (namespace, pod) \
         (1, max by (namespace, pod, label_team, label_app) (kube_pod_labels))",
    );
    assert!(!adhoc.is_empty(), "the documented join");
    assert!(adhoc
        .iter()
        .all(|(p, t, a, _)| p == "v2-cgroupfs" && t == "search" && a == "vllm"));
}
