//! The health series of what holds a GPU back and how its memory fares: memory clock and
//! temperature, the enforced power limit, remapped rows and row remapping state, and time
//! throttled per violation reason (docs/metrics.md, "Health and long-tail series").

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{counter_family, device_labels, gauge_family, labels_plus};
use crate::sample::{DeviceSample, VIOLATION_REASONS};

/// Encodes the families from the devices `live` yields (those that did not fail).
pub(super) fn encode<'a, I>(
    live: impl Fn() -> I,
    enc: &mut DescriptorEncoder,
) -> Result<(), fmt::Error>
where
    I: Iterator<Item = &'a DeviceSample>,
{
    gauge_family(
        enc,
        "gpu_memory_clock_hertz",
        "Current memory clock, in hertz.",
        live().filter_map(|d| Some((device_labels(d), d.health.memory_clock_hertz?))),
    )?;
    gauge_family(
        enc,
        "gpu_memory_temperature_celsius",
        "Device memory (HBM) temperature, in degrees Celsius.",
        live().filter_map(|d| Some((device_labels(d), d.health.memory_temperature_celsius?))),
    )?;
    gauge_family(
        enc,
        "gpu_power_limit_watts",
        "The power limit the driver enforces, in watts.",
        live().filter_map(|d| Some((device_labels(d), d.health.power_limit_watts?))),
    )?;
    counter_family(
        enc,
        "gpu_remapped_rows",
        "Device memory rows remapped to spare rows (a count the GPU keeps across resets and reboots), by the kind of error that caused it.",
        live().flat_map(|d| {
            d.health.remapped_rows.into_iter().flat_map(move |r| {
                [
                    ("correctable", r.correctable),
                    ("uncorrectable", r.uncorrectable),
                ]
                .map(|(t, v)| (labels_plus(d, "type", t.to_string()), v))
            })
        }),
    )?;
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    gauge_family(
        enc,
        "gpu_row_remap_pending",
        "1 while a row remap waits for the next GPU reset to take effect, else 0.",
        live().filter_map(|d| Some((device_labels(d), flag(d.health.remapped_rows?.pending)))),
    )?;
    gauge_family(
        enc,
        "gpu_row_remap_failed",
        "1 once a row remap has failed: the GPU could not repair a memory fault and needs service; else 0.",
        live().filter_map(|d| Some((device_labels(d), flag(d.health.remapped_rows?.failed)))),
    )?;
    counter_family(
        enc,
        "gpu_throttle_seconds",
        "Time the clocks were held below their target since the driver loaded, in seconds, by reason (NVML violation counters).",
        live().flat_map(|d| {
            VIOLATION_REASONS
                .iter()
                .zip(d.health.throttle_seconds)
                .filter_map(move |(r, s)| Some((labels_plus(d, "reason", r.to_string()), s?)))
        }),
    )
}
