//! The DRM fdinfo parser: one `/proc/<pid>/fdinfo/<fd>` file of a DRM device file, as the
//! kernel's "DRM client usage stats" (Documentation/gpu/drm-usage-stats.rst) and amdgpu's
//! `amdgpu_show_fdinfo` write it. Pure: text in, values out; never panics (fuzzed by
//! `fuzz/fuzz_targets/fdinfo.rs`).
//!
//! What amdgpu writes, old and new (tab after the colon; `drm-memory-gtt: \t` has a space too):
//!
//! ```text
//! drm-driver:     amdgpu                 all kernels with fdinfo (5.14+)
//! drm-pdev:       0000:19:00.0
//! drm-client-id:  11
//! drm-memory-vram:        4194304 KiB    older kernels (to 6.8): always KiB
//! drm-total-vram: 9000 MiB               newer kernels (drm_print_memory_stats): no unit,
//! drm-resident-vram:      8192 MiB         KiB or MiB, whichever divides evenly
//! drm-engine-gfx: 1250000000 ns          cumulative busy time; printed once non-zero
//! drm-engine-compute:     0 ns
//! drm-engine-capacity-<e>: 2             optional: identical engines of that class
//! ```

use std::collections::BTreeMap;

use crate::pci::PciAddress;

/// Device memory of one client, bytes, by the key it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VramUse {
    /// `drm-memory-vram` (older kernels).
    pub memory: Option<u64>,
    /// `drm-resident-vram` (newer kernels): what is actually placed in VRAM.
    pub resident: Option<u64>,
    /// `drm-total-vram` (newer kernels): every buffer the client holds in that region.
    pub total: Option<u64>,
}

impl VramUse {
    /// The client's VRAM: resident where the kernel reports it (newer kernels), else the older
    /// `drm-memory-vram`, else the total.
    pub fn bytes(&self) -> Option<u64> {
        self.resident.or(self.memory).or(self.total)
    }
}

/// One DRM client, as one fdinfo file describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DrmFdinfo {
    /// `drm-driver` (`amdgpu`, `i915`, ...).
    pub driver: String,
    /// `drm-pdev`: the PCI address of the device.
    pub pdev: Option<PciAddress>,
    /// `drm-client-id`: unique per open device file while it lives; fds that share one
    /// (dup, fork, SCM_RIGHTS) show the same id.
    pub client_id: Option<u64>,
    /// `drm-engine-<name>`: cumulative busy time by engine class, nanoseconds.
    pub engines: BTreeMap<String, u64>,
    /// `drm-engine-capacity-<name>`: how many engines of that class the busy time covers.
    pub capacity: BTreeMap<String, u64>,
    pub vram: VramUse,
    /// Lines this parser understands the key of but not the value (`drm-engine-gfx: lots`),
    /// and lines without a `key: value` shape; counted, skipped.
    pub malformed: u32,
}

/// Parses one fdinfo file. `None` when it is not a DRM client's (no `drm-driver` line): most
/// fds on a node are sockets, pipes and plain files.
pub fn parse(text: &str) -> Option<DrmFdinfo> {
    let mut out = DrmFdinfo::default();
    let mut is_drm = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            out.malformed += 1;
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let Some(rest) = key.strip_prefix("drm-") else {
            continue; // pos, flags, mnt_id, ino, pasid, amd-*: not ours
        };
        let ok = match rest {
            "driver" => {
                let valid = !value.is_empty() && !value.contains(char::is_whitespace);
                if valid {
                    out.driver = value.to_string();
                    is_drm = true;
                }
                valid
            }
            "pdev" => PciAddress::parse(value)
                .map(|a| out.pdev = Some(a))
                .is_some(),
            "client-id" => value.parse().map(|v| out.client_id = Some(v)).is_ok(),
            _ => parse_keyed(rest, value, &mut out),
        };
        if !ok {
            out.malformed += 1;
        }
    }
    is_drm.then_some(out)
}

