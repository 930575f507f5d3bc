//! A thread that answers a collector's requests one at a time, for work that may block (a
//! read of a GPU in reset): the collector asks at the start of a cycle and waits for the
//! answer no later than the cycle's deadline. A request still running at the deadline keeps the
//! worker busy; no other is sent until it answers, and its answer is taken when it comes.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::Instant;

/// A request/answer thread.
pub struct Worker<Req, Resp> {
    requests: Sender<Req>,
    answers: Receiver<Resp>,
    busy: bool,
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
        std::thread::Builder::new().name(name).spawn(move || {
            while let Ok(req) = rx.recv() {
                if tx.send(work(req)).is_err() {
                    break;
                }
            }
        })?;
        Ok(Worker {
            requests,
            answers,
            busy: false,
        })
    }

    /// Whether a request is still unanswered.
    pub fn busy(&self) -> bool {
        self.busy
    }

    /// An answer that came after the last deadline, if one has.
    pub fn late_answer(&mut self) -> Option<Resp> {
        if !self.busy {
            return None;
        }
        match self.answers.try_recv() {
            Ok(resp) => {
                self.busy = false;
                Some(resp)
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
    }

    /// Sends `req` unless a request is still running; whether it was sent.
    pub fn ask(&mut self, req: Req) -> bool {
        if self.busy {
            return false;
        }
        self.busy = self.requests.send(req).is_ok();
        self.busy
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
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
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
}
