//! The web config in force, reloaded when its file or any certificate, key or CA file it names
//! changes, and on SIGHUP, as exporter-toolkit re-reads it. A broken edit keeps the last good
//! config, and the log says why.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use super::config::WebConfigError;
use super::Web;
use crate::selfstats::{HttpStats, ReloadResult};

/// How often the files are checked for a change (one `stat` each).
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// What a file looked like: enough to see a rewrite, a rename over it, or a Kubernetes secret's
/// symlink swap. `None`: it could not be read.
type Stamp = Option<(SystemTime, u64, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino(), m.dev()))
}

/// The files of a config, each with its stamp.
type Fingerprint = Vec<(PathBuf, Stamp)>;

fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    files.iter().map(|f| (f.clone(), stamp(f))).collect()
}

/// The web config in force and where it came from.
#[derive(Debug)]
pub struct WebSource {
    path: PathBuf,
    current: RwLock<Arc<Web>>,
    /// The files as they were at the last load attempt, good or bad: a change from this calls
    /// for a reload, and a broken file is tried (and logged) once, not every poll.
    seen: Mutex<Fingerprint>,
    /// Where each reload attempt's result is counted.
    stats: Arc<HttpStats>,
}

impl WebSource {
    /// Loads the config at `path`.
    ///
    /// # Errors
    ///
    /// See [`Web::load`]: at startup a bad file is an error, not a warning.
    pub fn load(path: &Path, stats: Arc<HttpStats>) -> Result<WebSource, WebConfigError> {
        let seen = fingerprint(&[path.to_path_buf()]);
        let web = Web::load(path)?;
        let seen = fingerprint_of(&web, seen);
        Ok(WebSource {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(web)),
            seen: Mutex::new(seen),
            stats,
        })
    }

    /// The config in force now. Cheap: a pointer copy under a read lock.
    pub fn current(&self) -> Arc<Web> {
        let guard = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&guard)
    }

    /// Reloads if a file of the config in force (or of the last broken attempt) changed.
    /// Returns whether a new config is now in force.
    pub fn reload_if_changed(&self) -> bool {
        let files: Vec<PathBuf> = {
            let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.iter().map(|(f, _)| f.clone()).collect()
        };
        let now = fingerprint(&files);
        if *self.seen.lock().unwrap_or_else(PoisonError::into_inner) == now {
            return false;
        }
        self.reload("a file changed")
    }

    /// Loads the file again: on success the new config is in force for every new connection
    /// and request; on failure the last good one stays, and the log says why. A config that
    /// would drop a protection the one in force has (TLS, client certificates, basic auth) is
    /// refused the same way, logged as an error: lowering security takes a restart.
    pub fn reload(&self, why: &str) -> bool {
        // Stamped before reading, so a change made during the load is seen by the next poll.
        let before = fingerprint(std::slice::from_ref(&self.path));
        let web = match Web::load(&self.path) {
            Ok(web) => web,
            Err(e) => {
                self.keep_current(before, failed_file(&e));
                self.stats.reloaded(ReloadResult::Failed);
                tracing::warn!(error = %e, why, "web config not reloaded; keeping the last good one");
                return false;
            }
        };
        let dropped = self.current().protection.dropped_by(&web.protection);
        if !dropped.is_empty() {
            self.keep_current(before, None);
            self.stats.reloaded(ReloadResult::Refused);
            tracing::error!(
                path = %self.path.display(),
                why,
                would_remove = dropped.join(", "),
                "web config not reloaded: it would lower security; keeping the one in force (lowering security takes a restart)"
            );
            return false;
        }
        let seen = fingerprint_of(&web, before);
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = seen;
        self.stats.reloaded(ReloadResult::Applied);
        tracing::info!(path = %self.path.display(), why, "web config reloaded");
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(web);
        true
    }

    /// After a load that is not taken: watch what is in force and what failed (`extra`), so
    /// that fixing either retries, with the config file stamped as it was before the read.
    fn keep_current(&self, before: Fingerprint, extra: Option<PathBuf>) {
        let mut files: Vec<PathBuf> = self.current().files.clone();
        files.extend(extra);
        let mut seen = fingerprint(&files);
        if let Some(first) = seen.first_mut() {
            *first = before
                .into_iter()
                .next()
                .unwrap_or((self.path.clone(), None));
        }
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = seen;
    }
}

/// The stamps of `web`'s files, its config file's taken from `config` (stamped before it was
/// read).
fn fingerprint_of(web: &Web, config: Fingerprint) -> Fingerprint {
    let mut seen = config;
    seen.extend(fingerprint(web.files.get(1..).unwrap_or_default()));
    seen
}

/// The certificate or key file a failed load could not read, if that is why it failed.
fn failed_file(e: &WebConfigError) -> Option<PathBuf> {
    match e {
        WebConfigError::ReadFile { file, .. } => Some(file.clone()),
        _ => None,
    }
}

