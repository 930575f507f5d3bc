//! NVML's calling protocols, exercised through the raw C functions: two-call sizing, struct
//! versions, string lengths, bad arguments, and the init refcount.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ffi::{c_char, CStr};
use std::mem::{size_of, zeroed};
use std::ptr::{null_mut, without_provenance_mut};

use common::{device, scenario, Mock};
use nvml_wrapper_sys::bindings::*;

const SUCCESS: u32 = nvmlReturn_enum_NVML_SUCCESS;
const UNINITIALIZED: u32 = nvmlReturn_enum_NVML_ERROR_UNINITIALIZED;
const INVALID_ARGUMENT: u32 = nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT;
const NOT_SUPPORTED: u32 = nvmlReturn_enum_NVML_ERROR_NOT_SUPPORTED;
const NOT_FOUND: u32 = nvmlReturn_enum_NVML_ERROR_NOT_FOUND;
const INSUFFICIENT_SIZE: u32 = nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE;
const VERSION_MISMATCH: u32 = nvmlReturn_enum_NVML_ERROR_ARGUMENT_VERSION_MISMATCH;

const PROCESSES: &str = "    processes:
      - {pid: 10, used_memory_bytes: 1000, sm_util_percent: 11, mem_util_percent: 1}
      - {pid: 20, used_memory_bytes: 2000, sm_util_percent: 22, mem_util_percent: 2}
      - {pid: 30, used_memory_bytes: 3000, sm_util_percent: 33, mem_util_percent: 3}
";

/// Device 0 has three processes, device 1 none, device 2 reports only the newer call,
/// device 3 neither.
fn node() -> String {
    scenario(&[
        device("GPU-0", 0x10, PROCESSES),
        device("GPU-1", 0x11, ""),
        device(
            "GPU-2",
            0x12,
            &format!("    process_utilization: info_only\n{PROCESSES}"),
        ),
        device(
            "GPU-3",
            0x13,
            &format!("    process_utilization: not_supported\n{PROCESSES}"),
        ),
    ])
}

/// A raw library with NVML initialized and the handles of all devices.
fn setup(mock: &Mock) -> (NvmlLib, Vec<nvmlDevice_t>) {
    let lib = mock.raw();
    assert_eq!(mock.raw_init(&lib), SUCCESS);
    let mut count = 0;
    assert_eq!(unsafe { lib.nvmlDeviceGetCount_v2(&mut count) }, SUCCESS);
    let handles = (0..count)
        .map(|i| {
            let mut h = null_mut();
            assert_eq!(
                unsafe { lib.nvmlDeviceGetHandleByIndex_v2(i, &mut h) },
                SUCCESS
            );
            h
        })
        .collect();
    (lib, handles)
}

#[test]
fn compute_processes_two_call_protocol() {
    let mock = Mock::new(&node());
    let (lib, dev) = setup(&mock);
    unsafe {
        // No processes: NULL buffer is SUCCESS with 0.
        let mut count = 0;
        assert_eq!(
            lib.nvmlDeviceGetComputeRunningProcesses_v3(dev[1], &mut count, null_mut()),
            SUCCESS
        );
        assert_eq!(count, 0);

        // Some: NULL buffer is INSUFFICIENT_SIZE with the count.
        let mut count = 0;
        let rc = lib.nvmlDeviceGetComputeRunningProcesses_v3(dev[0], &mut count, null_mut());
        assert_eq!((rc, count), (INSUFFICIENT_SIZE, 3));

        // Too small a buffer: INSUFFICIENT_SIZE with the count needed, nothing written past it.
        let mut buf = vec![zeroed::<nvmlProcessInfo_t>(); 2];
        let mut count = 2;
        let rc = lib.nvmlDeviceGetComputeRunningProcesses_v3(dev[0], &mut count, buf.as_mut_ptr());
        assert_eq!((rc, count), (INSUFFICIENT_SIZE, 3));

        // Room to spare: SUCCESS with the count written.
        let mut buf = vec![zeroed::<nvmlProcessInfo_t>(); 8];
        let mut count = 8;
        let rc = lib.nvmlDeviceGetComputeRunningProcesses_v3(dev[0], &mut count, buf.as_mut_ptr());
        assert_eq!((rc, count), (SUCCESS, 3));
        let pids: Vec<_> = buf[..3].iter().map(|p| (p.pid, p.usedGpuMemory)).collect();
        assert_eq!(pids, [(10, 1000), (20, 2000), (30, 3000)]);
        assert!(buf[..3]
            .iter()
            .all(|p| p.gpuInstanceId == u32::MAX && p.computeInstanceId == u32::MAX));

        assert_eq!(
            lib.nvmlDeviceGetComputeRunningProcesses_v3(dev[0], null_mut(), null_mut()),
            INVALID_ARGUMENT
        );
    }
}

