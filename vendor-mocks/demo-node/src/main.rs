//! The demo: runs gpu-pod-exporter on a simulated GPU node (the mock NVML and a fake node
//! tree) whose load moves over time, so that `/metrics` shows live, changing values.
//!
//! Usage: `demo-node [--amd] [--dir DIR] [--seconds N] [--at T] [-- EXPORTER-FLAGS...]`. The
//! exporter and the mock are taken from the folder this binary is in (`target/<profile>/`).
//! `--amd` runs an AMD node instead (amdgpu sysfs, DRM fdinfo and KFD files; the NVIDIA collector
//! off). `--at T` holds the simulated clock at T seconds: the node's loads and pods stay as they
//! are then (for tests and screenshots). `--seconds N` stops the exporter and the demo after N s.

mod amd;
mod node;
mod scenario;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

struct Args {
    dir: PathBuf,
    seconds: Option<u64>,
    /// The simulated clock held at this time, in seconds.
    at: Option<f64>,
    amd: bool,
    exporter_args: Vec<String>,
}

fn parse_args() -> anyhow::Result<Option<Args>> {
    let mut args = std::env::args().skip(1);
    let mut out = Args {
        dir: PathBuf::from("target/demo-node"),
        seconds: None,
        at: None,
        amd: false,
        exporter_args: Vec::new(),
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--amd" => out.amd = true,
            "--dir" => out.dir = args.next().context("--dir needs a folder")?.into(),
            "--seconds" => {
                let v = args.next().context("--seconds needs a number")?;
                out.seconds = Some(
                    v.parse()
                        .with_context(|| format!("--seconds: {v:?} is not a number"))?,
                );
            }
            "--at" => {
                let v = args.next().context("--at needs a number of seconds")?;
                let at: f64 = v
                    .parse()
                    .with_context(|| format!("--at: {v:?} is not a number"))?;
                if !at.is_finite() || at < 0.0 {
                    bail!("--at: {v:?} is not a time from the start");
                }
                out.at = Some(at);
            }
            "--" => out.exporter_args.extend(args.by_ref()),
            "-h" | "--help" => {
                println!(
                    "usage: demo-node [--amd] [--dir DIR] [--seconds N] [--at T] [-- EXPORTER-FLAGS...]"
                );
                return Ok(None);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(Some(out))
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("demo-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let dir = exe.parent().context("this binary has no folder")?;
    let p = dir.join(name);
    if !p.exists() {
        bail!(
            "{} not found: build the workspace first (cargo build --release --workspace)",
            p.display()
        );
    }
    Ok(p)
}

/// Writes `content` to `path` through a rename, so that the mock never reads half a file.
fn write_atomic(path: &Path, content: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn run() -> anyhow::Result<ExitCode> {
    let Some(args) = parse_args()? else {
        return Ok(ExitCode::SUCCESS);
    };
    let exporter = sibling("gpu-pod-exporter")?;
    if args.amd {
        return run_amd(&exporter, &args);
    }
    let mock = sibling("libnvidia_ml_mock.so")?;
    let root = args.dir.join("node");
    let scenario_path = args.dir.join("scenario.yaml");
    let start = Instant::now();
    let clock = |t: f64| args.at.unwrap_or(t);
    let pods = scenario::pods(clock(0.0));
    node::sync(&root, &pods)?;
    write_atomic(&scenario_path, &scenario::render(clock(0.0), &pods))?;

    let mut cmd = Command::new(&exporter);
    cmd.arg("--nvml.library")
        .arg(&mock)
        .arg("--path.rootfs")
        .arg(&root)
        .arg("--collect.interval=1s")
        .args(&args.exporter_args)
        .env("MOCK_NVML_SCENARIO", &scenario_path);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", exporter.display()))?;
    eprintln!(
        "demo-node: simulated node in {}; scenario {} changes every second.\n\
         demo-node: try: curl -s localhost:9445/metrics | grep -E '^(gpu|pod)_'   (Ctrl-C stops)",
        root.display(),
        scenario_path.display()
    );
    supervise(&mut child, start, args.seconds, |t| {
        let t = clock(t);
        let pods = scenario::pods(t);
        node::sync(&root, &pods)?;
        write_atomic(&scenario_path, &scenario::render(t, &pods))
    })
}

/// The AMD node: the exporter reads the fake sysfs and procfs, which change every second.
fn run_amd(exporter: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let root = args.dir.join("amd-node");
    let start = Instant::now();
    let clock = |t: f64| args.at.unwrap_or(t);
    let mut node = amd::AmdNode::new(&root)?;
    let pods = amd::pods(clock(0.0));
    node::sync(&root, &pods)?;
    node.update(&root, clock(0.0), &pods)?;
    let mut child = Command::new(exporter)
        .arg("--no-collector.nvidia")
        .arg("--path.rootfs")
        .arg(&root)
        .arg("--collect.interval=1s")
        .args(&args.exporter_args)
        .spawn()
        .with_context(|| format!("starting {}", exporter.display()))?;
    eprintln!(
        "demo-node: simulated AMD node in {}; its files change every second.\n\
         demo-node: try: curl -s localhost:9445/metrics | grep -E '^(gpu|pod)_'   (Ctrl-C stops)",
        root.display()
    );
    supervise(&mut child, start, args.seconds, |t| {
        let t = clock(t);
        let pods = amd::pods(t);
        node::sync(&root, &pods)?;
        node.update(&root, t, &pods)
    })
}

/// Moves the simulated node on every second (`tick` gets the seconds since `start`) while the
/// exporter runs; stops it after `seconds` if given, and when the node cannot be moved on.
fn supervise(
    child: &mut Child,
    start: Instant,
    seconds: Option<u64>,
    mut tick: impl FnMut(f64) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(status) = child.try_wait().context("waiting for the exporter")? {
            bail!("the exporter exited: {status}");
        }
        let t = start.elapsed().as_secs_f64();
        if seconds.is_some_and(|s| t >= s as f64) {
            stop(child);
            return Ok(ExitCode::SUCCESS);
        }
        if let Err(e) = tick(t) {
            // Not left running on a node that no longer moves.
            stop(child);
            return Err(e);
        }
    }
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
