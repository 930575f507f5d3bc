//! XID events through nvml-wrapper's event sets: a wait times out, then delivers each event
//! once, `after_ms` after the device was registered; waiting blocks no other call; reloads,
//! injected errors and delays; the raw set lifecycle.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ptr::null_mut;
use std::time::{Duration, Instant};

use common::{device, scenario, thread_cpu, Mock};
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::event::EventSet;
use nvml_wrapper::{Device, Nvml};
use nvml_wrapper_sys::bindings::*;

fn node(xids: &str) -> String {
    scenario(&[
        device("GPU-xid", 1, &format!("    xid_events: {xids}\n")),
        device("GPU-quiet", 2, "    xid_events: []\n"),
        device("GPU-old", 3, ""),
    ])
}

fn register<'n>(d: &Device<'n>, set: EventSet<'n>) -> EventSet<'n> {
    d.register_events(EventTypes::CRITICAL_XID_ERROR, set)
        .map_err(|e| e.error)
        .unwrap()
}

/// The XID of a delivered event.
fn xid(r: Result<nvml_wrapper::struct_wrappers::event::EventData<'_>, NvmlError>) -> u64 {
    let data = r.unwrap();
    assert_eq!(data.event_type, EventTypes::CRITICAL_XID_ERROR);
    match data.event_data {
        Some(XidError::Value(v)) => v,
        other => panic!("{other:?}"),
    }
}

fn is_timeout<T>(r: Result<T, NvmlError>) -> bool {
    matches!(r, Err(NvmlError::Timeout))
}

#[test]
fn supported_types() {
    let mock = Mock::new(&node("[{xid: 79, after_ms: 0}]"));
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    assert_eq!(
        d.supported_event_types_strict().unwrap(),
        EventTypes::CRITICAL_XID_ERROR
    );
    let old = nvml.device_by_index(2).unwrap();
    assert!(matches!(
        old.supported_event_types(),
        Err(NvmlError::NotSupported)
    ));
    let set = nvml.create_event_set().unwrap();
    let err = old
        .register_events(EventTypes::CRITICAL_XID_ERROR, set)
        .unwrap_err();
    assert!(matches!(err.error, NvmlError::NotSupported));
    // A type the device does not support.
    let set = nvml.create_event_set().unwrap();
    let err = d
        .register_events(
            EventTypes::CRITICAL_XID_ERROR | EventTypes::PSTATE_CHANGE,
            set,
        )
        .unwrap_err();
    assert!(matches!(err.error, NvmlError::NotSupported));
}

#[test]
fn timeout_then_delivery_after_after_ms_exactly_once() {
    let mock = Mock::new(&node(
        "[{xid: 79, after_ms: 400}, {xid: 48, after_ms: 600}]",
    ));
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    let registered = Instant::now();
    let set = register(&d, nvml.create_event_set().unwrap());

    // Nothing due yet: the wait blocks for its timeout, then TIMEOUT.
    let start = Instant::now();
    assert!(is_timeout(set.wait(100)));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_millis(350),
        "{waited:?}"
    );

    // A long wait wakes as the first event falls due, not at its timeout.
    let data = set.wait(5000).unwrap();
    let at = registered.elapsed();
    assert!(
        at >= Duration::from_millis(400) && at < Duration::from_millis(1000),
        "{at:?}"
    );
    assert_eq!(data.device.uuid().unwrap(), "GPU-xid");
    assert_eq!(xid(Ok(data)), 79);
    assert_eq!(xid(set.wait(5000)), 48);
    assert!(registered.elapsed() >= Duration::from_millis(600));

    // Each only once.
    assert!(is_timeout(set.wait(200)));
    assert!(is_timeout(set.wait(0)));
}

