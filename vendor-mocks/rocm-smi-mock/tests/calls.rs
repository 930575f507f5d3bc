//! The mock's C functions, called as the agent calls them: values, absent values, injected
//! errors, bad arguments, live reloads and the init/shut-down lifecycle. One test, because the
//! library's state and its environment variable are global to the process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::{c_char, CStr};
use std::ptr;

use rocm_smi_mock::*;

const SUCCESS: u32 = 0;
const INVALID_ARGS: u32 = 1;
const NOT_SUPPORTED: u32 = 2;
const PERMISSION: u32 = 4;
const INIT_ERROR: u32 = 8;
const INSUFFICIENT_SIZE: u32 = 11;

const SCENARIO: &str = r#"
devices:
  - pci_bus_id: "0000:19:00.0"
    name: "Aldebaran/MI200 [Instinct MI210]"
    busy_percent: 87
    memory_busy_percent: 12
    vram_used_bytes: 1000
    vram_total_bytes: 4000
    power_microwatts: 300000000
    temperature_millicelsius: { junction: 61000 }
    energy: { counter: 1000000, resolution_microjoules: 15.3 }
    pcie_replays: 3
    ecc:
      umc: { correctable: 5, uncorrectable: 1 }
      gfx: { correctable: 2, uncorrectable: 0 }
  - pci_bus_id: "0001:c1:00.0"
    errors: { rsmi_dev_busy_percent_get: PERMISSION }
"#;

