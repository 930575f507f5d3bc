//! The web config file (`--web.config.file`): TLS, basic auth and extra response headers, in the
//! YAML format of the Prometheus exporter-toolkit, so a node_exporter web config works unchanged.
//!
//! Loading has two stages: [`RawConfig`] is what the user typed (strict: an unknown key is an
//! error, as in exporter-toolkit), and [`WebConfig`] holds the resolved objects — a rustls
//! acceptor, validated bcrypt hashes and the response headers to add.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use serde::de::IgnoredAny;
use serde::Deserialize;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedProtocolVersion,
};

/// Verified credentials remembered so that a scrape every few seconds costs one hash lookup, not
/// one bcrypt run (tens of milliseconds at the usual cost). exporter-toolkit bounds its cache too.
const AUTH_CACHE_CAPACITY: usize = 100;

/// The response headers exporter-toolkit lets a web config set, with the values it accepts
/// (`None`: any value). Kept identical so a config that node_exporter takes is taken here.
const ALLOWED_HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

const CERT_FILE: &str = "tls_server_config.cert_file";
const KEY_FILE: &str = "tls_server_config.key_file";
const CLIENT_CA_FILE: &str = "tls_server_config.client_ca_file";

/// A web config file that could not be used; every variant names the file, and most the field.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read web config {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot parse web config {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("web config {}: {field}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("web config {}: {field} is not supported by this exporter: {reason}", path.display())]
    Unsupported {
        path: PathBuf,
        field: &'static str,
        reason: &'static str,
    },
    #[error("web config {}: {field}: cannot read {}: {error}", path.display(), file.display())]
    ReadFile {
        path: PathBuf,
        field: &'static str,
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("web config {}: {field}: {origin}: {message}", path.display())]
    Pem {
        path: PathBuf,
        field: &'static str,
        /// The file the PEM came from, or `inline` for the `cert`/`key`/`client_ca` fields.
        origin: String,
        message: String,
    },
    #[error("web config {}: cannot build the TLS server: {error}", path.display())]
    Tls { path: PathBuf, error: rustls::Error },
}

/// The file as the user wrote it. Field names and defaults follow exporter-toolkit's `Config`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
    /// Known to exporter-toolkit but not implemented here; taken only to refuse it by name.
    #[serde(default)]
    rate_limit: Option<IgnoredAny>,
}

/// `tls_server_config`. As in exporter-toolkit, an empty string means "not set".
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    client_ca_file: Option<String>,
    client_ca: Option<String>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

/// `http_server_config`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    /// Accepted and ignored: the server speaks HTTP/1.1 only, which `http2: false` asks for anyway.
    #[allow(dead_code)]
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// A loaded and checked web config, ready for the HTTP server.
pub struct WebConfig {
    tls: Option<TlsAcceptor>,
    /// User name -> bcrypt hash, each hash checked to parse at load time.
    users: BTreeMap<String, String>,
    headers: Vec<(String, String)>,
    /// SHA-256 of (user, password) pairs that bcrypt accepted. Only successes are kept, so
    /// failed guesses can neither fill the cache nor evict the scraper's entry.
    verified: Mutex<HashSet<Vec<u8>>>,
    /// One bcrypt run at a time, as in exporter-toolkit: a flood of bad passwords costs one core,
    /// not all of them.
    bcrypt_gate: Mutex<()>,
}

impl fmt::Debug for WebConfig {
    // Hand-written so that hashes never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.len())
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl WebConfig {
    /// Reads, parses and resolves the web config at `path`, loading every certificate and key it
    /// names, so that a bad file fails at startup rather than at the first connection.
    ///
    /// # Errors
    ///
    /// Any unreadable file, unknown key, unsupported setting, or unusable certificate, key or
    /// bcrypt hash; the error names the config file and the field.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| WebConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let raw = parse(path, &text)?;
        let ctx = Ctx {
            path,
            dir: path.parent().unwrap_or(Path::new("")),
        };
        if raw.rate_limit.is_some() {
            return Err(ctx.unsupported(
                "rate_limit",
                "rate limiting is not implemented; remove it or limit at the network level",
            ));
        }
        let tls = match &raw.tls_server_config {
            Some(tls) => ctx.tls(tls)?,
            None => None,
        };
        let http = raw.http_server_config.unwrap_or_default();
        let headers = ctx.headers(http.headers.unwrap_or_default())?;
        let users = ctx.users(raw.basic_auth_users.unwrap_or_default())?;
        Ok(WebConfig {
            tls,
            users,
            headers,
            verified: Mutex::new(HashSet::new()),
            bcrypt_gate: Mutex::new(()),
        })
    }

