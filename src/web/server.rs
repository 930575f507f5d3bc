//! The HTTP server (hyper 1 on tokio): routes, auth, TLS, connection limits and graceful
//! shutdown.
//!
//! Handlers only read the current snapshot; nothing here waits for a collector. The server is
//! built not to be starved: it accepts every connection the system offers, closes connections
//! that send no complete request head within [`Limits::header_timeout`] (idle keep-alive, silent
//! or slow clients alike) and those that read no response for [`Limits::write_timeout`], answers
//! 503 at once when its connection or in-flight limits are reached rather than queueing, answers
//! `/healthz` and `/readyz` outside the in-flight limit and past the connection limit (a few
//! connections over it are read just for a probe), checks a credential already verified without
//! bcrypt, and sheds password checks past a small bound with 429.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING,
    CONTENT_TYPE, VARY, WWW_AUTHENTICATE,
};
use hyper::http::request::Parts;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::auth::Cached;
use super::deadline::WriteDeadline;
use super::reload::WebSource;
use super::{accept, Web};
use crate::encode::Encoder;
use crate::selfstats::{HttpStats, Rejection};
use crate::snapshot::SnapshotStore;

/// In-flight requests get this long to finish after a shutdown signal: with the runtime's own
/// shutdown after it, the agent exits within 5 s of SIGTERM (the pod is killed at 10 s).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);
/// The most a connection's read buffer holds (hyper's default lets it grow to ~400 KiB under a
/// client that pipelines requests). Request heads are small: a larger one is refused (431).
const READ_BUFFER: usize = 16 * 1024;
/// The listen backlog asked for; the kernel caps it at `net.core.somaxconn` (4096 by default
/// since Linux 5.4), as it does node_exporter's.
pub const LISTEN_BACKLOG: u32 = 4096;
/// File descriptors kept back from connections for everything else the agent opens (procfs,
/// sysfs, the NVML device files, the kubelet socket).
const RESERVED_FDS: u64 = 256;
/// The most connections open at once. Each costs about 14 KiB (hyper's read and write buffers,
/// the task): 2048 is under 30 MiB, well inside the DaemonSet's 128 MiB memory limit.
const MAX_CONNECTIONS: u64 = 2048;

/// How many clients the server serves at once, and how long it waits for them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Requests being answered at once (`/healthz` and `/readyz` aside); one more is answered
    /// 503. Most requests take under a millisecond; one that checks a password runs bcrypt.
    pub max_in_flight: usize,
    /// A connection has this long to send a complete request head, counted from when it opens
    /// (or its TLS handshake starts) and again after each response: this bounds idle keep-alive
    /// connections and slow clients alike. The TLS handshake has this long too.
    pub header_timeout: Duration,
    /// A connection whose response makes no progress for this long (the client does not read)
    /// is closed, and its response freed.
    pub write_timeout: Duration,
    /// Password checks (bcrypt) running or waiting at once; one more is answered 429.
    pub max_password_checks: usize,
    /// Connections past `max_connections` read at once, each for at most `triage_timeout`,
    /// only to answer `/healthz` and `/readyz` (anything else gets 503); past this many, a
    /// connection is refused unread.
    pub max_triage: usize,
    pub triage_timeout: Duration,
}

impl Limits {
    /// The limits for a process allowed `open_files` file descriptors: up to
    /// [`MAX_CONNECTIONS`] connections, fewer where the descriptor limit is low.
    pub fn for_open_files(open_files: u64) -> Limits {
        let connections = open_files
            .saturating_sub(RESERVED_FDS)
            .clamp(64, MAX_CONNECTIONS);
        Limits {
            max_connections: usize::try_from(connections).unwrap_or(64),
            max_in_flight: 64,
            header_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_password_checks: 4,
            max_triage: 64,
            triage_timeout: Duration::from_secs(1),
        }
    }
}

