//! Fuzzes the web config parser (`--web.config.file`, exporter-toolkit's YAML, now re-read
//! whenever the file changes): it must never panic, a config it accepts carries only
//! allow-listed headers and parseable bcrypt hashes, and its `Debug` never shows a hash.
#![no_main]

use std::path::Path;

use gpu_pod_exporter::web::config::WebConfig;
use libfuzzer_sys::fuzz_target;

/// Names no directory, so every certificate or key file an input names fails to read, fast.
const PATH: &str = "/nonexistent-fuzz-dir/web.yml";

const ALLOWED: &[&str] = &[
    "strict-transport-security",
    "x-content-type-options",
    "x-frame-options",
    "x-xss-protection",
    "content-security-policy",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = WebConfig::from_text(Path::new(PATH), &text) else {
        return;
    };
    for (name, _) in &config.headers {
        assert!(ALLOWED.contains(&name.as_str()), "{name}");
    }
    let shown = format!("{config:?}");
    for (user, hash) in &config.users {
        assert!(hash.parse::<bcrypt::HashParts>().is_ok(), "{user}");
        let in_a_header = config.headers.iter().any(|(_, v)| v.as_bytes() == hash.as_bytes());
        assert!(
            in_a_header || !shown.contains(hash.as_str()),
            "Debug shows {user}'s hash"
        );
    }
    // Inline PEM only (no file can be read): whatever was taken came from the text.
    if let Some(tls) = &config.tls {
        assert!(tls.cert.file.is_none() && tls.key.file.is_none(), "{tls:?}");
        assert!(!tls.versions.is_empty());
    }
});
