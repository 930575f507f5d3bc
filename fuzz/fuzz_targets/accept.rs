//! Fuzzes the one `Accept`-style header parser (`Accept` picks the exposition format,
//! `Accept-Encoding` gzip): it must never panic, its items are lower-case names without the
//! list's separators, and a header sent as one value reads the same as its items sent as
//! several.
#![no_main]

use gpu_pod_exporter::web::accept::{format, gzip, weighted};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let items: Vec<(String, f32)> = weighted(std::iter::once(text.as_ref())).collect();
    for (name, _) in &items {
        assert!(!name.is_empty());
        assert!(!name.contains([',', ';']), "{name:?}");
        assert_eq!(*name, name.to_ascii_lowercase());
        assert_eq!(name.trim(), name);
    }
    // Split at its commas into several header values: the same items, the same answers.
    let parts: Vec<&str> = text.split(',').collect();
    let again: Vec<(String, f32)> = weighted(parts.iter().copied()).collect();
    assert_eq!(items.len(), again.len());
    for ((a, qa), (b, qb)) in items.iter().zip(&again) {
        assert_eq!(a, b);
        assert!(qa == qb || (qa.is_nan() && qb.is_nan()));
    }
    assert_eq!(
        format(std::iter::once(text.as_ref())),
        format(parts.iter().copied())
    );
    assert_eq!(
        gzip(std::iter::once(text.as_ref())),
        gzip(parts.iter().copied())
    );
});
