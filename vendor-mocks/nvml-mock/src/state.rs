//! The library's global state: NVML's init refcount, the scenario file's path, the last good
//! scenario, and re-reading the file whenever it changes.
//!
//! Every call takes a snapshot (`Arc<Scenario>`) under the lock and answers from it after
//! releasing the lock, so a delayed call never blocks calls for other devices.
//!
//! Every reload and shutdown bumps a generation number and wakes the event waits
//! ([`crate::wake::changed`]), so a wait sleeping in `nvmlEventSetWait_v2` sees
//! what any other call's re-read found at once, without polling the file itself.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::codes::{NvmlResult, DRIVER_NOT_LOADED, UNINITIALIZED, UNKNOWN};
use crate::scenario::file::{LoadError, ScenarioFile};
use crate::scenario::Scenario;

/// The environment variable naming the scenario file, read by the first `nvmlInit`.
pub const SCENARIO_ENV: &str = "MOCK_NVML_SCENARIO";

struct State {
    refcount: u32,
    source: Option<ScenarioFile>,
}

static STATE: Mutex<State> = Mutex::new(State {
    refcount: 0,
    source: None,
});

/// Bumped (under the state lock) on every reload that changed the scenario and on every
/// shutdown; see [`generation`].
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The number of scenario changes and shutdowns so far. A waiter that read it with its
/// snapshot ([`snapshot_with_generation`]) and still sees the same number under its own lock
/// cannot have missed the wake-up that follows a change.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// Tells the event waits that the scenario or the init state changed. Called with the state
/// lock released.
fn changed() {
    crate::wake::changed();
}

fn lock() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One line on stderr, prefixed `nvml-mock:`.
pub(crate) fn complain(message: &str) {
    crate::scenario::file::complain("nvml-mock", message);
}

/// First half of `nvmlInit`: on the first init, reads `MOCK_NVML_SCENARIO` and loads the file;
/// on later ones, picks up changes. The refcount is left alone; see [`commit_init`].
///
/// A missing variable or unreadable file is `DRIVER_NOT_LOADED` (so a test may create the file
/// later and the caller's retry succeeds); a file that does not parse is `UNKNOWN`.
pub fn load_for_init() -> NvmlResult<Arc<Scenario>> {
    let mut state = lock();
    if state.refcount > 0 {
        if let Some(source) = state.source.as_mut() {
            let reloaded = refresh(source);
            let scenario = Arc::clone(source.scenario());
            drop(state);
            if reloaded {
                changed();
            }
            return Ok(scenario);
        }
    }
    let Some(path) = std::env::var_os(SCENARIO_ENV).filter(|p| !p.is_empty()) else {
        complain(&format!(
            "{SCENARIO_ENV} is not set; nvmlInit fails with DRIVER_NOT_LOADED"
        ));
        return Err(DRIVER_NOT_LOADED);
    };
    let path = std::path::absolute(&path).unwrap_or_else(|_| PathBuf::from(path));
    let source = match ScenarioFile::load("nvml-mock", path.clone()) {
        Ok(source) => source,
        Err(LoadError::Unreadable(e)) => {
            complain(&format!(
                "cannot read scenario {} ({SCENARIO_ENV}): {e}; nvmlInit fails with DRIVER_NOT_LOADED",
                path.display()
            ));
            return Err(DRIVER_NOT_LOADED);
        }
        Err(LoadError::Invalid(e)) => {
            complain(&format!(
                "scenario {} is invalid; nvmlInit fails with UNKNOWN: {e}",
                path.display()
            ));
            return Err(UNKNOWN);
        }
    };
    crate::cost::set_costly(!source.scenario().costs.is_free());
    crate::watch::watch(source.path());
    let scenario = Arc::clone(source.scenario());
    state.source = Some(source);
    Ok(scenario)
}

/// Second half of a successful `nvmlInit`: one more reference.
pub fn commit_init() {
    let mut state = lock();
    state.refcount = state.refcount.saturating_add(1);
}

/// `nvmlShutdown`: one reference less; the last one forgets the scenario, so the next init
/// reads `MOCK_NVML_SCENARIO` afresh.
pub fn shutdown() -> NvmlResult {
    let mut state = lock();
    if state.refcount == 0 {
        return Err(UNINITIALIZED);
    }
    state.refcount -= 1;
    if state.refcount == 0 {
        state.source = None;
    }
    GENERATION.fetch_add(1, Ordering::SeqCst);
    drop(state);
    changed();
    Ok(())
}

/// The current scenario, re-read first if the file changed. `UNINITIALIZED` outside
/// `nvmlInit` .. `nvmlShutdown`.
pub fn snapshot() -> NvmlResult<Arc<Scenario>> {
    snapshot_with_generation().map(|(scenario, _)| scenario)
}

/// [`snapshot`], with the [`generation`] it belongs to.
pub fn snapshot_with_generation() -> NvmlResult<(Arc<Scenario>, u64)> {
    let mut state = lock();
    if state.refcount == 0 {
        return Err(UNINITIALIZED);
    }
    let source = state.source.as_mut().ok_or(UNINITIALIZED)?;
    let reloaded = refresh(source);
    let scenario = Arc::clone(source.scenario());
    let generation = generation();
    drop(state);
    if reloaded {
        changed();
    }
    Ok((scenario, generation))
}

/// Re-reads the file if it changed; a new scenario bumps the generation and sets what calls
/// cost. True when it did (call [`changed`] once the lock is released).
fn refresh(source: &mut ScenarioFile) -> bool {
    let reloaded = source.refresh();
    if reloaded {
        crate::cost::set_costly(!source.scenario().costs.is_free());
        GENERATION.fetch_add(1, Ordering::SeqCst);
    }
    reloaded
}