/// What every request handler shares.
#[derive(Debug)]
pub struct App {
    pub encoder: Encoder,
    pub store: Arc<SnapshotStore>,
    pub telemetry_path: String,
    /// The web config in force (`None`: plain HTTP, no auth, no extra headers).
    pub web: Option<Arc<WebSource>>,
    pub http: Arc<HttpStats>,
    pub limits: Limits,
    /// The in-flight request slots.
    in_flight: Arc<Semaphore>,
    /// The password-check slots (bcrypt running or waiting for its turn).
    password_checks: Arc<Semaphore>,
    /// The encoding slots: responses built at once, one per core.
    encoders: Arc<Semaphore>,
    /// The slots for connections past the limit read for a probe.
    triage: Arc<Semaphore>,
    /// The server is shutting down: password checks still waiting are dropped, and requests
    /// waiting for one are answered 503 at once.
    closing: tokio::sync::watch::Sender<bool>,
    /// For the once-a-minute log of shed clients: seconds since `started` (plus one period)
    /// at the last such line, 0 before the first.
    started: Instant,
    last_shed_log: AtomicU64,
}

/// How often, at most, reaching an HTTP limit is logged.
const SHED_LOG_EVERY_S: u64 = 60;

type Body = Full<Bytes>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

impl App {
    pub fn new(
        encoder: Encoder,
        store: Arc<SnapshotStore>,
        telemetry_path: String,
        web: Option<Arc<WebSource>>,
        http: Arc<HttpStats>,
        limits: Limits,
    ) -> App {
        App {
            encoder,
            store,
            telemetry_path,
            web,
            http,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            password_checks: Arc::new(Semaphore::new(limits.max_password_checks)),
            encoders: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8)),
            )),
            triage: Arc::new(Semaphore::new(limits.max_triage)),
            closing: tokio::sync::watch::Sender::new(false),
            limits,
            started: Instant::now(),
            last_shed_log: AtomicU64::new(0),
        }
    }

    /// Answers one request with the web config `web`, whose credentials were checked already
    /// (`access`). Health and readiness need no credentials, so that the kubelet's probes work
    /// when basic auth is on; they tell nothing about the node.
    pub fn handle(&self, req: &Parts, web: Option<&Web>, access: Access) -> Response<Body> {
        let path = req.uri.path();
        let mut resp = if req.method != Method::GET && req.method != Method::HEAD {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        } else if path == "/healthz" {
            text(StatusCode::OK, "ok\n")
        } else if path == "/readyz" {
            if self.store.load().ready {
                text(StatusCode::OK, "ready\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not every collector has loaded its library and completed a cycle yet\n",
                )
            }
        } else if access == Access::Denied {
            let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
            r
        } else if path == self.telemetry_path {
            self.metrics(req)
        } else if path == "/" {
            self.landing()
        } else {
            text(StatusCode::NOT_FOUND, "not found\n")
        };
        if let Some(web) = web {
            for (k, v) in &web.headers {
                resp.headers_mut().insert(k.clone(), v.clone());
            }
        }
        resp
    }

    /// Counts a client turned away at a limit, and says so in the log at most once a minute:
    /// reaching a limit means overload or abuse, worth an operator's look.
    fn shed(&self, why: Rejection) {
        self.http.reject(why);
        let now = self.started.elapsed().as_secs() + SHED_LOG_EVERY_S;
        let last = self.last_shed_log.load(Ordering::Relaxed);
        if now >= last + SHED_LOG_EVERY_S
            && self
                .last_shed_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                reason = why.label(),
                open_connections = self.http.open(),
                max_connections = self.limits.max_connections,
                max_in_flight = self.limits.max_in_flight,
                "HTTP limit reached: answering 503 (counted in gpu_pod_exporter_http_rejected_total; logged at most once a minute)"
            );
        }
    }

    fn metrics(&self, req: &Parts) -> Response<Body> {
        let values = |name: HeaderName| {
            req.headers
                .get_all(name)
                .into_iter()
                .filter_map(|v| v.to_str().ok())
        };
        let format = accept::format(values(ACCEPT));
        let gzip = accept::gzip(values(ACCEPT_ENCODING));
        match self.encoder.encode(format) {
            Ok(body) => {
                let compressed = if gzip {
                    gzip_bytes(body.as_bytes())
                } else {
                    None
                };
                let gzipped = compressed.is_some();
                let mut r =
                    Response::new(Full::new(compressed.unwrap_or_else(|| Bytes::from(body))));
                let h = r.headers_mut();
                h.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                );
                h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
                if gzipped {
                    h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                }
                r
            }
            Err(_) => {
                tracing::error!("encoding the snapshot failed");
                text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n")
            }
        }
    }

    fn landing(&self) -> Response<Body> {
        let page = format!(
            "<!DOCTYPE html>\n<html><head><title>gpu-pod-exporter</title></head><body>\n\
             <h1>gpu-pod-exporter {}</h1>\n<p>Per-device and per-pod GPU metrics.</p>\n<ul>\n\
             <li><a href=\"{path}\">{path}</a>: metrics</li>\n\
             <li><a href=\"/healthz\">/healthz</a>: liveness</li>\n\
             <li><a href=\"/readyz\">/readyz</a>: readiness (every collector has loaded its library and completed a cycle)</li>\n\
             </ul>\n</body></html>\n",
            env!("CARGO_PKG_VERSION"),
            path = html_escape(&self.telemetry_path),
        );
        let mut r = Response::new(Full::new(Bytes::from(page)));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        r
    }
}