#[test]
fn the_raw_event_data() {
    let mock = Mock::new(&node("[{xid: 999, after_ms: 0}, {xid: 13, after_ms: 0}]"));
    let nvml = mock.init().unwrap();
    let lib = nvml.lib();
    unsafe {
        let mut set = null_mut();
        assert_eq!(lib.nvmlEventSetCreate(&mut set), 0);
        let d = nvml.device_by_index(0).unwrap().handle();
        assert_eq!(
            lib.nvmlDeviceRegisterEvents(d, u64::from(nvmlEventTypeXidCriticalError), set),
            0
        );
        for want in [999, 13] {
            let mut data: nvmlEventData_t = std::mem::zeroed();
            assert_eq!(lib.nvmlEventSetWait_v2(set, &mut data, 0), 0);
            assert_eq!(data.device, d);
            assert_eq!(data.eventType, u64::from(nvmlEventTypeXidCriticalError));
            assert_eq!(data.eventData, want);
            assert_eq!(
                (data.gpuInstanceId, data.computeInstanceId),
                (u32::MAX, u32::MAX)
            );
        }
        let mut data: nvmlEventData_t = std::mem::zeroed();
        assert_eq!(
            lib.nvmlEventSetWait_v2(set, &mut data, 0),
            nvmlReturn_enum_NVML_ERROR_TIMEOUT
        );
        assert_eq!(
            lib.nvmlEventSetWait_v2(set, null_mut(), 0),
            nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT
        );
        assert_eq!(lib.nvmlEventSetFree(set), 0);
        // Freed, foreign and NULL sets are refused.
        for bad in [set, null_mut(), 0x1234usize as nvmlEventSet_t] {
            assert_eq!(
                lib.nvmlEventSetWait_v2(bad, &mut data, 0),
                nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT
            );
            assert_eq!(
                lib.nvmlEventSetFree(bad),
                nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT
            );
        }
        assert_eq!(
            lib.nvmlEventSetCreate(null_mut()),
            nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT
        );
    }
}

#[test]
fn a_wait_blocks_no_other_call() {
    let mock = Mock::new(&node("[{xid: 79, after_ms: 1000}]"));
    let nvml = mock.init().unwrap();
    let (d, quiet) = (
        nvml.device_by_index(0).unwrap(),
        nvml.device_by_index(1).unwrap(),
    );
    let set = register(&d, nvml.create_event_set().unwrap());

    std::thread::scope(|s| {
        // The set moves to the waiting thread (an `EventSet` is `Send`, not `Sync`).
        let waiter = s.spawn(move || xid(set.wait(3000)));
        std::thread::sleep(Duration::from_millis(100));
        let start = Instant::now();
        assert_eq!(d.utilization_rates().unwrap().gpu, 87);
        assert_eq!(nvml.device_count().unwrap(), 3);
        assert!(d.supported_event_types().is_ok());
        // Another set, another wait, at the same time.
        let other = register(&quiet, nvml.create_event_set().unwrap());
        assert!(is_timeout(other.wait(50)));
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
        assert!(!waiter.is_finished());
        assert_eq!(waiter.join().unwrap(), 79);
    });
}

