//! The basic-auth gate: checks `Authorization: Basic` against the configured bcrypt hashes,
//! with a small cache of verified credentials (checked without bcrypt, so a scraper already
//! verified never waits behind password checks), one bcrypt run at a time, and every failure
//! padded to the time of the slowest configured hash, so that response time does not tell which
//! user names exist.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// Verified credentials remembered so that a scrape every few seconds costs one hash lookup, not
/// one bcrypt run (tens of milliseconds at the usual cost). exporter-toolkit bounds its cache too.
const AUTH_CACHE_CAPACITY: usize = 100;

/// The users of one loaded web config and what checking them has learnt. A reloaded config
/// gets a new gate, so a changed password can never pass through the old one's cache.
pub struct BasicAuth {
    /// User name -> bcrypt hash, each checked to parse when the config was loaded.
    users: BTreeMap<String, String>,
    /// The hash with the highest bcrypt cost: an unknown user is checked against it.
    decoy: String,
    /// SHA-256 of (user, password) pairs that bcrypt accepted. Only successes are kept, so
    /// failed guesses can neither fill the cache nor evict the scraper's entry.
    verified: Mutex<HashSet<Vec<u8>>>,
    /// One bcrypt run at a time, as in exporter-toolkit: a flood of bad passwords costs one core,
    /// not all of them.
    bcrypt_gate: Mutex<()>,
    /// How long the slowest hash takes to check here: what every failure is padded to.
    slowest: Arc<Slowest>,
}

/// How many recent checks of the costliest hash its time is taken over.
const SLOWEST_WINDOW: usize = 16;

/// The time one check of the costliest hash takes on this machine: the longest of its last
/// [`SLOWEST_WINDOW`] checks, the first measured on a thread of its own when the gate is built
/// (a failure before then waits for it). A window, not the longest ever: one check slowed by a
/// loaded machine must not slow every later failure for good.
#[derive(Debug, Default)]
struct Slowest {
    recent: Mutex<std::collections::VecDeque<Duration>>,
    measured: Condvar,
}

impl Slowest {
    fn note(&self, took: Duration) {
        let mut recent = lock(&self.recent);
        if recent.len() == SLOWEST_WINDOW {
            recent.pop_front();
        }
        recent.push_back(took);
        self.measured.notify_all();
    }