/// gzip at the fastest level: a text exposition shrinks about tenfold even so, for a fraction
/// of a millisecond. `None` if compressing fails (the plain body is sent).
fn gzip_bytes(body: &[u8]) -> Option<Bytes> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body).ok()?;
    enc.finish().ok().map(Bytes::from)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Whether a request's credentials let it in (or none are asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Granted,
    Denied,
}

/// Probes: answered outside the in-flight limit, and never with a password check.
fn is_probe(req: &Parts) -> bool {
    matches!(req.uri.path(), "/healthz" | "/readyz")
}

/// What checking a request's credentials came to.
enum Checked {
    Access(Access),
    /// No answer to give but this one (shed, shutting down, a failed task).
    Answer(Response<Body>),
}

/// Checks a request's credentials: none asked for, or verified before (the cache, on this
/// worker: no bcrypt, no queue), or else bcrypt off the async workers in one of
/// `max_password_checks` slots, 429 at once when none is free.
async fn check_credentials(app: &Arc<App>, req: &Parts, web: Option<&Arc<Web>>) -> Checked {
    let Some(auth) = web.and_then(|w| w.auth.as_ref()) else {
        return Checked::Access(Access::Granted);
    };
    let candidate = match auth.check_cached(req.headers.get(AUTHORIZATION).map(|v| v.as_bytes())) {
        Cached::Verified => return Checked::Access(Access::Granted),
        Cached::Malformed => return Checked::Access(Access::Denied),
        Cached::Unverified(c) => c,
    };
    let Ok(permit) = Arc::clone(&app.password_checks).try_acquire_owned() else {
        app.shed(Rejection::PasswordChecks);
        let mut r = text(
            StatusCode::TOO_MANY_REQUESTS,
            "too many password checks at once\n",
        );
        r.headers_mut()
            .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Checked::Answer(r);
    };
    let (app2, web2) = (Arc::clone(app), web.cloned());
    let check = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let auth = web2.as_deref().and_then(|w| w.auth.as_ref())?;
        auth.verify(candidate, || !*app2.closing.borrow())
    });
    // At shutdown the answer does not wait for a bcrypt run (it goes on, unanswered, and the
    // runtime does not wait for it long): the drain, and the exit, are not held up by it.
    let mut closing = app.closing.subscribe();
    let verdict = tokio::select! {
        v = check => v,
        _ = closing.wait_for(|c| *c) => return Checked::Answer(overloaded("shutting down\n")),
    };
    match verdict {
        Ok(Some(true)) => Checked::Access(Access::Granted),
        Ok(Some(false)) => Checked::Access(Access::Denied),
        Ok(None) => Checked::Answer(overloaded("shutting down\n")),
        Err(_) => Checked::Answer(text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")),
    }
}

