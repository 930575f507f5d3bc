//! The `rocm-smi` feature end to end: the agent built with it (linked against Debian's
//! `librocm_smi64.so.1`) runs on the fake AMD node with the mock library
//! (`vendor-mocks/rocm-smi-mock`) put in the real one's place through `LD_LIBRARY_PATH`.
//!
//! Run with `cargo test --features rocm-smi --test rocm_smi` (`scripts/test.sh` does).
#![cfg(feature = "rocm-smi")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{fixture, prom, write_atomic, Agent, WAIT};

/// ROCm SMI's view of the fake AMD node: values that differ from sysfs's (sysfs wins where it
/// has one), power for the card without a hwmon power file, a name for the card sysfs cannot
/// name, health counters; and a device sysfs does not have.
const SCENARIO: &str = r#"
devices:
  - pci_bus_id: "0000:19:00.0"
    name: "Aqua Vanjaram [Instinct MI300X]"
    busy_percent: 10
    vram_used_bytes: 1
    power_microwatts: 1000000
    temperature_millicelsius: { edge: 1000 }
    energy: { counter: 1000000000, resolution_microjoules: 15.25 }
    pcie_replays: 7
    ecc:
      umc: { correctable: 5, uncorrectable: 1 }
      gfx: { correctable: 2, uncorrectable: 0 }
      sdma: { correctable: 0, uncorrectable: 0 }
  - pci_bus_id: "0000:1a:00.0"
    power_microwatts: 275500000
    energy: { counter: 4000000, resolution_microjoules: 1.0 }
  - pci_bus_id: "0000:9c:00.0"
    name: "Navi 48 [Radeon AI PRO R9700]"
  - pci_bus_id: "0000:c1:00.0"
    name: "not in sysfs"
    energy: { counter: 1, resolution_microjoules: 1.0 }
"#;

/// A private copy of the AMD node, and a folder holding the mock as `librocm_smi64.so.1`.
fn node() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("node");
    common::copy_tree(&fixture("nodes/amd"), &root);
    let lib = dir.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(
        common::built_library("librocm_smi_mock.so"),
        lib.join("librocm_smi64.so.1"),
    )
    .unwrap();
    (dir, root, lib)
}

fn start(root: &Path, lib: &Path, scenario: &Path, args: &[&str]) -> Agent {
    let mut b = Agent::with_scenario("")
        .no_scenario()
        .library("/nonexistent/libnvidia-ml.so.1")
        .rootfs(root)
        .arg("--no-collector.nvidia")
        .env("LD_LIBRARY_PATH", lib.as_os_str())
        .env("MOCK_ROCM_SMI_SCENARIO", scenario.as_os_str());
    for a in args {
        b = b.arg(*a);
    }
    b.start()
}

/// `SCENARIO` with one more key for GPU 0 (after its `pcie_replays`).
fn with_gpu0(key: &str) -> String {
    SCENARIO.replace(
        "    pcie_replays: 7\n",
        &format!("    pcie_replays: 7\n    {key}\n"),
    )
}

/// A node, the scenario file holding `SCENARIO`, and the agent on them once ROCm SMI answers.
fn started(args: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf, Agent) {
    let (dir, root, lib) = node();
    let scenario = dir.path().join("rocm.yaml");
    write_atomic(&scenario, SCENARIO);
    let agent = start(&root, &lib, &scenario, args);
    agent.scrape_until(WAIT, "ROCm SMI's counters", has_energy);
    (dir, root, scenario, agent)
}

fn dev(s: &prom::Samples, name: &str, gpu: &str) -> Option<f64> {
    s.value(name, &[("gpu", gpu)])
}

fn errors(s: &prom::Samples, call: &str, error: &str) -> f64 {
    s.value(
        "gpu_pod_exporter_driver_call_errors_total",
        &[("collector", "amd"), ("call", call), ("error", error)],
    )
    .unwrap_or(0.0)
}

fn has_energy(s: &prom::Samples) -> bool {
    dev(s, "gpu_energy_joules_total", "0").is_some()
}

#[test]
fn the_feature_binary_links_rocm_smi() {
    let needed = common::needed_libraries(Path::new(env!("CARGO_BIN_EXE_gpu-pod-exporter")));
    assert!(
        needed.iter().any(|l| l == "librocm_smi64.so.1"),
        "{needed:?}"
    );
}

