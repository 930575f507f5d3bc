//! A thread that answers a collector's requests one at a time, for work that may block (a
//! read of a GPU in reset): the collector asks at the start of a cycle and waits for the
//! answer no later than the cycle's deadline. A request still running at the deadline keeps the
//! worker busy; no other is sent until it answers, and its answer is taken when it comes.
//! Work that panics ends the thread (logged); the worker then reports itself dead, so that its
//! owner starts a new one instead of waiting for an answer that cannot come.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Instant;

/// A request/answer thread.
pub struct Worker<Req, Resp> {
    requests: Sender<Req>,
    answers: Receiver<Resp>,
    busy: bool,
    dead: bool,
}

impl<Req: Send + 'static, Resp: Send + 'static> Worker<Req, Resp> {
    /// Starts a thread named `name` that answers each request with `work`. It ends when the
    /// worker is dropped (after the request it is on, if any).
    pub fn spawn(
        name: String,
        mut work: impl FnMut(Req) -> Resp + Send + 'static,
    ) -> std::io::Result<Self> {
        let (requests, rx) = mpsc::channel::<Req>();
        let (tx, answers) = mpsc::channel::<Resp>();
        let thread = name.clone();
        std::thread::Builder::new().name(name).spawn(move || {
            while let Ok(req) = rx.recv() {
                let Ok(resp) = catch_unwind(AssertUnwindSafe(|| work(req))) else {
                    tracing::error!(thread = %thread, "a collection thread panicked; it will be started again");
                    break;
                };
                if tx.send(resp).is_err() {
                    break;
                }
            }
        })?;
        Ok(Worker {
            requests,
            answers,
            busy: false,
            dead: false,
        })
    }

    /// Whether a request is still unanswered.
    pub fn busy(&self) -> bool {
        self.busy
    }

    /// Whether the thread has ended (its work panicked): it answers nothing more.
    pub fn dead(&self) -> bool {
        self.dead
    }

    fn died(&mut self) {
        self.busy = false;
        self.dead = true;
    }

    /// An answer that came after the last deadline, if one has (waiting for none).
    pub fn late_answer(&mut self) -> Option<Resp> {
        self.wait(Instant::now())
    }

    /// Sends `req` unless a request is still running; whether it was sent.
    pub fn ask(&mut self, req: Req) -> bool {
        if self.busy || self.dead {
            return false;
        }
        if self.requests.send(req).is_err() {
            self.died();
            return false;
        }
        self.busy = true;
        true
    }

    /// The answer to the running request, waited for until `deadline`; `None` if it has not
    /// come by then (or nothing was asked).
    pub fn wait(&mut self, deadline: Instant) -> Option<Resp> {
        if !self.busy {
            return None;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.answers.recv_timeout(wait) {
            Ok(resp) => {
                self.busy = false;
                Some(resp)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.died();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_slow_answer_is_taken_late_and_blocks_no_new_request_meanwhile() {
        let mut w = Worker::spawn("test".into(), |ms: u64| {
            std::thread::sleep(Duration::from_millis(ms));
            ms
        })
        .unwrap();
        assert!(w.ask(0));
        assert_eq!(w.wait(Instant::now() + Duration::from_secs(10)), Some(0));
        assert!(!w.busy());

        assert!(w.ask(300));
        assert_eq!(w.wait(Instant::now() + Duration::from_millis(10)), None);
        assert!(w.busy());
        assert!(!w.ask(1), "no second request while one runs");
        let until = Instant::now() + Duration::from_secs(10);
        let mut late = None;
        while late.is_none() && Instant::now() < until {
            late = w.late_answer();
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(late, Some(300));
        assert!(w.ask(2));
        assert_eq!(w.wait(Instant::now() + Duration::from_secs(10)), Some(2));
        assert_eq!(w.wait(Instant::now()), None, "nothing asked");
    }

    #[test]
    fn work_that_panics_leaves_a_dead_worker_not_a_busy_one() {
        #[allow(clippy::panic)]
        let mut w = Worker::spawn("test-panic".into(), |fail: bool| {
            if fail {
                panic!("a bug");
            }
            1
        })
        .unwrap();
        assert!(w.ask(false));
        assert_eq!(w.wait(Instant::now() + Duration::from_secs(10)), Some(1));
        assert!(w.ask(true));
        assert_eq!(w.wait(Instant::now() + Duration::from_secs(10)), None);
        assert!(w.dead() && !w.busy());
        assert!(!w.ask(false));
    }
}