/// Answers one request: probes at once; anything else after its credentials are checked, in
/// an in-flight slot, or 503 when every slot is taken.
async fn respond(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let (parts, _body) = req.into_parts();
    let web = app.web.as_ref().map(|w| w.current());
    if is_probe(&parts) {
        return app.handle(&parts, web.as_deref(), Access::Granted);
    }
    let access = match check_credentials(&app, &parts, web.as_ref()).await {
        Checked::Access(a) => a,
        Checked::Answer(r) => return r,
    };
    let Ok(slot) = Arc::clone(&app.in_flight).try_acquire_owned() else {
        app.shed(Rejection::InFlightLimit);
        return overloaded("too many requests in flight\n");
    };
    // Encoding (and gzip) is the CPU of a scrape: on a blocking thread, so that a flood of
    // scrapes never queues the probes and the accept loop behind it on the two async workers,
    // and no more at once than there are cores (more would only add threads and memory).
    let Ok(encoder) = Arc::clone(&app.encoders).acquire_owned().await else {
        return overloaded("shutting down\n");
    };
    let app2 = Arc::clone(&app);
    tokio::task::spawn_blocking(move || {
        let _encoder = encoder;
        let resp = app2.handle(&parts, web.as_deref(), access);
        drop(slot);
        resp
    })
    .await
    .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"))
}

/// Answers a request on a connection past the limit: a probe as usual, anything else 503.
fn respond_over_limit(app: &App, req: Request<Incoming>) -> Response<Body> {
    let (parts, _body) = req.into_parts();
    if is_probe(&parts) {
        let web = app.web.as_ref().map(|w| w.current());
        return app.handle(&parts, web.as_deref(), Access::Granted);
    }
    app.shed(Rejection::ConnectionLimit);
    overloaded("too many connections\n")
}

fn overloaded(body: &'static str) -> Response<Body> {
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, body);
    r.headers_mut()
        .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// What a connection over the limit gets before it is closed: a complete 503 response, sent
/// without reading the request.
const OVER_LIMIT: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 21\r\n\r\ntoo many connections\n";

/// Answers a connection over the limit (plain HTTP: a 503; TLS: nothing, as a 503 would need a
/// handshake first) and closes it, within a second whatever the client does.
async fn refuse(mut stream: TcpStream, tls: bool) {
    use tokio::io::AsyncWriteExt as _;
    if tls {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(OVER_LIMIT).await?;
        stream.shutdown().await
    })
    .await;
}

/// How a connection is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Within the connection limit: every endpoint, keep-alive.
    Normal,
    /// Past it: one request, read within `triage_timeout`, a probe answered, anything else 503.
    OverLimit,
}

