//! The agent's own series: build info, collector health, driver call and attribution failures,
//! snapshot age, attribution time, HTTP connections and rejections, and the `process_*` figures.

use std::borrow::Cow;
use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{counter_family, gauge_family};
use crate::selfstats::HttpStats;
use crate::snapshot::Snapshot;

pub(super) fn encode(
    snap: &Snapshot,
    http: &HttpStats,
    enc: &mut DescriptorEncoder,
) -> Result<(), fmt::Error> {
    gauge_family(
        enc,
        "gpu_pod_exporter_build_info",
        "The agent's version; always 1.",
        [([("version", env!("CARGO_PKG_VERSION"))], 1.0)],
    )?;
    gauge_family(
        enc,
        "gpu_pod_exporter_collector_success",
        "1 when the collector's last cycle worked: library loaded, every device answered in time.",
        snap.collectors
            .iter()
            .map(|c| ([("collector", c.name)], if c.success { 1.0 } else { 0.0 })),
    )?;
    gauge_family(
        enc,
        "gpu_pod_exporter_collector_duration_seconds",
        "How long the collector's last cycle took, in seconds.",
        snap.collectors
            .iter()
            .map(|c| ([("collector", c.name)], c.duration_seconds)),
    )?;
    counter_family(
        enc,
        "gpu_pod_exporter_driver_call_errors",
        "Driver calls that failed, by collector, call family and driver error.",
        snap.call_errors.iter().map(|(c, e, n)| {
            (
                [
                    ("collector", Cow::Borrowed(*c)),
                    ("call", Cow::Borrowed(e.call)),
                    ("error", e.error.label()),
                ],
                *n as f64,
            )
        }),
    )?;
    counter_family(
        enc,
        "gpu_pod_exporter_attribution_failures",
        "GPU processes or kubelet allocations that could not be attributed to a pod, by reason.",
        snap.attribution_failures
            .iter()
            .map(|(f, n)| ([("reason", f.label())], *n as f64)),
    )?;
    if let Some(built) = snap.built_at {
        let none: [(&str, &str); 0] = [];
        gauge_family(
            enc,
            "gpu_pod_exporter_snapshot_age_seconds",
            "Seconds since the snapshot this scrape shows was built; it is rebuilt at every collector report, so a value well above the collection interval means the snapshot stage is stuck.",
            [(none, built.elapsed().as_secs_f64())],
        )?;
        gauge_family(
            enc,
            "gpu_pod_exporter_collect_interval_seconds",
            "The collection interval (--collect.interval), in seconds.",
            [(none, snap.interval.as_secs_f64())],
        )?;
    }
    if let Some(up) = snap.kubelet_up {
        let none: [(&str, &str); 0] = [];
        gauge_family(
            enc,
            "gpu_pod_exporter_kubelet_up",
            "1 when the kubelet's pod-resources API answered the agent's last poll, else 0 (no socket, refused, failing): without it, allocations (pod_gpu_allocated, idle allocated GPUs) are missing after about 6 intervals.",
            [(none, if up { 1.0 } else { 0.0 })],
        )?;
    }
    if let Some(seconds) = snap.attribution_seconds {
        let none: [(&str, &str); 0] = [];
        gauge_family(
            enc,
            "gpu_pod_exporter_attribution_duration_seconds",
            "How long the last attribution pass (processes and kubelet allocations to pods) took, in seconds.",
            [(none, seconds)],
        )?;
    }
    let none: [(&str, &str); 0] = [];
    gauge_family(
        enc,
        "gpu_pod_exporter_http_connections",
        "HTTP connections open now, this scrape's included.",
        [(none, http.open() as f64)],
    )?;
    counter_family(
        enc,
        "gpu_pod_exporter_http_rejected",
        "HTTP clients turned away, by reason: connection_limit and in_flight_limit (answered 503), password_checks (answered 429), header_timeout, tls_handshake and write_timeout (closed).",
        http.rejected()
            .into_iter()
            .map(|(r, n)| ([("reason", r.label())], n as f64)),
    )?;
    counter_family(
        enc,
        "gpu_pod_exporter_web_config_reloads",
        "Web config reload attempts, by result: applied; failed (a broken file: the last good config stays); refused (it would remove TLS, client certificates or basic auth: the config in force stays, and lowering security takes a restart).",
        http.reloads()
            .into_iter()
            .map(|(r, n)| ([("result", r.label())], n as f64)),
    )?;
    if let Some(p) = &snap.process {
        let none: [(&str, &str); 0] = [];
        counter_family(
            enc,
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            [(none, p.cpu_seconds)],
        )?;
        gauge_family(
            enc,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            [(none, p.resident_memory_bytes)],
        )?;
        gauge_family(
            enc,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            [(none, p.virtual_memory_bytes)],
        )?;
        gauge_family(
            enc,
            "process_open_fds",
            "Number of open file descriptors.",
            [(none, p.open_fds)],
        )?;
        gauge_family(
            enc,
            "process_threads",
            "Number of OS threads in the process.",
            [(none, p.threads)],
        )?;
        gauge_family(
            enc,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            [(none, p.start_time_seconds)],
        )?;
    }
    Ok(())
}