#[test]
fn rocm_smi_fills_what_sysfs_lacks_and_adds_health_counters() {
    let (_dir, _root, scenario, agent) = started(&[]);
    let s = prom::parse(&agent.scrape());

    // sysfs's values stand where sysfs has them.
    assert_eq!(dev(&s, "gpu_utilization_ratio", "0"), Some(0.96));
    assert_eq!(dev(&s, "gpu_memory_used_bytes", "0"), Some(68719476736.0));
    assert_eq!(dev(&s, "gpu_power_watts", "0"), Some(550.0));
    assert_eq!(dev(&s, "gpu_temperature_celsius", "0"), Some(61.0));
    let model = |s: &prom::Samples, gpu: &str| {
        s.find("gpu_info", &[("gpu", gpu)])[0].labels["model"].clone()
    };
    assert_eq!(model(&s, "0"), "AMD Instinct MI300X");
    // ROCm SMI fills the gaps: power on the card without a hwmon power file, a name for the
    // card that sysfs could only call by its id.
    assert_eq!(dev(&s, "gpu_power_watts", "1"), Some(275.5));
    assert_eq!(model(&s, "2"), "Navi 48 [Radeon AI PRO R9700]");
    assert_eq!(model(&s, "1"), "Instinct MI210");

    // Health counters: energy in joules (counter x resolution in microjoules), ECC summed over
    // the enabled blocks, PCIe replays.
    assert_eq!(dev(&s, "gpu_energy_joules_total", "0"), Some(15250.0));
    assert_eq!(dev(&s, "gpu_energy_joules_total", "1"), Some(4.0));
    assert_eq!(dev(&s, "gpu_energy_joules_total", "2"), None);
    let ecc = |t: &str| s.value("gpu_ecc_errors_total", &[("gpu", "0"), ("type", t)]);
    assert_eq!(ecc("corrected"), Some(7.0));
    assert_eq!(ecc("uncorrected"), Some(1.0));
    assert!(s.find("gpu_ecc_errors_total", &[("gpu", "1")]).is_empty());
    assert_eq!(dev(&s, "gpu_pcie_replay_errors_total", "0"), Some(7.0));
    assert_eq!(dev(&s, "gpu_pcie_replay_errors_total", "1"), None);

    // Still three devices: ROCm SMI's fourth is not on this node's sysfs, so not ours.
    assert_eq!(s.find("gpu_info", &[]).len(), 3, "{}", s.text);
    assert_eq!(
        s.value(
            "gpu_pod_exporter_collector_success",
            &[("collector", "amd")]
        ),
        Some(1.0)
    );
    for f in s.find(
        "gpu_pod_exporter_driver_call_errors_total",
        &[("collector", "amd")],
    ) {
        assert_eq!(f.value, 0.0, "{:?}", f.labels);
    }
    // The pods are what sysfs, fdinfo and KFD say, as without the feature.
    assert_eq!(s.find("pod_gpu_memory_used_bytes", &[]).len(), 5);

    // A call that fails is counted and its value left out; the rest stays. An absurd value
    // is dropped and counted too.
    write_atomic(
        &scenario,
        &SCENARIO
            .replace(
                "    pcie_replays: 7\n",
                "    pcie_replays: 7\n    errors: { rsmi_dev_energy_count_get: PERMISSION }\n",
            )
            .replace(
                "power_microwatts: 275500000",
                "power_microwatts: 99000000000",
            ),
    );
    agent.scrape_until(WAIT, "the failing call counted", |s| {
        errors(s, "rsmi_dev_energy_count_get", "PERMISSION") > 0.0
            && errors(s, "rsmi_dev_power_ave_get", "OUT_OF_RANGE") > 0.0
    });
    let s = agent.scrape_until(WAIT, "gpu 0's energy gone", |s| !has_energy(s));
    assert!(!has_energy(&s));
    assert_eq!(dev(&s, "gpu_power_watts", "1"), None);
    assert_eq!(dev(&s, "gpu_energy_joules_total", "1"), Some(4.0));
    assert_eq!(dev(&s, "gpu_pcie_replay_errors_total", "0"), Some(7.0));
    assert_eq!(dev(&s, "gpu_up", "0"), Some(1.0));
    assert_eq!(dev(&s, "gpu_utilization_ratio", "0"), Some(0.96));
}

#[test]
fn without_rocm_smi_the_node_reads_as_sysfs_alone_until_it_comes() {
    let (dir, root, lib) = node();
    let scenario = dir.path().join("rocm.yaml");
    write_atomic(&scenario, "init: INIT_ERROR\n");
    let agent = start(&root, &lib, &scenario, &[]);
    let s = agent.scrape_until(WAIT, "a failed init counted", |s| {
        errors(s, "rsmi_init", "INIT_ERROR") > 0.0
            && s.find("pod_gpu_memory_used_bytes", &[]).len() == 5
    });
    // Everything sysfs gives, nothing more; the collector still succeeds.
    assert_eq!(dev(&s, "gpu_power_watts", "0"), Some(550.0));
    assert_eq!(dev(&s, "gpu_power_watts", "1"), None);
    assert!(!has_energy(&s));
    assert_eq!(
        s.value(
            "gpu_pod_exporter_collector_success",
            &[("collector", "amd")]
        ),
        Some(1.0)
    );
    assert!(agent.log_text().contains("ROCm SMI cannot initialise"));

    // The library becomes usable: the next retry picks it up.
    write_atomic(&scenario, SCENARIO);
    let s = agent.scrape_until(WAIT, "ROCm SMI after a retry", has_energy);
    assert_eq!(dev(&s, "gpu_power_watts", "1"), Some(275.5));
}

