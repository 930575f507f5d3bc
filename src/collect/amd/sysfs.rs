//! amdgpu devices from sysfs: which `<sysfs>/class/drm/card<N>` are amdgpu GPUs, their
//! identity, and their gauges (`gpu_busy_percent`, `mem_info_vram_*`, hwmon power and
//! temperature, the shader clock).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::files::{self, Unreadable};
use crate::pci::PciAddress;
use crate::sample::{CallError, DeviceMetrics};

const CALL: &str = "sysfs";
const DRIVER: &str = "amdgpu";

/// One amdgpu card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// `N` of `card<N>`.
    pub number: u32,
    /// `<sysfs>/class/drm/card<N>/device`: the PCI device's folder.
    pub device: PathBuf,
    pub pci: PciAddress,
    /// The PCI address as the kernel spells it (`0000:19:00.0`).
    pub pci_bus_id: String,
}

/// The `N` of a DRM primary node's name, `card<N>`; `None` for render nodes (`renderD128`)
/// and connectors (`card0-DP-1`).
pub fn card_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("card")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The amdgpu cards under `<sysfs>/class/drm`, by card number. `Ok(empty)` where there is no
/// DRM class at all (a node without GPUs); `Err` when it cannot be listed.
pub fn list_cards(sysfs: &Path, errors: &mut Vec<CallError>) -> Result<Vec<Card>, Unreadable> {
    let class = sysfs.join("class/drm");
    let entries = match std::fs::read_dir(&class) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Unreadable::Io(files::io_error_label(&e))),
    };
    let mut cards = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(number) = name.to_str().and_then(card_number) else {
            continue;
        };
        let device = entry.path().join("device");
        // An unbound device has no `driver` link; another driver's is not ours.
        let driver = std::fs::read_link(device.join("driver")).ok();
        if driver.as_deref().and_then(Path::file_name) != Some(OsStr::new(DRIVER)) {
            continue;
        }
        match PciAddress::of_sysfs_device(&device) {
            Some((pci, pci_bus_id)) => cards.push(Card {
                number,
                device,
                pci,
                pci_bus_id,
            }),
            None => errors.push(Unreadable::Malformed.to_call_error(CALL)),
        }
    }
    cards.sort_by_key(|c| c.number);
    Ok(cards)
}

/// What is read once per device: its UUID and model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uuid: String,
    pub model: String,
    /// The model is a stand-in (`AMD GPU 0x74b9`): neither the board nor the id table named it.
    pub unnamed: bool,
}

/// The device's `unique_id` (a 64-bit serial, on Vega 20 and newer) as its UUID, else its PCI
/// address; `product_name` (from the board's FRU, on Instinct boards) as its model, else the
/// name of its PCI device id, else `AMD GPU 0x<id>`.
pub fn identity(card: &Card, errors: &mut Vec<CallError>) -> Identity {
    let mut gone = false;
    let non_empty = |s: &str| -> Result<Option<String>, Unreadable> {
        let s = s.trim();
        Ok((!s.is_empty()).then(|| s.to_string()))
    };
    let unique_id = files::value(
        &card.device.join("unique_id"),
        CALL,
        errors,
        &mut gone,
        non_empty,
    )
    .flatten();
    let product = files::value(
        &card.device.join("product_name"),
        CALL,
        errors,
        &mut gone,
        non_empty,
    )
    .flatten();
    let mut unnamed = false;
    let model = product.unwrap_or_else(|| {
        let id = files::value(&card.device.join("device"), CALL, errors, &mut gone, |s| {
            files::parse_u64(s).and_then(|v| u16::try_from(v).map_err(|_| Unreadable::OutOfRange))
        });
        let name = id.and_then(model_name);
        unnamed = name.is_none();
        match (name, id) {
            (Some(name), _) => name.to_string(),
            (None, Some(id)) => format!("AMD GPU 0x{id:04x}"),
            (None, None) => "AMD GPU".to_string(),
        }
    });
    Identity {
        uuid: unique_id.unwrap_or_else(|| card.pci_bus_id.clone()),
        model,
        unnamed,
    }
}

