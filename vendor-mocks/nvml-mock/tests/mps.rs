//! MPS (a device's `mps_server`): what NVML answered on an H200 with an MPS server and two
//! clients (docs/measurements.md, "MPS"), through nvml-wrapper and the raw calls. The server and its
//! clients in the compute list, the clients alone in the MPS list, every utilization sample on
//! the server's pid.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::mem::zeroed;
use std::ptr::null_mut;

use common::{device, scenario, Mock};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper_sys::bindings::*;

const SUCCESS: u32 = nvmlReturn_enum_NVML_SUCCESS;
const INSUFFICIENT_SIZE: u32 = nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE;
const INVALID_ARGUMENT: u32 = nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT;

/// 66 MiB, the server's memory on the H200.
const SERVER_MEMORY: u64 = 69206016;

/// Device 0: an MPS server (pid 4100) and two clients at 50 % and 37 % SM. Device 1: no MPS,
/// one process. Device 2: MPS whose MPS list fails.
fn node() -> String {
    let clients = "    processes:
      - {pid: 4200, used_memory_bytes: 5000000000, sm_util_percent: 50, mem_util_percent: 20}
      - {pid: 4300, used_memory_bytes: 7000000000, sm_util_percent: 37, mem_util_percent: 10}
";
    scenario(&[
        device(
            "GPU-0",
            0x10,
            &format!(
                "    mps_server: {{pid: 4100, used_memory_bytes: {SERVER_MEMORY}}}\n{clients}"
            ),
        ),
        device(
            "GPU-1",
            0x11,
            "    processes: [{pid: 10, used_memory_bytes: 1000, sm_util_percent: 11}]\n",
        ),
        device(
            "GPU-2",
            0x12,
            &format!("    mps_server: {{pid: 4100}}\n    errors: {{mps: UNKNOWN}}\n{clients}"),
        ),
    ])
}

fn pids_and_memory(list: &[nvml_wrapper::struct_wrappers::device::ProcessInfo]) -> Vec<(u32, u64)> {
    list.iter()
        .map(|p| {
            let m = match p.used_gpu_memory {
                UsedGpuMemory::Used(b) => b,
                UsedGpuMemory::Unavailable => u64::MAX,
            };
            (p.pid, m)
        })
        .collect()
}

#[test]
fn the_server_and_its_clients_as_nvml_lists_them() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let d0 = nvml.device_by_index(0).unwrap();
    assert_eq!(
        pids_and_memory(&d0.running_compute_processes().unwrap()),
        [
            (4100, SERVER_MEMORY),
            (4200, 5000000000),
            (4300, 7000000000)
        ]
    );
    assert_eq!(
        pids_and_memory(&d0.mps_running_compute_processes().unwrap()),
        [(4200, 5000000000), (4300, 7000000000)]
    );
    // Every sample is the server's: SM the clients' sum, none for the clients.
    let samples = d0.process_utilization_stats(0).unwrap();
    let got: Vec<(u32, u32, u32)> = samples
        .iter()
        .map(|s| (s.pid, s.sm_util, s.mem_util))
        .collect();
    assert_eq!(got, [(4100, 87, 30)]);

    // Without MPS: no client, every process its own samples.
    let d1 = nvml.device_by_index(1).unwrap();
    assert!(d1.mps_running_compute_processes().unwrap().is_empty());
    let samples = d1.process_utilization_stats(0).unwrap();
    assert_eq!(samples.iter().map(|s| s.pid).collect::<Vec<_>>(), [10]);

    // The `mps` family's faults touch the MPS list only; a server with no memory figure.
    let d2 = nvml.device_by_index(2).unwrap();
    assert!(matches!(
        d2.mps_running_compute_processes(),
        Err(NvmlError::Unknown)
    ));
    assert_eq!(
        pids_and_memory(&d2.running_compute_processes().unwrap())[0],
        (4100, u64::MAX)
    );
}

#[test]
fn mps_list_two_call_protocol() {
    let mock = Mock::new(&node());
    let lib = mock.raw();
    assert_eq!(mock.raw_init(&lib), SUCCESS);
    let handle = |i| {
        let mut h = null_mut();
        assert_eq!(
            unsafe { lib.nvmlDeviceGetHandleByIndex_v2(i, &mut h) },
            SUCCESS
        );
        h
    };
    let (d0, d1) = (handle(0), handle(1));
    unsafe {
        // No clients: NULL buffer is SUCCESS with 0.
        let mut count = 7;
        assert_eq!(
            lib.nvmlDeviceGetMPSComputeRunningProcesses_v3(d1, &mut count, null_mut()),
            SUCCESS
        );
        assert_eq!(count, 0);
        // Clients: NULL buffer, then too small a buffer, are INSUFFICIENT_SIZE with the count.
        let mut count = 0;
        let rc = lib.nvmlDeviceGetMPSComputeRunningProcesses_v3(d0, &mut count, null_mut());
        assert_eq!((rc, count), (INSUFFICIENT_SIZE, 2));
        let mut buf = vec![zeroed::<nvmlProcessInfo_t>(); 4];
        let mut count = 1;
        let rc = lib.nvmlDeviceGetMPSComputeRunningProcesses_v3(d0, &mut count, buf.as_mut_ptr());
        assert_eq!((rc, count), (INSUFFICIENT_SIZE, 2));
        let mut count = 4;
        let rc = lib.nvmlDeviceGetMPSComputeRunningProcesses_v3(d0, &mut count, buf.as_mut_ptr());
        assert_eq!((rc, count), (SUCCESS, 2));
        assert_eq!((buf[0].pid, buf[1].pid), (4200, 4300));
        assert_eq!(
            lib.nvmlDeviceGetMPSComputeRunningProcesses_v3(d0, null_mut(), null_mut()),
            INVALID_ARGUMENT
        );
        // The compute list counts the server too.
        let mut count = 0;
        let rc = lib.nvmlDeviceGetComputeRunningProcesses_v3(d0, &mut count, null_mut());
        assert_eq!((rc, count), (INSUFFICIENT_SIZE, 3));
    }
}

/// `scenarios/mps.yaml` answers as its comment says.
#[test]
fn the_example_answers_as_measured() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/mps.yaml");
    let mock = Mock::new(&std::fs::read_to_string(path).unwrap());
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    let compute: Vec<u32> = d
        .running_compute_processes()
        .unwrap()
        .iter()
        .map(|p| p.pid)
        .collect();
    assert_eq!(compute, [4100, 4200, 4300]);
    let clients: Vec<u32> = d
        .mps_running_compute_processes()
        .unwrap()
        .iter()
        .map(|p| p.pid)
        .collect();
    assert_eq!(clients, [4200, 4300]);
    let samples = d.process_utilization_stats(0).unwrap();
    assert_eq!(
        samples
            .iter()
            .map(|s| (s.pid, s.sm_util))
            .collect::<Vec<_>>(),
        [(4100, 87)]
    );
}