/// Serves one connection to its end: the TLS handshake if `tls`, then HTTP/1.1 with the
/// header timeout, a bounded read buffer and the write timeout; counts what turned it away.
async fn connection(
    app: Arc<App>,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    watcher: hyper_util::server::graceful::Watcher,
    peer: SocketAddr,
    kind: Kind,
) {
    let service = {
        let app = Arc::clone(&app);
        service_fn(move |req: Request<Incoming>| {
            let app = Arc::clone(&app);
            async move {
                Ok::<_, Infallible>(match kind {
                    Kind::Normal => respond(app, req).await,
                    Kind::OverLimit => respond_over_limit(&app, req),
                })
            }
        })
    };
    let head_timeout = match kind {
        Kind::Normal => app.limits.header_timeout,
        Kind::OverLimit => app.limits.triage_timeout,
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(READ_BUFFER)
        .keep_alive(kind == Kind::Normal);
    let write_timed_out = Arc::new(AtomicBool::new(false));
    let stream = WriteDeadline::new(
        stream,
        app.limits.write_timeout,
        Arc::clone(&write_timed_out),
    );
    let result = match tls {
        None => {
            watcher
                .watch(builder.serve_connection(TokioIo::new(stream), service))
                .await
        }
        Some(acceptor) => {
            let stream = match tokio::time::timeout(head_timeout, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    app.http.reject(Rejection::TlsHandshake);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    app.http.reject(Rejection::TlsHandshake);
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            watcher
                .watch(builder.serve_connection(TokioIo::new(stream), service))
                .await
        }
    };
    if write_timed_out.load(Ordering::Relaxed) {
        app.http.reject(Rejection::WriteTimeout);
    }
    if let Err(e) = result {
        if e.is_timeout() {
            app.http.reject(Rejection::HeaderTimeout);
        }
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains in-flight requests.
///
/// The accept loop never waits for a slot: every connection the kernel queues is taken at
/// once, so the listen backlog never fills behind slow clients. Past the connection limit, a
/// few connections at a time are read for a probe (so that the kubelet's probes are answered
/// whatever the load); the rest get 503 unread.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of fds and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let open = app.http.opened();
        let tls = app.web.as_ref().and_then(|w| w.current().tls.clone());
        let kind = if app.http.open() > app.limits.max_connections as u64 {
            let Ok(triage) = Arc::clone(&app.triage).try_acquire_owned() else {
                app.shed(Rejection::ConnectionLimit);
                tokio::spawn(async move {
                    refuse(stream, tls.is_some()).await;
                    drop(open);
                });
                continue;
            };
            Some(triage)
        } else {
            None
        };
        let watcher = graceful.watcher();
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let how = if kind.is_some() {
                Kind::OverLimit
            } else {
                Kind::Normal
            };
            connection(app, stream, tls, watcher, peer, how).await;
            drop(kind);
            drop(open);
        });
    }
    drop(listener);
    // Password checks still waiting for their turn are dropped (answered 503), not run.
    app.closing.send_replace(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = app.http.open(),
            "some connections did not finish within the drain timeout"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selfstats::Rejection;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    struct Running {
        addr: SocketAddr,
        app: Arc<App>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
        }
    }

    async fn start(limits: Limits) -> Running {
        let store = Arc::new(SnapshotStore::default());
        let http = Arc::new(HttpStats::default());
        let app = Arc::new(App::new(
            Encoder::new(Arc::clone(&store), Arc::clone(&http)),
            store,
            "/metrics".into(),
            None,
            http,
            limits,
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, Arc::clone(&app), async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            app,
            stop: Some(stop),
        }
    }

    /// One GET on a new connection; the status line's code.
    async fn get(addr: SocketAddr, path: &str) -> u16 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out));
        read.await.expect("no answer").unwrap();
        let text = String::from_utf8_lossy(&out);
        text.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn rejected(app: &App, why: Rejection) -> u64 {
        app.http
            .rejected()
            .iter()
            .find(|(r, _)| *r == why)
            .unwrap()
            .1
    }

    fn limits(max_connections: usize, max_in_flight: usize, header_timeout: Duration) -> Limits {
        Limits {
            max_connections,
            max_in_flight,
            header_timeout,
            ..Limits::for_open_files(1 << 20)
        }
    }

    /// Holds `n` idle connections, once the server has taken them all.
    async fn hold(server: &Running, n: usize) -> Vec<TcpStream> {
        let mut idle = Vec::new();
        for _ in 0..n {
            idle.push(TcpStream::connect(server.addr).await.unwrap());
        }
        while server.app.http.open() < n as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        idle
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_the_connection_limit_probes_are_answered_and_the_rest_gets_a_503() {
        let server = start(limits(3, 8, Duration::from_secs(30))).await;
        let idle = hold(&server, 3).await;
        assert_eq!(get(server.addr, "/healthz").await, 200);
        assert_eq!(
            get(server.addr, "/readyz").await,
            503,
            "answered: not ready yet"
        );
        assert_eq!(rejected(&server.app, Rejection::ConnectionLimit), 0);
        assert_eq!(get(server.addr, "/metrics").await, 503);
        assert_eq!(rejected(&server.app, Rejection::ConnectionLimit), 1);
        drop(idle);
        while server.app.http.open() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(get(server.addr, "/metrics").await, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_the_triage_slots_a_connection_is_refused_unread() {
        let server = start(Limits {
            max_triage: 1,
            ..limits(2, 8, Duration::from_secs(30))
        })
        .await;
        // Two within the limit, one more read for a probe (it sends nothing).
        let held = hold(&server, 3).await;
        assert_eq!(get(server.addr, "/healthz").await, 503);
        assert_eq!(rejected(&server.app, Rejection::ConnectionLimit), 1);
        drop(held);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_never_reads_is_closed_after_the_write_timeout() {
        let server = start(Limits {
            write_timeout: Duration::from_millis(300),
            ..limits(64, 8, Duration::from_secs(30))
        })
        .await;
        // Pipelined scrapes, never read: the responses fill the socket buffers, then the
        // server's write stalls until the timeout closes the connection.
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(100);
        // Until the server closes (the write fails); it stops reading once its writes stall.
        let sent = tokio::time::timeout(Duration::from_secs(30), async {
            while s.write_all(&req).await.is_ok() {}
        });
        sent.await
            .expect("the server stopped reading but did not close");
        let started = Instant::now();
        while server.app.http.open() > 0 {
            assert!(started.elapsed() < Duration::from_secs(20), "never closed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(rejected(&server.app, Rejection::WriteTimeout), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_in_flight_pool_sheds_scrapes_but_not_probes() {
        let server = start(limits(64, 2, Duration::from_secs(30))).await;
        let held = Arc::clone(&server.app.in_flight)
            .acquire_many_owned(2)
            .await
            .unwrap();
        assert_eq!(get(server.addr, "/metrics").await, 503);
        assert_eq!(get(server.addr, "/").await, 503);
        assert_eq!(rejected(&server.app, Rejection::InFlightLimit), 2);
        assert_eq!(get(server.addr, "/healthz").await, 200);
        // No sample yet: not ready, but answered.
        assert_eq!(get(server.addr, "/readyz").await, 503);
        drop(held);
        assert_eq!(get(server.addr, "/metrics").await, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn silent_and_slow_clients_are_closed_after_the_header_timeout() {
        let server = start(limits(64, 8, Duration::from_millis(300))).await;
        let mut silent = TcpStream::connect(server.addr).await.unwrap();
        let mut slow = TcpStream::connect(server.addr).await.unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            // A header line now and then, never the end of the head: slowloris.
            let _ = slow.write_all(b"X-A: b\r\n").await;
        }
        let mut buf = [0u8; 64];
        for s in [&mut silent, &mut slow] {
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
                .await
                .expect("not closed");
            assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        }
        while server.app.http.open() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(rejected(&server.app, Rejection::HeaderTimeout), 2);
        // A keep-alive connection left idle after a response is closed the same way.
        let mut ka = TcpStream::connect(server.addr).await.unwrap();
        ka.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), ka.read_to_end(&mut out))
            .await
            .expect("keep-alive connection not closed")
            .unwrap();
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    }

    #[test]
    fn limits_follow_the_open_files_limit() {
        assert_eq!(Limits::for_open_files(1024).max_connections, 768);
        assert_eq!(Limits::for_open_files(1 << 20).max_connections, 2048);
        assert_eq!(Limits::for_open_files(100).max_connections, 64);
    }
}