    /// None when the file has no usable `tls_server_config` (absent, or with no certificate,
    /// key or client-auth field set: exporter-toolkit then serves plain HTTP too).
    pub fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.tls.clone()
    }

    /// True when no users are configured, or the `Authorization: Basic` header matches a user.
    ///
    /// A cache miss runs bcrypt (tens of milliseconds at cost 10) on the calling thread; call it
    /// from `spawn_blocking` if that must not stall an async worker. Cache hits are cheap.
    pub fn authorized(&self, authorization: Option<&[u8]>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let key = cache_key(&user, &password);
        if lock(&self.verified).contains(&key) {
            return true;
        }
        let known = std::str::from_utf8(&user)
            .ok()
            .and_then(|user| self.users.get(user));
        let ok = match known {
            Some(hash) => self.bcrypt_verify(&password, hash),
            None => {
                // Unknown user: still pay one bcrypt run, against a real configured hash so the
                // cost matches, so that response time does not tell which user names exist.
                if let Some(decoy) = self.users.values().next() {
                    self.bcrypt_verify(&password, decoy);
                }
                false
            }
        };
        if ok {
            let mut verified = lock(&self.verified);
            if verified.len() >= AUTH_CACHE_CAPACITY {
                if let Some(old) = verified.iter().next().cloned() {
                    verified.remove(&old);
                }
            }
            verified.insert(key);
        }
        ok
    }

    /// Whether basic auth is on (then `authorized` may run bcrypt).
    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// Headers from `http_server_config.headers` to add to every response, canonically named.
    pub fn extra_headers(&self) -> &[(String, String)] {
        &self.headers
    }

    fn bcrypt_verify(&self, password: &[u8], hash: &str) -> bool {
        let _gate = lock(&self.bcrypt_gate);
        matches!(bcrypt::verify(password, hash), Ok(true))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded data stays consistent even if a holder panicked (a set insert, or nothing).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn parse(path: &Path, text: &str) -> Result<RawConfig, WebConfigError> {
    // An empty file (or one holding only comments) is valid for exporter-toolkit: no TLS, no auth.
    let has_content = text
        .lines()
        .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'));
    if !has_content {
        return Ok(RawConfig::default());
    }
    serde_saphyr::from_str::<Option<RawConfig>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| WebConfigError::Parse {
            path: path.to_path_buf(),
            // Without the source snippet: it could echo an inline key into the logs.
            message: e.without_snippet().to_string(),
        })
}

/// Splits an `Authorization: Basic <base64(user:password)>` header value, as Go's
/// `Request.BasicAuth` does: scheme case-insensitive, standard padded base64, split at the first
/// colon. Anything else is `None`.
fn parse_basic(header: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    const SCHEME: &[u8] = b"Basic ";
    let scheme = header.get(..SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(header.get(SCHEME.len()..)?)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let password = decoded.get(colon + 1..)?.to_vec();
    let mut user = decoded;
    user.truncate(colon);
    Some((user, password))
}

fn cache_key(user: &[u8], password: &[u8]) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    // Length-prefix the user so that ("ab", "c") and ("a", "bc") differ.
    ctx.update(&(user.len() as u64).to_le_bytes());
    ctx.update(user);
    ctx.update(password);
    ctx.finish().as_ref().to_vec()
}

/// `client_auth_type`, with the names exporter-toolkit takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    None,
    Request,
    RequireAny,
    VerifyIfGiven,
    RequireAndVerify,
}

/// PEM bytes and where they came from, for error messages.
struct PemInput {
    bytes: Vec<u8>,
    origin: String,
}

/// Resolution context: the config file, for error messages and relative paths.
struct Ctx<'a> {
    path: &'a Path,
    dir: &'a Path,
}

