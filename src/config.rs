//! The command line: what the user typed (`Flags`, clap) and what it resolves to (`Config`).
//!
//! Every flag also reads `GPU_POD_EXPORTER_<FLAG>` (upper case, `.` and `-` as `_`), as
//! README.md's flag table says. A bad value is one line naming the flag, and a non-zero exit.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

use crate::collect::nvidia::dcgm::{self, DcgmConfig};
use crate::paths::HostPaths;
use crate::timing::Timing;

/// The shortest collection interval accepted: NVML's utilization window is 1/6 s to 1 s, and
/// GPM needs two samples at least 100 ms apart.
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// The health tier's interval when `--collect.health-interval` is not given (README.md, flags); never
/// below the collection interval.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);

/// ROCm SMI is on by default where the binary has it.
const ROCM_SMI_DEFAULT: &str = if cfg!(feature = "rocm-smi") {
    "true"
} else {
    "false"
};

/// The flags, as typed (stage one).
#[derive(Debug, Parser)]
#[command(
    name = "gpu-pod-exporter",
    version,
    about = "Exports per-device and per-pod GPU metrics of a Kubernetes node for Prometheus"
)]
pub struct Flags {
    /// Address to serve /metrics on: `host:port`, or `:port` for every interface.
    #[arg(
        long = "web.listen-address",
        env = "GPU_POD_EXPORTER_WEB_LISTEN_ADDRESS",
        default_value = ":9445",
        value_name = "ADDRESS"
    )]
    pub listen_address: String,

    /// Path under which metrics are served.
    #[arg(
        long = "web.telemetry-path",
        env = "GPU_POD_EXPORTER_WEB_TELEMETRY_PATH",
        default_value = "/metrics",
        value_name = "PATH"
    )]
    pub telemetry_path: String,

    /// Web configuration file (TLS and basic auth), in exporter-toolkit's format.
    #[arg(
        long = "web.config.file",
        env = "GPU_POD_EXPORTER_WEB_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub web_config_file: Option<PathBuf>,

    /// The host's root filesystem; procfs, sysfs, pod logs and the kubelet socket are read under it.
    #[arg(
        long = "path.rootfs",
        env = "GPU_POD_EXPORTER_PATH_ROOTFS",
        default_value = "/",
        value_name = "DIR"
    )]
    pub rootfs: PathBuf,

    /// procfs mount point [default: <rootfs>/proc].
    #[arg(
        long = "path.procfs",
        env = "GPU_POD_EXPORTER_PATH_PROCFS",
        value_name = "DIR"
    )]
    pub procfs: Option<PathBuf>,

    /// sysfs mount point [default: <rootfs>/sys].
    #[arg(
        long = "path.sysfs",
        env = "GPU_POD_EXPORTER_PATH_SYSFS",
        value_name = "DIR"
    )]
    pub sysfs: Option<PathBuf>,

    /// The kubelet's pod-resources socket [default: <rootfs>/var/lib/kubelet/pod-resources/kubelet.sock].
    #[arg(
        long = "kubelet.pod-resources-socket",
        env = "GPU_POD_EXPORTER_KUBELET_POD_RESOURCES_SOCKET",
        value_name = "FILE"
    )]
    pub pod_resources_socket: Option<PathBuf>,

    /// The NVML library to load [default: the system's libnvidia-ml.so.1].
    #[arg(
        long = "nvml.library",
        env = "GPU_POD_EXPORTER_NVML_LIBRARY",
        value_name = "FILE"
    )]
    pub nvml_library: Option<PathBuf>,

    /// An nv-hostengine to read DCGM's profiling fields from, for the NVIDIA devices without
    /// GPM: host:port, a unix socket path, or `embedded` (an engine inside the agent) [default:
    /// off].
    #[arg(
        long = "dcgm.address",
        env = "GPU_POD_EXPORTER_DCGM_ADDRESS",
        value_name = "ADDRESS"
    )]
    pub dcgm_address: Option<String>,

    /// The DCGM library to load [default: the system's libdcgm.so.4].
    #[arg(
        long = "dcgm.library",
        env = "GPU_POD_EXPORTER_DCGM_LIBRARY",
        value_name = "FILE"
    )]
    pub dcgm_library: Option<PathBuf>,

    /// Which NVIDIA devices DCGM profiles: `without-gpm` (GPM serves the others), or `all`
    /// (DCGM's values in place of GPM's wherever DCGM has them: to compare the two, or to match
    /// dcgm-exporter's figures).
    #[arg(
        long = "dcgm.devices",
        env = "GPU_POD_EXPORTER_DCGM_DEVICES",
        default_value = "without-gpm",
        value_name = "WHICH",
        value_parser = dcgm::Devices::parse
    )]
    pub dcgm_devices: dcgm::Devices,

    /// How often devices and processes are sampled (e.g. 500ms, 5s, 1m).
    #[arg(long = "collect.interval", env = "GPU_POD_EXPORTER_COLLECT_INTERVAL", default_value = "5s", value_name = "DURATION", value_parser = parse_interval)]
    pub interval: Duration,

    /// How often slow counters and state are read: energy, ECC, PCIe, NVLink, encoder and
    /// decoder, memory clock and temperature, power limit, remapped rows, violation time. Never
    /// below --collect.interval [default: 30s, or --collect.interval if longer].
    #[arg(long = "collect.health-interval", env = "GPU_POD_EXPORTER_COLLECT_HEALTH_INTERVAL", value_name = "DURATION", value_parser = parse_interval)]
    pub health_interval: Option<Duration>,

    /// Enable the NVIDIA collector (NVML).
    #[arg(long = "collector.nvidia", env = "GPU_POD_EXPORTER_COLLECTOR_NVIDIA", action = ArgAction::Set, num_args = 0..=1, default_value = "true", default_missing_value = "true", value_name = "BOOL")]
    pub collector_nvidia: bool,

    /// Disable the NVIDIA collector.
    #[arg(long = "no-collector.nvidia", action = ArgAction::SetTrue)]
    pub no_collector_nvidia: bool,

    /// Enable the AMD collector (amdgpu sysfs, DRM fdinfo, KFD).
    #[arg(long = "collector.amd", env = "GPU_POD_EXPORTER_COLLECTOR_AMD", action = ArgAction::Set, num_args = 0..=1, default_value = "true", default_missing_value = "true", value_name = "BOOL")]
    pub collector_amd: bool,

    /// Disable the AMD collector.
    #[arg(long = "no-collector.amd", action = ArgAction::SetTrue)]
    pub no_collector_amd: bool,

    /// Use ROCm SMI as a second source for AMD devices (energy, ECC, PCIe replays, gauges
    /// sysfs lacks). Only in binaries built with the `rocm-smi` feature, where it is on by default.
    #[arg(long = "amd.rocm-smi", env = "GPU_POD_EXPORTER_AMD_ROCM_SMI", action = ArgAction::Set, num_args = 0..=1, default_value = ROCM_SMI_DEFAULT, default_missing_value = "true", value_name = "BOOL")]
    pub amd_rocm_smi: bool,

    /// Do not use ROCm SMI.
    #[arg(long = "no-amd.rocm-smi", action = ArgAction::SetTrue)]
    pub no_amd_rocm_smi: bool,

    /// Log level: error, warn, info, debug or trace (or a tracing filter directive).
    #[arg(
        long = "log.level",
        env = "GPU_POD_EXPORTER_LOG_LEVEL",
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub log_level: String,
}

