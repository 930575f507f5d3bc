//! The cycle-bounded worker: a thread that answers a collector's requests one at a time, for
//! work that may block (an NVML call, a sysfs read of a GPU in reset). Every collector thread
//! that waits for a device or a pass (the NVIDIA per-device and health threads, the AMD card
//! readers, the AMD process pass, ROCm SMI) is one of these, so they share one shape and one
//! panic policy:
//!
//! - **A cycle**: [`CycleWorker::ask`] at its start, [`CycleWorker::wait`] until its deadline.
//!   A request still running at the deadline keeps the worker busy: no other is sent until it
//!   answers, and its answer is filed as the worker's last when it comes ([`CycleWorker::ask`]
//!   and [`CycleWorker::take_late`] take it), its failed calls counted then. A later cycle
//!   does not wait for it again: a hung read delays one cycle, not every one.
//! - **The last answer stands**: the worker keeps its last value, which a caller reports
//!   while the thread is late (a device down with its last values, the last pass's processes).
//! - **Panics**: work that panics is logged, that request's answer is [`Waited::Panicked`], and
//!   the thread ends. The next [`CycleWorker::ask`] starts a fresh thread with fresh state
//!   (the worker's `start` function builds it), so a bug in one read costs one answer, never a
//!   worker that waits forever. A thread that cannot be started is tried again at the next ask.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::sample::CallError;

/// What a worker's work gives for one request: its value and the calls that failed on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<T> {
    pub value: T,
    pub errors: Vec<CallError>,
}

/// The work a fresh thread runs: one reply per request.
pub type Work<Req, T> = Box<dyn FnMut(Req) -> Reply<T> + Send>;

/// Builds the work of a fresh thread (its state starts anew with it).
type Start<Req, T> = Box<dyn FnMut() -> Work<Req, T> + Send>;

/// What [`CycleWorker::ask`] did.
#[derive(Debug)]
pub enum Asked {
    /// The request was sent.
    Sent,
    /// A request is still running (asked in an earlier cycle): nothing was sent.
    Busy,
    /// There is no thread and none could be started (logged); tried again at the next ask.
    NoThread,
}