#[test]
fn it_can_be_turned_off() {
    let (dir, root, lib) = node();
    let scenario = dir.path().join("rocm.yaml");
    write_atomic(&scenario, SCENARIO);
    let agent = start(&root, &lib, &scenario, &["--no-amd.rocm-smi"]);
    let s = agent.scrape_until(WAIT, "every pod", |s| {
        s.find("pod_gpu_memory_used_bytes", &[]).len() == 5
    });
    std::thread::sleep(Duration::from_secs(1));
    let s2 = agent.scrape();
    let s2 = prom::parse(&s2);
    for s in [&s, &s2] {
        assert!(!has_energy(s));
        assert_eq!(dev(s, "gpu_power_watts", "1"), None);
        assert_eq!(errors(s, "rsmi_init", "INIT_ERROR"), 0.0);
    }
}

#[test]
fn a_card_rocm_smi_did_not_enumerate_is_counted_then_found() {
    let (dir, root, lib) = node();
    let scenario = dir.path().join("rocm.yaml");
    // ROCm SMI does not know the third card yet.
    let without = SCENARIO.replace("0000:9c:00.0", "0000:9d:00.0");
    write_atomic(&scenario, &without);
    let agent = start(&root, &lib, &scenario, &[]);
    let s = agent.scrape_until(WAIT, "the unknown card counted", |s| {
        has_energy(s) && errors(s, "rsmi_dev_pci_id_get", "NOT_FOUND") > 0.0
    });
    let model = |s: &prom::Samples| s.find("gpu_info", &[("gpu", "2")])[0].labels["model"].clone();
    assert_eq!(model(&s), "AMD GPU 0x75a3");
    assert_eq!(dev(&s, "gpu_up", "2"), Some(1.0));

    // It appears (a driver reload, a hot-plug): ROCm SMI enumerates again and names it.
    write_atomic(&scenario, SCENARIO);
    let s = agent.scrape_until(WAIT, "the card named by ROCm SMI", |s| {
        model(s) == "Navi 48 [Radeon AI PRO R9700]"
    });
    assert!(has_energy(&s));
}

#[test]
fn a_library_that_forgets_its_session_is_initialised_again() {
    let (_dir, _root, scenario, agent) = started(&[]);

    // Calls answer INIT_ERROR, as after a driver reload: counted, and the session restarted.
    write_atomic(
        &scenario,
        &with_gpu0("errors: { rsmi_dev_pci_replay_counter_get: INIT_ERROR }"),
    );
    let s = agent.scrape_until(WAIT, "the lost session counted", |s| {
        errors(s, "rsmi_dev_pci_replay_counter_get", "INIT_ERROR") >= 2.0
    });
    assert_eq!(dev(&s, "gpu_up", "0"), Some(1.0));
    assert_eq!(dev(&s, "gpu_utilization_ratio", "0"), Some(0.96));
    assert!(agent
        .log_text()
        .contains("ROCm SMI answered INIT_ERROR; initialising it again"));

    write_atomic(&scenario, SCENARIO);
    let s = agent.scrape_until(WAIT, "the replays back", |s| {
        dev(s, "gpu_pcie_replay_errors_total", "0") == Some(7.0)
    });
    assert!(has_energy(&s));
}

#[test]
fn a_rocm_smi_call_that_hangs_holds_up_neither_sysfs_nor_the_cycle() {
    let (_dir, root, scenario, agent) = started(&[]);

    // GPU 0's replay counter blocks for 4 s (a GPU in reset), eight collection intervals.
    write_atomic(
        &scenario,
        &with_gpu0("delays_ms: { rsmi_dev_pci_replay_counter_get: 4000 }"),
    );
    let s = agent.scrape_until(WAIT, "ROCm SMI late", |s| {
        errors(s, "rsmi", "TIMEOUT") >= 2.0
    });
    // sysfs's readings stay fresh meanwhile, and every device up.
    write_atomic(
        &root.join("sys/class/drm/card0/device/gpu_busy_percent"),
        "50\n",
    );
    let s2 = agent.scrape_until(WAIT, "a fresh sysfs value", |s| {
        dev(s, "gpu_utilization_ratio", "0") == Some(0.5)
    });
    for s in [&s, &s2] {
        for gpu in ["0", "1", "2"] {
            assert_eq!(dev(s, "gpu_up", gpu), Some(1.0), "{}", s.text);
        }
        // ROCm SMI's last values stand.
        assert_eq!(dev(s, "gpu_power_watts", "1"), Some(275.5));
        assert_eq!(dev(s, "gpu_energy_joules_total", "1"), Some(4.0));
    }
    assert!(agent
        .log_text()
        .contains("ROCm SMI did not answer within the cycle"));

    // It answers again: no more timeouts.
    write_atomic(&scenario, SCENARIO);
    let s = agent.scrape_until(Duration::from_secs(30), "ROCm SMI back", |s| {
        agent.log_text().contains("ROCm SMI answers again") && has_energy(s)
    });
    let before = errors(&s, "rsmi", "TIMEOUT");
    std::thread::sleep(Duration::from_secs(2));
    let s = prom::parse(&agent.scrape());
    assert_eq!(errors(&s, "rsmi", "TIMEOUT"), before);
}
