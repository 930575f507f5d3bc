//! One reader thread per amdgpu card, so that a card whose sysfs reads block (amdgpu holds
//! reads of a GPU in reset) holds up neither the other cards nor the cycle.
//!
//! Each cycle asks every idle reader for a fresh reading and waits until the cycle's deadline.
//! A reader that has not answered by then stays busy and gets no new request: its card is
//! reported with its last reading, timed out. Its answer, when it comes, becomes that last
//! reading at the next cycle (and its errors are counted then), before a new read is asked.
//! A reader whose thread cannot start is late too (counted `sysfs`/`NO_THREAD`): the cycle's
//! own thread never reads sysfs, whose reads may block.

use std::collections::HashMap;
use std::time::Instant;

use super::sysfs::{self, Card, Reading};
use crate::collect::worker::{Asked, CycleWorker, Reply, Waited};
use crate::pci::PciAddress;
use crate::sample::{CallError, ErrorLabel};

/// What a card's reader gave this cycle.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Read this cycle.
    Fresh(Reading),
    /// Still reading when the deadline passed (or its read panicked): the last reading, if
    /// there was one.
    Late(Option<Reading>),
}

/// The reader threads, by card.
#[derive(Default)]
pub struct CardReaders {
    readers: HashMap<PciAddress, CycleWorker<Card, Reading>>,
}

fn read_card(card: Card) -> Reply<Reading> {
    let mut errors = Vec::new();
    let value = sysfs::read_metrics(&card, &mut errors);
    Reply { value, errors }
}

impl CardReaders {
    /// Reads every card, each on its own thread, waiting for them until `deadline`.
    pub fn read(
        &mut self,
        cards: &[Card],
        deadline: Instant,
        errors: &mut Vec<CallError>,
    ) -> HashMap<PciAddress, Outcome> {
        let mut out = HashMap::new();
        for card in cards {
            let reader = self.readers.entry(card.pci).or_insert_with(|| {
                CycleWorker::new(format!("amd-card{}", card.number), || read_card)
            });
            if let Asked::NoThread = reader.ask(card.clone(), errors) {
                // Logged by the worker; the wait below finds nothing asked: late, with the
                // last reading.
                errors.push(CallError::new("sysfs", ErrorLabel::NoThread));
            }
        }
        for card in cards {
            let Some(reader) = self.readers.get_mut(&card.pci) else {
                continue;
            };
            // Every reader has the same deadline, so waiting for them in turn waits no longer.
            let outcome = match reader.wait(deadline, errors) {
                Waited::Fresh(reading) => Outcome::Fresh(reading.clone()),
                other => Outcome::Late(other.value().cloned()),
            };
            out.insert(card.pci, outcome);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn card(dir: &std::path::Path, number: u32, pci: &str) -> Card {
        let device = dir.join(format!("card{number}"));
        std::fs::create_dir_all(&device).unwrap();
        std::fs::write(device.join("gpu_busy_percent"), "40\n").unwrap();
        Card {
            number,
            device,
            pci: PciAddress::parse(pci).unwrap(),
            pci_bus_id: pci.to_string(),
        }
    }

    #[test]
    fn a_blocked_card_is_late_and_the_others_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let a = card(dir.path(), 0, "0000:19:00.0");
        let b = card(dir.path(), 1, "0000:1a:00.0");
        let mut readers = CardReaders::default();
        let mut errors = Vec::new();
        let soon = || Instant::now() + Duration::from_secs(5);
        let out = readers.read(&[a.clone(), b.clone()], soon(), &mut errors);
        let busy = |o: &Outcome| match o {
            Outcome::Fresh(r) => r.metrics.utilization_ratio,
            Outcome::Late(_) => None,
        };
        assert_eq!(busy(&out[&a.pci]), Some(0.4));
        assert_eq!(busy(&out[&b.pci]), Some(0.4));

        // Card b's attribute becomes a FIFO with no writer: opening it blocks.
        let fifo = b.device.join("gpu_busy_percent");
        std::fs::remove_file(&fifo).unwrap();
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        std::fs::write(a.device.join("gpu_busy_percent"), "70\n").unwrap();
        let t = Instant::now();
        let out = readers.read(
            &[a.clone(), b.clone()],
            Instant::now() + Duration::from_millis(200),
            &mut errors,
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(busy(&out[&a.pci]), Some(0.7));
        match &out[&b.pci] {
            Outcome::Late(Some(r)) => assert_eq!(r.metrics.utilization_ratio, Some(0.4)),
            other => panic!("{other:?}"),
        }

        // Unblock it: the late answer is taken at the next cycle.
        let held = dir.path().join("held");
        std::fs::hard_link(&fifo, &held).unwrap();
        std::fs::remove_file(&fifo).unwrap();
        std::fs::write(&fifo, "10\n").unwrap();
        std::fs::write(&held, "90\n").unwrap();
        // Cycles, until the reader has woken, answered, and read the file that replaced the
        // FIFO (a loaded machine may take a while to schedule it).
        let mut seen = None;
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            let out = readers.read(&[a.clone(), b.clone()], soon(), &mut errors);
            if let Outcome::Fresh(r) = &out[&b.pci] {
                seen = r.metrics.utilization_ratio;
                if seen == Some(0.1) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(seen, Some(0.1));
        assert!(errors.is_empty(), "{errors:?}");
    }
}
