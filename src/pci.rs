//! PCI addresses, as sysfs, NVML, KFD and the AMD device plugin write them: one type both the
//! collectors and attribution use to join a device to what else names it.

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