#[test]
fn each_set_has_its_own_clock_and_events() {
    let mock = Mock::new(&node("[{xid: 79, after_ms: 200}]"));
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    let first = register(&d, nvml.create_event_set().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let second = register(&d, nvml.create_event_set().unwrap());
    // Registering again on the same set keeps its clock: the event is due on `first`
    // already, and on `second` 200 ms from now.
    let first = register(&d, first);

    assert_eq!(xid(first.wait(0)), 79);
    assert!(is_timeout(second.wait(0)));
    assert_eq!(xid(second.wait(1000)), 79);
    assert!(is_timeout(first.wait(0)) && is_timeout(second.wait(0)));
}

#[test]
fn a_reload_that_adds_events_delivers_them() {
    let mock = Mock::new(&node("[{xid: 79, after_ms: 0}]"));
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    let set = register(&d, nvml.create_event_set().unwrap());
    assert_eq!(xid(set.wait(1000)), 79);

    let set = std::thread::scope(|s| {
        let waiter = s.spawn(move || {
            let start = Instant::now();
            let got = xid(set.wait(5000));
            (set, got, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(200));
        // The same event again, a new one, and a second 79 at the same time: two new.
        mock.replace(&node(
            "[{xid: 79, after_ms: 0}, {xid: 31, after_ms: 0}, {xid: 79, after_ms: 0}]",
        ));
        // Any other call re-reads the file, and the re-read wakes the wait at once.
        assert_eq!(nvml.device_count().unwrap(), 3);
        let (set, got, took) = waiter.join().unwrap();
        assert_eq!(got, 31);
        // The wait started ~200 ms before the re-read; its own look at the file would come at 1 s.
        assert!(took < Duration::from_millis(800), "{took:?}");
        set
    });
    assert_eq!(xid(set.wait(1000)), 79);
    assert!(is_timeout(set.wait(100)));

    // Removing and reordering delivers nothing again.
    mock.replace(&node("[{xid: 31, after_ms: 0}, {xid: 79, after_ms: 0}]"));
    assert!(is_timeout(set.wait(100)));
}

/// With no other call to re-read the file, the folder watch (inotify) wakes the wait; without
/// one, the wait looks at the file itself at the latest `RELOAD_CHECK` (1 s) after it began to
/// sleep. Either way well before the 10 s timeout (the watched fallback is 60 s).
#[test]
fn a_reload_reaches_a_lone_wait() {
    let mock = Mock::new(&node("[]"));
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    let set = register(&d, nvml.create_event_set().unwrap());
    std::thread::scope(|s| {
        let waiter = s.spawn(move || {
            let start = Instant::now();
            (xid(set.wait(10_000)), start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(200));
        mock.replace(&node("[{xid: 31, after_ms: 0}]"));
        let (got, took) = waiter.join().unwrap();
        assert_eq!(got, 31);
        assert!(took < Duration::from_millis(3000), "{took:?}");
    });
}

/// A real driver's wait sleeps in the kernel; so does the mock's: no polling while nothing is
/// due (the 20 ms re-read of an earlier wait was most of an idle agent's CPU).
#[test]
fn an_idle_wait_uses_no_cpu() {
    let mock = Mock::new(&node("[{xid: 79, after_ms: 60000}]"));
    let nvml = mock.init().unwrap();
    let (d, quiet) = (
        nvml.device_by_index(0).unwrap(),
        nvml.device_by_index(1).unwrap(),
    );
    let set = register(&quiet, register(&d, nvml.create_event_set().unwrap()));
    let (cpu, took, timed_out) = std::thread::scope(|s| {
        s.spawn(move || {
            let cpu0 = thread_cpu();
            let start = Instant::now();
            let timed_out = is_timeout(set.wait(1000));
            (thread_cpu() - cpu0, start.elapsed(), timed_out)
        })
        .join()
        .unwrap()
    });
    assert!(timed_out);
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    assert!(
        cpu < Duration::from_millis(2),
        "{cpu:?} of CPU in a 1 s wait"
    );
}

#[test]
fn events_of_several_devices_come_in_due_order() {
    let mock = Mock::new(&scenario(&[
        device("GPU-a", 1, "    xid_events: [{xid: 2, after_ms: 300}]\n"),
        device("GPU-b", 2, "    xid_events: [{xid: 1, after_ms: 100}]\n"),
    ]));
    let nvml = mock.init().unwrap();
    let (a, b) = (
        nvml.device_by_index(0).unwrap(),
        nvml.device_by_index(1).unwrap(),
    );
    let set = register(&b, register(&a, nvml.create_event_set().unwrap()));
    let first = set.wait(2000).unwrap();
    assert_eq!(first.device.uuid().unwrap(), "GPU-b");
    assert_eq!(xid(Ok(first)), 1);
    let second = set.wait(2000).unwrap();
    assert_eq!(second.device.uuid().unwrap(), "GPU-a");
}

#[test]
fn injected_errors_and_delays() {
    let mock = Mock::new(&scenario(&[
        device(
            "GPU-lost",
            1,
            "    xid_events: [{xid: 79, after_ms: 0}]\n    errors: {events: GPU_IS_LOST}\n",
        ),
        device(
            "GPU-slow",
            2,
            "    xid_events: [{xid: 43, after_ms: 0}]\n    delays_ms: {events: 300}\n",
        ),
    ]));
    let nvml = mock.init().unwrap();
    let lost = nvml.device_by_index(0).unwrap();
    let err = lost
        .register_events(
            EventTypes::CRITICAL_XID_ERROR,
            nvml.create_event_set().unwrap(),
        )
        .unwrap_err();
    assert!(matches!(err.error, NvmlError::GpuLost));

    // The delay applies to registering and to every wait.
    let slow = nvml.device_by_index(1).unwrap();
    let start = Instant::now();
    let set = register(&slow, nvml.create_event_set().unwrap());
    assert!(start.elapsed() >= Duration::from_millis(300));
    let start = Instant::now();
    assert_eq!(xid(set.wait(0)), 43);
    assert!(start.elapsed() >= Duration::from_millis(300));

    // An error switched on while a device is registered: waits fail with it.
    mock.replace(&scenario(&[
        device("GPU-lost", 1, "    xid_events: []\n"),
        device(
            "GPU-slow",
            2,
            "    xid_events: [{xid: 43, after_ms: 0}]\n    errors: {events: GPU_IS_LOST}\n",
        ),
    ]));
    assert!(matches!(set.wait(100), Err(NvmlError::GpuLost)));
}

#[test]
fn a_device_that_leaves_is_skipped() {
    let mock = Mock::new(&node("[{xid: 79, after_ms: 100}]"));
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    let set = register(&d, nvml.create_event_set().unwrap());
    mock.replace(&scenario(&[]));
    assert!(is_timeout(set.wait(300)));
    mock.replace(&node("[{xid: 79, after_ms: 100}]"));
    assert_eq!(xid(set.wait(300)), 79);
}

#[test]
fn shutdown_ends_a_wait() {
    let mock = Mock::new(&node("[]"));
    let lib = mock.raw();
    assert_eq!(mock.raw_init(&lib), 0);
    let mut set = null_mut();
    unsafe {
        let mut d = null_mut();
        assert_eq!(lib.nvmlDeviceGetHandleByIndex_v2(0, &mut d), 0);
        assert_eq!(lib.nvmlEventSetCreate(&mut set), 0);
        assert_eq!(
            lib.nvmlDeviceRegisterEvents(d, u64::from(nvmlEventTypeXidCriticalError), set),
            0
        );
    }
    let set_addr = set as usize;
    std::thread::scope(|s| {
        let waiter = s.spawn(|| unsafe {
            let mut data: nvmlEventData_t = std::mem::zeroed();
            lib.nvmlEventSetWait_v2(set_addr as nvmlEventSet_t, &mut data, 10_000)
        });
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(unsafe { lib.nvmlShutdown() }, 0);
        assert_eq!(
            waiter.join().unwrap(),
            nvmlReturn_enum_NVML_ERROR_UNINITIALIZED
        );
    });
    // Freeing still works after shutdown, so nothing leaks.
    assert_eq!(unsafe { lib.nvmlEventSetFree(set) }, 0);
}

#[test]
fn free_while_waiting() {
    let mock = Mock::new(&node("[]"));
    let nvml: Nvml = mock.init().unwrap();
    let lib = nvml.lib();
    let d = nvml.device_by_index(0).unwrap();
    let mut set = null_mut();
    unsafe {
        assert_eq!(lib.nvmlEventSetCreate(&mut set), 0);
        assert_eq!(
            lib.nvmlDeviceRegisterEvents(d.handle(), u64::from(nvmlEventTypeXidCriticalError), set),
            0
        );
    }
    let set_addr = set as usize;
    std::thread::scope(|s| {
        let waiter = s.spawn(|| unsafe {
            let mut data: nvmlEventData_t = std::mem::zeroed();
            let start = Instant::now();
            let rc = lib.nvmlEventSetWait_v2(set_addr as nvmlEventSet_t, &mut data, 10_000);
            (rc, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(unsafe { lib.nvmlEventSetFree(set) }, 0);
        let (rc, took) = waiter.join().unwrap();
        assert_eq!(rc, nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT);
        assert!(took < Duration::from_millis(1000), "{took:?}");
    });
}
