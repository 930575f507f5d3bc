//! Fuzzes the parser of the device IDs the kubelet's pod-resources API hands over (whatever
//! device plugin wrote them): it must never panic, surrounding blanks never matter, and what it
//! understood, written back in the plugin's spelling, parses to the same reference.
#![no_main]

use gpu_pod_exporter::attribute::deviceid::DeviceRef;
use libfuzzer_sys::fuzz_target;

/// The reference in the spelling its device plugin uses.
fn render(r: &DeviceRef) -> String {
    match r {
        DeviceRef::Uuid(u) => u.clone(),
        DeviceRef::MigOf {
            parent_uuid,
            gpu_instance,
            compute_instance,
        } => format!("MIG-{parent_uuid}/{gpu_instance}/{compute_instance}"),
        DeviceRef::Minor {
            minor,
            gpu_instance: None,
        } => format!("nvidia{minor}"),
        DeviceRef::Minor {
            minor,
            gpu_instance: Some(gi),
        } => format!("nvidia{minor}/gi{gi}"),
        DeviceRef::Pci(p) => format!(
            "{:04x}:{:02x}:{:02x}.{:x}",
            p.domain, p.bus, p.device, p.function
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let id = String::from_utf8_lossy(data);
    let parsed = DeviceRef::parse(&id);
    assert_eq!(parsed, DeviceRef::parse(&format!(" {id}\n")), "{id:?}");
    let Some(r) = parsed else {
        return;
    };
    if let DeviceRef::Uuid(u) = &r {
        assert!(u.starts_with("GPU-") || u.starts_with("MIG-"), "{u:?}");
        assert!(!u.contains("::"), "{u:?}");
    }
    let text = render(&r);
    // Blanks inside an ID (never in a real one) may sit at the end of a part and be trimmed.
    if !text.contains(char::is_whitespace) {
        assert_eq!(DeviceRef::parse(&text), Some(r), "{id:?} rendered as {text:?}");
    }
});
