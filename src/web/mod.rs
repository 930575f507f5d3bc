//! HTTP serving: the telemetry endpoint, health and readiness, the landing page, and the web
//! config (TLS, basic auth, response headers), reloaded when it changes.
//!
//! Rooms: `config` parses and checks the file (read by `file`: regular files only, bounded in
//! size and time), `tls` builds the acceptor, `auth` is the basic-auth gate, `reload` keeps
//! the config in force current (never lowering its security), `accept` reads `Accept`-style
//! headers, `server` serves.

pub mod accept;
pub mod auth;
pub mod config;
pub mod deadline;
pub mod file;
pub mod reload;
pub mod server;
#[cfg(test)]
mod testpki;
pub mod tls;

use std::path::{Path, PathBuf};

use hyper::header::{HeaderName, HeaderValue};
use tokio_rustls::TlsAcceptor;

use auth::BasicAuth;
use config::{ClientAuth, WebConfig, WebConfigError};

/// A web config ready to serve with: the acceptor built, the auth gate set up.
pub struct Web {
    /// `None`: plain HTTP.
    pub tls: Option<TlsAcceptor>,
    /// `None`: no basic auth.
    pub auth: Option<BasicAuth>,
    /// Added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The files it was built from (the config first), watched for changes.
    pub files: Vec<PathBuf>,
    /// What it protects: a reload may keep or raise this, never lower it.
    pub protection: Protection,
}

/// The protections a web config switches on. A reload that would drop one is refused: an
/// emptied or truncated file, or a bad edit, must never turn a protected endpoint into an open
/// one. Lowering security takes a restart, where the operator's intent is plain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protection {
    pub tls: bool,
    /// Clients must present a certificate (`RequireAnyClientCert`, `RequireAndVerifyClientCert`).
    pub client_cert_required: bool,
    /// A presented client certificate is verified against the client CA
    /// (`VerifyClientCertIfGiven`, `RequireAndVerifyClientCert`).
    pub client_cert_verified: bool,
    pub basic_auth: bool,
}

impl Protection {
    fn of(config: &WebConfig) -> Protection {
        let client = config
            .tls
            .as_ref()
            .map_or(ClientAuth::None, |t| t.client_auth);
        Protection {
            tls: config.tls.is_some(),
            client_cert_required: matches!(
                client,
                ClientAuth::RequireAny | ClientAuth::RequireAndVerify
            ),
            client_cert_verified: matches!(
                client,
                ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify
            ),
            basic_auth: !config.users.is_empty(),
        }
    }

    /// What `self` has that `next` would drop, as words for the log; empty when `next` keeps
    /// every protection (it may add some, or rotate certificates and passwords).
    pub fn dropped_by(&self, next: &Protection) -> Vec<&'static str> {
        [
            (self.tls && !next.tls, "TLS"),
            (
                self.client_cert_required && !next.client_cert_required,
                "required client certificates",
            ),
            (
                self.client_cert_verified && !next.client_cert_verified,
                "client certificate verification",
            ),
            (self.basic_auth && !next.basic_auth, "basic auth"),
        ]
        .into_iter()
        .filter_map(|(dropped, what)| dropped.then_some(what))
        .collect()
    }
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("tls", &self.tls.is_some())
            .field("auth", &self.auth)
            .field("headers", &self.headers)
            .field("files", &self.files)
            .field("protection", &self.protection)
            .finish()
    }
}

impl Web {
    /// Loads the web config at `path` and builds everything it asks for, so that a bad file
    /// fails here rather than at the first connection.
    ///
    /// # Errors
    ///
    /// See [`WebConfig::load`] and [`tls::acceptor`]; the error names the file and the field.
    pub fn load(path: &Path) -> Result<Web, WebConfigError> {
        let config = WebConfig::load(path)?;
        let tls = match &config.tls {
            Some(settings) => Some(tls::acceptor(path, settings)?),
            None => None,
        };
        let files = config.files();
        let protection = Protection::of(&config);
        Ok(Web {
            tls,
            auth: BasicAuth::new(config.users),
            headers: config.headers,
            files,
            protection,
        })
    }

    /// True when no users are configured, or the `Authorization: Basic` header matches a user.
    /// May run bcrypt: see [`BasicAuth::authorized`].
    pub fn authorized(&self, authorization: Option<&[u8]>) -> bool {
        self.auth
            .as_ref()
            .is_none_or(|auth| auth.authorized(authorization))
    }
}
