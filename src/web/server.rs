//! The HTTP server (hyper 1 on tokio): routes, auth, TLS, and graceful shutdown.
//!
//! Handlers only read the current snapshot; nothing here waits for a collector.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

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
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{accept, Web};
use crate::encode::Encoder;
use crate::snapshot::SnapshotStore;

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 128;
/// A client has this long to send its request headers (and finish a TLS handshake).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// In-flight requests get this long to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What every request handler shares.
#[derive(Debug)]
pub struct App {
    pub encoder: Encoder,
    pub store: Arc<SnapshotStore>,
    pub telemetry_path: String,
    pub web: Option<Web>,
}

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
    /// Answers one request. Health and readiness need no credentials, so that the kubelet's
    /// probes work when basic auth is on; they tell nothing about the node.
    pub fn handle(&self, req: &Parts) -> Response<Body> {
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
                text(StatusCode::SERVICE_UNAVAILABLE, "no sample completed yet\n")
            }
        } else if !self.authorized(req) {
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
        if let Some(web) = &self.web {
            for (k, v) in &web.headers {
                resp.headers_mut().insert(k.clone(), v.clone());
            }
        }
        resp
    }

    fn authorized(&self, req: &Parts) -> bool {
        match &self.web {
            None => true,
            Some(web) => web.authorized(req.headers.get(AUTHORIZATION).map(|v| v.as_bytes())),
        }
    }

    /// Whether answering may run bcrypt (tens of milliseconds of CPU), which must then run
    /// off the async workers.
    fn may_check_passwords(&self) -> bool {
        self.web.as_ref().is_some_and(|w| w.auth.is_some())
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
             <li><a href=\"/readyz\">/readyz</a>: readiness (a first sample completed)</li>\n\
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

/// Serves `app` on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let tls = app.web.as_ref().and_then(|w| w.tls.clone());
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
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
        let app = Arc::clone(&app);
        let service = service_fn(move |req: Request<Incoming>| {
            let app = Arc::clone(&app);
            async move {
                let (parts, _body) = req.into_parts();
                if app.may_check_passwords() {
                    let app2 = Arc::clone(&app);
                    match tokio::task::spawn_blocking(move || app2.handle(&parts)).await {
                        Ok(resp) => Ok::<_, Infallible>(resp),
                        Err(_) => Ok(text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")),
                    }
                } else {
                    Ok(app.handle(&parts))
                }
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        match &tls {
            None => {
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream =
                        match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within the drain timeout");
    }
}
