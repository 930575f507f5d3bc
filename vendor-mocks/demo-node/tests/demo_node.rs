//! The demo node end to end: the real `demo-node` binary runs the exporter on its simulated
//! node, with its clock held (`--at`). The vLLM replica that is busier has the higher per-pod
//! tensor activity, and each replica's per-pod GPM figures are the H200's, measured under a
//! decode-shaped load, at the replica's share of its capacity.
//!
//! `demo-node` takes the exporter and the mock NVML library from its own folder
//! (`target/<profile>/`): build the workspace first (`cargo build --workspace`; scripts/test.sh
//! does). Missing, the test fails with the demo's message; it is never skipped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long each demo runs before it stops its exporter (`--seconds`).
const RUN_SECONDS: u64 = 15;
/// How long to wait for the replicas' per-pod GPM series (GPM needs two samples).
const WAIT: Duration = Duration::from_secs(12);

const REPLICA_GPU0: &str = "vllm-7d9f8b6c5d-x2x9k";
const REPLICA_GPU1: &str = "vllm-7d9f8b6c5d-q8m4z";

/// One H200 under a decoder-shaped load at batch sizes 1 to 256, and idle (docs/measurements.md,
/// "Which GPU series tracks an LLM decode load"): share of the server's capacity, NVML utilization, SM active,
/// SM occupancy, tensor active, DRAM active.
const H200: [[f64; 6]; 6] = [
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.03, 0.63, 0.39, 0.054, 0.015, 0.37],
    [0.12, 0.70, 0.44, 0.062, 0.017, 0.41],
    [0.41, 0.89, 0.69, 0.097, 0.038, 0.64],
    [0.78, 0.97, 0.83, 0.123, 0.072, 0.77],
    [1.0, 0.975, 0.92, 0.140, 0.094, 0.84],
];

/// Column `col` of the table at `share`, linear between the measured points.
fn h200(share: f64, col: usize) -> f64 {
    let i = H200.iter().position(|r| r[0] >= share).unwrap().max(1);
    let (lo, hi) = (H200[i - 1], H200[i]);
    lo[col] + (hi[col] - lo[col]) * (share - lo[0]) / (hi[0] - lo[0])
}

/// The replicas' loads (share of capacity) the demo's waves give at time `t`
/// (vendor-mocks/demo-node/src/scenario.rs: GPU 0 a 60 s wave from phase 0, GPU 1 a 45 s one
/// from phase 1.5, both 0.5 ± 0.45).
fn replica_loads(t: f64) -> [f64; 2] {
    let wave =
        |period: f64, phase: f64| 0.5 + 0.45 * (t / period * std::f64::consts::TAU + phase).sin();
    [wave(60.0, 0.0), wave(45.0, 1.5)]
}

/// A running demo, waited for on drop (it stops its exporter itself after `RUN_SECONDS`).
struct Demo {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Demo {
    fn start(at: f64) -> Demo {
        let dir = std::env::temp_dir().join(format!(
            "demo-node-test-{}-{}",
            std::process::id(),
            at as u64
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_demo-node"))
            .arg("--dir")
            .arg(&dir)
            .args(["--at", &at.to_string()])
            .args(["--seconds", &RUN_SECONDS.to_string()])
            .arg("--")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("demo.log")).unwrap())
            .spawn()
            .unwrap();
        Demo { child, port, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("demo.log")).unwrap_or_default()
    }

    fn scrape(&self) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        // HTTP/1.0: the whole body, closed at the end, never chunked.
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let ok = head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200");
        ok.then(|| body.to_string())
    }

