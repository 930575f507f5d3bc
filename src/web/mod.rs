//! HTTP serving: the telemetry endpoint, health and readiness, the landing page, and the web
//! config (TLS, basic auth, response headers).

pub mod config;
pub mod server;
