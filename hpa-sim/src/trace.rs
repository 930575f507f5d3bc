//! Arrival traces: requests per second over time, from a CSV file or from a Prometheus
//! `query_range`, checked for order and gaps.

use std::path::Path;
use std::time::Duration;

use crate::input::{self, InputError};

/// Requests per second at points in time (seconds from the trace's start); linear between
/// points.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub points: Vec<(f64, f64)>,
    /// Where it came from, for messages and reports.
    pub source: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{url}: {what}")]
    Prometheus { url: String, what: String },
}

/// A gap is a step more than this many times the trace's typical (median) step.
const GAP_FACTOR: f64 = 3.0;

impl Trace {
    pub fn duration(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.0)
    }

    /// The rate at `t` (linear between points; the last value past the end).
    pub fn rate(&self, t: f64) -> f64 {
        let p = &self.points;
        if p.is_empty() {
            return 0.0;
        }
        let i = p.partition_point(|q| q.0 <= t);
        if i == 0 {
            return p[0].1;
        }
        if i >= p.len() {
            return p[p.len() - 1].1;
        }
        let (a, b) = (p[i - 1], p[i]);
        a.1 + (t - a.0) / (b.0 - a.0) * (b.1 - a.1)
    }

    pub fn peak(&self) -> f64 {
        self.points.iter().map(|p| p.1).fold(0.0, f64::max)
    }

    /// The requests the trace asks for: the integral of its rate (linear between points).
    pub fn expected_requests(&self) -> f64 {
        self.points
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum()
    }

    pub fn scaled(mut self, factor: f64) -> Trace {
        for p in &mut self.points {
            p.1 *= factor;
        }
        self
    }

    /// Reads `time,requests_per_second` rows (a header line is optional; the time may be
    /// relative seconds or Unix timestamps: the first row becomes 0).
    pub fn from_csv(path: &Path) -> Result<Trace, TraceError> {
        let table = input::read_csv(path, 2)?;
        let rows: Vec<(usize, f64, f64)> =
            table.rows.iter().map(|(l, r)| (*l, r[0], r[1])).collect();
        let points = check(&rows, |line, what| {
            TraceError::Input(InputError::Csv {
                path: path.to_path_buf(),
                line,
                what,
            })
        })?;
        Ok(Trace {
            points,
            source: path.display().to_string(),
        })
    }
}

/// Checks order, sign and gaps; returns points relative to the first time.
fn check(
    rows: &[(usize, f64, f64)],
    err: impl Fn(usize, String) -> TraceError,
) -> Result<Vec<(f64, f64)>, TraceError> {
    if rows.len() < 2 {
        return Err(err(
            rows.first().map_or(0, |r| r.0),
            "a trace needs at least two points".into(),
        ));
    }
    for w in rows.windows(2) {
        if w[1].1 <= w[0].1 {
            return Err(err(
                w[1].0,
                format!(
                    "time {} is not after the previous row's {}: times must increase",
                    w[1].1, w[0].1
                ),
            ));
        }
    }
    for r in rows {
        if r.2 < 0.0 {
            return Err(err(r.0, format!("requests per second {} is negative", r.2)));
        }
    }
    let mut steps: Vec<f64> = rows.windows(2).map(|w| w[1].1 - w[0].1).collect();
    steps.sort_by(f64::total_cmp);
    let median = steps[steps.len() / 2];
    for w in rows.windows(2) {
        let step = w[1].1 - w[0].1;
        if step > GAP_FACTOR * median {
            return Err(err(
                w[1].0,
                format!(
                    "a gap of {step} s after time {} (the trace's step is {median} s): fill it, or give the missing rows",
                    w[0].1
                ),
            ));
        }
    }
    let t0 = rows[0].1;
    Ok(rows.iter().map(|r| (r.1 - t0, r.2)).collect())
}

/// Where and what to ask Prometheus.
#[derive(Debug, Clone)]
pub struct PromQuery {
    /// `http://host:port` with an optional path prefix.
    pub url: String,
    pub query: String,
    /// `start`/`end` as Prometheus accepts them (Unix seconds or RFC 3339); when absent, the
    /// last `range` seconds up to now.
    pub start: Option<String>,
    pub end: Option<String>,
    pub range_seconds: f64,
    pub step_seconds: f64,
    pub timeout: Duration,
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl PromQuery {
    /// The `query_range` request's URL.
    pub fn request_url(&self) -> Result<String, TraceError> {
        let base = self.url.trim_end_matches('/');
        if !base.starts_with("http://") {
            return Err(TraceError::Prometheus {
                url: self.url.clone(),
                what: "only http:// URLs are supported (reach an https-only Prometheus through `kubectl port-forward`)".into(),
            });
        }
        let (start, end) = match (&self.start, &self.end) {
            (Some(s), Some(e)) => (s.clone(), e.clone()),
            (None, None) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                (
                    format!("{:.3}", now - self.range_seconds),
                    format!("{now:.3}"),
                )
            }
            _ => {
                return Err(TraceError::Prometheus {
                    url: self.url.clone(),
                    what: "give both --start and --end, or neither (then --range up to now)".into(),
                })
            }
        };
        Ok(format!(
            "{base}/api/v1/query_range?query={}&start={}&end={}&step={}",
            form_encode(&self.query),
            form_encode(&start),
            form_encode(&end),
            self.step_seconds
        ))
    }