/// Where to listen: one address, or every interface on a port (`:9445`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    AnyInterface(u16),
    Exact(SocketAddr),
}

/// The resolved settings (stage two): everything checked, nothing left to parse.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: ListenAddress,
    pub telemetry_path: String,
    pub web_config_file: Option<PathBuf>,
    pub paths: HostPaths,
    pub nvml_library: Option<PathBuf>,
    /// DCGM as a profiling source for NVIDIA devices without GPM; `None`: off.
    pub dcgm: Option<DcgmConfig>,
    pub interval: Duration,
    /// The health tier's interval: at least `interval`.
    pub health_interval: Duration,
    pub nvidia: bool,
    pub amd: bool,
    /// ROCm SMI as a second AMD source (only a `rocm-smi` build has it).
    pub rocm_smi: bool,
    pub log_level: String,
}

impl Config {
    /// Every span of time that follows from the two intervals.
    pub fn timing(&self) -> Timing {
        Timing::new(self.interval, self.health_interval)
    }
}

/// A flag whose value cannot be used; the message names the flag.
#[derive(Debug, thiserror::Error)]
#[error("invalid value {value:?} for --{flag}: {reason}")]
pub struct FlagError {
    pub flag: &'static str,
    pub value: String,
    pub reason: String,
}

impl Flags {
    /// Checks and resolves the flags.
    pub fn resolve(self) -> Result<Config, FlagError> {
        let listen = parse_listen_address(&self.listen_address).map_err(|reason| FlagError {
            flag: "web.listen-address",
            value: self.listen_address.clone(),
            reason,
        })?;
        if let Err(reason) = check_telemetry_path(&self.telemetry_path) {
            return Err(FlagError {
                flag: "web.telemetry-path",
                value: self.telemetry_path,
                reason,
            });
        }
        if let Some(file) = &self.web_config_file {
            let reason = match std::fs::metadata(file) {
                Ok(m) if m.is_dir() => Some("is a directory, not a file".to_string()),
                Ok(m) if !m.is_file() => {
                    Some("not a regular file (a device, FIFO or socket)".to_string())
                }
                Ok(m) if m.len() > crate::web::file::MAX_BYTES => Some(format!(
                    "larger than {} bytes: not a web config",
                    crate::web::file::MAX_BYTES
                )),
                Ok(_) => None,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("no such file".into()),
                Err(e) => Some(format!("cannot read it: {e}")),
            };
            if let Some(reason) = reason {
                return Err(FlagError {
                    flag: "web.config.file",
                    value: file.display().to_string(),
                    reason,
                });
            }
        }
        if !self.rootfs.is_dir() {
            return Err(FlagError {
                flag: "path.rootfs",
                value: self.rootfs.display().to_string(),
                reason: "not a directory".into(),
            });
        }
        if let Err(reason) = check_log_level(&self.log_level) {
            return Err(FlagError {
                flag: "log.level",
                value: self.log_level,
                reason,
            });
        }
        // Given explicitly (flag or environment), a health interval below the collection
        // interval is a mistake worth saying; the default simply follows a longer interval.
        let health_interval = match self.health_interval {
            Some(h) if h < self.interval => {
                return Err(FlagError {
                    flag: "collect.health-interval",
                    value: format!("{h:?}"),
                    reason: format!("must not be below --collect.interval ({:?})", self.interval),
                });
            }
            Some(h) => h,
            None => DEFAULT_HEALTH_INTERVAL.max(self.interval),
        };
        let dcgm = match &self.dcgm_address {
            None => None,
            Some(text) => Some(DcgmConfig {
                address: dcgm::Address::parse(text).map_err(|reason| FlagError {
                    flag: "dcgm.address",
                    value: text.clone(),
                    reason,
                })?,
                library: self
                    .dcgm_library
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(dcgm::SYSTEM_LIBRARY)),
                devices: self.dcgm_devices,
            }),
        };
        let paths = HostPaths::new(
            &self.rootfs,
            self.procfs.as_deref(),
            self.sysfs.as_deref(),
            self.pod_resources_socket.as_deref(),
        );
        if !paths.procfs.is_dir() {
            let (flag, value) = match &self.procfs {
                Some(p) => ("path.procfs", p.display().to_string()),
                None => ("path.rootfs", self.rootfs.display().to_string()),
            };
            return Err(FlagError {
                flag,
                value,
                reason: format!(
                    "{} is not a directory: no procfs there",
                    paths.procfs.display()
                ),
            });
        }
        Ok(Config {
            listen,
            telemetry_path: self.telemetry_path,
            web_config_file: self.web_config_file,
            paths,
            nvml_library: self.nvml_library,
            dcgm,
            interval: self.interval,
            health_interval,
            nvidia: self.collector_nvidia && !self.no_collector_nvidia,
            amd: self.collector_amd && !self.no_collector_amd,
            rocm_smi: self.amd_rocm_smi && !self.no_amd_rocm_smi,
            log_level: self.log_level,
        })
    }
}

