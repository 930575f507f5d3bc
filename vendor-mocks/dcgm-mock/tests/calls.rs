//! The mock DCGM through its C interface, as the agent calls it: each test loads a private
//! copy of the built `libdcgm_mock.so` (its own state) with its own scenario file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::{c_char, c_int, c_longlong, c_uint, CString};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dcgm_mock::ffi::{self, ConnectV2Params, DcgmReturn, EntityPair, FieldValueV2, Handle};

static ENV_LOCK: Mutex<()> = Mutex::new(());

/// The cdylib cargo built for this run (`deps/` first: `cargo test` refreshes only that one).
fn built_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps.to_path_buf(), deps.parent().unwrap().to_path_buf()]
        .iter()
        .map(|d| d.join("libdcgm_mock.so"))
        .find(|p| p.exists())
        .expect("libdcgm_mock.so not built")
}

/// A private copy of the library, initialized on its scenario file.
struct Mock {
    dir: tempfile::TempDir,
    lib: libloading::Library,
}

impl Mock {
    fn new(yaml: &str) -> Mock {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("libdcgm.so.4");
        std::fs::copy(built_library(), &copy).unwrap();
        let scenario = dir.path().join("scenario.yaml");
        std::fs::write(&scenario, yaml).unwrap();
        let lib = unsafe { libloading::Library::new(&copy) }.unwrap();
        let mock = Mock { dir, lib };
        let _env = ENV_LOCK.lock().unwrap();
        std::env::set_var("MOCK_NVML_SCENARIO", &scenario);
        let init: unsafe extern "C" fn() -> DcgmReturn = mock.sym("dcgmInit");
        assert_eq!(unsafe { init() }, ffi::ST_OK);
        mock
    }

    fn sym<T: Copy>(&self, name: &str) -> T {
        *unsafe { self.lib.get::<T>(format!("{name}\0").as_bytes()) }.unwrap()
    }

