//! HTTP serving: the telemetry endpoint, health and readiness, the landing page, and the web
//! config (TLS, basic auth, response headers), reloaded when it changes.
//!
//! Rooms: `config` parses and checks the file, `tls` builds the acceptor, `auth` is the
//! basic-auth gate, `reload` keeps the config in force current, `accept` reads `Accept`-style
//! headers, `server` serves.

pub mod accept;
pub mod auth;
pub mod config;
pub mod reload;
pub mod server;
#[cfg(test)]
mod testpki;
pub mod tls;

use std::path::{Path, PathBuf};

use hyper::header::{HeaderName, HeaderValue};
use tokio_rustls::TlsAcceptor;

use auth::BasicAuth;
use config::{WebConfig, WebConfigError};

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
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("tls", &self.tls.is_some())
            .field("auth", &self.auth)
            .field("headers", &self.headers)
            .field("files", &self.files)
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
        Ok(Web {
            tls,
            auth: BasicAuth::new(config.users),
            headers: config.headers,
            files,
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