impl Ctx<'_> {
    fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> WebConfigError {
        WebConfigError::Invalid {
            path: self.path.to_path_buf(),
            field: field.into(),
            message: message.into(),
        }
    }

    fn unsupported(&self, field: &'static str, reason: &'static str) -> WebConfigError {
        WebConfigError::Unsupported {
            path: self.path.to_path_buf(),
            field,
            reason,
        }
    }

    fn tls_error(&self, error: rustls::Error) -> WebConfigError {
        WebConfigError::Tls {
            path: self.path.to_path_buf(),
            error,
        }
    }

    /// Relative paths are taken from the config file's directory, as exporter-toolkit does.
    fn resolve(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn tls(&self, raw: &RawTls) -> Result<Option<TlsAcceptor>, WebConfigError> {
        let versions = self.versions(raw)?;
        self.warn_ignored(raw);
        if raw.client_allowed_sans.is_some() {
            // Ignoring it would let in clients the file means to keep out.
            return Err(self.unsupported(
                "tls_server_config.client_allowed_sans",
                "client SAN matching is not implemented; use a client CA that issues only to \
                 allowed clients",
            ));
        }
        let client_auth = self.client_auth(raw.client_auth_type.as_deref())?;
        let cert = self.pem(
            CERT_FILE,
            set(raw.cert_file.as_deref()),
            "cert",
            set(raw.cert.as_deref()),
        )?;
        let key = self.pem(
            KEY_FILE,
            set(raw.key_file.as_deref()),
            "key",
            set(raw.key.as_deref()),
        )?;
        let client_ca = self.pem(
            CLIENT_CA_FILE,
            set(raw.client_ca_file.as_deref()),
            "client_ca",
            set(raw.client_ca.as_deref()),
        )?;
        let enabled = cert.is_some()
            || key.is_some()
            || client_ca.is_some()
            || set(raw.client_auth_type.as_deref()).is_some();
        if !enabled {
            return Ok(None);
        }
        let cert = cert
            .ok_or_else(|| self.invalid("tls_server_config", "missing one of cert or cert_file"))?;
        let key =
            key.ok_or_else(|| self.invalid("tls_server_config", "missing one of key or key_file"))?;

        let chain = self.certificates(CERT_FILE, &cert)?;
        let key_der =
            PrivateKeyDer::from_pem_slice(&key.bytes).map_err(|e| WebConfigError::Pem {
                path: self.path.to_path_buf(),
                field: KEY_FILE,
                origin: key.origin.clone(),
                message: format!("no usable private key: {e}"),
            })?;

        // Explicit provider: nothing here depends on a process-wide default being installed.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| self.tls_error(e))?;
        let builder = match self.client_verifier(client_auth, client_ca, &provider)? {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        // Also checks that the key belongs to the first certificate.
        let config = builder
            .with_single_cert(chain, key_der)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => self.invalid(
                    "tls_server_config",
                    format!(
                        "the private key from {} does not match the certificate from {}",
                        key.origin, cert.origin
                    ),
                ),
                other => self.tls_error(other),
            })?;
        Ok(Some(TlsAcceptor::from(Arc::new(config))))
    }

    fn versions(
        &self,
        raw: &RawTls,
    ) -> Result<Vec<&'static SupportedProtocolVersion>, WebConfigError> {
        let min = self.version(
            "min_version",
            set(raw.min_version.as_deref()).unwrap_or("TLS12"),
        )?;
        let max = self.version(
            "max_version",
            set(raw.max_version.as_deref()).unwrap_or("TLS13"),
        )?;
        let versions: Vec<_> = [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, version)| version)
            .collect();
        if versions.is_empty() {
            return Err(self.invalid(
                "tls_server_config.min_version",
                "min_version is above max_version",
            ));
        }
        Ok(versions)
    }

    fn version(&self, field: &'static str, value: &str) -> Result<u8, WebConfigError> {
        let field = format!("tls_server_config.{field}");
        match value {
            "TLS12" => Ok(12),
            "TLS13" => Ok(13),
            "TLS10" | "TLS11" => Err(self.invalid(
                field,
                format!("{value} is not supported: rustls implements only TLS12 and TLS13"),
            )),
            other => Err(self.invalid(
                field,
                format!("unknown TLS version {other:?}, expected TLS12 or TLS13"),
            )),
        }
    }

    fn warn_ignored(&self, raw: &RawTls) {
        let ignored = [
            ("cipher_suites", raw.cipher_suites.is_some()),
            ("curve_preferences", raw.curve_preferences.is_some()),
            (
                "prefer_server_cipher_suites",
                raw.prefer_server_cipher_suites.is_some(),
            ),
        ];
        for (field, present) in ignored {
            if present {
                tracing::warn!(
                    path = %self.path.display(),
                    field,
                    "ignored: rustls chooses cipher suites and key exchange groups itself"
                );
            }
        }
    }

    fn client_auth(&self, value: Option<&str>) -> Result<ClientAuth, WebConfigError> {
        match value.unwrap_or("") {
            "" | "NoClientCert" => Ok(ClientAuth::None),
            "RequestClientCert" => Ok(ClientAuth::Request),
            // "RequireClientCert" is exporter-toolkit's old spelling, still accepted there.
            "RequireAnyClientCert" | "RequireClientCert" => Ok(ClientAuth::RequireAny),
            "VerifyClientCertIfGiven" => Ok(ClientAuth::VerifyIfGiven),
            "RequireAndVerifyClientCert" => Ok(ClientAuth::RequireAndVerify),
            other => Err(self.invalid(
                "tls_server_config.client_auth_type",
                format!(
                    "unknown value {other:?}, expected one of NoClientCert, RequestClientCert, \
                     RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
                ),
            )),
        }
    }

    fn client_verifier(
        &self,
        auth: ClientAuth,
        client_ca: Option<PemInput>,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Option<Arc<dyn ClientCertVerifier>>, WebConfigError> {
        let roots = match &client_ca {
            Some(ca) => Some(self.roots(ca)?),
            None => None,
        };
        let field = "tls_server_config.client_auth_type";
        let any_cert = |mandatory| -> Arc<dyn ClientCertVerifier> {
            Arc::new(AnyClientCert {
                mandatory,
                hints: roots
                    .as_ref()
                    .map(RootCertStore::subjects)
                    .unwrap_or_default(),
                algorithms: provider.signature_verification_algorithms,
            })
        };
        let verifier = match auth {
            ClientAuth::None if roots.is_some() => {
                return Err(self.invalid(
                    field,
                    "a client CA is configured but client_auth_type is NoClientCert",
                ))
            }
            ClientAuth::None => None,
            ClientAuth::Request => Some(any_cert(false)),
            ClientAuth::RequireAny => Some(any_cert(true)),
            ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
                let roots = roots.ok_or_else(|| {
                    self.invalid(field, "verifying client certificates needs client_ca_file")
                })?;
                let builder =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let builder = if auth == ClientAuth::VerifyIfGiven {
                    builder.allow_unauthenticated()
                } else {
                    builder
                };
                Some(
                    builder
                        .build()
                        .map_err(|e| self.invalid(field, e.to_string()))?,
                )
            }
        };
        Ok(verifier)
    }

    /// Reads PEM from `file_field` (a path) or else from `inline_field` (the PEM text itself).
    fn pem(
        &self,
        file_field: &'static str,
        file: Option<&str>,
        inline_field: &'static str,
        inline: Option<&str>,
    ) -> Result<Option<PemInput>, WebConfigError> {
        if let Some(file) = file {
            if inline.is_some() {
                tracing::warn!(
                    path = %self.path.display(),
                    "both {file_field} and {inline_field} are set; using {file_field}"
                );
            }
            let file = self.resolve(file);
            let bytes = std::fs::read(&file).map_err(|error| WebConfigError::ReadFile {
                path: self.path.to_path_buf(),
                field: file_field,
                file: file.clone(),
                error,
            })?;
            let origin = file.display().to_string();
            return Ok(Some(PemInput { bytes, origin }));
        }
        Ok(inline.map(|text| PemInput {
            bytes: text.as_bytes().to_vec(),
            origin: format!("inline {inline_field}"),
        }))
    }

    fn certificates(
        &self,
        field: &'static str,
        pem: &PemInput,
    ) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
        let pem_error = |message: String| WebConfigError::Pem {
            path: self.path.to_path_buf(),
            field,
            origin: pem.origin.clone(),
            message,
        };
        let certs = CertificateDer::pem_slice_iter(&pem.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(format!("bad PEM: {e}")))?;
        if certs.is_empty() {
            return Err(pem_error("no CERTIFICATE block found".to_string()));
        }
        Ok(certs)
    }

    fn roots(&self, pem: &PemInput) -> Result<RootCertStore, WebConfigError> {
        let mut roots = RootCertStore::empty();
        for cert in self.certificates(CLIENT_CA_FILE, pem)? {
            roots.add(cert).map_err(|e| WebConfigError::Pem {
                path: self.path.to_path_buf(),
                field: CLIENT_CA_FILE,
                origin: pem.origin.clone(),
                message: format!("unusable CA certificate: {e}"),
            })?;
        }
        Ok(roots)
    }

    fn headers(
        &self,
        headers: BTreeMap<String, String>,
    ) -> Result<Vec<(String, String)>, WebConfigError> {
        headers
            .into_iter()
            .map(|(name, value)| {
                let field = format!("http_server_config.headers.{name}");
                let Some((canonical, allowed)) = ALLOWED_HEADERS
                    .iter()
                    .find(|(known, _)| known.eq_ignore_ascii_case(&name))
                else {
                    return Err(self.invalid(field, "this header can not be configured"));
                };
                if let Some(allowed) = allowed {
                    if !allowed.contains(&value.as_str()) {
                        return Err(self.invalid(
                            field,
                            format!("invalid value {value:?}, expected one of {allowed:?}"),
                        ));
                    }
                }
                if hyper::header::HeaderValue::from_str(&value).is_err() {
                    return Err(self.invalid(field, "not a valid HTTP header value"));
                }
                Ok(((*canonical).to_string(), value))
            })
            .collect()
    }

    fn users(
        &self,
        users: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, WebConfigError> {
        for (user, hash) in &users {
            let field = format!("basic_auth_users.{user}");
            let parts = hash
                .parse::<bcrypt::HashParts>()
                .map_err(|e| self.invalid(field.clone(), format!("not a bcrypt hash: {e}")))?;
            if !(4..=31).contains(&parts.get_cost()) {
                return Err(self.invalid(field, "bcrypt cost must be between 4 and 31"));
            }
        }
        Ok(users)
    }
}

