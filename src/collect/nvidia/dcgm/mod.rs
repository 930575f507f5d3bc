//! DCGM, the NVIDIA collector's second profiling source: DCGM's profiling fields (1001-1008)
//! for the devices and MIG GPU instances that have no GPM, read from an nv-hostengine (or one
//! embedded in the agent) on a thread of its own. The only module that knows DCGM exists.
//!
//! The coordinator asks at the start of each cycle with the targets of the last one (every
//! device without GPM); the thread connects (with the shared backoff), watches the fields on
//! the targets at the collection interval and reads them all with one call; the coordinator
//! takes the answer by the cycle's deadline and puts the values on the devices. A hung or
//! lost host engine never delays the cycle, NVML's sampling or readiness: the profiling series
//! of those devices are absent meanwhile, and come back with the engine.

mod discovery;
mod ffi;
mod library;
mod session;
mod status;

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use self::session::Session;
use self::status::Lost;
use crate::backoff::Backoff;
use crate::collect::worker::{calling, CycleWorker, Reply, Waited};
use crate::sample::{
    CallError, DeviceDown, DeviceSample, ErrorLabel, Profiling, ProfilingSource, ProfilingValues,
};
use crate::timing::Timing;

/// The library loaded when `--dcgm.library` is not given: DCGM 4's, as its packages install it.
pub const SYSTEM_LIBRARY: &str = "libdcgm.so.4";

/// Where DCGM is (`--dcgm.address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A host engine over TCP: `host:port`, or `host` for DCGM's default port 5555.
    HostEngine(String),
    /// A host engine on a unix socket (`nv-hostengine --domain-socket <path>`).
    UnixSocket(PathBuf),
    /// An engine started inside the agent (`dcgmStartEmbedded`).
    Embedded,
}

impl Address {
    /// `embedded`, a unix socket path (anything with a `/`), or `host[:port]`.
    pub fn parse(text: &str) -> Result<Address, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("expected host:port, a unix socket path or `embedded`".into());
        }
        if text == "embedded" {
            return Ok(Address::Embedded);
        }
        if text.contains('/') {
            return Ok(Address::UnixSocket(PathBuf::from(text)));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("a host:port has no spaces".into());
        }
        if let Some((host, port)) = text.rsplit_once(':') {
            // `[::1]:5555`, or a bare IPv6 address (no port) with colons inside.
            let bracketed = host.starts_with('[') && host.ends_with(']');
            let bad_port = host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0);
            if (bracketed || !host.contains(':')) && bad_port {
                return Err("expected host:port with a port in 1..65535".into());
            }
        }
        Ok(Address::HostEngine(text.to_string()))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::HostEngine(a) => f.write_str(a),
            Address::UnixSocket(p) => write!(f, "{}", p.display()),
            Address::Embedded => f.write_str("embedded"),
        }
    }
}

/// What DCGM is asked for (`--dcgm.address`, `--dcgm.library`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcgmConfig {
    pub address: Address,
    pub library: PathBuf,
    pub devices: Devices,
}

/// Which devices DCGM profiles (`--dcgm.devices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Devices {
    /// Those without GPM; GPM serves the others (the default).
    #[default]
    WithoutGpm,
    /// Every device DCGM can profile, its values in place of GPM's: to compare the two sources
    /// on one GPU (`scripts/gpu-dcgm-check.sh`), or to match dcgm-exporter's figures fleet-wide.
    All,
}

impl Devices {
    pub fn parse(text: &str) -> Result<Devices, String> {
        match text {
            "without-gpm" => Ok(Devices::WithoutGpm),
            "all" => Ok(Devices::All),
            _ => Err("expected without-gpm or all".into()),
        }
    }
}

/// A device DCGM profiles: a GPU by UUID, or a MIG GPU instance by its parent's UUID and its
/// NVML GPU instance id (as the agent's MIG devices are named).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Gpu(String),
    Instance { parent: String, gpu_instance: u32 },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Gpu(uuid) => f.write_str(uuid),
            Target::Instance {
                parent,
                gpu_instance,
            } => write!(f, "{parent} GPU instance {gpu_instance}"),
        }
    }
}