/// The level names `--log.level` takes (case-insensitive), as tracing spells them.
const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace", "off"];

/// Checks `--log.level`: a level, or a tracing filter of comma-separated directives, each a
/// level or `target=level`. A bare word that is not a level is refused: tracing would take
/// `warning` as a target name and turn every other log line off.
/// The paths the server answers itself: the telemetry path may be none of them.
const RESERVED_PATHS: [&str; 3] = ["/", "/healthz", "/readyz"];

/// A telemetry path is a plain absolute path, matched exactly against a request's path: no
/// query, fragment, space, percent-escape, empty or dot segment (a request could never match
/// it), and none of the server's own endpoints (the metrics would then be served nowhere).
fn check_telemetry_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("must be an absolute path, starting with '/'".into());
    }
    if RESERVED_PATHS.contains(&path) {
        return Err(format!(
            "collides with the server's own endpoints ({})",
            RESERVED_PATHS.join(", ")
        ));
    }
    if let Some(c) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/-._~".contains(*c)))
    {
        return Err(format!(
            "{c:?} is not allowed: a plain path of letters, digits and - . _ ~ / only"
        ));
    }
    // A trailing '/' is a path of its own, matched as written.
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed
        .split('/')
        .skip(1)
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err("has an empty, '.' or '..' segment".into());
    }
    Ok(())
}