#[test]
fn process_utilization_two_call_protocol_and_timestamps() {
    let mock = Mock::new(&node());
    let (lib, dev) = setup(&mock);
    unsafe {
        let mut count = 0;
        let rc = lib.nvmlDeviceGetProcessUtilization(dev[0], null_mut(), &mut count, 0);
        assert_eq!((rc, count), (INSUFFICIENT_SIZE, 3));

        let mut buf = vec![zeroed::<nvmlProcessUtilizationSample_t>(); 1];
        let mut count = 1;
        let rc = lib.nvmlDeviceGetProcessUtilization(dev[0], buf.as_mut_ptr(), &mut count, 0);
        assert_eq!((rc, count), (INSUFFICIENT_SIZE, 3));

        let mut buf = vec![zeroed::<nvmlProcessUtilizationSample_t>(); 5];
        let mut count = 5;
        let rc = lib.nvmlDeviceGetProcessUtilization(dev[0], buf.as_mut_ptr(), &mut count, 0);
        assert_eq!((rc, count), (SUCCESS, 3));
        let got: Vec<_> = buf[..3]
            .iter()
            .map(|s| (s.pid, s.smUtil, s.memUtil))
            .collect();
        assert_eq!(got, [(10, 11, 1), (20, 22, 2), (30, 33, 3)]);
        let stamp = buf[0].timeStamp;

        // Samples newer than the last one seen: yes. Newer than a time to come: NOT_FOUND.
        let mut count = 5;
        let rc = lib.nvmlDeviceGetProcessUtilization(dev[0], buf.as_mut_ptr(), &mut count, stamp);
        assert_eq!(rc, SUCCESS);
        assert!(buf[0].timeStamp > stamp);
        let future = stamp + 3_600_000_000;
        let mut count = 5;
        let rc = lib.nvmlDeviceGetProcessUtilization(dev[0], buf.as_mut_ptr(), &mut count, future);
        assert_eq!(rc, NOT_FOUND);

        // No processes: NOT_FOUND. Modes without the old call: NOT_SUPPORTED.
        let mut count = 5;
        assert_eq!(
            lib.nvmlDeviceGetProcessUtilization(dev[1], buf.as_mut_ptr(), &mut count, 0),
            NOT_FOUND
        );
        for d in [dev[2], dev[3]] {
            let mut count = 5;
            assert_eq!(
                lib.nvmlDeviceGetProcessUtilization(d, buf.as_mut_ptr(), &mut count, 0),
                NOT_SUPPORTED
            );
        }
        assert_eq!(
            lib.nvmlDeviceGetProcessUtilization(dev[0], buf.as_mut_ptr(), null_mut(), 0),
            INVALID_ARGUMENT
        );
    }
}

fn utilization_info(
    array: *mut nvmlProcessUtilizationInfo_v1_t,
    count: u32,
    last_seen: u64,
) -> nvmlProcessesUtilizationInfo_t {
    nvmlProcessesUtilizationInfo_t {
        version: (size_of::<nvmlProcessesUtilizationInfo_t>() as u32) | (1 << 24),
        processSamplesCount: count,
        lastSeenTimeStamp: last_seen,
        procUtilArray: array,
    }
}