/// Reloads `source` when its files change (checked every `every`) and on SIGHUP, until the
/// runtime stops. With no web config, SIGHUP is only logged: it must not kill the agent.
pub async fn watch(source: Option<Arc<WebSource>>, every: Duration) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot install a SIGHUP handler; the web config reloads on change only");
            None
        }
    };
    // Without a web config there is nothing to poll: the task then only waits for SIGHUP
    // (a 1 s tick for nothing was a tenth of the agent's CPU on a quiet node).
    let mut tick = source.as_ref().map(|_| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        let hup = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        let due = async {
            match tick.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = due => {
                if let Some(source) = &source {
                    let source = Arc::clone(source);
                    // Stats and file reads: off the async workers.
                    let _ = tokio::task::spawn_blocking(move || source.reload_if_changed()).await;
                }
            }
            _ = hup => match &source {
                Some(source) => {
                    let source = Arc::clone(source);
                    let _ = tokio::task::spawn_blocking(move || source.reload("SIGHUP")).await;
                }
                None => tracing::info!("SIGHUP received; no --web.config.file to reload"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::testpki::{write, Pki};

    const TLS: &str = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";

    /// Rewrites a file so that its stamp surely changes, even within one mtime tick.
    fn rewrite(dir: &Path, name: &str, text: &str) {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }

    #[test]
    fn nothing_changed_nothing_reloaded() {
        let pki = Pki::new();
        let source = WebSource::load(&write(pki.path(), "web.yml", TLS), stats()).unwrap();
        let before = source.current();
        assert!(!source.reload_if_changed());
        assert!(Arc::ptr_eq(&before, &source.current()));
    }

    #[test]
    fn a_rotated_key_and_certificate_are_picked_up() {
        let pki = Pki::new();
        let source = WebSource::load(&write(pki.path(), "web.yml", TLS), stats()).unwrap();
        let before = source.current();
        let next = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        rewrite(pki.path(), "server.key", &next.signing_key.serialize_pem());
        rewrite(pki.path(), "server.pem", &next.cert.pem());
        assert!(source.reload_if_changed());
        assert!(!Arc::ptr_eq(&before, &source.current()));
        assert!(!source.reload_if_changed(), "reloaded twice for one change");
    }

    #[test]
    fn a_broken_edit_keeps_the_last_good_config_until_it_is_fixed() {
        let pki = Pki::new();
        let path = write(pki.path(), "web.yml", TLS);
        let source = WebSource::load(&path, stats()).unwrap();
        let good = source.current();
        rewrite(
            pki.path(),
            "web.yml",
            "tls_server_config:\n  cert_fil: typo.pem\n",
        );
        assert!(!source.reload_if_changed());
        assert!(Arc::ptr_eq(&good, &source.current()));
        // Tried once, not at every poll.
        assert!(!source.reload_if_changed());
        rewrite(
            pki.path(),
            "web.yml",
            &format!("{TLS}http_server_config:\n  headers:\n    X-Frame-Options: deny\n"),
        );
        assert!(source.reload_if_changed());
        assert_eq!(source.current().headers.len(), 1);
    }

    fn users() -> String {
        let hash = bcrypt::hash("pw", 4).unwrap();
        format!("basic_auth_users:\n  prometheus: {hash}\n")
    }
    const CLIENT_CERTS: &str =
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n";

    /// Loads `first`, rewrites the file to `next`, and says whether the reload was taken.
    fn reload_from_to(first: &str, next: &str) -> (bool, Arc<HttpStats>) {
        let pki = Pki::new();
        let stats = stats();
        let path = write(pki.path(), "web.yml", first);
        let source = WebSource::load(&path, Arc::clone(&stats)).unwrap();
        let before = source.current();
        rewrite(pki.path(), "web.yml", next);
        let taken = source.reload_if_changed();
        assert_eq!(taken, !Arc::ptr_eq(&before, &source.current()));
        // Refused once, not at every poll.
        assert!(!source.reload_if_changed());
        (taken, stats)
    }

    fn count(stats: &HttpStats, result: ReloadResult) -> u64 {
        stats
            .reloads()
            .into_iter()
            .find(|(r, _)| *r == result)
            .map_or(0, |(_, n)| n)
    }

    #[test]
    fn a_reload_that_would_lower_security_is_refused_and_counted() {
        let full = format!("{TLS}{CLIENT_CERTS}{}", users());
        for (what, next) in [
            ("an empty file", String::new()),
            ("the TLS block removed", users()),
            ("the users removed", format!("{TLS}{CLIENT_CERTS}")),
            (
                "client certificates no longer required",
                format!("{TLS}{}", users()),
            ),
            (
                "client certificates no longer verified",
                format!("{TLS}  client_auth_type: RequireAnyClientCert\n{}", users()),
            ),
        ] {
            let (taken, stats) = reload_from_to(&full, &next);
            assert!(!taken, "{what}: reloaded");
            assert_eq!(count(&stats, ReloadResult::Refused), 1, "{what}");
            assert_eq!(count(&stats, ReloadResult::Applied), 0, "{what}");
        }
    }

    #[test]
    fn a_reload_that_keeps_or_raises_security_is_taken() {
        for (what, first, next) in [
            ("TLS added", String::new(), TLS.to_string()),
            ("users added", TLS.to_string(), format!("{TLS}{}", users())),
            (
                "the user renamed and its password changed",
                format!("{TLS}{}", users()),
                format!("{TLS}{}", users().replace("prometheus:", "scraper:")),
            ),
            ("nothing to lower", String::new(), String::new() + "\n"),
        ] {
            let (taken, stats) = reload_from_to(&first, &next);
            assert!(taken, "{what}: refused");
            assert_eq!(count(&stats, ReloadResult::Applied), 1, "{what}");
        }
    }

    fn stats() -> Arc<HttpStats> {
        Arc::new(HttpStats::default())
    }

    #[test]
    fn a_missing_certificate_is_retried_when_it_appears() {
        let pki = Pki::new();
        let path = write(pki.path(), "web.yml", TLS);
        let source = WebSource::load(&path, stats()).unwrap();
        let cert = std::fs::read_to_string(pki.path().join("server.pem")).unwrap();
        rewrite(
            pki.path(),
            "web.yml",
            "tls_server_config:\n  cert_file: later.pem\n  key_file: server.key\n",
        );
        assert!(!source.reload_if_changed());
        rewrite(pki.path(), "later.pem", &cert);
        assert!(source.reload_if_changed());
    }
}
