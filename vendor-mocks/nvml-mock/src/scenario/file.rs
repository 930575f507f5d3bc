//! A scenario file as a library holds it: the last good scenario read from it, and re-reading
//! it whenever it changes. The mock NVML and the mock DCGM each hold one (their own copy of
//! this code, their own state), so both answer from the node the test describes.
//!
//! A file that went missing or no longer parses leaves the last good scenario in place, with
//! one message on stderr (not one per call).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Scenario, ScenarioError};

/// How long after a write a file's timestamps are not trusted to tell versions apart.
///
/// Linux stamps files from a coarse clock (a few milliseconds), so two writes of the same size
/// close together can leave identical metadata. Like git's "racy clean" check, a file modified
/// this recently is read again on every call until its timestamp is safely in the past.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Why the first read of a scenario file failed.
#[derive(Debug)]
pub enum LoadError {
    Unreadable(std::io::Error),
    Invalid(ScenarioError),
}

/// The scenario file and what was last read from it.
pub struct ScenarioFile {
    /// Who complains (`nvml-mock`, `dcgm-mock`): the prefix of its stderr lines.
    who: &'static str,
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

/// One line on stderr, prefixed `<who>:`. Never panics on a closed stderr, as `eprintln!`
/// would.
pub fn complain(who: &str, message: &str) {
    let _ = writeln!(std::io::stderr(), "{who}: {message}");
}

impl ScenarioFile {
    /// Reads and parses the file at `path`.
    pub fn load(who: &'static str, path: PathBuf) -> Result<Self, LoadError> {
        let (stamp, text) = read(&path).map_err(LoadError::Unreadable)?;
        let scenario = Scenario::parse(&text).map_err(LoadError::Invalid)?;
        Ok(Self {
            who,
            path,
            scenario: Arc::new(scenario),
            text,
            stamp: stamp.settled(),
            last_complaint: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The scenario in force.
    pub fn scenario(&self) -> &Arc<Scenario> {
        &self.scenario
    }

    /// Re-reads the file if its metadata changed. True when a new scenario took effect.
    pub fn refresh(&mut self) -> bool {
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
                        self.scenario = Arc::new(scenario);
                        self.text = text;
                        self.last_complaint = None;
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
            complain(self.who, &message);
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