fn check_log_level(value: &str) -> Result<(), String> {
    let expected = || {
        format!(
            "expected one of {} (or tracing directives such as info,gpu_pod_exporter=debug)",
            LOG_LEVELS.join(", ")
        )
    };
    let is_level = |s: &str| LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(s.trim()));
    if value.trim().is_empty() {
        return Err(expected());
    }
    for directive in value.split(',') {
        let level = match directive.rsplit_once('=') {
            Some((_, level)) => level,
            None => directive,
        };
        if !is_level(level) {
            return Err(format!("{:?} is not a level; {}", level.trim(), expected()));
        }
    }
    tracing_subscriber::EnvFilter::try_new(value).map_err(|e| format!("{e}; {}", expected()))?;
    Ok(())
}

fn parse_listen_address(s: &str) -> Result<ListenAddress, String> {
    if let Some(port) = s.strip_prefix(':') {
        return port
            .parse::<u16>()
            .map(ListenAddress::AnyInterface)
            .map_err(|_| "expected host:port or :port".to_string());
    }
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| format!("expected host:port or :port ({e})"))?;
    addrs
        .next()
        .map(ListenAddress::Exact)
        .ok_or_else(|| "the host name resolves to no address".to_string())
}

/// Parses a Prometheus-style duration: `500ms`, `5s`, `1m`, `1m30s`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("{s:?} is not a duration such as 500ms, 5s or 1m");
    if s.is_empty() {
        return Err(err());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        if digits == 0 {
            return Err(err());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(err()),
        };
        total = total.saturating_add(unit);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// The longest interval accepted (10 minutes): Prometheus marks a series stale after 5 minutes
/// without a new sample, and the kubelet's view is kept for six intervals, so a longer interval
/// would serve stale pods. It also keeps every deadline computed from it representable.
pub const MAX_INTERVAL: Duration = Duration::from_secs(10 * 60);

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_INTERVAL {
        return Err(format!("must be at least {}ms", MIN_INTERVAL.as_millis()));
    }
    if d > MAX_INTERVAL {
        return Err(format!("must be at most {}m", MAX_INTERVAL.as_secs() / 60));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_prometheus_style() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "5", "s", "5x", "-1s", "1.5s", "5 s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_telemetry_path_is_a_plain_path_of_its_own() {
        for good in ["/metrics", "/gpu/metrics", "/metrics/", "/v1.0/m_x~y-z"] {
            assert_eq!(check_telemetry_path(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("metrics", "absolute"),
            ("/", "collides"),
            ("/healthz", "collides"),
            ("/readyz", "collides"),
            ("/m?x=1", "'?'"),
            ("/m#x", "'#'"),
            ("/a b", "' '"),
            ("/a%20b", "'%'"),
            ("/a//b", "segment"),
            ("/./metrics", "segment"),
            ("/x/../healthz", "segment"),
            ("/métriques", "'é'"),
        ] {
            let e = check_telemetry_path(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn interval_has_a_floor() {
        assert!(parse_interval("100ms").is_err());
        assert!(parse_interval("200ms").is_ok());
    }

    #[test]
    fn interval_has_a_ceiling_and_absurd_values_do_not_panic() {
        assert!(parse_interval("10m").is_ok());
        assert!(parse_interval("10m1s").is_err());
        assert!(parse_interval("1000000h").is_err());
        assert!(parse_interval("18446744073709551615s").is_err());
        assert!(parse_interval("99999999999999999999h").is_err());
        assert!(parse_interval("18446744073709551615h").is_err());
    }

    fn resolve(args: &[&str]) -> Result<Config, String> {
        let mut all = vec!["x"];
        all.extend_from_slice(args);
        Flags::try_parse_from(all)
            .map_err(|e| e.to_string())?
            .resolve()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn health_interval_defaults_to_30s_and_follows_a_longer_interval() {
        let c = resolve(&[]).unwrap();
        assert_eq!(c.health_interval, Duration::from_secs(30));
        let c = resolve(&["--collect.interval=1m"]).unwrap();
        assert_eq!(c.health_interval, Duration::from_secs(60));
        let c = resolve(&["--collect.interval=1s", "--collect.health-interval=2s"]).unwrap();
        assert_eq!(c.health_interval, Duration::from_secs(2));
        let c = resolve(&["--collect.interval=5s", "--collect.health-interval=5s"]).unwrap();
        assert_eq!(c.health_interval, Duration::from_secs(5));
    }

    #[test]
    fn health_interval_below_the_interval_is_refused_by_name() {
        let e = resolve(&["--collect.interval=10s", "--collect.health-interval=5s"]).unwrap_err();
        assert!(e.contains("--collect.health-interval"), "{e}");
        assert!(e.contains("--collect.interval"), "{e}");
        for bad in [
            "100ms",
            "fast",
            "",
            "-1s",
            "11m",
            "99999999999999999999999h",
        ] {
            let flag = format!("--collect.health-interval={bad}");
            let e = resolve(&[&flag]).unwrap_err();
            assert!(e.contains("collect.health-interval"), "{bad}: {e}");
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_address(":9445"),
            Ok(ListenAddress::AnyInterface(9445))
        );
        assert_eq!(
            parse_listen_address("127.0.0.1:1"),
            Ok(ListenAddress::Exact("127.0.0.1:1".parse().unwrap()))
        );
        assert!(parse_listen_address(":x").is_err());
        assert!(parse_listen_address("nohostport").is_err());
    }

    #[test]
    fn rocm_smi_is_on_by_default_only_where_the_binary_has_it() {
        let c = Flags::try_parse_from(["x"]).unwrap().resolve().unwrap();
        assert_eq!(c.rocm_smi, cfg!(feature = "rocm-smi"));
        let c = Flags::try_parse_from(["x", "--amd.rocm-smi"])
            .unwrap()
            .resolve()
            .unwrap();
        assert!(c.rocm_smi);
        let c = Flags::try_parse_from(["x", "--amd.rocm-smi", "--no-amd.rocm-smi"])
            .unwrap()
            .resolve()
            .unwrap();
        assert!(!c.rocm_smi);
        assert!(Flags::try_parse_from(["x", "--amd.rocm-smi=maybe"]).is_err());
    }

    #[test]
    fn collectors_can_be_disabled_either_way() {
        let f =
            Flags::try_parse_from(["x", "--no-collector.amd", "--collector.nvidia=false"]).unwrap();
        let c = f.resolve().unwrap();
        assert!(!c.amd && !c.nvidia);
        let c = Flags::try_parse_from(["x"]).unwrap().resolve().unwrap();
        assert!(c.amd && c.nvidia);
    }

    #[test]
    fn dcgm_is_off_unless_an_address_is_given() {
        let c = resolve(&[]).unwrap();
        assert_eq!(c.dcgm, None);
        let c = resolve(&["--dcgm.address=nvidia-dcgm.gpu-operator.svc:5555"]).unwrap();
        let d = c.dcgm.unwrap();
        assert_eq!(
            d.address,
            dcgm::Address::HostEngine("nvidia-dcgm.gpu-operator.svc:5555".into())
        );
        assert_eq!(d.library, PathBuf::from("libdcgm.so.4"));
        let c = resolve(&[
            "--dcgm.address=embedded",
            "--dcgm.library=/opt/dcgm/libdcgm.so.4",
        ])
        .unwrap();
        let d = c.dcgm.unwrap();
        assert_eq!(d.address, dcgm::Address::Embedded);
        assert_eq!(d.library, PathBuf::from("/opt/dcgm/libdcgm.so.4"));
        assert_eq!(d.devices, dcgm::Devices::WithoutGpm);
        let e = resolve(&["--dcgm.address=host:"]).unwrap_err();
        assert!(e.contains("--dcgm.address"), "{e}");
        let c = resolve(&["--dcgm.address=embedded", "--dcgm.devices=all"]).unwrap();
        assert_eq!(c.dcgm.unwrap().devices, dcgm::Devices::All);
        let e = resolve(&["--dcgm.devices=most"]).unwrap_err();
        assert!(e.contains("dcgm.devices"), "{e}");
    }

    /// Each bad value of a flag checked at resolve time, and a piece of the error it must give.
    #[test]
    fn bad_flags_fail_loudly() {
        let dir = std::env::temp_dir();
        let dir_flag = format!("--web.config.file={}", dir.display());
        let cases: &[(&[&str], &str)] = &[
            (&["--log.level=warning"], "\"warning\" is not a level"),
            (&["--log.level=verbose"], "is not a level"),
            (&["--log.level="], "expected one of error, warn"),
            (
                &["--log.level=info,gpu_pod_exporter=loud"],
                "\"loud\" is not a level",
            ),
            (&["--collect.interval=11m"], "at most 10m"),
            (&["--collect.interval=18446744073709551615s"], "at most 10m"),
            (&["--collect.interval=1000000h"], "at most 10m"),
            (&["--collect.health-interval=1h"], "at most 10m"),
            (&[dir_flag.as_str()], "is a directory"),
            (&["--web.config.file=/nonexistent/web.yml"], "no such file"),
        ];
        for (args, expected) in cases {
            let err = resolve(args).unwrap_err();
            assert!(err.contains(expected), "{args:?}: {err}");
        }
    }

    #[test]
    fn log_levels_and_directives_are_taken() {
        for good in [
            "info",
            "WARN",
            "error",
            "trace",
            "off",
            "info,gpu_pod_exporter=debug",
            "warn,hyper=off",
        ] {
            assert!(check_log_level(good).is_ok(), "{good}");
        }
    }
}
