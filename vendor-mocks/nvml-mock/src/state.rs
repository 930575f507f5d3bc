//! The library's global state: NVML's init refcount, the scenario file's path, the last good
//! scenario, and re-reading the file whenever it changes.
//!
//! Every call takes a snapshot (`Arc<Scenario>`) under the lock and answers from it after
//! releasing the lock, so a delayed call never blocks calls for other devices.
//!
//! Every reload and shutdown bumps a generation number and wakes the event waits
//! ([`crate::api::events::wake_waiters`]), so a wait sleeping in `nvmlEventSetWait_v2` sees
//! what any other call's re-read found at once, without polling the file itself.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::codes::{NvmlResult, DRIVER_NOT_LOADED, UNINITIALIZED, UNKNOWN};
use crate::scenario::Scenario;

/// The environment variable naming the scenario file, read by the first `nvmlInit`.
pub const SCENARIO_ENV: &str = "MOCK_NVML_SCENARIO";

/// How long after a write a file's timestamps are not trusted to tell versions apart.
///
/// Linux stamps files from a coarse clock (a few milliseconds), so two writes of the same size
/// close together can leave identical metadata. Like git's "racy clean" check, a file modified
/// this recently is read again on every call until its timestamp is safely in the past.
const RACY_WINDOW: Duration = Duration::from_secs(2);

struct State {
    refcount: u32,
    source: Option<Source>,
}

/// The scenario file and what was last read from it.
struct Source {
    path: PathBuf,
    /// The last scenario that parsed and validated.
    scenario: Arc<Scenario>,
    /// The text `scenario` was parsed from: a re-read that finds the same text (the file was
    /// touched, or is re-read while its timestamps are too fresh to trust) changes nothing.
    text: String,
    /// Metadata of the file version last read (good or bad); `None` forces a read.
    stamp: Option<Stamp>,
    /// The last complaint printed, so a broken file is reported once, not on every call.
    last_complaint: Option<String>,
}

/// What identifies one version of the file. The inode catches an atomic rename over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
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
    crate::api::events::wake_waiters();
}

fn lock() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One line on stderr, prefixed `nvml-mock:`.
pub(crate) fn complain(message: &str) {
    // Never panic on a closed stderr, as `eprintln!` would.
    let _ = writeln!(std::io::stderr(), "nvml-mock: {message}");
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
            let reloaded = source.refresh();
            let scenario = Arc::clone(&source.scenario);
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
    let source = Source::load(path)?;
    crate::watch::watch(&source.path);
    let scenario = Arc::clone(&source.scenario);
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
    let reloaded = source.refresh();
    let scenario = Arc::clone(&source.scenario);
    let generation = generation();
    drop(state);
    if reloaded {
        changed();
    }
    Ok((scenario, generation))
}

impl Source {
    fn load(path: PathBuf) -> NvmlResult<Self> {
        let (stamp, text) = match read(&path) {
            Ok(read) => read,
            Err(e) => {
                complain(&format!(
                    "cannot read scenario {} ({SCENARIO_ENV}): {e}; nvmlInit fails with DRIVER_NOT_LOADED",
                    path.display()
                ));
                return Err(DRIVER_NOT_LOADED);
            }
        };
        match Scenario::parse(&text) {
            Ok(scenario) => Ok(Self {
                path,
                scenario: {
                    crate::cost::set_costly(!scenario.costs.is_free());
                    Arc::new(scenario)
                },
                text,
                stamp: stamp.settled(),
                last_complaint: None,
            }),
            Err(e) => {
                complain(&format!(
                    "scenario {} is invalid; nvmlInit fails with UNKNOWN: {e}",
                    path.display()
                ));
                Err(UNKNOWN)
            }
        }
    }

    /// Re-reads the file if its metadata changed. A file that went missing or no longer
    /// parses leaves the last good scenario in place, with one message on stderr. True when
    /// a new scenario took effect (the generation was bumped: call [`changed`]).
    fn refresh(&mut self) -> bool {
        let stamp = match fs::metadata(&self.path) {
            Ok(meta) => Stamp::of(&meta),
            Err(e) => {
                self.complain_once(format!(
                    "cannot read scenario {} (keeping the last good one): {e}",
                    self.path.display()
                ));
                return false;
            }
        };
        if self.stamp == Some(stamp) {
            return false;
        }
        let mut reloaded = false;
        match read(&self.path) {
            Ok((stamp, text)) if text == self.text => {
                self.last_complaint = None;
                self.stamp = stamp.settled();
            }
            Ok((stamp, text)) => {
                match Scenario::parse(&text) {
                    Ok(scenario) => {
                        crate::cost::set_costly(!scenario.costs.is_free());
                        self.scenario = Arc::new(scenario);
                        self.text = text;
                        self.last_complaint = None;
                        GENERATION.fetch_add(1, Ordering::SeqCst);
                        reloaded = true;
                    }
                    Err(e) => self.complain_once(format!(
                        "scenario {} is invalid (keeping the last good one): {e}",
                        self.path.display()
                    )),
                }
                self.stamp = stamp.settled();
            }
            Err(e) => self.complain_once(format!(
                "cannot read scenario {} (keeping the last good one): {e}",
                self.path.display()
            )),
        }
        reloaded
    }

    fn complain_once(&mut self, message: String) {
        if self.last_complaint.as_ref() != Some(&message) {
            complain(&message);
            self.last_complaint = Some(message);
        }
    }
}

/// Reads the file with the metadata taken *before* reading: if a writer changes it while
/// we read, the next call sees a different stamp and reads again.
fn read(path: &Path) -> std::io::Result<(Stamp, String)> {
    let stamp = Stamp::of(&fs::metadata(path)?);
    let text = fs::read_to_string(path)?;
    Ok((stamp, text))
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The stamp to remember, or `None` while the file is too fresh for its timestamps to
    /// be trusted (see [`RACY_WINDOW`]).
    fn settled(self) -> Option<Self> {
        let secs = u64::try_from(self.mtime.0.max(self.ctime.0)).unwrap_or(0);
        let changed = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let age = SystemTime::now()
            .duration_since(changed)
            .unwrap_or(Duration::ZERO);
        // Whole seconds are enough here: one more second of re-reading costs nothing.
        (age > RACY_WINDOW).then_some(self)
    }
}
