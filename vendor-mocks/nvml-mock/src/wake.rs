//! Wake-ups for sleeping event waits: [`state`](crate::state) (a reload, a shutdown) and the
//! folder [`watch`](crate::watch) say here that the scenario may have changed, and the event
//! sets ([`crate::api::events`]) listen. It sits below all three, so neither the state nor the
//! watch calls up into the API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Every [`changed`] since the library loaded: a wait that took its snapshot before a
/// wake-up, and had not yet gone to sleep when it came, looks again instead of sleeping
/// through it (the folder watch bumps no reload generation: it never reads the file).
static WAKES: AtomicU64 = AtomicU64::new(0);

/// What wakes the waits, set by the event sets when the first one is created (before that,
/// there is no wait to wake).
static LISTENER: OnceLock<fn()> = OnceLock::new();

/// Says that the scenario or the init state may have changed: counts the wake-up, then wakes
/// every wait. Called with no lock held.
pub(crate) fn changed() {
    WAKES.fetch_add(1, Ordering::SeqCst);
    if let Some(wake) = LISTENER.get() {
        wake();
    }
}

/// The wake-ups so far ([`changed`]).
pub(crate) fn count() -> u64 {
    WAKES.load(Ordering::SeqCst)
}

/// Makes `wake` the one function [`changed`] calls; a later call changes nothing.
pub(crate) fn listen(wake: fn()) {
    let _ = LISTENER.set(wake);
}
