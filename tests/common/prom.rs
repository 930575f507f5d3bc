//! A small parser of the Prometheus text format, for assertions on scrapes.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone)]
pub struct Samples {
    pub samples: Vec<Sample>,
    pub text: String,
}

impl Samples {
    /// Samples of `name` whose labels include every pair of `want`.
    pub fn find(&self, name: &str, want: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && want
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one value of `name` with labels `want`; `None` if absent, a failure if ambiguous.
    pub fn value(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        let found = self.find(name, want);
        assert!(
            found.len() <= 1,
            "{name}{want:?} matches {} series",
            found.len()
        );
        found.first().map(|s| s.value)
    }

    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// The four per-pod profiling series of a pod (sm, occupancy, tensor, DRAM).
    pub fn pod_profiling(&self, pod: &str) -> [Option<f64>; 4] {
        [
            "pod_gpu_sm_active_ratio",
            "pod_gpu_sm_occupancy_ratio",
            "pod_gpu_tensor_active_ratio",
            "pod_gpu_dram_active_ratio",
        ]
        .map(|m| self.value(m, &[("pod", pod)]))
    }
}

pub fn parse(text: &str) -> Samples {
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| parse_line(l).unwrap_or_else(|| panic!("unparseable line: {l}")))
        .collect();
    Samples {
        samples,
        text: text.to_string(),
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i..]),
        None => {
            let (n, v) = line.split_once(' ')?;
            return Some(Sample {
                name: n.to_string(),
                labels: BTreeMap::new(),
                value: parse_value(v.split_whitespace().next()?)?,
            });
        }
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest[1..].char_indices().peekable();
    let body = &rest[1..];
    let mut end = None;
    // key="value" pairs with \" \\ \n escapes
    let mut key = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '}' => {
                end = Some(i);
                break;
            }
            ',' | ' ' => {}
            '=' => {
                chars.next(); // opening quote
                let mut val = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next()?.1 {
                            'n' => val.push('\n'),
                            o => val.push(o),
                        },
                        '"' => break,
                        o => val.push(o),
                    }
                }
                labels.insert(std::mem::take(&mut key), val);
            }
            o => key.push(o),
        }
    }
    let value = body[end? + 1..].split_whitespace().next()?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value: parse_value(value)?,
    })
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}