impl Target {
    /// The target a device sample stands for, if DCGM should profile it: a device (or MIG
    /// instance) without GPM that has not failed and whose UUID is known.
    fn of(d: &DeviceSample, devices: Devices) -> Option<Target> {
        let gpm = d
            .profiling
            .is_some_and(|p| p.source == ProfilingSource::Gpm);
        if (gpm && devices == Devices::WithoutGpm)
            || matches!(d.down, Some(DeviceDown::Failed(_)))
            || d.identity.uuid.is_empty()
        {
            return None;
        }
        Some(match &d.identity.mig {
            Some(mig) if !mig.parent_uuid.is_empty() => Target::Instance {
                parent: mig.parent_uuid.clone(),
                gpu_instance: mig.gpu_instance_id,
            },
            Some(_) => return None,
            None => Target::Gpu(d.identity.uuid.clone()),
        })
    }
}

/// One read: when, and each target's values.
#[derive(Debug, Clone, Default)]
struct Read {
    at: Option<Instant>,
    values: Vec<(Target, ProfilingValues)>,
}

/// The DCGM source, as the NVIDIA coordinator holds it.
pub(super) struct Dcgm {
    worker: CycleWorker<Vec<Target>, Read>,
    timing: Timing,
    /// The devices without GPM in the last cycle's samples: what the next ask profiles.
    targets: Vec<Target>,
    /// The last ask had targets: an empty list is sent once, so the thread drops its watch.
    watching: bool,
    devices: Devices,
    hang: Hang,
}

/// How often, at most, a DCGM call past its deadline is logged while it lasts.
const HANG_LOG_EVERY: Duration = Duration::from_secs(600);

/// A DCGM request running past the cycle's deadline: counted (`TIMEOUT`, under the call it is
/// blocked in) at each cycle that finds it running, logged at its start and then at most every
/// [`HANG_LOG_EVERY`], and once more when it returns.
#[derive(Debug, Default)]
struct Hang {
    /// When the ongoing hang was last logged (`None`: no hang, or not logged).
    logged_at: Option<Instant>,
}

impl Hang {
    fn hung(&mut self, call: Option<&'static str>, errors: &mut Vec<CallError>) {
        let call = call.unwrap_or("dcgm_values");
        errors.push(CallError::new(call, ErrorLabel::Timeout));
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= HANG_LOG_EVERY)
        {
            tracing::warn!(call, "a DCGM call has not returned by the cycle's deadline; DCGM's profiling series keep their last values for two intervals, then go, until it returns (logged again at most every 10 minutes)");
            self.logged_at = Some(Instant::now());
        }
    }

    fn answered(&mut self) {
        if self.logged_at.take().is_some() {
            tracing::info!("the hung DCGM call returned");
        }
    }
}

impl Dcgm {
    pub(super) fn new(config: DcgmConfig, timing: Timing) -> Dcgm {
        let devices = config.devices;
        let worker = CycleWorker::new("dcgm".into(), move || {
            let mut w = Worker::new(config.clone(), timing);
            move |targets: Vec<Target>| w.serve(&targets)
        });
        Dcgm {
            worker,
            timing,
            targets: Vec::new(),
            watching: false,
            devices,
            hang: Hang::default(),
        }
    }

    /// At a cycle's start: asks for the last cycle's targets (nothing when every device has
    /// GPM). A read still running from an earlier cycle is not asked again.
    pub(super) fn ask(&mut self, errors: &mut Vec<CallError>) {
        if !self.targets.is_empty() || self.watching || self.worker.busy() {
            self.worker.ask(self.targets.clone(), errors);
            self.watching = !self.targets.is_empty();
        }
    }

