//! PCI addresses, as sysfs, NVML, KFD and the AMD device plugin write them: one type both the
//! collectors and attribution use to join a device to what else names it.

use std::ffi::OsStr;
use std::path::Path;

/// A PCI address, comparable whatever the domain's width (`0000:19:00.0` vs NVML's `00000000:19:00.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl PciAddress {
    pub fn parse(s: &str) -> Option<PciAddress> {
        let (domain, rest) = s.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let (device, function) = rest.split_once('.')?;
        Some(PciAddress {
            domain: u32::from_str_radix(domain, 16).ok()?,
            bus: u8::from_str_radix(bus, 16).ok()?,
            device: u8::from_str_radix(device, 16).ok()?,
            function: u8::from_str_radix(function, 16).ok()?,
        })
    }

    /// The address of a sysfs device folder (`<sysfs>/class/drm/card<N>/device`), as parsed
    /// and as written there: the `device` link's target's name (`../../../0000:19:00.0`), else
    /// the `PCI_SLOT_NAME` of its `uevent` (where `device` is not a link).
    pub fn of_sysfs_device(device: &Path) -> Option<(PciAddress, String)> {
        let from_link = std::fs::read_link(device)
            .ok()
            .and_then(|t| t.file_name().and_then(OsStr::to_str).map(str::to_string));
        let name = from_link.or_else(|| {
            let uevent = std::fs::read_to_string(device.join("uevent")).ok()?;
            uevent
                .lines()
                .find_map(|l| l.strip_prefix("PCI_SLOT_NAME="))
                .map(|s| s.trim().to_string())
        })?;
        Some((PciAddress::parse(&name)?, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_domain_width_parses_to_the_same_address() {
        let short = PciAddress::parse("0000:19:00.0");
        assert_eq!(short, PciAddress::parse("00000000:19:00.0"));
        assert_eq!(
            short,
            Some(PciAddress {
                domain: 0,
                bus: 0x19,
                device: 0,
                function: 0
            })
        );
        for bad in ["", "19:00.0", "0000:19:00", "0000:1g:00.0", "0000:19:00.8x"] {
            assert_eq!(PciAddress::parse(bad), None, "{bad}");
        }
    }
}
