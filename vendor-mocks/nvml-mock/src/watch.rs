//! Watching the scenario file's folder with inotify, so that a changed file reaches a waiting
//! `nvmlEventSetWait_v2` at once while nothing else calls the library, without the wait
//! polling the file: an idle wait then costs nothing, as a real driver's sleeps in the kernel.
//!
//! One thread per process blocks in `read(2)` on one inotify descriptor and, on every event in
//! a watched folder, wakes the event waits, which look at the file themselves as every call
//! does. The thread never reads the file: a read of its own, running beside a caller that
//! rewrites the file in place, could catch it truncated (an empty file is a valid scenario
//! without devices). Where inotify is not available (or a watch cannot be added), the waits
//! fall back to looking at the file every second (`api::events`' `RELOAD_CHECK`).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The inotify descriptor, once the watching thread runs; `None` when inotify is unavailable.
static FD: OnceLock<Option<i32>> = OnceLock::new();
/// Whether every scenario file loaded so far is watched.
static ACTIVE: AtomicBool = AtomicBool::new(true);

/// What changes a file's content or replaces it: the end of a write, a rename onto it, its
/// creation or removal, a metadata change (`touch`).
const EVENTS: u32 =
    libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO | libc::IN_CREATE | libc::IN_DELETE | libc::IN_ATTRIB;

/// Watches the folder of the scenario file `path`. False when it is not watched (then
/// [`active`] is false from now on).
pub fn watch(path: &Path) -> bool {
    let watched = descriptor().is_some_and(|fd| {
        let dir = path.parent().unwrap_or(Path::new("."));
        CString::new(dir.as_os_str().as_bytes()).is_ok_and(|dir| {
            // SAFETY: a valid descriptor and a NUL-terminated path.
            unsafe { libc::inotify_add_watch(fd, dir.as_ptr(), EVENTS) >= 0 }
        })
    });
    if !watched {
        ACTIVE.store(false, Ordering::Relaxed);
    }
    watched
}

/// Whether changes to the scenario file are seen without polling.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed) && FD.get().is_some_and(Option::is_some)
}

/// The inotify descriptor, starting the watching thread the first time.
fn descriptor() -> Option<i32> {
    *FD.get_or_init(|| {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        let started = std::thread::Builder::new()
            .name("nvml-mock-watch".into())
            .spawn(move || run(fd))
            .is_ok();
        if !started {
            // SAFETY: our own descriptor, closed once.
            unsafe { libc::close(fd) };
            return None;
        }
        Some(fd)
    })
}

fn run(fd: i32) {
    // Room for many events at once; their content does not matter, only that one came.
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: the buffer is ours and as long as said.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            // The descriptor failed: the waits fall back to looking for themselves.
            ACTIVE.store(false, Ordering::Relaxed);
            return;
        }
        crate::wake::changed();
    }
}