    /// The time, waiting for the first measurement if none has come.
    fn get(&self) -> Duration {
        let mut recent = lock(&self.recent);
        loop {
            if let Some(t) = recent.iter().max() {
                return *t;
            }
            recent = self
                .measured
                .wait(recent)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A bcrypt check of `password` against `hash`, and how long it took.
fn timed_verify(password: &[u8], hash: &str) -> (bool, Duration) {
    let start = Instant::now();
    let ok = matches!(bcrypt::verify(password, hash), Ok(true));
    (ok, start.elapsed())
}

impl fmt::Debug for BasicAuth {
    // Hand-written so that hashes never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

/// What the cache alone says of an `Authorization` header.
#[derive(Debug)]
pub enum Cached {
    /// These credentials were verified before: let in, no bcrypt.
    Verified,
    /// No header, another scheme, or not `user:password`: refused, no bcrypt (there is no user
    /// name whose existence timing could tell).
    Malformed,
    /// Credentials never verified: [`BasicAuth::verify`] runs bcrypt.
    Unverified(Candidate),
}

/// Credentials waiting for bcrypt.
pub struct Candidate {
    user: Vec<u8>,
    password: Vec<u8>,
    key: Vec<u8>,
}

impl fmt::Debug for Candidate {
    // Hand-written so that passwords never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Candidate").finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// The gate for `users` (name -> bcrypt hash); `None` when there are none (auth is off).
    /// Starts measuring the costliest hash on a thread of its own.
    pub fn new(users: BTreeMap<String, String>) -> Option<BasicAuth> {
        let decoy = users
            .values()
            .max_by_key(|hash| {
                hash.parse::<bcrypt::HashParts>()
                    .map_or(0, |p| p.get_cost())
            })?
            .clone();
        let slowest = Arc::new(Slowest::default());
        let (measure, hash) = (Arc::clone(&slowest), decoy.clone());
        let spawned = std::thread::Builder::new()
            .name("bcrypt-measure".into())
            .spawn(move || measure.note(timed_verify(b"", &hash).1));
        if spawned.is_err() {
            // No thread: measured here, once, rather than never.
            slowest.note(timed_verify(b"", &decoy).1);
        }
        Some(BasicAuth {
            users,
            decoy,
            verified: Mutex::new(HashSet::new()),
            bcrypt_gate: Mutex::new(()),
            slowest,
        })
    }

    /// What the cache says of the `Authorization` header, without bcrypt: cheap enough for an
    /// async worker.
    pub fn check_cached(&self, authorization: Option<&[u8]>) -> Cached {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Cached::Malformed;
        };
        let key = cache_key(&user, &password);
        if lock(&self.verified).contains(&key) {
            return Cached::Verified;
        }
        Cached::Unverified(Candidate {
            user,
            password,
            key,
        })
    }

    /// Checks credentials the cache does not know with bcrypt, one check at a time, and
    /// remembers them when they are right. A failure (a wrong password, or a user that does
    /// not exist, checked against the costliest hash) returns no sooner than the costliest
    /// hash takes to check, so both failures take the same time.
    ///
    /// Blocks for tens to hundreds of milliseconds: call it from `spawn_blocking`. `go_on` is
    /// asked when the check's turn comes: `false` (the agent is shutting down) drops it
    /// unchecked, and the answer is `None`.
    pub fn verify(&self, candidate: Candidate, go_on: impl Fn() -> bool) -> Option<bool> {
        let known = std::str::from_utf8(&candidate.user)
            .ok()
            .and_then(|user| self.users.get(user));
        let (ok, started) = {
            // Waited for in steps, asking `go_on` between them: a check queued behind others
            // is dropped at shutdown, not run.
            let _gate = loop {
                match self.bcrypt_gate.try_lock() {
                    Ok(g) => break g,
                    Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => {}
                }
                if !go_on() {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            if !go_on() {
                return None;
            }
            let started = Instant::now();
            let ok = match known {
                Some(hash) => timed_verify(&candidate.password, hash).0,
                None => {
                    let (_, took) = timed_verify(&candidate.password, &self.decoy);
                    self.slowest.note(took);
                    false
                }
            };
            (ok, started)
        };
        if ok {
            let mut verified = lock(&self.verified);
            if verified.len() >= AUTH_CACHE_CAPACITY {
                if let Some(old) = verified.iter().next().cloned() {
                    verified.remove(&old);
                }
            }
            verified.insert(candidate.key);
            return Some(true);
        }
        // Padded outside the gate: the next check need not wait for the sleep. Not while
        // shutting down (asked every 50 ms): the answer is then no answer, and timing tells
        // nothing.
        let until = started + self.slowest.get();
        loop {
            if !go_on() {
                return None;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Some(false);
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// True when the `Authorization: Basic` header matches a user: [`Self::check_cached`], then
    /// [`Self::verify`] (bcrypt, on the calling thread) where the cache does not know it.
    pub fn authorized(&self, authorization: Option<&[u8]>) -> bool {
        match self.check_cached(authorization) {
            Cached::Verified => true,
            Cached::Malformed => false,
            Cached::Unverified(candidate) => self.verify(candidate, || true) == Some(true),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded data stays consistent even if a holder panicked (a set insert, or nothing).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Splits an `Authorization: Basic <base64(user:password)>` header value, as Go's
/// `Request.BasicAuth` does: scheme case-insensitive, standard padded base64, split at the first
/// colon. Anything else is `None`.
fn parse_basic(header: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    const SCHEME: &[u8] = b"Basic ";
    let scheme = header.get(..SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(header.get(SCHEME.len()..)?)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let password = decoded.get(colon + 1..)?.to_vec();
    let mut user = decoded;
    user.truncate(colon);
    Some((user, password))
}

fn cache_key(user: &[u8], password: &[u8]) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    // Length-prefix the user so that ("ab", "c") and ("a", "bc") differ.
    ctx.update(&(user.len() as u64).to_le_bytes());
    ctx.update(user);
    ctx.update(password);
    ctx.finish().as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Vec<u8> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {token}").into_bytes()
    }

    /// A gate for (user, password, bcrypt cost) triples.
    fn gate(users: &[(&str, &str, u32)]) -> BasicAuth {
        let users = users
            .iter()
            .map(|(u, p, cost)| (u.to_string(), bcrypt::hash(p, *cost).unwrap()))
            .collect();
        BasicAuth::new(users).unwrap()
    }

    #[test]
    fn no_users_means_no_gate() {
        assert!(BasicAuth::new(BTreeMap::new()).is_none());
    }

    #[test]
    fn basic_auth() {
        let auth = gate(&[
            ("alice", "wonderland", 4),
            ("bob", "builder:with:colons", 4),
        ]);

        assert!(auth.authorized(Some(&basic("alice", "wonderland"))));
        // Only the first colon separates user from password.
        assert!(auth.authorized(Some(&basic("bob", "builder:with:colons"))));
        // The scheme is case-insensitive (RFC 7617).
        let lower = String::from_utf8(basic("alice", "wonderland")).unwrap();
        assert!(auth.authorized(Some(lower.replacen("Basic", "basic", 1).as_bytes())));

        let rejected: &[(&str, Option<Vec<u8>>)] = &[
            ("no header", None),
            ("wrong password", Some(basic("alice", "Wonderland"))),
            ("another user's password", Some(basic("bob", "wonderland"))),
            ("unknown user", Some(basic("mallory", "wonderland"))),
            ("empty credentials", Some(basic("", ""))),
            ("other scheme", Some(b"Bearer d29uZGVybGFuZA==".to_vec())),
            ("not base64", Some(b"Basic !!!".to_vec())),
            ("no colon", Some(b"Basic YWxpY2U=".to_vec())),
            ("scheme only", Some(b"Basic".to_vec())),
            ("empty", Some(Vec::new())),
        ];
        for (name, header) in rejected {
            assert!(!auth.authorized(header.as_deref()), "{name} was accepted");
        }
        // Two successes are cached; no failure is.
        assert_eq!(lock(&auth.verified).len(), 2);
    }

    #[test]
    fn auth_cache_stays_bounded() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let users = (0..AUTH_CACHE_CAPACITY + 20)
            .map(|i| (format!("user{i}"), hash.clone()))
            .collect();
        let auth = BasicAuth::new(users).unwrap();
        for i in 0..AUTH_CACHE_CAPACITY + 20 {
            assert!(auth.authorized(Some(&basic(&format!("user{i}"), "pw"))));
        }
        assert_eq!(lock(&auth.verified).len(), AUTH_CACHE_CAPACITY);
        // An evicted entry is simply verified again.
        assert!(auth.authorized(Some(&basic("user0", "pw"))));
    }

    /// An unknown user is checked against the costliest hash, whichever user holds it and
    /// wherever it sorts, so it takes as long as the slowest configured user (it once was the
    /// first user's hash: 2 ms against 317 ms).
    #[test]
    fn an_unknown_user_costs_the_slowest_configured_hash() {
        for order in [[("aaa", 4), ("zzz", 6)], [("aaa", 6), ("zzz", 4)]] {
            let auth = gate(&[
                (order[0].0, "pw", order[0].1),
                (order[1].0, "pw", order[1].1),
            ]);
            let slowest = order.iter().max_by_key(|(_, cost)| *cost).unwrap().0;
            assert_eq!(auth.decoy, auth.users[slowest], "{order:?}");
            assert_eq!(
                auth.decoy.parse::<bcrypt::HashParts>().unwrap().get_cost(),
                6
            );
            assert!(!auth.authorized(Some(&basic("mallory", "pw"))));
        }
        // Every failure is padded to the costliest hash's time, so a wrong password of a cheap
        // user takes as long as an unknown user (which the costliest hash checks). The figures
        // are printed (`--nocapture`); what is asserted is the padding itself.
        let auth = gate(&[("fast", "pw", 4), ("slow", "pw", 8)]);
        let time = |user: &str| {
            let floor = auth.slowest.get();
            let start = std::time::Instant::now();
            assert!(!auth.authorized(Some(&basic(user, "wrong"))));
            let took = start.elapsed();
            assert!(
                took >= floor,
                "{user}: {took:?} < the costliest hash's {floor:?}"
            );
            took
        };
        println!(
            "wrong password, cost 4 user: {:?}; cost 8 user: {:?}; unknown user: {:?}; the cost 8 hash: {:?}",
            time("fast"),
            time("slow"),
            time("mallory"),
            auth.slowest.get()
        );
    }

    #[test]
    fn verified_credentials_need_no_bcrypt() {
        let auth = gate(&[("alice", "pw", 4)]);
        let header = basic("alice", "pw");
        let Cached::Unverified(candidate) = auth.check_cached(Some(&header)) else {
            panic!("verified before any check");
        };
        assert_eq!(auth.verify(candidate, || true), Some(true));
        assert!(matches!(auth.check_cached(Some(&header)), Cached::Verified));
        assert!(matches!(
            auth.check_cached(Some(&basic("alice", "nope"))),
            Cached::Unverified(_)
        ));
        assert!(matches!(auth.check_cached(None), Cached::Malformed));
        assert!(matches!(
            auth.check_cached(Some(b"Bearer x")),
            Cached::Malformed
        ));
        // Dropped when its turn comes during shutdown: no bcrypt, no answer.
        let Cached::Unverified(candidate) = auth.check_cached(Some(&basic("alice", "x"))) else {
            panic!("a wrong password was cached");
        };
        assert_eq!(auth.verify(candidate, || false), None);
    }
}
