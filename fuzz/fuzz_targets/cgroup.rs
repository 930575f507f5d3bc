//! Fuzzes the `/proc/<pid>/cgroup` parser: it must never panic, and whatever it returns must be
//! in canonical form and agree with the line-by-line parser.
#![no_main]

use gpu_pod_exporter::attribute::cgroup::{parse, parse_line, CgroupError, ContainerRef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The agent reads the file with `read_to_string`; lossy conversion also lets invalid UTF-8
    // reach the parser as replacement characters.
    let text = String::from_utf8_lossy(data);
    check(&text);
    if let Ok(s) = std::str::from_utf8(data) {
        // Identical to the lossy text, but keeps the target meaningful if that ever changes.
        check(s);
    }
});

fn check(content: &str) {
    let whole = parse(content);
    // The file's answer is the lines' answers combined.
    let mut found: Option<ContainerRef> = None;
    let mut want: Result<Option<ContainerRef>, CgroupError> = Ok(None);
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        match parse_line(line) {
            Err(e) => {
                want = Err(e);
                break;
            }
            Ok(Some(r)) => match &found {
                Some(f) if *f != r => {
                    want = Err(CgroupError::Conflicting {
                        first: f.clone(),
                        second: r,
                    });
                    break;
                }
                Some(_) => {}
                None => {
                    found = Some(r.clone());
                    want = Ok(Some(r));
                }
            },
            Ok(None) => {}
        }
    }
    assert_eq!(whole, want);
    if let Ok(Some(r)) = &whole {
        assert_canonical(r);
    }
}

fn assert_canonical(r: &ContainerRef) {
    let lower_hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    assert!(
        r.container_id.len() == 64 && lower_hex(&r.container_id),
        "{r:?}"
    );
    let uid = &r.pod_uid;
    let ok = match uid.len() {
        32 => lower_hex(uid),
        36 => uid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        }),
        _ => false,
    };
    assert!(ok, "{r:?}");
}