/// Marketing names of the data-centre and workstation GPUs by PCI device id (from the PCI ID
/// database, `pci.ids`); boards that carry a `product_name` do not need it.
pub fn model_name(device_id: u16) -> Option<&'static str> {
    Some(match device_id {
        0x738c | 0x738e => "AMD Instinct MI100",
        0x7408 => "AMD Instinct MI250X",
        0x740c => "AMD Instinct MI250X/MI250",
        0x740f => "AMD Instinct MI210",
        0x74a0 => "AMD Instinct MI300A",
        0x74a1 => "AMD Instinct MI300X",
        0x74a2 => "AMD Instinct MI308X",
        0x74a5 => "AMD Instinct MI325X",
        0x74a9 | 0x74bd => "AMD Instinct MI300X HF",
        0x74b5 => "AMD Instinct MI300X VF",
        0x7448 => "AMD Radeon PRO W7900",
        0x744c => "AMD Radeon RX 7900 XT/7900 XTX",
        0x7550 => "AMD Radeon RX 9070/9070 XT",
        _ => return None,
    })
}

/// The device's gauges this cycle, and whether it has gone (its files answer `ENODEV`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reading {
    pub metrics: DeviceMetrics,
    pub gone: bool,
}

/// Highest plausible readings; anything beyond is a driver glitch, counted and dropped.
const MAX_MICROWATTS: u64 = 10_000_000_000; // 10 kW
const MILLIDEGREES: (i64, i64) = (-273_000, 200_000);

pub fn read_metrics(card: &Card, errors: &mut Vec<CallError>) -> Reading {
    let d = &card.device;
    let mut gone = false;
    let mut m = DeviceMetrics {
        utilization_ratio: files::value(
            &d.join("gpu_busy_percent"),
            CALL,
            errors,
            &mut gone,
            percent,
        ),
        memory_bandwidth_utilization_ratio: files::value(
            &d.join("mem_busy_percent"),
            CALL,
            errors,
            &mut gone,
            percent,
        ),
        memory_used_bytes: files::value(
            &d.join("mem_info_vram_used"),
            CALL,
            errors,
            &mut gone,
            bytes,
        ),
        memory_total_bytes: files::value(
            &d.join("mem_info_vram_total"),
            CALL,
            errors,
            &mut gone,
            bytes,
        ),
        sm_clock_hertz: files::value(&d.join("pp_dpm_sclk"), CALL, errors, &mut gone, parse_sclk)
            .flatten(),
        ..DeviceMetrics::default()
    };
    if let Some(hwmon) = first_hwmon(d) {
        let microwatts = |s: &str| {
            let uw = files::parse_u64(s)?;
            if uw > MAX_MICROWATTS {
                return Err(Unreadable::OutOfRange);
            }
            Ok(uw as f64 / 1e6)
        };
        let millidegrees =
            |s: &str| Ok(files::parse_i64_in(s, MILLIDEGREES.0, MILLIDEGREES.1)? as f64 / 1000.0);
        // The average over the last second; newer ASICs (RDNA3, MI300) report only the
        // instantaneous `power1_input`.
        let power = [hwmon.join("power1_average"), hwmon.join("power1_input")];
        m.power_watts =
            files::first_value(&[&power[0], &power[1]], CALL, errors, &mut gone, microwatts);
        // The edge sensor; MI300 has none and reports the junction (hotspot) as temp2.
        let temp = [hwmon.join("temp1_input"), hwmon.join("temp2_input")];
        m.temperature_celsius =
            files::first_value(&[&temp[0], &temp[1]], CALL, errors, &mut gone, millidegrees);
    }
    Reading { metrics: m, gone }
}

