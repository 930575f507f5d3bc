//! Fuzzes the DRM fdinfo parser (`/proc/<pid>/fdinfo/<fd>`, read for every fd of every process
//! on an AMD node): it must never panic, whatever it returns must be well-formed, and printing
//! it back in the kernel's format must parse to the same client.
#![no_main]

use std::fmt::Write;

use gpu_pod_exporter::collect::amd::fdinfo::{parse, DrmFdinfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The agent reads the file with `read_to_string`; lossy conversion also lets invalid UTF-8
    // reach the parser as replacement characters.
    let text = String::from_utf8_lossy(data);
    let Some(client) = parse(&text) else {
        return;
    };
    assert!(!client.driver.is_empty(), "{client:?}");
    assert!(!client.driver.contains(char::is_whitespace), "{client:?}");
    for name in client.engines.keys().chain(client.capacity.keys()) {
        assert!(
            !name.is_empty() && !name.contains(char::is_whitespace),
            "{client:?}"
        );
    }
    assert!(client.capacity.values().all(|n| *n > 0), "{client:?}");
    let again = parse(&render(&client)).expect("a rendered client is a DRM client");
    assert_eq!(again.malformed, 0, "{}", render(&client));
    assert_eq!(
        DrmFdinfo {
            malformed: client.malformed,
            ..again
        },
        client
    );
});

/// The client as amdgpu would print it (sizes in bytes, without a unit).
fn render(c: &DrmFdinfo) -> String {
    let mut s = format!("pos:\t0\ndrm-driver:\t{}\n", c.driver);
    if let Some(p) = c.pdev {
        let _ = writeln!(
            s,
            "drm-pdev:\t{:04x}:{:02x}:{:02x}.{:x}",
            p.domain, p.bus, p.device, p.function
        );
    }
    if let Some(id) = c.client_id {
        let _ = writeln!(s, "drm-client-id:\t{id}");
    }
    for (key, v) in [
        ("memory", c.vram.memory),
        ("resident", c.vram.resident),
        ("total", c.vram.total),
    ] {
        if let Some(bytes) = v {
            let _ = writeln!(s, "drm-{key}-vram:\t{bytes}");
        }
    }
    for (name, ns) in &c.engines {
        let _ = writeln!(s, "drm-engine-{name}:\t{ns} ns");
    }
    for (name, n) in &c.capacity {
        let _ = writeln!(s, "drm-engine-capacity-{name}:\t{n}");
    }
    s
}
