//! The physical GPUs seen since start, by UUID: one that leaves NVML's device list (fallen
//! off the bus, unbound) is still reported, `gpu_up 0` under its last identity, until it comes
//! back or the agent restarts, so that an alert on `gpu_up == 0` can fire for the commonest GPU
//! failure. MIG instances are not on the roster: a reconfiguration removes them for good.

use std::collections::{BTreeMap, BTreeSet};

use crate::sample::{CallError, DeviceDown, DeviceIdentity, DeviceSample, ErrorLabel, Vendor};

/// The GPUs seen, and those now missing (each logged once as it goes and as it comes back).
#[derive(Debug, Default)]
pub struct Roster {
    seen: BTreeMap<String, DeviceIdentity>,
    gone: BTreeSet<String>,
}

/// A physical GPU's sample (not a MIG instance).
fn physical(d: &DeviceSample) -> bool {
    d.identity.mig.is_none()
}

impl Roster {
    /// Notes this cycle's `devices` and completes them: a GPU seen before that is missing is
    /// added down (`DEVICE_GONE`, counted as a `count` error: NVML's device list left it out).
    /// A device still listed whose identity could not be read (a lost GPU behind a fresh
    /// handle) takes the identity last seen at its index. Returns whether every GPU seen is
    /// listed.
    pub fn complete(
        &mut self,
        devices: &mut Vec<DeviceSample>,
        errors: &mut Vec<CallError>,
    ) -> bool {
        for d in devices.iter().filter(|d| physical(d)) {
            let uuid = &d.identity.uuid;
            if uuid.is_empty() {
                continue;
            }
            if self.gone.remove(uuid) {
                tracing::info!(uuid = %uuid, gpu = %d.identity.gpu, "GPU is back in NVML's device list");
            }
            self.seen.insert(uuid.clone(), d.identity.clone());
        }
        let listed: BTreeSet<String> = devices
            .iter()
            .filter(|d| physical(d))
            .map(|d| d.identity.uuid.clone())
            .collect();
        let missing: Vec<DeviceIdentity> = self
            .seen
            .values()
            .filter(|id| !listed.contains(&id.uuid))
            .cloned()
            .collect();
        let mut all_listed = true;
        for id in missing {
            let unnamed = devices
                .iter_mut()
                .find(|d| physical(d) && d.identity.uuid.is_empty() && d.identity.gpu == id.gpu);
            if let Some(d) = unnamed {
                d.identity = id;
                continue;
            }
            all_listed = false;
            if self.gone.insert(id.uuid.clone()) {
                tracing::warn!(
                    uuid = %id.uuid,
                    gpu = %id.gpu,
                    model = %id.model,
                    "GPU left NVML's device list; reported gpu_up 0 until it returns or the agent restarts"
                );
            }
            errors.push(CallError::new("count", ErrorLabel::DeviceGone));
            devices.push(DeviceSample {
                vendor: Some(Vendor::Nvidia),
                identity: id,
                down: Some(DeviceDown::Failed(ErrorLabel::DeviceGone)),
                ..DeviceSample::default()
            });
        }
        all_listed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::MigIdentity;

    fn gpu(index: &str, uuid: &str) -> DeviceSample {
        DeviceSample {
            vendor: Some(Vendor::Nvidia),
            identity: DeviceIdentity {
                gpu: index.into(),
                uuid: uuid.into(),
                model: "NVIDIA A100".into(),
                ..DeviceIdentity::default()
            },
            ..DeviceSample::default()
        }
    }

    fn mig(index: &str, uuid: &str) -> DeviceSample {
        let mut d = gpu(index, uuid);
        d.identity.mig = Some(MigIdentity::default());
        d
    }

    #[test]
    fn a_gpu_that_leaves_the_list_stays_down_until_it_returns() {
        let mut roster = Roster::default();
        let mut errors = Vec::new();
        let mut devices = vec![gpu("0", "GPU-a"), gpu("1", "GPU-b")];
        assert!(roster.complete(&mut devices, &mut errors));
        assert_eq!(devices.len(), 2);

        // GPU-a falls off the bus: NVML lists GPU-b alone, now as index 0.
        for _ in 0..3 {
            let mut devices = vec![gpu("0", "GPU-b")];
            assert!(!roster.complete(&mut devices, &mut errors));
            assert_eq!(devices.len(), 2);
            let gone = &devices[1];
            assert_eq!(gone.identity.uuid, "GPU-a");
            assert_eq!(gone.identity.gpu, "0", "its last index");
            assert_eq!(gone.identity.model, "NVIDIA A100");
            assert_eq!(gone.down, Some(DeviceDown::Failed(ErrorLabel::DeviceGone)));
        }
        assert_eq!(errors.len(), 3, "counted every cycle it is missing");

        let mut devices = vec![gpu("0", "GPU-a"), gpu("1", "GPU-b")];
        assert!(roster.complete(&mut devices, &mut errors));
        assert_eq!(devices.len(), 2);
        assert!(devices.iter().all(DeviceSample::up));
    }

    #[test]
    fn mig_instances_that_go_are_not_down() {
        let mut roster = Roster::default();
        let mut errors = Vec::new();
        let mut devices = vec![gpu("0", "GPU-a"), mig("0:1", "MIG-1"), mig("0:2", "MIG-2")];
        assert!(roster.complete(&mut devices, &mut errors));
        let mut devices = vec![gpu("0", "GPU-a"), mig("0:3", "MIG-3")];
        assert!(roster.complete(&mut devices, &mut errors));
        assert_eq!(devices.len(), 2);
        assert!(errors.is_empty());
    }

    #[test]
    fn a_listed_gpu_without_a_name_takes_the_one_last_seen_at_its_index() {
        let mut roster = Roster::default();
        let mut errors = Vec::new();
        roster.complete(&mut vec![gpu("0", "GPU-a")], &mut errors);
        let mut lost = gpu("0", "");
        lost.down = Some(DeviceDown::Failed(ErrorLabel::Driver("GPU_IS_LOST")));
        let mut devices = vec![lost];
        assert!(roster.complete(&mut devices, &mut errors));
        assert_eq!(devices.len(), 1, "not reported twice");
        assert_eq!(devices[0].identity.uuid, "GPU-a");
        assert_eq!(
            devices[0].down,
            Some(DeviceDown::Failed(ErrorLabel::Driver("GPU_IS_LOST")))
        );
        assert!(errors.is_empty());
    }
}