/// What [`CycleWorker::wait`] found by the deadline.
#[derive(Debug, PartialEq)]
pub enum Waited<'a, T> {
    /// This cycle's answer (also filed as the last).
    Fresh(&'a T),
    /// A request is still running: the last answer, if there is one.
    Late(Option<&'a T>),
    /// The work panicked (logged): the last answer, if there is one. The next ask starts a
    /// fresh thread.
    Panicked(Option<&'a T>),
    /// Nothing was asked (no thread): the last answer, if there is one.
    Idle(Option<&'a T>),
}

impl<'a, T> Waited<'a, T> {
    /// The fresh answer, or else the last one.
    pub fn value(&self) -> Option<&'a T> {
        match *self {
            Waited::Fresh(v) => Some(v),
            Waited::Late(v) | Waited::Panicked(v) | Waited::Idle(v) => v,
        }
    }
}

/// The work panicked: the thread's last message before it ends.
struct Panicked;

/// A running thread's ends of its two channels.
struct Thread<Req, T> {
    requests: Sender<Req>,
    answers: Receiver<Result<Reply<T>, Panicked>>,
}

/// The driver call a worker's thread is in now, as its work said through [`calling`]: what a
/// hung request is blocked in.
type InCall = Arc<Mutex<Option<&'static str>>>;

thread_local! {
    /// The marker of the worker this thread runs for (none on other threads).
    static IN_CALL: RefCell<Option<InCall>> = const { RefCell::new(None) };
}

/// Says, on a worker's thread, which driver call its work is about to make (`call`, the
/// `call` label), so that a request that hangs there can be reported by name
/// ([`CycleWorker::in_call`]). Cheap: an uncontended lock. A no-op on other threads.
pub fn calling(call: &'static str) {
    IN_CALL.with(|cell| {
        if let Some(marker) = cell.borrow().as_ref() {
            *marker.lock().unwrap_or_else(PoisonError::into_inner) = Some(call);
        }
    });
}

/// A request/answer thread bounded by the collection cycle, restarted when its work panics.
pub struct CycleWorker<Req, T> {
    name: String,
    start: Start<Req, T>,
    thread: Option<Thread<Req, T>>,
    busy: bool,
    /// The running request was sent by the last ask (not left over from an earlier cycle).
    asked_now: bool,
    last: Option<T>,
    in_call: InCall,
}

impl<Req: Send + 'static, T: Send + 'static> CycleWorker<Req, T> {
    /// A worker whose thread, named `name`, runs the work `start` builds. The thread is started
    /// at the first [`ask`](Self::ask) (and again after a panic); it ends when the worker is
    /// dropped, after the request it is on, if any.
    pub fn new<W>(name: String, mut start: impl FnMut() -> W + Send + 'static) -> Self
    where
        W: FnMut(Req) -> Reply<T> + Send + 'static,
    {
        CycleWorker {
            name,
            start: Box::new(move || Box::new(start()) as Work<Req, T>),
            thread: None,
            busy: false,
            asked_now: false,
            last: None,
            in_call: InCall::default(),
        }
    }

    /// The driver call the running request last said it was making ([`calling`]); `None` when
    /// no request runs or its work names no calls.
    pub fn in_call(&self) -> Option<&'static str> {
        if !self.busy {
            return None;
        }
        *self.in_call.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a request is still unanswered.
    pub fn busy(&self) -> bool {
        self.busy
    }

    /// The last answer, fresh or late.
    pub fn last(&self) -> Option<&T> {
        self.last.as_ref()
    }

    /// Starts the thread unless one runs; whether one does.
    fn ensure_thread(&mut self) -> bool {
        if self.thread.is_some() {
            return true;
        }
        let (requests, rx) = mpsc::channel::<Req>();
        let (tx, answers) = mpsc::channel();
        let mut work = (self.start)();
        let name = self.name.clone();
        let in_call = Arc::clone(&self.in_call);
        let spawned = std::thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || {
                IN_CALL.with(|cell| *cell.borrow_mut() = Some(Arc::clone(&in_call)));
                while let Ok(req) = rx.recv() {
                    *in_call.lock().unwrap_or_else(PoisonError::into_inner) = None;
                    let answer = catch_unwind(AssertUnwindSafe(|| work(req))).map_err(|_| {
                        tracing::error!(thread = %name, "a collection thread panicked; a fresh one starts at the next cycle");
                        Panicked
                    });
                    let panicked = answer.is_err();
                    if tx.send(answer).is_err() || panicked {
                        break;
                    }
                }
            });
        match spawned {
            Ok(_) => {
                self.thread = Some(Thread { requests, answers });
                true
            }
            Err(e) => {
                tracing::warn!(thread = %self.name, error = %e, "cannot start a collection thread; trying again next cycle");
                false
            }
        }
    }

    /// Files an answer: its errors into `errors`, its value as the last.
    fn file(&mut self, reply: Reply<T>, errors: &mut Vec<CallError>) {
        errors.extend(reply.errors);
        self.last = Some(reply.value);
    }

    /// The thread ended (its work panicked, or it could not be reached): none until the next ask.
    fn died(&mut self) {
        self.busy = false;
        self.thread = None;
    }

    /// Files an answer that came after the last deadline, if one has (waiting for none), and
    /// returns it.
    pub fn take_late(&mut self, errors: &mut Vec<CallError>) -> Option<&T> {
        if !self.busy {
            return None;
        }
        let thread = self.thread.as_ref()?;
        match thread.answers.try_recv() {
            Ok(Ok(reply)) => {
                self.busy = false;
                self.file(reply, errors);
                self.last.as_ref()
            }
            Ok(Err(Panicked)) | Err(mpsc::TryRecvError::Disconnected) => {
                self.died();
                None
            }
            Err(mpsc::TryRecvError::Empty) => None,
        }
    }

    /// At a cycle's start: files a late answer, starts a thread if there is none (the first
    /// ask, or the last one's work panicked), and sends `req` unless a request is still running.
    pub fn ask(&mut self, req: Req, errors: &mut Vec<CallError>) -> Asked {
        self.take_late(errors);
        if self.busy {
            return Asked::Busy;
        }
        if !self.ensure_thread() {
            return Asked::NoThread;
        }
        let sent = self
            .thread
            .as_ref()
            .is_some_and(|t| t.requests.send(req).is_ok());
        if !sent {
            // The thread ended after its last answer; the next ask starts another.
            self.died();
            return Asked::NoThread;
        }
        self.busy = true;
        self.asked_now = true;
        Asked::Sent
    }

    /// The answer to the running request, waited for until `deadline` if the last ask sent it
    /// (one left over from an earlier cycle is taken if it has come, not waited for again); its
    /// errors go into `errors`. Without one: the last answer, and why there is no fresh one.
    pub fn wait(&mut self, deadline: Instant, errors: &mut Vec<CallError>) -> Waited<'_, T> {
        let asked_now = std::mem::take(&mut self.asked_now);
        let Some(thread) = self.thread.as_ref().filter(|_| self.busy) else {
            return Waited::Idle(self.last.as_ref());
        };
        let wait = if asked_now {
            deadline.saturating_duration_since(Instant::now())
        } else {
            std::time::Duration::ZERO
        };
        match thread.answers.recv_timeout(wait) {
            Ok(Ok(reply)) => {
                self.busy = false;
                self.file(reply, errors);
                match self.last.as_ref() {
                    Some(v) => Waited::Fresh(v),
                    None => Waited::Idle(None),
                }
            }
            Err(RecvTimeoutError::Timeout) => Waited::Late(self.last.as_ref()),
            Ok(Err(Panicked)) | Err(RecvTimeoutError::Disconnected) => {
                self.died();
                Waited::Panicked(self.last.as_ref())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::ErrorLabel;
    use std::time::Duration;

    fn reply(v: u64) -> Reply<u64> {
        Reply {
            value: v,
            errors: vec![CallError::new("test", ErrorLabel::Timeout)],
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn a_slow_answer_is_taken_late_and_blocks_no_new_request_meanwhile() {
        let mut w = CycleWorker::new("test".into(), || {
            |ms: u64| {
                std::thread::sleep(Duration::from_millis(ms));
                reply(ms)
            }
        });
        let mut errors = Vec::new();
        assert_eq!(w.wait(soon(), &mut errors), Waited::Idle(None));
        assert!(matches!(w.ask(0, &mut errors), Asked::Sent));
        assert_eq!(w.wait(soon(), &mut errors), Waited::Fresh(&0));
        assert_eq!(errors.len(), 1);
        assert!(!w.busy());

        assert!(matches!(w.ask(300, &mut errors), Asked::Sent));
        let short = Instant::now() + Duration::from_millis(10);
        assert_eq!(w.wait(short, &mut errors), Waited::Late(Some(&0)));
        assert!(w.busy());
        assert!(
            matches!(w.ask(1, &mut errors), Asked::Busy),
            "no second request while one runs"
        );
        let until = soon();
        let mut late = None;
        while late.is_none() && Instant::now() < until {
            late = w.take_late(&mut errors).copied();
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(late, Some(300));
        assert_eq!(w.last(), Some(&300));
        assert_eq!(
            errors.len(),
            2,
            "the late answer's errors are counted when it is taken"
        );
        assert!(matches!(w.ask(2, &mut errors), Asked::Sent));
        assert_eq!(w.wait(soon(), &mut errors), Waited::Fresh(&2));
        assert_eq!(
            w.wait(soon(), &mut errors),
            Waited::Idle(Some(&2)),
            "nothing asked"
        );
    }

    #[test]
    fn a_hung_request_names_the_call_it_is_in() {
        let mut w = CycleWorker::new("test-in-call".into(), || {
            |ms: u64| {
                calling("memory");
                calling("utilization");
                std::thread::sleep(Duration::from_millis(ms));
                reply(ms)
            }
        });
        let mut errors = Vec::new();
        assert_eq!(w.in_call(), None);
        assert!(matches!(w.ask(300, &mut errors), Asked::Sent));
        let short = Instant::now() + Duration::from_millis(50);
        assert_eq!(w.wait(short, &mut errors), Waited::Late(None));
        assert_eq!(w.in_call(), Some("utilization"));
        assert_eq!(w.wait(soon(), &mut errors), Waited::Late(None));
        while w.busy() {
            w.take_late(&mut errors);
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(w.in_call(), None, "answered: in no call");
        // Off a worker's thread, saying so does nothing.
        calling("elsewhere");
    }

    #[test]
    fn work_that_panics_costs_one_answer_and_the_next_ask_starts_fresh_state() {
        // The state (a count of requests) lives in the thread's work: a fresh thread starts at 0.
        // A request answers only once `release` is set, so the second ask surely finds it busy.
        let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let released = Arc::clone(&release);
        let mut w = CycleWorker::new("test-panic".into(), move || {
            let mut seen = 0;
            let released = Arc::clone(&released);
            move |fail: bool| {
                seen += 1;
                if fail {
                    panic!("a bug");
                }
                while !released.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                reply(seen)
            }
        });
        let mut errors = Vec::new();
        assert!(matches!(w.ask(false, &mut errors), Asked::Sent));
        assert!(matches!(w.ask(false, &mut errors), Asked::Busy));
        release.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(w.wait(soon(), &mut errors), Waited::Fresh(&1));
        assert!(matches!(w.ask(true, &mut errors), Asked::Sent));
        assert_eq!(w.wait(soon(), &mut errors), Waited::Panicked(Some(&1)));
        assert!(!w.busy());
        assert!(matches!(w.ask(false, &mut errors), Asked::Sent));
        assert_eq!(
            w.wait(soon(), &mut errors),
            Waited::Fresh(&1),
            "a fresh thread, fresh state"
        );
    }

    #[test]
    fn a_late_panic_is_noticed_at_the_next_ask() {
        let mut w = CycleWorker::new("test-late-panic".into(), || {
            |ms: u64| {
                std::thread::sleep(Duration::from_millis(ms));
                if ms > 0 {
                    panic!("a bug");
                }
                reply(ms)
            }
        });
        let mut errors = Vec::new();
        assert!(matches!(w.ask(100, &mut errors), Asked::Sent));
        assert_eq!(w.wait(Instant::now(), &mut errors), Waited::Late(None));
        // Once the thread has panicked, the next ask starts a fresh one instead of waiting.
        let until = soon();
        while !matches!(w.ask(0, &mut errors), Asked::Sent) {
            assert!(
                Instant::now() < until,
                "the panicked thread was never noticed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(w.wait(soon(), &mut errors), Waited::Fresh(&0));
    }
}