/// `drm-engine-*`, `drm-engine-capacity-*` and the memory keys; `false` when the key is one
/// of those but the value cannot be read. Other keys are accepted and ignored.
fn parse_keyed(rest: &str, value: &str, out: &mut DrmFdinfo) -> bool {
    if let Some(engine) = rest.strip_prefix("engine-capacity-") {
        return match (valid_name(engine), value.parse::<u64>()) {
            // The spec forbids zero; one would divide by zero.
            (true, Ok(n)) if n > 0 => {
                out.capacity.insert(engine.to_string(), n);
                true
            }
            _ => false,
        };
    }
    if let Some(engine) = rest.strip_prefix("engine-") {
        return match (valid_name(engine), parse_ns(value)) {
            (true, Some(ns)) => {
                // amdgpu names two IP blocks `dec` (UVD and VCN); an ASIC has one of them,
                // but if both ever print, their times add up.
                let e = out.engines.entry(engine.to_string()).or_insert(0);
                *e = e.saturating_add(ns);
                true
            }
            _ => false,
        };
    }
    let slot = match rest {
        "memory-vram" => &mut out.vram.memory,
        "resident-vram" => &mut out.vram.resident,
        "total-vram" => &mut out.vram.total,
        _ => return true,
    };
    match parse_size(value) {
        Some(bytes) => {
            *slot = Some(bytes);
            true
        }
        None => false,
    }
}

/// An engine or region name (`<keystr>`): no whitespace, not empty.
fn valid_name(s: &str) -> bool {
    !s.is_empty() && !s.contains(char::is_whitespace)
}

/// `<uint> ns` (the unit may be missing). amdgpu prints with `%Ld`, so a negative number is
/// possible in principle; it is malformed here.
fn parse_ns(value: &str) -> Option<u64> {
    let mut parts = value.split_whitespace();
    let n = parts.next()?.parse().ok()?;
    match (parts.next(), parts.next()) {
        (None | Some("ns"), None) => Some(n),
        _ => None,
    }
}