    /// After the devices answered: waits for the read until `deadline`, puts its values on
    /// the devices without GPM (every device DCGM has values for, with `Devices::All`), and
    /// notes those devices as the next ask's targets.
    pub(super) fn merge(
        &mut self,
        devices: &mut [DeviceSample],
        deadline: Instant,
        errors: &mut Vec<CallError>,
    ) {
        // What a request still running is blocked in (the thread says before each call).
        let in_call = self.worker.in_call();
        let read = match self.worker.wait(deadline, errors) {
            Waited::Fresh(read) => {
                self.hang.answered();
                Some(read)
            }
            // Still reading (a slow or hung host engine): the last read while it is recent.
            Waited::Late(last) => {
                self.hang.hung(in_call, errors);
                let recent = |r: &&Read| {
                    r.at.is_some_and(|at| at.elapsed() <= self.timing.dcgm_keep())
                };
                last.filter(recent)
            }
            Waited::Panicked(_) => {
                errors.push(CallError::new("dcgm_values", ErrorLabel::Panic));
                None
            }
            Waited::Idle(_) => None,
        };
        let mut targets = Vec::new();
        for d in devices.iter_mut() {
            let Some(target) = Target::of(d, self.devices) else {
                continue;
            };
            let values = read
                .and_then(|r| r.values.iter().find(|(t, _)| *t == target))
                .map(|(_, v)| *v)
                .filter(ProfilingValues::any);
            if let Some(values) = values {
                d.profiling = Some(Profiling {
                    source: ProfilingSource::Dcgm,
                    values,
                });
            }
            targets.push(target);
        }
        targets.sort();
        targets.dedup();
        self.targets = targets;
    }
}

/// The DCGM thread's state: the library, the connection, the reconnect backoff.
struct Worker {
    config: DcgmConfig,
    timing: Timing,
    api: Option<&'static library::Api>,
    /// `dcgmInit` succeeded.
    initialized: bool,
    session: Option<Session>,
    backoff: Backoff,
    next_attempt: Instant,
}

impl Worker {
    fn new(config: DcgmConfig, timing: Timing) -> Worker {
        Worker {
            config,
            timing,
            api: None,
            initialized: false,
            session: None,
            backoff: Backoff::new(),
            next_attempt: Instant::now(),
        }
    }

    fn serve(&mut self, targets: &[Target]) -> Reply<Read> {
        let mut errors = Vec::new();
        let mut read = Read::default();
        if targets.is_empty() && self.session.is_none() {
            return Reply {
                value: read,
                errors,
            };
        }
        if self.session.is_none() {
            calling("dcgm_connect");
            self.connect(&mut errors);
        }
        if let Some(session) = self.session.as_mut() {
            match session.cycle(targets, self.timing, &mut errors) {
                Ok(values) => {
                    read = Read {
                        at: Some(Instant::now()),
                        values,
                    };
                }
                Err(Lost) => {
                    tracing::warn!(address = %self.config.address, "lost the DCGM host engine; DCGM's profiling series are absent until it is back");
                    self.session = None;
                    self.backoff.succeeded();
                    self.next_attempt = Instant::now() + self.backoff.failed();
                }
            }
        }
        Reply {
            value: read,
            errors,
        }
    }

    /// Loads the library (once) and connects, when an attempt is due. The first failure of an
    /// outage is logged as a warning, the later ones at debug level; each is counted.
    fn connect(&mut self, errors: &mut Vec<CallError>) {
        let now = Instant::now();
        if now < self.next_attempt {
            return;
        }
        let result = self.api().and_then(|api| {
            // Connecting may wait for the engine; never past half an interval.
            let timeout = self.timing.dcgm_connect_timeout();
            Session::connect(api, &self.config.address, timeout).map_err(|s| (s, String::new()))
        });
        match result {
            Ok(session) => {
                tracing::info!(address = %self.config.address, after_failures = self.backoff.failures(), "DCGM connected");
                self.session = Some(session);
                self.backoff.succeeded();
            }
            Err((code, detail)) => {
                let error = status::label(code);
                if self.backoff.failures() == 0 {
                    tracing::warn!(address = %self.config.address, library = %self.config.library.display(), %error, detail, "cannot reach DCGM; DCGM's profiling series are absent, retrying with backoff");
                } else {
                    tracing::debug!(%error, failures = self.backoff.failures(), "DCGM connect failed again");
                }
                errors.push(CallError::new("dcgm_connect", error));
                self.next_attempt = now + self.backoff.failed();
            }
        }
    }

