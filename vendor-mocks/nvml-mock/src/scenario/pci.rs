//! PCI bus IDs: parsing the scenario's `pci_bus_id` and NVML's two output formats.

/// A PCI address `domain:bus:device.function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u32,
    pub device: u32,
    pub function: u32,
}

impl PciAddress {
    /// Parses NVML's `00000000:18:00.0` or the legacy `0000:18:00.0`, in either case.
    pub fn parse(text: &str) -> Option<Self> {
        let (domain, rest) = text.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let (device, function) = rest.split_once('.')?;
        let field = |s: &str, max_len: usize| {
            let ok =
                !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_hexdigit());
            ok.then(|| u32::from_str_radix(s, 16).ok()).flatten()
        };
        if domain.len() != 4 && domain.len() != 8 {
            return None;
        }
        Some(Self {
            domain: field(domain, 8)?,
            bus: field(bus, 2)?,
            device: field(device, 2)?,
            function: field(function, 1)?,
        })
    }

    /// NVML's `busId`: `%08X:%02X:%02X.%X`.
    pub fn bus_id(&self) -> String {
        format!(
            "{:08X}:{:02X}:{:02X}.{:X}",
            self.domain, self.bus, self.device, self.function
        )
    }

    /// NVML's `busIdLegacy`: `%04X:%02X:%02X.%X`.
    pub fn bus_id_legacy(&self) -> String {
        format!(
            "{:04X}:{:02X}:{:02X}.{:X}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses() {
        let a = PciAddress::parse("00000000:18:00.0").unwrap();
        assert_eq!((a.domain, a.bus, a.device, a.function), (0, 0x18, 0, 0));
        assert_eq!(a.bus_id(), "00000000:18:00.0");
        assert_eq!(a.bus_id_legacy(), "0000:18:00.0");
        let b = PciAddress::parse("0001:af:1f.0").unwrap();
        assert_eq!(b.bus_id(), "00000001:AF:1F.0");
        for bad in [
            "",
            "18:00.0",
            "000:18:00.0",
            "0000:18:00",
            "0000:180:00.0",
            "0000:zz:00.0",
        ] {
            assert_eq!(PciAddress::parse(bad), None, "{bad}");
        }
    }
}