/// `<uint>[ KiB| MiB| GiB]` in bytes; `None` when malformed or too large for 64 bits.
pub fn parse_size(value: &str) -> Option<u64> {
    let mut parts = value.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    let unit: u64 = match parts.next() {
        None => 1,
        Some("KiB") => 1 << 10,
        Some("MiB") => 1 << 20,
        Some("GiB") => 1 << 30,
        Some(_) => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    n.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pci(s: &str) -> Option<PciAddress> {
        PciAddress::parse(s)
    }

    /// amdgpu on 5.19-6.8 (amdgpu_fdinfo.c, `seq_printf` with tabs), with the fd's own lines.
    const OLD_KERNEL: &str = "pos:\t0\nflags:\t02100002\nmnt_id:\t26\nino:\t1061\n\
        pasid:\t32771\ndrm-driver:\tamdgpu\ndrm-pdev:\t0000:19:00.0\ndrm-client-id:\t12\n\
        drm-memory-vram:\t4194304 KiB\ndrm-memory-gtt: \t2048 KiB\ndrm-memory-cpu: \t0 KiB\n\
        amd-memory-visible-vram:\t0 KiB\namd-evicted-vram:\t0 KiB\n\
        amd-requested-vram:\t4194304 KiB\ndrm-engine-gfx:\t7500000000 ns\n";

    /// amdgpu on 6.9+ (drm_print_memory_stats: no unit, KiB or MiB), engine capacity, compute.
    const NEW_KERNEL: &str = "pos:\t0\nflags:\t02100002\nmnt_id:\t26\nino:\t1061\n\
        drm-driver:\tamdgpu\ndrm-client-id:\t11\ndrm-pdev:\t0000:19:00.0\npasid:\t32772\n\
        drm-total-vram:\t9000 MiB\ndrm-shared-vram:\t0\ndrm-active-vram:\t0\n\
        drm-resident-vram:\t8192 MiB\ndrm-purgeable-vram:\t0\ndrm-total-gtt:\t12 KiB\n\
        amd-evicted-vram:\t0\ndrm-engine-gfx:\t3000000000 ns\n\
        drm-engine-compute:\t20000000000 ns\ndrm-engine-capacity-compute:\t4\n";

    #[test]
    fn old_kernel_keys() {
        let c = parse(OLD_KERNEL).unwrap();
        assert_eq!(c.driver, "amdgpu");
        assert_eq!(c.pdev, pci("0000:19:00.0"));
        assert_eq!(c.client_id, Some(12));
        assert_eq!(c.vram.bytes(), Some(4 << 30));
        assert_eq!(c.engines["gfx"], 7_500_000_000);
        assert_eq!(c.engines.len(), 1);
        assert_eq!(c.malformed, 0);
    }

    #[test]
    fn new_kernel_keys_prefer_resident() {
        let c = parse(NEW_KERNEL).unwrap();
        assert_eq!(c.vram.resident, Some(8192 << 20));
        assert_eq!(c.vram.total, Some(9000 << 20));
        assert_eq!(c.vram.bytes(), Some(8192 << 20));
        assert_eq!(c.engines["compute"], 20_000_000_000);
        assert_eq!(c.capacity["compute"], 4);
        assert_eq!(c.malformed, 0);
    }

    #[test]
    fn sizes_in_every_unit() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("1536"), Some(1536));
        assert_eq!(parse_size("12 KiB"), Some(12 << 10));
        assert_eq!(parse_size("9000 MiB"), Some(9000 << 20));
        assert_eq!(parse_size("2 GiB"), Some(2 << 30));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size("-1 KiB"), None);
        assert_eq!(parse_size("18446744073709551615 KiB"), None);
    }

    #[test]
    fn not_a_drm_file() {
        // A socket's fdinfo, and an eventfd's.
        assert_eq!(parse("pos:\t0\nflags:\t02\nmnt_id:\t9\nino:\t4242\n"), None);
        assert_eq!(
            parse("pos:\t0\nflags:\t02004002\nmnt_id:\t15\nino:\t1057\neventfd-count:\t0\neventfd-id: 3\n"),
            None
        );
        assert_eq!(parse(""), None);
    }

    #[test]
    fn another_driver_is_parsed_and_named() {
        let c = parse("drm-driver:\ti915\ndrm-pdev:\t0000:00:02.0\ndrm-client-id:\t7\ndrm-engine-render:\t25662044495 ns\ndrm-engine-capacity-video:\t2\n").unwrap();
        assert_eq!(c.driver, "i915");
        assert_eq!(c.engines["render"], 25_662_044_495);
    }

    #[test]
    fn malformed_lines_are_counted_and_the_rest_kept() {
        let c = parse(
            "drm-driver:\tamdgpu\ndrm-pdev:\tnot-an-address\ndrm-client-id:\t-3\n\
             drm-engine-gfx:\tlots ns\ndrm-engine-compute:\t-5 ns\ndrm-engine-dma:\t5 ms\n\
             drm-engine-capacity-gfx:\t0\ndrm-memory-vram:\t12 parsecs\nno colon here\n\
             drm-engine-enc:\t100 ns\ndrm-resident-vram:\t4 KiB\n",
        )
        .unwrap();
        assert_eq!(c.malformed, 8);
        assert_eq!(c.pdev, None);
        assert_eq!(c.client_id, None);
        assert_eq!(c.engines.len(), 1);
        assert_eq!(c.engines["enc"], 100);
        assert!(c.capacity.is_empty());
        assert_eq!(c.vram.bytes(), Some(4096));
    }

    #[test]
    fn repeated_engine_names_add_up() {
        let c =
            parse("drm-driver:\tamdgpu\ndrm-engine-dec:\t10 ns\ndrm-engine-dec:\t5 ns\n").unwrap();
        assert_eq!(c.engines["dec"], 15);
    }

    #[test]
    fn a_bad_driver_line_is_not_a_drm_file() {
        assert_eq!(parse("drm-driver:\t\n"), None);
        assert_eq!(parse("drm-driver:\tamd gpu\n"), None);
    }
}
