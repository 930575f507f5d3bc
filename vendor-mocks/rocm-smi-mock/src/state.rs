//! The library's global state: `rsmi_init`'s refcount, the scenario file, the last good
//! scenario, and re-reading the file whenever it changes (so a test can change values live).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::scenario::Scenario;
use crate::status::{Status, INIT_ERROR};

/// The environment variable naming the scenario file, read by the first `rsmi_init`.
pub const SCENARIO_ENV: &str = "MOCK_ROCM_SMI_SCENARIO";

/// A file changed this recently is re-read on every call: its timestamps cannot yet tell two
/// quick writes of the same size apart.
const RACY_WINDOW: Duration = Duration::from_secs(2);

struct State {
    refcount: u32,
    source: Option<Source>,
}

struct Source {
    path: PathBuf,
    scenario: Arc<Scenario>,
    stamp: Option<(u64, u64, i64, i64)>,
    last_complaint: Option<String>,
}

static STATE: Mutex<State> = Mutex::new(State {
    refcount: 0,
    source: None,
});

fn lock() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn complain(message: &str) {
    let _ = writeln!(std::io::stderr(), "rocm-smi-mock: {message}");
}

/// `rsmi_init`: the first one reads `MOCK_ROCM_SMI_SCENARIO`. No variable, an unreadable or
/// invalid file: `INIT_ERROR`, as the real library answers on a node without amdgpu/KFD.
pub fn init() -> Result<(), Status> {
    let mut state = lock();
    if state.refcount == 0 {
        let Some(path) = std::env::var_os(SCENARIO_ENV).filter(|p| !p.is_empty()) else {
            complain(&format!(
                "{SCENARIO_ENV} is not set; rsmi_init fails with INIT_ERROR"
            ));
            return Err(INIT_ERROR);
        };
        let path = std::path::absolute(&path).unwrap_or_else(|_| PathBuf::from(path));
        let mut source = Source {
            path,
            scenario: Arc::new(Scenario::default()),
            stamp: None,
            last_complaint: None,
        };
        let text = fs::read_to_string(&source.path).map_err(|e| {
            complain(&format!(
                "cannot read {}: {e}; rsmi_init fails with INIT_ERROR",
                source.path.display()
            ));
            INIT_ERROR
        })?;
        let scenario = Scenario::parse(&text).map_err(|e| {
            complain(&format!(
                "scenario {} is invalid; rsmi_init fails with INIT_ERROR: {e}",
                source.path.display()
            ));
            INIT_ERROR
        })?;
        source.scenario = Arc::new(scenario);
        source.stamp = stamp(&source.path);
        state.source = Some(source);
    } else if let Some(source) = state.source.as_mut() {
        source.refresh();
    }
    let injected = state.source.as_ref().and_then(|s| s.scenario.init_status);
    if let Some(status) = injected {
        if state.refcount == 0 {
            state.source = None;
        }
        return Err(status);
    }
    state.refcount = state.refcount.saturating_add(1);
    Ok(())
}

/// `rsmi_shut_down`: one reference less; the last one forgets the scenario.
pub fn shut_down() -> Result<(), Status> {
    let mut state = lock();
    if state.refcount == 0 {
        return Err(INIT_ERROR);
    }
    state.refcount -= 1;
    if state.refcount == 0 {
        state.source = None;
    }
    Ok(())
}

/// The current scenario, re-read first if the file changed; `INIT_ERROR` outside
/// `rsmi_init` .. `rsmi_shut_down`.
pub fn snapshot() -> Result<Arc<Scenario>, Status> {
    let mut state = lock();
    if state.refcount == 0 {
        return Err(INIT_ERROR);
    }
    let source = state.source.as_mut().ok_or(INIT_ERROR)?;
    source.refresh();
    Ok(Arc::clone(&source.scenario))
}

/// (inode, size, mtime) of the file, or `None` while it is too fresh to trust.
fn stamp(path: &std::path::Path) -> Option<(u64, u64, i64, i64)> {
    let m = fs::metadata(path).ok()?;
    let changed = SystemTime::UNIX_EPOCH
        + Duration::from_secs(u64::try_from(m.mtime().max(m.ctime())).unwrap_or(0));
    let age = SystemTime::now()
        .duration_since(changed)
        .unwrap_or(Duration::ZERO);
    (age > RACY_WINDOW).then_some((m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

impl Source {
    /// Re-reads a changed file; a missing or broken one keeps the last good scenario.
    fn refresh(&mut self) {
        if self.stamp.is_some() && self.stamp == stamp(&self.path) {
            return;
        }
        let before = stamp(&self.path);
        match fs::read_to_string(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|t| Scenario::parse(&t))
        {
            Ok(s) => {
                self.scenario = Arc::new(s);
                self.last_complaint = None;
            }
            Err(e) => {
                let message = format!(
                    "scenario {} unusable (keeping the last good one): {e}",
                    self.path.display()
                );
                if self.last_complaint.as_ref() != Some(&message) {
                    complain(&message);
                    self.last_complaint = Some(message);
                }
            }
        }
        self.stamp = before;
    }
}