    /// Runs the query; each series' labels and `(time, value)` samples (non-finite values
    /// left out). No series is not an error here.
    pub fn matrix(&self) -> Result<Vec<PromSeries>, TraceError> {
        let url = self.request_url()?;
        let perr = |what: String| TraceError::Prometheus {
            url: self.url.clone(),
            what,
        };
        let body = http_get(&url, self.timeout).map_err(perr)?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| perr(format!("the answer is not JSON ({e})")))?;
        if v.get("status").and_then(|s| s.as_str()) != Some("success") {
            let msg = v
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("no error message");
            return Err(perr(format!("Prometheus answered an error: {msg}")));
        }
        let result = v
            .pointer("/data/result")
            .and_then(|r| r.as_array())
            .ok_or_else(|| {
                perr("the answer has no data.result array (is the query a range vector?)".into())
            })?;
        let mut out = Vec::with_capacity(result.len());
        for series in result {
            let labels = series
                .get("metric")
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            let values = series
                .get("values")
                .and_then(|v| v.as_array())
                .ok_or_else(|| {
                    perr("a series has no values (query_range answers a matrix)".into())
                })?;
            let mut samples = Vec::with_capacity(values.len());
            for pair in values {
                let ts = pair.get(0).and_then(|t| t.as_f64());
                let val = pair
                    .get(1)
                    .and_then(|t| t.as_str())
                    .and_then(|s| s.parse::<f64>().ok());
                match (ts, val) {
                    (Some(ts), Some(val)) if val.is_finite() => samples.push((ts, val)),
                    (Some(_), Some(_)) => {}
                    _ => return Err(perr(format!("a malformed sample {pair}"))),
                }
            }
            out.push(PromSeries { labels, samples });
        }
        Ok(out)
    }

    /// Runs the query; several series are summed point by point.
    pub fn fetch(&self) -> Result<Trace, TraceError> {
        let perr = |what: String| TraceError::Prometheus {
            url: self.url.clone(),
            what,
        };
        let result = self.matrix()?;
        if result.is_empty() {
            return Err(perr(format!(
                "the query {:?} returned no series in that range",
                self.query
            )));
        }
        let mut sum: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
        for series in &result {
            for (ts, val) in &series.samples {
                *sum.entry((ts * 1000.0).round() as i64).or_default() += val;
            }
        }
        let rows: Vec<(usize, f64, f64)> = sum
            .iter()
            .enumerate()
            .map(|(i, (ms, v))| (i + 1, *ms as f64 / 1000.0, *v))
            .collect();
        let points = check(&rows, |i, what| perr(format!("sample {i}: {what}")))?;
        Ok(Trace {
            points,
            source: format!("{} {}", self.url, self.query),
        })
    }
}

/// One series of a `query_range` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct PromSeries {
    pub labels: std::collections::BTreeMap<String, String>,
    /// `(Unix time, value)`.
    pub samples: Vec<(f64, f64)>,
}

/// One HTTP/1.1 GET with hyper, on a runtime of its own.
fn http_get(url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;

    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
    let host = uri.host().ok_or("the URL has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(async move {
        let work = async {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| format!("cannot reach Prometheus: {e}"))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP handshake failed: {e}"))?;
            tokio::spawn(conn);
            let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
            let req = hyper::Request::get(path)
                .header(hyper::header::HOST, format!("{host}:{port}"))
                .header(hyper::header::ACCEPT, "application/json")
                .body(Empty::<bytes::Bytes>::new())
                .map_err(|e| format!("bad request: {e}"))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the answer failed: {e}"))?
                .to_bytes();
            if !status.is_success()
                && status != hyper::StatusCode::BAD_REQUEST
                && status.as_u16() != 422
            {
                return Err(format!("HTTP {status}"));
            }
            Ok(body.to_vec())
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| format!("no answer within {} s", timeout.as_secs_f64()))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[(f64, f64)]) -> Vec<(usize, f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(i, p)| (i + 2, p.0, p.1))
            .collect()
    }

    fn msg(r: Result<Vec<(f64, f64)>, TraceError>) -> String {
        match r {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        }
    }

    fn err(line: usize, what: String) -> TraceError {
        TraceError::Input(InputError::Csv {
            path: "t.csv".into(),
            line,
            what,
        })
    }

    #[test]
    fn rejects_disorder_gaps_and_negative_rates_naming_the_line() {
        assert!(
            msg(check(&rows(&[(0.0, 1.0), (60.0, 1.0), (30.0, 1.0)]), err))
                .starts_with("t.csv:4: time 30")
        );
        assert!(msg(check(
            &rows(&[(0.0, 1.0), (60.0, 1.0), (120.0, 1.0), (600.0, 1.0)]),
            err
        ))
        .contains("t.csv:5: a gap of 480 s"));
        assert!(msg(check(&rows(&[(0.0, 1.0), (60.0, -1.0)]), err))
            .contains("t.csv:3: requests per second -1"));
    }

    #[test]
    fn interpolates_and_rebases_unix_times() {
        let p = check(
            &rows(&[(1_700_000_000.0, 10.0), (1_700_000_060.0, 20.0)]),
            err,
        )
        .expect("valid");
        let t = Trace {
            points: p,
            source: String::new(),
        };
        assert_eq!(t.rate(30.0), 15.0);
        assert_eq!(t.rate(1e9), 20.0);
        assert_eq!(t.duration(), 60.0);
    }

    #[test]
    fn encodes_promql() {
        assert_eq!(
            form_encode("sum(rate(x{a=\"b\"}[1m]))"),
            "sum%28rate%28x%7Ba%3D%22b%22%7D%5B1m%5D%29%29"
        );
    }
}