    fn set_scenario(&self, yaml: &str) {
        let path = self.dir.path().join("scenario.yaml");
        let tmp = self.dir.path().join("scenario.tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }

    fn connect_with(&self, timeout_ms: c_uint) -> Result<Handle, DcgmReturn> {
        let f: unsafe extern "C" fn(
            *const c_char,
            *mut ConnectV2Params,
            *mut Handle,
        ) -> DcgmReturn = self.sym("dcgmConnect_v2");
        let addr = CString::new("127.0.0.1:5555").unwrap();
        let mut params = ConnectV2Params {
            version: ffi::CONNECT_V2_PARAMS_VERSION,
            timeout_ms,
            ..ConnectV2Params::default()
        };
        let mut h = 0;
        match unsafe { f(addr.as_ptr(), &mut params, &mut h) } {
            ffi::ST_OK => Ok(h),
            e => Err(e),
        }
    }

    fn connect(&self) -> Result<Handle, DcgmReturn> {
        self.connect_with(1000)
    }

    fn embedded(&self) -> Handle {
        let f: unsafe extern "C" fn(c_int, *mut Handle) -> DcgmReturn =
            self.sym("dcgmStartEmbedded");
        let mut h = 0;
        assert_eq!(unsafe { f(ffi::OPERATION_MODE_AUTO, &mut h) }, ffi::ST_OK);
        h
    }

    fn gpus(&self, h: Handle) -> Result<Vec<u32>, DcgmReturn> {
        let f: unsafe extern "C" fn(Handle, *mut c_uint, *mut c_int) -> DcgmReturn =
            self.sym("dcgmGetAllSupportedDevices");
        let mut ids = [0u32; ffi::MAX_NUM_DEVICES];
        let mut n = 0;
        match unsafe { f(h, ids.as_mut_ptr(), &mut n) } {
            ffi::ST_OK => Ok(ids[..n as usize].to_vec()),
            e => Err(e),
        }
    }

    fn values(
        &self,
        h: Handle,
        entities: &[EntityPair],
        fields: &[u16],
        flags: c_uint,
    ) -> Result<Vec<FieldValueV2>, DcgmReturn> {
        let f: unsafe extern "C" fn(
            Handle,
            *mut EntityPair,
            c_uint,
            *mut u16,
            c_uint,
            c_uint,
            *mut FieldValueV2,
        ) -> DcgmReturn = self.sym("dcgmEntitiesGetLatestValues");
        let mut e = entities.to_vec();
        let mut fl = fields.to_vec();
        let mut out = vec![FieldValueV2::empty(); e.len() * fl.len()];
        let st = unsafe {
            f(
                h,
                e.as_mut_ptr(),
                e.len() as c_uint,
                fl.as_mut_ptr(),
                fl.len() as c_uint,
                flags,
                out.as_mut_ptr(),
            )
        };
        if st == ffi::ST_OK {
            Ok(out)
        } else {
            Err(st)
        }
    }

    /// A group of `entities` watching `fields` every `every`; the watch's status.
    fn watch(
        &self,
        h: Handle,
        entities: &[EntityPair],
        fields: &[u16],
        every: Duration,
    ) -> DcgmReturn {
        let create: unsafe extern "C" fn(Handle, c_int, *const c_char, *mut usize) -> DcgmReturn =
            self.sym("dcgmGroupCreate");
        let add: unsafe extern "C" fn(Handle, usize, c_uint, c_uint) -> DcgmReturn =
            self.sym("dcgmGroupAddEntity");
        let fg: unsafe extern "C" fn(
            Handle,
            c_int,
            *mut u16,
            *const c_char,
            *mut usize,
        ) -> DcgmReturn = self.sym("dcgmFieldGroupCreate");
        let watch: unsafe extern "C" fn(
            Handle,
            usize,
            usize,
            c_longlong,
            f64,
            c_int,
        ) -> DcgmReturn = self.sym("dcgmWatchFields");
        let name = CString::new(format!("g{}", fields.len() * 1000 + entities.len())).unwrap();
        let (mut g, mut f) = (0, 0);
        let mut ids = fields.to_vec();
        unsafe {
            assert_eq!(
                create(h, ffi::GROUP_EMPTY, name.as_ptr(), &mut g),
                ffi::ST_OK
            );
            for e in entities {
                assert_eq!(add(h, g, e.entity_group_id, e.entity_id), ffi::ST_OK);
            }
            let fname = CString::new(format!("f{g}")).unwrap();
            assert_eq!(
                fg(
                    h,
                    ids.len() as c_int,
                    ids.as_mut_ptr(),
                    fname.as_ptr(),
                    &mut f
                ),
                ffi::ST_OK
            );
            watch(h, g, f, every.as_micros() as c_longlong, 5.0, 2)
        }
    }
}

fn gpu(id: u32) -> EntityPair {
    EntityPair {
        entity_group_id: ffi::FE_GPU,
        entity_id: id,
    }
}

const NODE: &str = r#"
devices:
  - uuid: GPU-a100
    name: NVIDIA A100-SXM4-80GB
    pci_bus_id: "00000000:07:00.0"
    memory_total_bytes: 85899345920
    memory_used_bytes: 1
    utilization_gpu_percent: 50
    utilization_memory_percent: 20
    power_milliwatts: 300000
    temperature_celsius: 50
    sm_clock_mhz: 1410
    dcgm_profiling: {sm_active: 0.6, sm_occupancy: 0.3, tensor_active: 0.25, dram_active: 0.4,
                     graphics_active: 0.9, fp64_active: 0.0, fp32_active: 0.1}
  - uuid: GPU-t4
    name: Tesla T4
    pci_bus_id: "00000000:08:00.0"
    memory_total_bytes: 16106127360
    memory_used_bytes: 1
    utilization_gpu_percent: 5
    utilization_memory_percent: 1
    power_milliwatts: 30000
    temperature_celsius: 40
    sm_clock_mhz: 585
    mig:
      - {uuid: MIG-one, gpu_instance_id: 3, compute_instance_id: 0, profile: 2g.20gb,
         memory_total_bytes: 10, memory_used_bytes: 1, dcgm_profiling: {sm_active: 0.5}}
"#;

const PROF: [u16; 8] = [1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008];

#[test]
fn gpus_uuids_and_the_mig_hierarchy() {
    let m = Mock::new(NODE);
    let h = m.connect().unwrap();
    assert_eq!(m.gpus(h).unwrap(), [0, 1]);
    let v = m
        .values(
            h,
            &[gpu(0), gpu(1)],
            &[ffi::FI_DEV_UUID],
            ffi::FV_FLAG_LIVE_DATA,
        )
        .unwrap();
    assert_eq!(v[0].string().as_deref(), Some("GPU-a100"));
    assert_eq!(v[1].string().as_deref(), Some("GPU-t4"));
    assert!(v.iter().all(|v| v.status == ffi::ST_OK));

    let f: unsafe extern "C" fn(Handle, *mut ffi::MigHierarchyV2) -> DcgmReturn =
        m.sym("dcgmGetGpuInstanceHierarchy");
    let mut hier = ffi::MigHierarchyV2::boxed();
    assert_eq!(unsafe { f(h, &mut *hier) }, ffi::ST_OK);
    assert_eq!(hier.count, 2, "the GPU instance and its compute instance");
    let gi = &hier.entity_list[0];
    assert_eq!(
        (gi.entity.entity_group_id, gi.entity.entity_id),
        (ffi::FE_GPU_I, 8)
    );
    assert_eq!(
        (gi.parent.entity_group_id, gi.parent.entity_id),
        (ffi::FE_GPU, 1)
    );
    assert_eq!(ffi::c_buffer_string(&gi.info.gpu_uuid), "GPU-t4");
    assert_eq!(gi.info.nvml_instance_id, 3);
    assert_eq!(gi.info.nvml_profile_slices, 2);
    hier.version = 0;
    assert_eq!(unsafe { f(h, &mut *hier) }, -12, "VER_MISMATCH");
}

#[test]
fn a_watch_has_no_data_for_one_period_then_the_scenario_values_and_blanks() {
    let m = Mock::new(NODE);
    let h = m.connect().unwrap();
    let before = m.values(h, &[gpu(0)], &PROF, 0).unwrap();
    assert!(before.iter().all(|v| v.status == ffi::ST_NOT_WATCHED));
    assert_eq!(
        m.watch(h, &[gpu(0)], &PROF, Duration::from_millis(200)),
        ffi::ST_OK
    );
    let early = m.values(h, &[gpu(0)], &PROF, 0).unwrap();
    assert!(
        early.iter().all(|v| v.status == ffi::ST_NO_DATA),
        "no sample yet"
    );
    std::thread::sleep(Duration::from_millis(250));
    let v = m.values(h, &[gpu(0)], &PROF, 0).unwrap();
    let got: Vec<f64> = v.iter().map(|v| v.double().unwrap()).collect();
    assert_eq!(&got[..7], &[0.9, 0.6, 0.3, 0.25, 0.4, 0.0, 0.1]);
    assert!(
        got[7] >= ffi::FP64_BLANK,
        "fp16 left out: a blank, status OK"
    );
    assert!(v.iter().all(|v| v.status == ffi::ST_OK && v.ts > 0));
    assert_eq!(
        (v[0].entity_group_id, v[0].entity_id, v[0].field_id),
        (ffi::FE_GPU, 0, 1001)
    );
}

#[test]
fn profiling_refusals_and_injected_errors() {
    let m = Mock::new(NODE);
    let h = m.connect().unwrap();
    // The T4 has no dcgm_profiling: the group with it is refused as a whole.
    assert_eq!(
        m.watch(h, &[gpu(0), gpu(1)], &PROF, Duration::from_millis(100)),
        ffi::ST_PROFILING_NOT_SUPPORTED
    );
    let mig = EntityPair {
        entity_group_id: ffi::FE_GPU_I,
        entity_id: 8,
    };
    assert_eq!(
        m.watch(h, &[mig], &PROF, Duration::from_millis(100)),
        ffi::ST_OK
    );
    // Another profiler holds the A100's counters: its watch and its values say IN_USE.
    m.set_scenario(&NODE.replacen(
        "    sm_clock_mhz: 1410\n",
        "    sm_clock_mhz: 1410\n    errors: {dcgm_values: IN_USE}\n",
        1,
    ));
    assert_eq!(
        m.watch(h, &[gpu(0)], &PROF, Duration::from_millis(100)),
        -34
    );
    let v = m.values(h, &[gpu(0), mig], &[1002], 0).unwrap();
    assert_eq!(v[0].status, -34);
    assert!(v[0].double().unwrap() >= ffi::FP64_BLANK);
    // A top-level error fails the call itself.
    m.set_scenario(&format!("errors: {{dcgm_values: TIMEOUT}}\n{NODE}"));
    assert_eq!(m.values(h, &[gpu(0)], &[1002], 0).unwrap_err(), -11);
    // Records of another version are refused.
    m.set_scenario(NODE);
    let f: unsafe extern "C" fn(
        Handle,
        *mut EntityPair,
        c_uint,
        *mut u16,
        c_uint,
        c_uint,
        *mut FieldValueV2,
    ) -> DcgmReturn = m.sym("dcgmEntitiesGetLatestValues");
    let mut e = [gpu(0)];
    let mut fl = [1002u16];
    let mut out = [FieldValueV2::empty()];
    out[0].version = 1;
    assert_eq!(
        unsafe {
            f(
                h,
                e.as_mut_ptr(),
                1,
                fl.as_mut_ptr(),
                1,
                0,
                out.as_mut_ptr(),
            )
        },
        -12
    );
}

#[test]
fn the_host_engine_goes_down_and_a_new_connection_is_needed_after() {
    let m = Mock::new(NODE);
    let old = m.connect().unwrap();
    let embedded = m.embedded();
    m.set_scenario(&format!("dcgm: {{hostengine: down}}\n{NODE}"));
    assert_eq!(m.gpus(old).unwrap_err(), ffi::ST_CONNECTION_NOT_VALID);
    assert_eq!(m.connect().unwrap_err(), ffi::ST_CONNECTION_NOT_VALID);
    assert_eq!(
        m.gpus(embedded).unwrap().len(),
        2,
        "an embedded engine is in the caller"
    );
    m.set_scenario(NODE);
    assert_eq!(
        m.gpus(old).unwrap_err(),
        ffi::ST_CONNECTION_NOT_VALID,
        "a connection from before the engine went down stays dead"
    );
    let new = m.connect().unwrap();
    assert_eq!(m.gpus(new).unwrap().len(), 2);
}

#[test]
fn delays_cost_wall_time_and_a_connect_gives_up_at_its_timeout() {
    let m = Mock::new(&format!("delays_ms: {{dcgm_connect: 300}}\n{NODE}"));
    let start = Instant::now();
    assert_eq!(
        m.connect_with(50).unwrap_err(),
        ffi::ST_CONNECTION_NOT_VALID
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(50) && took < Duration::from_millis(290),
        "{took:?}"
    );
    let h = m.connect_with(1000).unwrap();
    m.set_scenario(&NODE.replacen(
        "    sm_clock_mhz: 1410\n",
        "    sm_clock_mhz: 1410\n    delays_ms: {dcgm_values: 200}\n",
        1,
    ));
    let start = Instant::now();
    m.values(h, &[gpu(1)], &[1002], 0).unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(150),
        "the T4 is not delayed"
    );
    m.values(h, &[gpu(0)], &[1002], 0).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(200), "the A100 is");
}