#[test]
fn processes_utilization_info_protocol() {
    let mock = Mock::new(&node());
    let (lib, dev) = setup(&mock);
    unsafe {
        for d in [dev[0], dev[2]] {
            let mut info = utilization_info(null_mut(), 0, 0);
            assert_eq!(
                lib.nvmlDeviceGetProcessesUtilizationInfo(d, &mut info),
                INSUFFICIENT_SIZE
            );
            assert_eq!(info.processSamplesCount, 3);

            let mut buf = vec![zeroed::<nvmlProcessUtilizationInfo_v1_t>(); 2];
            let mut info = utilization_info(buf.as_mut_ptr(), 2, 0);
            assert_eq!(
                lib.nvmlDeviceGetProcessesUtilizationInfo(d, &mut info),
                INSUFFICIENT_SIZE
            );
            assert_eq!(info.processSamplesCount, 3);

            let mut buf = vec![zeroed::<nvmlProcessUtilizationInfo_v1_t>(); 4];
            let mut info = utilization_info(buf.as_mut_ptr(), 4, 0);
            assert_eq!(
                lib.nvmlDeviceGetProcessesUtilizationInfo(d, &mut info),
                SUCCESS
            );
            assert_eq!(info.processSamplesCount, 3);
            let got: Vec<_> = buf[..3]
                .iter()
                .map(|s| (s.pid, s.smUtil, s.memUtil))
                .collect();
            assert_eq!(got, [(10, 11, 1), (20, 22, 2), (30, 33, 3)]);

            let future = buf[0].timeStamp + 3_600_000_000;
            let mut info = utilization_info(buf.as_mut_ptr(), 4, future);
            assert_eq!(
                lib.nvmlDeviceGetProcessesUtilizationInfo(d, &mut info),
                NOT_FOUND
            );
        }
        let mut info = utilization_info(null_mut(), 0, 0);
        assert_eq!(
            lib.nvmlDeviceGetProcessesUtilizationInfo(dev[1], &mut info),
            NOT_FOUND
        );
        assert_eq!(
            lib.nvmlDeviceGetProcessesUtilizationInfo(dev[3], &mut info),
            NOT_SUPPORTED
        );

        let mut info = utilization_info(null_mut(), 0, 0);
        info.version = 1;
        assert_eq!(
            lib.nvmlDeviceGetProcessesUtilizationInfo(dev[0], &mut info),
            VERSION_MISMATCH
        );
        assert_eq!(
            lib.nvmlDeviceGetProcessesUtilizationInfo(dev[0], null_mut()),
            INVALID_ARGUMENT
        );
    }
}

#[test]
fn string_lengths() {
    let mock = Mock::new(&scenario(&[device("GPU-12345", 1, "")]));
    let (lib, dev) = setup(&mock);
    unsafe {
        let mut buf = [0 as c_char; 16];
        // "GPU-12345" is 9 bytes: it needs 10 with the NUL.
        assert_eq!(
            lib.nvmlDeviceGetUUID(dev[0], buf.as_mut_ptr(), 9),
            INSUFFICIENT_SIZE
        );
        buf.fill(b'x' as c_char);
        assert_eq!(lib.nvmlDeviceGetUUID(dev[0], buf.as_mut_ptr(), 10), SUCCESS);
        assert_eq!(CStr::from_ptr(buf.as_ptr()).to_str().unwrap(), "GPU-12345");
        assert_eq!(
            lib.nvmlDeviceGetUUID(dev[0], null_mut(), 10),
            INVALID_ARGUMENT
        );
        assert_eq!(
            lib.nvmlDeviceGetName(dev[0], buf.as_mut_ptr(), 4),
            INSUFFICIENT_SIZE
        );
        assert_eq!(
            lib.nvmlSystemGetDriverVersion(buf.as_mut_ptr(), 9),
            INSUFFICIENT_SIZE
        );
        assert_eq!(
            lib.nvmlSystemGetDriverVersion(buf.as_mut_ptr(), 10),
            SUCCESS
        );
    }
}