fn status_name(code: u32) -> String {
    let mut p: *const c_char = ptr::null();
    assert_eq!(unsafe { rsmi_status_string(code, &mut p) }, SUCCESS);
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[test]
fn the_mock_answers_as_rocm_smi_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rocm.yaml");

    // No scenario: the library cannot initialise, as on a node without amdgpu.
    std::env::remove_var(SCENARIO_ENV);
    assert_eq!(rsmi_init(0), INIT_ERROR);
    let mut n = 0u32;
    assert_eq!(unsafe { rsmi_num_monitor_devices(&mut n) }, INIT_ERROR);

    std::fs::write(&file, SCENARIO).unwrap();
    std::env::set_var(SCENARIO_ENV, &file);
    assert_eq!(rsmi_init(0), SUCCESS);
    assert_eq!(unsafe { rsmi_num_monitor_devices(&mut n) }, SUCCESS);
    assert_eq!(n, 2);

    let mut bdf = 0u64;
    assert_eq!(unsafe { rsmi_dev_pci_id_get(1, &mut bdf) }, SUCCESS);
    assert_eq!(bdf, (1 << 32) | (0xc1 << 8));
    assert_eq!(unsafe { rsmi_dev_pci_id_get(2, &mut bdf) }, INVALID_ARGS);
    assert_eq!(
        unsafe { rsmi_dev_pci_id_get(0, ptr::null_mut()) },
        INVALID_ARGS
    );

    let mut name = [0 as c_char; 64];
    assert_eq!(
        unsafe { rsmi_dev_name_get(0, name.as_mut_ptr(), name.len()) },
        SUCCESS
    );
    assert_eq!(
        unsafe { CStr::from_ptr(name.as_ptr()) }.to_str().unwrap(),
        "Aldebaran/MI200 [Instinct MI210]"
    );
    let mut short = [0 as c_char; 5];
    assert_eq!(
        unsafe { rsmi_dev_name_get(0, short.as_mut_ptr(), short.len()) },
        INSUFFICIENT_SIZE
    );
    assert_eq!(
        unsafe { CStr::from_ptr(short.as_ptr()) }.to_str().unwrap(),
        "Alde"
    );
    assert_eq!(
        unsafe { rsmi_dev_name_get(1, name.as_mut_ptr(), name.len()) },
        NOT_SUPPORTED
    );

    let mut pct = 0u32;
    assert_eq!(unsafe { rsmi_dev_busy_percent_get(0, &mut pct) }, SUCCESS);
    assert_eq!(pct, 87);
    assert_eq!(
        unsafe { rsmi_dev_busy_percent_get(1, &mut pct) },
        PERMISSION
    );
    assert_eq!(status_name(PERMISSION), "RSMI_STATUS_PERMISSION");
    assert_eq!(
        unsafe { rsmi_dev_memory_busy_percent_get(1, &mut pct) },
        NOT_SUPPORTED
    );

    let mut v = 0u64;
    assert_eq!(unsafe { rsmi_dev_memory_usage_get(0, 0, &mut v) }, SUCCESS);
    assert_eq!(v, 1000);
    assert_eq!(unsafe { rsmi_dev_memory_total_get(0, 0, &mut v) }, SUCCESS);
    assert_eq!(v, 4000);
    assert_eq!(
        unsafe { rsmi_dev_memory_total_get(0, 2, &mut v) },
        NOT_SUPPORTED
    );
    assert_eq!(unsafe { rsmi_dev_power_ave_get(0, 0, &mut v) }, SUCCESS);
    assert_eq!(v, 300_000_000);
    assert_eq!(
        unsafe { rsmi_dev_power_ave_get(0, 1, &mut v) },
        INVALID_ARGS
    );

    let mut t = 0i64;
    assert_eq!(
        unsafe { rsmi_dev_temp_metric_get(0, 0, 0, &mut t) },
        NOT_SUPPORTED
    );
    assert_eq!(
        unsafe { rsmi_dev_temp_metric_get(0, 1, 0, &mut t) },
        SUCCESS
    );
    assert_eq!(t, 61_000);

    let (mut counter, mut res, mut ts) = (0u64, 0f32, 0u64);
    assert_eq!(
        unsafe { rsmi_dev_energy_count_get(0, &mut counter, &mut res, &mut ts) },
        SUCCESS
    );
    assert_eq!((counter, res), (1_000_000, 15.3));
    assert!(ts > 0);
    assert_eq!(
        unsafe { rsmi_dev_pci_replay_counter_get(0, &mut v) },
        SUCCESS
    );
    assert_eq!(v, 3);

    let mut mask = 0u64;
    assert_eq!(unsafe { rsmi_dev_ecc_enabled_get(0, &mut mask) }, SUCCESS);
    assert_eq!(mask, 0x1 | 0x4);
    assert_eq!(
        unsafe { rsmi_dev_ecc_enabled_get(1, &mut mask) },
        NOT_SUPPORTED
    );
    let mut ec = ErrorCount::default();
    assert_eq!(unsafe { rsmi_dev_ecc_count_get(0, 0x1, &mut ec) }, SUCCESS);
    assert_eq!((ec.correctable_err, ec.uncorrectable_err), (5, 1));
    assert_eq!(
        unsafe { rsmi_dev_ecc_count_get(0, 0x2, &mut ec) },
        NOT_SUPPORTED
    );
    assert_eq!(
        unsafe { rsmi_dev_ecc_count_get(0, 0x3, &mut ec) },
        INVALID_ARGS
    );

    // A delay blocks the call before it answers.
    std::fs::write(
        &file,
        SCENARIO.replace(
            "    pcie_replays: 3\n",
            "    pcie_replays: 3\n    delays_ms: { rsmi_dev_pci_replay_counter_get: 300 }\n",
        ),
    )
    .unwrap();
    let t = std::time::Instant::now();
    assert_eq!(unsafe { rsmi_dev_busy_percent_get(0, &mut pct) }, SUCCESS);
    assert!(t.elapsed() < std::time::Duration::from_millis(250));
    assert_eq!(
        unsafe { rsmi_dev_pci_replay_counter_get(0, &mut v) },
        SUCCESS
    );
    assert!(t.elapsed() >= std::time::Duration::from_millis(300));

    // A change to the file is seen by the next call; a broken file keeps the last good one.
    std::fs::write(
        &file,
        SCENARIO.replace("busy_percent: 87", "busy_percent: 42"),
    )
    .unwrap();
    assert_eq!(unsafe { rsmi_dev_busy_percent_get(0, &mut pct) }, SUCCESS);
    assert_eq!(pct, 42);
    std::fs::write(&file, "devices: [{pci_bus_id: nope}]").unwrap();
    assert_eq!(unsafe { rsmi_dev_busy_percent_get(0, &mut pct) }, SUCCESS);
    assert_eq!(pct, 42);

    // Init is counted; the last shut-down ends the session.
    std::fs::write(&file, SCENARIO).unwrap();
    assert_eq!(rsmi_init(0), SUCCESS);
    assert_eq!(rsmi_shut_down(), SUCCESS);
    assert_eq!(unsafe { rsmi_num_monitor_devices(&mut n) }, SUCCESS);
    assert_eq!(rsmi_shut_down(), SUCCESS);
    assert_eq!(unsafe { rsmi_num_monitor_devices(&mut n) }, INIT_ERROR);
    assert_eq!(rsmi_shut_down(), INIT_ERROR);

    // An injected init failure.
    std::fs::write(&file, "init: PERMISSION\n").unwrap();
    assert_eq!(rsmi_init(0), PERMISSION);
    assert_eq!(unsafe { rsmi_num_monitor_devices(&mut n) }, INIT_ERROR);
}
