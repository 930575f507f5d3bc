//! The basic-auth gate: checks `Authorization: Basic` against the configured bcrypt hashes,
//! with a small cache of verified credentials and one bcrypt run at a time.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use base64::Engine as _;

/// Verified credentials remembered so that a scrape every few seconds costs one hash lookup, not
/// one bcrypt run (tens of milliseconds at the usual cost). exporter-toolkit bounds its cache too.
const AUTH_CACHE_CAPACITY: usize = 100;

/// The users of one loaded web config and what checking them has learnt. A reloaded config
/// gets a new gate, so a changed password can never pass through the old one's cache.
pub struct BasicAuth {
    /// User name -> bcrypt hash, each checked to parse when the config was loaded.
    users: BTreeMap<String, String>,
    /// The hash with the highest bcrypt cost: an unknown user is checked against it, so that it
    /// costs as much as the slowest configured user and response time does not tell which user
    /// names exist.
    decoy: String,
    /// SHA-256 of (user, password) pairs that bcrypt accepted. Only successes are kept, so
    /// failed guesses can neither fill the cache nor evict the scraper's entry.
    verified: Mutex<HashSet<Vec<u8>>>,
    /// One bcrypt run at a time, as in exporter-toolkit: a flood of bad passwords costs one core,
    /// not all of them.
    bcrypt_gate: Mutex<()>,
}

impl fmt::Debug for BasicAuth {
    // Hand-written so that hashes never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// The gate for `users` (name -> bcrypt hash); `None` when there are none (auth is off).
    pub fn new(users: BTreeMap<String, String>) -> Option<BasicAuth> {
        let decoy = users
            .values()
            .max_by_key(|hash| {
                hash.parse::<bcrypt::HashParts>()
                    .map_or(0, |p| p.get_cost())
            })?
            .clone();
        Some(BasicAuth {
            users,
            decoy,
            verified: Mutex::new(HashSet::new()),
            bcrypt_gate: Mutex::new(()),
        })
    }

    /// True when the `Authorization: Basic` header matches a user.
    ///
    /// A cache miss runs bcrypt (tens of milliseconds at cost 10) on the calling thread; call it
    /// from `spawn_blocking` if that must not stall an async worker. Cache hits are cheap.
    pub fn authorized(&self, authorization: Option<&[u8]>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let key = cache_key(&user, &password);
        if lock(&self.verified).contains(&key) {
            return true;
        }
        let known = std::str::from_utf8(&user)
            .ok()
            .and_then(|user| self.users.get(user));
        let ok = match known {
            Some(hash) => self.bcrypt_verify(&password, hash),
            None => {
                // Unknown user: still pay for the slowest configured hash (see `decoy`).
                self.bcrypt_verify(&password, &self.decoy);
                false
            }
        };
        if ok {
            let mut verified = lock(&self.verified);
            if verified.len() >= AUTH_CACHE_CAPACITY {
                if let Some(old) = verified.iter().next().cloned() {
                    verified.remove(&old);
                }
            }
            verified.insert(key);
        }
        ok
    }

    fn bcrypt_verify(&self, password: &[u8], hash: &str) -> bool {
        let _gate = lock(&self.bcrypt_gate);
        matches!(bcrypt::verify(password, hash), Ok(true))
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
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
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
    /// wherever it sorts, so it takes as long as the slowest configured user (issue 15: it was
    /// the first user's hash, 2 ms against 317 ms).
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
        // The figures, printed (`--nocapture`), not asserted: wrong passwords are never cached.
        let auth = gate(&[("fast", "pw", 4), ("slow", "pw", 8)]);
        let time = |user: &str| {
            let start = std::time::Instant::now();
            assert!(!auth.authorized(Some(&basic(user, "wrong"))));
            start.elapsed()
        };
        println!(
            "wrong password, cost 4 user: {:?}; cost 8 user: {:?}; unknown user: {:?}",
            time("fast"),
            time("slow"),
            time("mallory")
        );
    }
}
