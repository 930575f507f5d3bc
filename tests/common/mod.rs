//! Test harness: runs the real `gpu-pod-exporter` binary against the mock NVML library, with a
//! scenario file of its own, and scrapes it over loopback.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fake_kubelet;
pub mod load;
pub mod node;
pub mod prom;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for the agent to show what it expects: many cycles at the tests' 1 s
/// interval, with room for a CI machine that is building beside the test.
pub const WAIT: Duration = Duration::from_secs(20);

/// `target/<profile>/`, where cargo puts the binary and the mock library.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test binary>
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The mock NVML library. `cargo test --workspace` builds it (it is a workspace member with a
/// cdylib target); a missing library fails the test, it never skips it.
///
/// `cargo build` puts it in `target/<profile>/`; `cargo test` only refreshes the copy in
/// `target/<profile>/deps/`, so the newer of the two is taken.
pub fn mock_library() -> PathBuf {
    built_library("libnvidia_ml_mock.so")
}

/// A cdylib of the workspace (`libnvidia_ml_mock.so`, `librocm_smi_mock.so`), the newer of
/// cargo's two copies.
pub fn built_library(name: &str) -> PathBuf {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let candidates = [
        target_dir().join(name),
        target_dir().join("deps").join(name),
    ];
    let newest = candidates
        .iter()
        .filter_map(|p| Some((mtime(p)?, p.clone())))
        .max()
        .map(|(_, p)| p);
    newest.unwrap_or_else(|| {
        panic!(
            "{} is missing: run `cargo build --workspace` (or `cargo test --workspace`) first",
            candidates[0].display()
        )
    })
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Compares with `tests/golden/<name>`; `UPDATE_GOLDEN=1` rewrites the file instead.
pub fn assert_golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
    if expected != actual {
        panic!(
            "{name} differs from the golden file (UPDATE_GOLDEN=1 to accept); - golden, + actual:\n{}",
            line_diff(&expected, actual)
        );
    }
}

/// A line diff of `old` and `new` (their longest common subsequence): each change as `-`
/// and `+` lines in place, with its line numbers and two lines of context on either side.
pub fn line_diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // The edit script: (' ' | '-' | '+', old line number, new line number, text).
    let (mut i, mut j, mut script) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            script.push((' ', i, j, a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            script.push(('-', i, j, a[i]));
            i += 1;
        } else {
            script.push(('+', i, j, b[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 2;
    let changed: Vec<usize> = (0..script.len()).filter(|k| script[*k].0 != ' ').collect();
    let near = |k: usize| changed.iter().any(|c| c.abs_diff(k) <= CONTEXT);
    let mut out = Vec::new();
    let mut last_shown = None;
    for (k, (op, i, j, text)) in script.iter().enumerate() {
        if !near(k) {
            continue;
        }
        if last_shown.is_none_or(|l: usize| l + 1 != k) {
            out.push(format!("@@ golden line {}, actual line {}", i + 1, j + 1));
        }
        out.push(format!("{op} {text}"));
        last_shown = Some(k);
    }
    if a.len() != b.len() || out.is_empty() {
        out.push(format!("({} golden lines, {} actual)", a.len(), b.len()));
    }
    out.join("\n")
}

/// A free loopback port (bound, then released for the agent to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes through a rename, as a careful operator (and the demo) does.
pub fn write_atomic(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Copies a fixture tree (keeping symlinks as symlinks) into `to`, for tests that change it.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ft = entry.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// One running agent, killed on drop.
pub struct Agent {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub scenario: PathBuf,
    pub log: PathBuf,
}

pub struct AgentBuilder {
    rootfs: Option<PathBuf>,
    scenario: Option<String>,
    library: Option<PathBuf>,
    args: Vec<String>,
    envs: Vec<(String, std::ffi::OsString)>,
    interval: String,
}

impl AgentBuilder {
    pub fn library(mut self, p: impl Into<PathBuf>) -> Self {
        self.library = Some(p.into());
        self
    }
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn env(mut self, k: &str, v: impl Into<std::ffi::OsString>) -> Self {
        self.envs.push((k.into(), v.into()));
        self
    }
    pub fn interval(mut self, i: &str) -> Self {
        self.interval = i.into();
        self
    }
    /// A fake node tree (docs/design.md, "A fake node") to use as `--path.rootfs`; by default an
    /// empty one.
    pub fn rootfs(mut self, p: impl Into<PathBuf>) -> Self {
        self.rootfs = Some(p.into());
        self
    }
    pub fn no_scenario(mut self) -> Self {
        self.scenario = None;
        self
    }

    pub fn start(self) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("scenario.yaml");
        if let Some(s) = &self.scenario {
            write_atomic(&scenario, s);
        }
        let root = self
            .rootfs
            .clone()
            .unwrap_or_else(|| dir.path().join("node"));
        // Every host has a pid 1; the agent refuses a procfs without one.
        std::fs::create_dir_all(root.join("proc/1")).unwrap();
        let log = dir.path().join("agent.log");
        let library = self.library.clone().unwrap_or_else(mock_library);
        let spawn = |port: u16| {
            Command::new(env!("CARGO_BIN_EXE_gpu-pod-exporter"))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!("--nvml.library={}", library.display()))
                .arg(format!("--path.rootfs={}", root.display()))
                .arg(format!("--collect.interval={}", self.interval))
                .args(&self.args)
                .env("MOCK_NVML_SCENARIO", &scenario)
                .envs(self.envs.iter().map(|(k, v)| (k, v)))
                .env_remove("RUST_LOG")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap()
        };
        // The port is free when picked, but another process on the machine (other tests run
        // beside these) may take it before the agent binds it: then the agent exits at once,
        // saying so, and it is started again on another port.
        let mut attempt = 0;
        let (child, port) = loop {
            let port = free_port();
            let mut child = spawn(port);
            let start = Instant::now();
            let exited = loop {
                if http_get(port, "/healthz", &[]).is_some_and(|r| r.status == 200) {
                    break false;
                }
                if child.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(20)
                {
                    break true;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if !exited {
                break (child, port);
            }
            let _ = child.kill();
            let _ = child.wait();
            attempt += 1;
            if !text.contains("Address already in use") || attempt == 3 {
                panic!("the agent did not answer /healthz; its log:\n{text}");
            }
        };
        Agent {
            child,
            port,
            dir,
            scenario,
            log,
        }
    }
}

/// A plain HTTP client for a local server that is not the agent.
pub struct Client {
    port: u16,
}

impl Client {
    pub fn try_get(&self, path: &str, headers: &[(&str, &str)]) -> Option<Response> {
        http_get(self.port, path, headers)
    }
}

/// A plain HTTP/1.1 GET over loopback; `None` when nothing answers.
pub fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    parse_response(&raw)
}

/// An HTTP response, as the test client reads it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body's bytes as sent (not de-chunked): for a compressed body.
    pub raw_body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Agent {
    /// A client for another local HTTP server (the HTTP helpers only need a port).
    pub fn client_for(port: u16) -> Client {
        Client { port }
    }

    pub fn with_scenario(yaml: &str) -> AgentBuilder {
        AgentBuilder {
            rootfs: None,
            scenario: Some(yaml.to_string()),
            library: None,
            args: Vec::new(),
            envs: Vec::new(),
            interval: "500ms".into(),
        }
    }

    pub fn set_scenario(&self, yaml: &str) {
        write_atomic(&self.scenario, yaml);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A plain HTTP/1.1 GET over loopback; `None` when the agent does not answer.
    pub fn try_get(&self, path: &str, headers: &[(&str, &str)]) -> Option<Response> {
        http_get(self.port, path, headers)
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.try_get(path, headers)
            .unwrap_or_else(|| panic!("GET {path} got no answer; agent log:\n{}", self.log_text()))
    }

    pub fn scrape(&self) -> String {
        let r = self.get("/metrics", &[]);
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// Scrapes until `cond` holds on the parsed samples, or fails after `timeout`.
    pub fn scrape_until(
        &self,
        timeout: Duration,
        what: &str,
        cond: impl Fn(&prom::Samples) -> bool,
    ) -> prom::Samples {
        self.scrape_until_each(timeout, what, |_| {}, cond)
    }

    /// [`Agent::scrape_until`], running `each` (assertions that must hold all along) on every
    /// scrape on the way.
    pub fn scrape_until_each(
        &self,
        timeout: Duration,
        what: &str,
        each: impl Fn(&prom::Samples),
        cond: impl Fn(&prom::Samples) -> bool,
    ) -> prom::Samples {
        let start = Instant::now();
        loop {
            let s = prom::parse(&self.scrape());
            each(&s);
            if cond(&s) {
                return s;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for: {what}\nlast scrape:\n{}\nagent log:\n{}",
                    s.text,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_for(&self, timeout: Duration, what: &str, cond: impl Fn(&Agent) -> bool) {
        let start = Instant::now();
        while !cond(self) {
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for: {what}\nagent log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "agent did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let raw_body = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| raw[i + 4..].to_vec())?;
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some(Response {
        status,
        headers,
        body,
        raw_body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The `NEEDED` entries of an ELF file's dynamic section, by `readelf -d` (binutils: a missing
/// readelf fails the test).
pub fn needed_libraries(path: &Path) -> Vec<String> {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(path)
        .output()
        .expect("readelf (binutils) is needed for this test");
    assert!(out.status.success(), "readelf -d {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.trim_end_matches(']').to_string()))
        .collect()
}