#[test]
fn bad_arguments() {
    let mock = Mock::new(&scenario(&[device("GPU-a", 1, "")]));
    let (lib, dev) = setup(&mock);
    unsafe {
        let mut value = 0;
        let bogus = without_provenance_mut::<nvmlDevice_st>(0xdead_beef);
        assert_eq!(
            lib.nvmlDeviceGetPowerUsage(bogus, &mut value),
            INVALID_ARGUMENT
        );
        assert_eq!(
            lib.nvmlDeviceGetPowerUsage(null_mut(), &mut value),
            INVALID_ARGUMENT
        );
        assert_eq!(
            lib.nvmlDeviceGetPowerUsage(dev[0], null_mut()),
            INVALID_ARGUMENT
        );
        assert_eq!(
            lib.nvmlDeviceGetTemperature(dev[0], 1, &mut value),
            INVALID_ARGUMENT
        );
        assert_eq!(
            lib.nvmlDeviceGetClockInfo(dev[0], 9, &mut value),
            INVALID_ARGUMENT
        );
        let mut h = null_mut();
        assert_eq!(
            lib.nvmlDeviceGetHandleByIndex_v2(1, &mut h),
            INVALID_ARGUMENT
        );
        assert_eq!(
            lib.nvmlDeviceGetHandleByIndex_v2(0, null_mut()),
            INVALID_ARGUMENT
        );
        assert_eq!(
            lib.nvmlDeviceGetHandleByUUID(std::ptr::null(), &mut h),
            INVALID_ARGUMENT
        );
        assert_eq!(lib.nvmlDeviceGetCount_v2(null_mut()), INVALID_ARGUMENT);

        let mut mem: nvmlMemory_v2_t = zeroed();
        mem.version = 1;
        assert_eq!(
            lib.nvmlDeviceGetMemoryInfo_v2(dev[0], &mut mem),
            VERSION_MISMATCH
        );
        assert_eq!(
            lib.nvmlDeviceGetMemoryInfo(dev[0], null_mut()),
            INVALID_ARGUMENT
        );
    }
}

#[test]
fn init_is_reference_counted() {
    let mock = Mock::new(&scenario(&[device("GPU-a", 1, "")]));
    let lib = mock.raw();
    let mut count = 0;
    unsafe {
        assert_eq!(lib.nvmlDeviceGetCount_v2(&mut count), UNINITIALIZED);
        assert_eq!(lib.nvmlShutdown(), UNINITIALIZED);

        assert_eq!(mock.raw_init(&lib), SUCCESS);
        assert_eq!(lib.nvmlInitWithFlags(0), SUCCESS);
        let mut h = null_mut();
        assert_eq!(lib.nvmlDeviceGetHandleByIndex_v2(0, &mut h), SUCCESS);

        assert_eq!(lib.nvmlShutdown(), SUCCESS);
        assert_eq!(lib.nvmlDeviceGetCount_v2(&mut count), SUCCESS);
        assert_eq!(count, 1);
        assert_eq!(lib.nvmlShutdown(), SUCCESS);

        let mut value = 0;
        assert_eq!(lib.nvmlDeviceGetCount_v2(&mut count), UNINITIALIZED);
        assert_eq!(lib.nvmlDeviceGetPowerUsage(h, &mut value), UNINITIALIZED);
        assert_eq!(lib.nvmlShutdown(), UNINITIALIZED);

        // Handles survive a re-init.
        assert_eq!(mock.raw_init(&lib), SUCCESS);
        assert_eq!(lib.nvmlDeviceGetPowerUsage(h, &mut value), SUCCESS);
        assert_eq!(value, 350000);
        assert_eq!(lib.nvmlShutdown(), SUCCESS);
    }
}

#[test]
fn nvml_wrapper_shutdown_and_drop() {
    let mock = Mock::new(&scenario(&[device("GPU-a", 1, "")]));
    let first = mock.init().unwrap();
    let second = mock.init().unwrap();
    first.shutdown().unwrap();
    assert_eq!(second.device_count().unwrap(), 1);
    drop(second);
    let lib = mock.raw();
    let mut count = 0;
    assert_eq!(
        unsafe { lib.nvmlDeviceGetCount_v2(&mut count) },
        UNINITIALIZED
    );
    // A fresh init after the last shutdown works again.
    mock.init().unwrap().shutdown().unwrap();
}
