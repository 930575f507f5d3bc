//! Test harness: every test gets its own copy of the built `libnvidia_ml_mock.so` (so its own
//! global state) and its own scenario file, in a private temporary directory.
//!
//! `MOCK_NVML_SCENARIO` is process-wide, but the mock reads it only in the first `nvmlInit`
//! of each loaded copy, so tests set it and init under one lock and then run in parallel.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsStr;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;
use nvml_wrapper_sys::bindings::NvmlLib;

pub const ENV: &str = "MOCK_NVML_SCENARIO";

static ENV_LOCK: Mutex<()> = Mutex::new(());

/// The cdylib cargo built for this test run.
///
/// The test binary is `target/<profile>/deps/<test>-<hash>`. `cargo test` compiles the library
/// (cdylib and rlib in one go) into that same `deps/` directory, but only `cargo build` copies
/// it up to `target/<profile>/`, where it may be stale. So `deps/` comes first.
pub fn built_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let candidates = [deps.to_path_buf(), deps.parent().unwrap().to_path_buf()];
    candidates
        .iter()
        .map(|dir| dir.join("libnvidia_ml_mock.so"))
        .find(|lib| lib.exists())
        .unwrap_or_else(|| panic!("libnvidia_ml_mock.so not found in {candidates:?}"))
}

/// One private mock: a directory holding a copy of the library and the scenario file.
pub struct Mock {
    pub dir: PathBuf,
    pub lib: PathBuf,
    pub scenario: PathBuf,
}

impl Mock {
    /// A mock whose scenario file holds `yaml`.
    pub fn new(yaml: &str) -> Self {
        let mock = Self::without_scenario();
        mock.write(yaml);
        mock
    }

    /// A mock whose scenario file does not exist yet.
    pub fn without_scenario() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "nvml-mock-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mock = Self {
            lib: dir.join("libnvidia-ml.so.1"),
            scenario: dir.join("scenario.yaml"),
            dir,
        };
        // After `mock` exists, so its `Drop` removes the directory if this fails.
        fs::copy(built_library(), &mock.lib).unwrap();
        mock
    }

    /// Rewrites the scenario file in place (truncate and write, same inode).
    pub fn write(&self, yaml: &str) {
        fs::write(&self.scenario, yaml).unwrap();
    }

    /// Replaces the scenario file atomically: write a temporary file, rename it over.
    pub fn replace(&self, yaml: &str) {
        let tmp = self.dir.join("scenario.yaml.tmp");
        fs::write(&tmp, yaml).unwrap();
        fs::rename(&tmp, &self.scenario).unwrap();
    }

    /// `Nvml::builder().lib_path(..).init()` with `MOCK_NVML_SCENARIO` naming this mock's file.
    pub fn init(&self) -> Result<Nvml, NvmlError> {
        self.init_with_env(Some(self.scenario.as_os_str()))
    }

    /// Like [`Mock::init`], with the variable set to `value`, or unset for `None`.
    pub fn init_with_env(&self, value: Option<&OsStr>) -> Result<Nvml, NvmlError> {
        let _guard = ENV_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        match value {
            Some(v) => std::env::set_var(ENV, v),
            None => std::env::remove_var(ENV),
        }
        Nvml::builder().lib_path(self.lib.as_os_str()).init()
    }

    /// The raw function table, for calls nvml-wrapper does not make (or makes only one way).
    /// It shares state with an `Nvml` from [`Mock::init`]: both are the same loaded copy.
    pub fn raw(&self) -> NvmlLib {
        unsafe { NvmlLib::new(&self.lib) }.unwrap()
    }

    /// `nvmlInit_v2` through the raw table, with this mock's scenario in the environment.
    pub fn raw_init(&self, lib: &NvmlLib) -> u32 {
        let _guard = ENV_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        std::env::set_var(ENV, &self.scenario);
        unsafe { lib.nvmlInit_v2() }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A device with every required field, for scenarios that only care about a few.
/// `extra` is appended as more fields of the same device (indented by four spaces).
pub fn device(uuid: &str, bus: u8, extra: &str) -> String {
    format!(
        r#"  - uuid: {uuid}
    name: NVIDIA H100 80GB HBM3
    pci_bus_id: "00000000:{bus:02X}:00.0"
    memory_total_bytes: 85520809984
    memory_used_bytes: 40265318400
    utilization_gpu_percent: 87
    utilization_memory_percent: 45
    power_milliwatts: 350000
    temperature_celsius: 61
    sm_clock_mhz: 1980
{extra}"#
    )
}

/// A scenario of the given devices.
pub fn scenario(devices: &[String]) -> String {
    if devices.is_empty() {
        return "driver_version: \"550.54.15\"\ndevices: []\n".to_owned();
    }
    format!(
        "driver_version: \"550.54.15\"\ndevices:\n{}",
        devices.concat()
    )
}

/// CPU time of the calling thread.
pub fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) },
        0
    );
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