    /// The loaded and initialized library; the error is the status to count, with the
    /// loader's words. The library is loaded once (it is never unloaded); `dcgmInit` is
    /// retried until it succeeds.
    fn api(&mut self) -> Result<&'static library::Api, (ffi::DcgmReturn, String)> {
        let api = match self.api {
            Some(api) => api,
            None => {
                let api = library::Api::load(&self.config.library)
                    .map_err(|e| (e.status(), e.to_string()))?;
                *self.api.insert(api)
            }
        };
        if !self.initialized {
            // SAFETY: no arguments; DCGM requires it before any other call.
            let status = unsafe { (api.init)() };
            if status != ffi::ST_OK {
                return Err((status, "dcgmInit failed".into()));
            }
            self.initialized = true;
        }
        Ok(api)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{DeviceIdentity, MigIdentity};

    #[test]
    fn addresses() {
        assert_eq!(Address::parse("embedded"), Ok(Address::Embedded));
        assert_eq!(
            Address::parse("/run/dcgm/he.sock"),
            Ok(Address::UnixSocket("/run/dcgm/he.sock".into()))
        );
        for ok in [
            "nvidia-dcgm.gpu-operator.svc:5555",
            "10.0.0.1",
            "[::1]:5555",
            "::1",
            "h:1",
        ] {
            assert_eq!(
                Address::parse(ok),
                Ok(Address::HostEngine(ok.into())),
                "{ok}"
            );
        }
        for bad in ["", "  ", "host:", ":5555", "host:0", "host:99999", "a b:1"] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    fn device(
        uuid: &str,
        mig: Option<(&str, u32)>,
        profiling: Option<ProfilingSource>,
    ) -> DeviceSample {
        DeviceSample {
            identity: DeviceIdentity {
                uuid: uuid.into(),
                mig: mig.map(|(parent, gi)| MigIdentity {
                    parent_uuid: parent.into(),
                    gpu_instance_id: gi,
                    ..MigIdentity::default()
                }),
                ..DeviceIdentity::default()
            },
            profiling: profiling.map(|source| Profiling {
                source,
                values: ProfilingValues::default(),
            }),
            ..DeviceSample::default()
        }
    }

    impl Target {
        fn of_default(d: &DeviceSample) -> Option<Target> {
            Target::of(d, Devices::WithoutGpm)
        }
    }

    #[test]
    fn all_devices_when_asked() {
        let h100 = device("GPU-h", None, Some(ProfilingSource::Gpm));
        assert_eq!(
            Target::of(&h100, Devices::All),
            Some(Target::Gpu("GPU-h".into()))
        );
        assert_eq!(Devices::parse("all"), Ok(Devices::All));
        assert_eq!(Devices::parse("without-gpm"), Ok(Devices::WithoutGpm));
        assert!(Devices::parse("some").is_err());
    }

    #[test]
    fn targets_are_the_devices_without_gpm() {
        assert_eq!(
            Target::of_default(&device("GPU-a", None, None)),
            Some(Target::Gpu("GPU-a".into()))
        );
        assert_eq!(
            Target::of_default(&device("GPU-h", None, Some(ProfilingSource::Gpm))),
            None
        );
        assert_eq!(
            Target::of_default(&device("GPU-a", None, Some(ProfilingSource::Dcgm))),
            Some(Target::Gpu("GPU-a".into()))
        );
        assert_eq!(
            Target::of_default(&device("MIG-x", Some(("GPU-p", 3)), None)),
            Some(Target::Instance {
                parent: "GPU-p".into(),
                gpu_instance: 3
            })
        );
        assert_eq!(Target::of_default(&device("", None, None)), None);
        let mut lost = device("GPU-a", None, None);
        lost.down = Some(DeviceDown::Failed(ErrorLabel::Driver("GPU_IS_LOST")));
        assert_eq!(Target::of_default(&lost), None);
    }
}