/// The device's hwmon folder (`device/hwmon/hwmon<N>`; amdgpu registers one).
fn first_hwmon(device: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(device.join("hwmon"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("hwmon"))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.into_iter().next()
}

/// `gpu_busy_percent`, `mem_busy_percent`: an integer 0..=100, as a ratio.
pub fn percent(s: &str) -> Result<f64, Unreadable> {
    let v = files::parse_u64(s)?;
    if v > 100 {
        return Err(Unreadable::OutOfRange);
    }
    Ok(v as f64 / 100.0)
}

fn bytes(s: &str) -> Result<f64, Unreadable> {
    files::parse_u64(s).map(|v| v as f64)
}

/// The current level of `pp_dpm_sclk` (the line marked `*`), in Hz; `Ok(None)` when no level
/// is marked (the clock is between levels, or the GPU is asleep).
///
/// ```text
/// 0: 500Mhz
/// 1: 1420Mhz
/// 2: 2100Mhz *
/// ```
pub fn parse_sclk(text: &str) -> Result<Option<f64>, Unreadable> {
    let Some(line) = text.lines().find(|l| l.trim_end().ends_with('*')) else {
        return Ok(None);
    };
    let (_, value) = line.split_once(':').ok_or(Unreadable::Malformed)?;
    let value = value.trim().trim_end_matches('*').trim();
    let lower = value.to_ascii_lowercase();
    let mhz = lower.strip_suffix("mhz").ok_or(Unreadable::Malformed)?;
    let mhz: u64 = mhz.trim().parse().map_err(|_| Unreadable::Malformed)?;
    Ok(Some(mhz as f64 * 1e6))
}

/// The driver's version: the amdgpu module's `version` (DKMS builds from ROCm), else the
/// kernel's release (the in-tree driver is the kernel's).
pub fn driver_version(sysfs: &Path, procfs: &Path) -> String {
    [
        sysfs.join("module/amdgpu/version"),
        procfs.join("sys/kernel/osrelease"),
    ]
    .iter()
    .find_map(|p| {
        let s = std::fs::read_to_string(p).ok()?;
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_string())
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_nodes_only() {
        assert_eq!(card_number("card0"), Some(0));
        assert_eq!(card_number("card12"), Some(12));
        for not in [
            "card0-DP-1",
            "card1-HDMI-A-1",
            "renderD128",
            "card",
            "version",
            "cardX",
        ] {
            assert_eq!(card_number(not), None, "{not}");
        }
    }

    #[test]
    fn percents_and_absurd_values() {
        assert_eq!(percent("96\n"), Ok(0.96));
        assert_eq!(percent("0\n"), Ok(0.0));
        assert_eq!(percent("100\n"), Ok(1.0));
        assert_eq!(percent("250\n"), Err(Unreadable::OutOfRange));
        assert_eq!(percent("-5\n"), Err(Unreadable::OutOfRange));
        assert_eq!(percent("busy\n"), Err(Unreadable::Malformed));
    }

    #[test]
    fn shader_clock_levels() {
        // Navi 31 and MI300X as they print it; an asleep GPU marks the S level.
        assert_eq!(
            parse_sclk("0: 500Mhz\n1: 1420Mhz\n2: 2100Mhz *\n"),
            Ok(Some(2.1e9))
        );
        assert_eq!(parse_sclk("0: 500Mhz \n1: 800Mhz *\n"), Ok(Some(8e8)));
        assert_eq!(parse_sclk("S: 19Mhz *\n0: 500Mhz\n"), Ok(Some(1.9e7)));
        assert_eq!(parse_sclk("0: 500Mhz\n1: 2100Mhz\n"), Ok(None));
        assert_eq!(parse_sclk("0: fast *\n"), Err(Unreadable::Malformed));
    }

    #[test]
    fn model_names() {
        assert_eq!(model_name(0x74a1), Some("AMD Instinct MI300X"));
        assert_eq!(model_name(0x740f), Some("AMD Instinct MI210"));
        assert_eq!(model_name(0x1234), None);
    }
}