/// `None` for an absent or empty string: exporter-toolkit treats both as "not set".
fn set(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

/// The policy of Go's `RequestClientCert` and `RequireAnyClientCert`: ask for a client
/// certificate and check the handshake signature made with its key, but chain it to no CA.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ProtocolVersion};
    use std::time::Duration;
    use tokio::net::{TcpListener, TcpStream};

    /// A throwaway PKI written to a temp dir: a CA, a "localhost" server certificate and a
    /// client certificate signed by it, plus a self-signed "stranger" client certificate.
    struct Pki {
        dir: tempfile::TempDir,
        ca: CertificateDer<'static>,
        client: (CertificateDer<'static>, String),
        stranger: (CertificateDer<'static>, String),
    }

    impl Pki {
        fn new() -> Pki {
            let dir = tempfile::tempdir().unwrap();
            let ca_key = KeyPair::generate().unwrap();
            let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca_params
                .distinguished_name
                .push(DnType::CommonName, "test CA");
            let ca = ca_params.self_signed(&ca_key).unwrap();
            let issuer = Issuer::new(ca_params, ca_key);

            let server_key = KeyPair::generate().unwrap();
            let server = CertificateParams::new(vec!["localhost".to_string()])
                .unwrap()
                .signed_by(&server_key, &issuer)
                .unwrap();
            let client_key = KeyPair::generate().unwrap();
            let mut client_params = CertificateParams::new(vec!["scraper".to_string()]).unwrap();
            client_params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
            let client = client_params.signed_by(&client_key, &issuer).unwrap();
            let stranger =
                rcgen::generate_simple_self_signed(vec!["stranger".to_string()]).unwrap();

            write(dir.path(), "ca.pem", &ca.pem());
            write(dir.path(), "server.pem", &server.pem());
            write(dir.path(), "server.key", &server_key.serialize_pem());
            Pki {
                dir,
                ca: ca.der().clone(),
                client: (client.der().clone(), client_key.serialize_pem()),
                stranger: (
                    stranger.cert.der().clone(),
                    stranger.signing_key.serialize_pem(),
                ),
            }
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }

        /// A client trusting the test CA, presenting `identity` if given.
        fn client(&self, identity: Option<&(CertificateDer<'static>, String)>) -> ClientConfig {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca.clone()).unwrap();
            let builder = ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
            match identity {
                Some((cert, key)) => builder
                    .with_client_auth_cert(
                        vec![cert.clone()],
                        PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                    )
                    .unwrap(),
                None => builder.with_no_client_auth(),
            }
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(dir: &Path, yaml: &str) -> Result<WebConfig, WebConfigError> {
        WebConfig::load(&write(dir, "web.yml", yaml))
    }

    /// Runs one TLS handshake over loopback; returns the version the server negotiated, or the
    /// server's error (with TLS 1.3 the client may finish before the server rejects its cert).
    async fn handshake(
        acceptor: TlsAcceptor,
        client: ClientConfig,
    ) -> Result<ProtocolVersion, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = async {
            let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
            tls.get_ref()
                .1
                .protocol_version()
                .ok_or("no version".to_string())
        };
        let client = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            tokio_rustls::TlsConnector::from(Arc::new(client))
                .connect(name, tcp)
                .await
        };
        let both = async { tokio::join!(server, client).0 };
        tokio::time::timeout(Duration::from_secs(10), both)
            .await
            .expect("handshake timed out")
    }

    fn basic(user: &str, password: &str) -> Vec<u8> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {token}").into_bytes()
    }

    #[test]
    fn parses_a_full_config() {
        let pki = Pki::new();
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let config = load(
            pki.path(),
            &format!(
                r#"
# Every field exporter-toolkit documents that this exporter accepts.
tls_server_config:
  cert_file: server.pem
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.pem
  min_version: TLS12
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
  curve_preferences: [X25519, CurveP256]
  prefer_server_cipher_suites: true
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    strict-transport-security: max-age=31536000
basic_auth_users:
  prometheus: {hash}
"#
            ),
        )
        .unwrap();
        assert!(config.tls_acceptor().is_some());
        assert_eq!(
            config.extra_headers(),
            [
                ("X-Frame-Options".to_string(), "deny".to_string()),
                (
                    "Strict-Transport-Security".to_string(),
                    "max-age=31536000".to_string()
                ),
            ]
        );
        assert!(config.authorized(Some(&basic("prometheus", "s3cret"))));
        assert!(
            !format!("{config:?}").contains(&hash),
            "Debug must not print hashes"
        );
    }

    #[test]
    fn empty_or_comment_only_file_means_plain_http_and_no_auth() {
        let dir = tempfile::tempdir().unwrap();
        for yaml in [
            "",
            "# nothing here\n",
            "tls_server_config:\n",
            "tls_server_config: {}\n",
        ] {
            let config = load(dir.path(), yaml).unwrap();
            assert!(config.tls_acceptor().is_none(), "{yaml:?}");
            assert!(config.authorized(None), "{yaml:?}");
            assert!(config.extra_headers().is_empty(), "{yaml:?}");
        }
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let pki = Pki::new();
        let conf_dir = pki.path().join("conf");
        // The test's working directory is the crate root, so these only load if resolved
        // against conf/.
        let config = load(
            &conf_dir,
            "tls_server_config:\n  cert_file: ../server.pem\n  key_file: ../server.key\n",
        )
        .unwrap();
        assert!(config.tls_acceptor().is_some());

        let abs_cert = pki.path().join("server.pem");
        let config = load(
            &conf_dir,
            &format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: ../server.key\n",
                abs_cert.display()
            ),
        )
        .unwrap();
        assert!(config.tls_acceptor().is_some());

        let ctx = Ctx {
            path: Path::new("/etc/exporter/web.yml"),
            dir: Path::new("/etc/exporter"),
        };
        assert_eq!(
            ctx.resolve("tls/a.pem"),
            Path::new("/etc/exporter/tls/a.pem")
        );
        assert_eq!(ctx.resolve("/srv/a.pem"), Path::new("/srv/a.pem"));
    }

    #[test]
    fn inline_cert_and_key() {
        let pki = Pki::new();
        let indent = |text: String| text.replace('\n', "\n    ");
        let cert = indent(std::fs::read_to_string(pki.path().join("server.pem")).unwrap());
        let key = indent(std::fs::read_to_string(pki.path().join("server.key")).unwrap());
        let yaml = format!("tls_server_config:\n  cert: |\n    {cert}\n  key: |\n    {key}\n");
        assert!(load(pki.path(), &yaml).unwrap().tls_acceptor().is_some());
    }

    /// Each bad file, and a piece of the error it must give.
    #[test]
    fn rejects_bad_configs_with_context() {
        let pki = Pki::new();
        let tls = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
        let cases: &[(&str, String, &str)] = &[
            ("unknown top-level key", "tls_config: {}\n".into(), "tls_config"),
            (
                "unknown nested key",
                "tls_server_config:\n  cert_path: x.pem\n".into(),
                "cert_path",
            ),
            ("TLS10", format!("{tls}  min_version: TLS10\n"), "rustls implements only"),
            ("TLS11", format!("{tls}  max_version: TLS11\n"), "TLS11 is not supported"),
            ("made-up version", format!("{tls}  min_version: TLS14\n"), "unknown TLS version"),
            (
                "min above max",
                format!("{tls}  min_version: TLS13\n  max_version: TLS12\n"),
                "min_version is above max_version",
            ),
            (
                "missing cert file",
                "tls_server_config:\n  cert_file: nope.pem\n  key_file: server.key\n".into(),
                "nope.pem",
            ),
            (
                "cert without key",
                "tls_server_config:\n  cert_file: server.pem\n".into(),
                "missing one of key or key_file",
            ),
            (
                "key that is not a key",
                "tls_server_config:\n  cert_file: server.pem\n  key_file: server.pem\n".into(),
                "no usable private key",
            ),
            (
                "key of another certificate",
                "tls_server_config:\n  cert_file: server.pem\n  key_file: other.key\n".into(),
                "does not match the certificate",
            ),
            (
                "unknown client auth type",
                format!("{tls}  client_auth_type: Whatever\n"),
                "unknown value \"Whatever\"",
            ),
            (
                "client CA without client auth",
                format!("{tls}  client_ca_file: ca.pem\n"),
                "client_auth_type is NoClientCert",
            ),
            (
                "verification without a CA",
                format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"),
                "needs client_ca_file",
            ),
            (
                "client SAN allow-list",
                format!(
                    "{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  client_allowed_sans: [a]\n"
                ),
                "client_allowed_sans is not supported",
            ),
            (
                "duplicate key",
                "basic_auth_users:\n  a: x\n  a: y\n".into(),
                "duplicate",
            ),
            ("rate limit", "rate_limit:\n  burst: 10\n".into(), "rate_limit is not supported"),
            (
                "header not on the allow-list",
                "http_server_config:\n  headers:\n    X-Powered-By: rust\n".into(),
                "X-Powered-By: this header can not be configured",
            ),
            (
                "header value not allowed",
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n".into(),
                "invalid value \"allow\"",
            ),
            (
                "bad bcrypt hash",
                "basic_auth_users:\n  alice: plaintext\n".into(),
                "basic_auth_users.alice: not a bcrypt hash",
            ),
        ];
        write(
            pki.path(),
            "other.key",
            &KeyPair::generate().unwrap().serialize_pem(),
        );
        for (name, yaml, expected) in cases {
            let err = match load(pki.path(), yaml) {
                Ok(_) => panic!("{name}: loaded, expected an error containing {expected:?}"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(expected), "{name}: {err:?} lacks {expected:?}");
            assert!(
                err.contains("web.yml"),
                "{name}: {err:?} does not name the file"
            );
        }
    }

    #[test]
    fn missing_config_file_is_named() {
        let err = WebConfig::load(Path::new("/nonexistent/web.yml")).unwrap_err();
        assert!(matches!(err, WebConfigError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/web.yml"), "{err}");
    }

    #[test]
    fn basic_auth() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "basic_auth_users:\n  alice: {}\n  bob: {}\n",
            bcrypt::hash("wonderland", 4).unwrap(),
            bcrypt::hash("builder:with:colons", 4).unwrap(),
        );
        let config = load(dir.path(), &yaml).unwrap();

        assert!(config.authorized(Some(&basic("alice", "wonderland"))));
        // Only the first colon separates user from password.
        assert!(config.authorized(Some(&basic("bob", "builder:with:colons"))));
        // The scheme is case-insensitive (RFC 7617).
        let lower = String::from_utf8(basic("alice", "wonderland")).unwrap();
        assert!(config.authorized(Some(lower.replacen("Basic", "basic", 1).as_bytes())));

        let rejected: &[(&str, Option<Vec<u8>>)] = &[
            ("no header", None),
            ("wrong password", Some(basic("alice", "Wonderland"))),
            ("another user's password", Some(basic("bob", "wonderland"))),
            ("unknown user", Some(basic("mallory", "wonderland"))),
            ("empty credentials", Some(basic("", ""))),
            ("other scheme", Some(b"Bearer d29uZGVybGFuZA==".to_vec())),
            ("not base64", Some(b"Basic !!!".to_vec())),
            ("no colon", Some(b"Basic YWxpY2U=".to_vec())),
            ("scheme only", Some(b"Basic".to_vec())),
            ("empty", Some(Vec::new())),
        ];
        for (name, header) in rejected {
            assert!(!config.authorized(header.as_deref()), "{name} was accepted");
        }
        // Two successes are cached; no failure is.
        assert_eq!(lock(&config.verified).len(), 2);
    }

    #[test]
    fn auth_cache_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("pw", 4).unwrap();
        let users: String = (0..AUTH_CACHE_CAPACITY + 20)
            .map(|i| format!("  user{i}: {hash}\n"))
            .collect();
        let config = load(dir.path(), &format!("basic_auth_users:\n{users}")).unwrap();
        for i in 0..AUTH_CACHE_CAPACITY + 20 {
            assert!(config.authorized(Some(&basic(&format!("user{i}"), "pw"))));
        }
        assert_eq!(lock(&config.verified).len(), AUTH_CACHE_CAPACITY);
        // An evicted entry is simply verified again.
        assert!(config.authorized(Some(&basic("user0", "pw"))));
    }

    #[test]
    fn acceptor_builds_from_a_self_signed_cert() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        write(dir.path(), "tls/cert.pem", &cert.cert.pem());
        write(dir.path(), "tls/key.pem", &cert.signing_key.serialize_pem());
        let yaml = "tls_server_config:\n  cert_file: tls/cert.pem\n  key_file: tls/key.pem\n";
        assert!(load(dir.path(), yaml).unwrap().tls_acceptor().is_some());
    }

    #[tokio::test]
    async fn handshake_honours_max_version() {
        let pki = Pki::new();
        let base = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
        for (extra, want) in [
            ("", ProtocolVersion::TLSv1_3),
            ("  max_version: TLS12\n", ProtocolVersion::TLSv1_2),
        ] {
            let config = load(pki.path(), &format!("{base}{extra}")).unwrap();
            let got = handshake(config.tls_acceptor().unwrap(), pki.client(None)).await;
            assert_eq!(got, Ok(want), "{extra:?}");
        }
    }

    /// Which client identities each `client_auth_type` lets through the handshake.
    #[tokio::test]
    async fn client_auth_types() {
        let pki = Pki::new();
        let cases = [
            // (client_auth_type, no cert, CA-signed cert, self-signed stranger)
            ("NoClientCert", true, true, true),
            ("RequestClientCert", true, true, true),
            ("RequireAnyClientCert", false, true, true),
            ("VerifyClientCertIfGiven", true, true, false),
            ("RequireAndVerifyClientCert", false, true, false),
        ];
        for (auth, none, signed, stranger) in cases {
            let ca = if auth == "NoClientCert" {
                ""
            } else {
                "  client_ca_file: ca.pem\n"
            };
            let yaml = format!(
                "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: {auth}\n{ca}"
            );
            let acceptor = load(pki.path(), &yaml).unwrap().tls_acceptor().unwrap();
            for (identity, want) in [
                (None, none),
                (Some(&pki.client), signed),
                (Some(&pki.stranger), stranger),
            ] {
                let got = handshake(acceptor.clone(), pki.client(identity)).await;
                assert_eq!(got.is_ok(), want, "{auth} with {identity:?}: {got:?}");
            }
        }
    }
}