    /// Scrapes until every replica has every per-pod GPM series.
    fn scrape_until_gpm(&mut self) -> String {
        let start = Instant::now();
        loop {
            if let Some(text) = self.scrape() {
                let ready = [REPLICA_GPU0, REPLICA_GPU1].iter().all(|pod| {
                    POD_GPM
                        .iter()
                        .all(|m| value(&text, m, &[("pod", pod)]).is_some())
                });
                if ready {
                    return text;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("demo-node exited ({status}):\n{}", self.log());
            }
            assert!(
                start.elapsed() < WAIT,
                "no per-pod GPM for both replicas in {WAIT:?}:\n{}\n{}",
                self.scrape().unwrap_or_default(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // The demo stops its exporter at --seconds; killing it sooner would leave the exporter.
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const POD_GPM: [&str; 4] = [
    "pod_gpu_sm_active_ratio",
    "pod_gpu_sm_occupancy_ratio",
    "pod_gpu_tensor_active_ratio",
    "pod_gpu_dram_active_ratio",
];

/// The value of the series `name` whose labels include `want`, in the text format.
fn value(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with('{')))
        .find(|l| {
            want.iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// At `t`: the replicas' per-pod GPM figures are their GPUs' and the H200's at their loads.
fn check(t: f64, text: &str) -> [f64; 2] {
    let loads = replica_loads(t);
    let mut tensor = [0.0; 2];
    for (i, pod) in [REPLICA_GPU0, REPLICA_GPU1].into_iter().enumerate() {
        let gpu = i.to_string();
        for (col, m) in POD_GPM.iter().enumerate() {
            let got = value(text, m, &[("pod", pod), ("gpu", &gpu)]).unwrap();
            let want = h200(loads[i], col + 2);
            // The demo writes four decimals.
            assert!(
                (got - want).abs() < 1e-4,
                "t={t} {pod} {m}: {got}, the H200 at {:.3} of capacity has {want}",
                loads[i]
            );
            // Each replica holds its GPU alone: the GPU's own figure.
            let device = value(text, &m["pod_".len()..], &[("gpu", &gpu)]);
            assert_eq!(device, Some(got), "t={t} {m} of GPU {gpu}");
        }
        // NVML utilization follows the same curve (whole percent).
        let util = value(text, "gpu_utilization_ratio", &[("gpu", &gpu)]).unwrap();
        assert!(
            (util - h200(loads[i], 1)).abs() <= 0.005,
            "t={t} GPU {gpu}: {util}"
        );
        tensor[i] = value(text, "pod_gpu_tensor_active_ratio", &[("pod", pod)]).unwrap();
    }
    // Nobody else holds a GPU with GPM alone: the trainer's A100s have none, the L4 is shared.
    for pod in ["trainer-0", "notebook-alice", "notebook-bob"] {
        for m in POD_GPM {
            assert_eq!(value(text, m, &[("pod", pod)]), None, "{pod} {m}");
        }
    }
    tensor
}

#[test]
fn the_busier_replica_has_the_higher_tensor_activity() {
    // At t = 0 the replica on GPU 1 runs at 95 % of its capacity and the one on GPU 0 at half;
    // at t = 20 the one on GPU 0 at 89 % and the one on GPU 1 at 9 %.
    let (early, late) = (replica_loads(0.0), replica_loads(20.0));
    assert!(early[1] > early[0] + 0.4 && late[0] > late[1] + 0.4);
    let mut demos = [Demo::start(0.0), Demo::start(20.0)];
    let texts = demos.each_mut().map(|d| d.scrape_until_gpm());

    let t0 = check(0.0, &texts[0]);
    assert!(t0[1] > 1.5 * t0[0], "t=0: tensor activity {t0:?}");
    let t20 = check(20.0, &texts[1]);
    assert!(t20[0] > 3.0 * t20[1], "t=20: tensor activity {t20:?}");
    // Utilization tells the two apart far less: 0.91 against 0.97 at t = 0.
    let util = |text: &str, gpu: &str| value(text, "gpu_utilization_ratio", &[("gpu", gpu)]);
    let (u0, u1) = (util(&texts[0], "0").unwrap(), util(&texts[0], "1").unwrap());
    assert!(u1 / u0 < t0[1] / t0[0]);
}
