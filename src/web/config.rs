//! The web config file (`--web.config.file`) as parsed and checked: TLS settings, basic-auth
//! users and extra response headers, in the YAML format of the Prometheus exporter-toolkit, so a
//! node_exporter web config works unchanged.
//!
//! Loading has two stages: [`RawConfig`] is what the user typed (strict: an unknown key is an
//! error, as in exporter-toolkit), and [`WebConfig`] the checked values — PEM read from the files
//! the config names, bcrypt hashes known to parse, headers parsed once. Building the TLS acceptor
//! from them is `tls.rs`'s job, checking passwords `auth.rs`'s.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use hyper::header::{HeaderName, HeaderValue};
use serde::de::IgnoredAny;
use serde::Deserialize;
use tokio_rustls::rustls;
use tokio_rustls::rustls::SupportedProtocolVersion;

/// The response headers exporter-toolkit lets a web config set (names as `http` spells them,
/// lower case), with the values it accepts (`None`: any value). Kept identical so a config that
/// node_exporter takes is taken here.
const ALLOWED_HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("strict-transport-security", None),
    ("x-content-type-options", Some(&["nosniff"])),
    ("x-frame-options", Some(&["deny", "sameorigin"])),
    ("x-xss-protection", None),
    ("content-security-policy", None),
];

pub(crate) const CERT_FILE: &str = "tls_server_config.cert_file";
pub(crate) const KEY_FILE: &str = "tls_server_config.key_file";
pub(crate) const CLIENT_CA_FILE: &str = "tls_server_config.client_ca_file";

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

impl WebConfigError {
    pub(crate) fn invalid(
        path: &Path,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> WebConfigError {
        WebConfigError::Invalid {
            path: path.to_path_buf(),
            field: field.into(),
            message: message.into(),
        }
    }
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

/// A checked web config: what the file asks for, with every file it names read.
pub struct WebConfig {
    /// The config file itself.
    pub path: PathBuf,
    /// `None` when the file has no usable `tls_server_config` (absent, or with no certificate,
    /// key or client-auth field set: exporter-toolkit then serves plain HTTP too).
    pub tls: Option<TlsSettings>,
    /// User name -> bcrypt hash, each hash checked to parse, with a cost of 4 to 31.
    pub users: BTreeMap<String, String>,
    /// Headers from `http_server_config.headers` to add to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl fmt::Debug for WebConfig {
    // Hand-written so that hashes never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls)
            .field("users", &self.users.len())
            .field("headers", &self.headers)
            .finish()
    }
}

/// `tls_server_config`, checked; the PEM is read but not yet decoded.
#[derive(Debug)]
pub struct TlsSettings {
    pub versions: Vec<&'static SupportedProtocolVersion>,
    pub client_auth: ClientAuth,
    pub cert: PemInput,
    pub key: PemInput,
    pub client_ca: Option<PemInput>,
}

/// `client_auth_type`, with the names exporter-toolkit takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Request,
    RequireAny,
    VerifyIfGiven,
    RequireAndVerify,
}

/// PEM bytes and where they came from, for error messages.
pub struct PemInput {
    pub bytes: Vec<u8>,
    /// The file, or `inline <field>` for the `cert`/`key`/`client_ca` fields.
    pub origin: String,
    /// The file the bytes were read from (`None` when inline), watched for changes.
    pub file: Option<PathBuf>,
}

impl fmt::Debug for PemInput {
    // Never the bytes: they may be a private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemInput")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl WebConfig {
    /// Reads, parses and checks the web config at `path`, reading every certificate and key
    /// file it names.
    ///
    /// # Errors
    ///
    /// Any unreadable file, unknown key, unsupported setting, or unusable bcrypt hash or
    /// header; the error names the config file and the field.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let read_error = |error| WebConfigError::Read {
            path: path.to_path_buf(),
            error,
        };
        let bytes = super::file::read_small(path).map_err(read_error)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            read_error(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not UTF-8 text",
            ))
        })?;
        WebConfig::from_text(path, &text)
    }

    /// Parses and checks `text` as the web config at `path` (which names it in errors, and
    /// against whose directory relative file names resolve), reading the files it names.
    ///
    /// # Errors
    ///
    /// As [`WebConfig::load`], but for reading the config file itself.
    pub fn from_text(path: &Path, text: &str) -> Result<WebConfig, WebConfigError> {
        let raw = parse(path, text)?;
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
            path: path.to_path_buf(),
            tls,
            users,
            headers,
        })
    }

    /// The config file and every certificate, key and CA file it names: what a change of
    /// which calls for a reload.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.path.clone()];
        if let Some(tls) = &self.tls {
            let pems = [Some(&tls.cert), Some(&tls.key), tls.client_ca.as_ref()];
            files.extend(pems.into_iter().flatten().filter_map(|p| p.file.clone()));
        }
        files
    }
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

/// Resolution context: the config file, for error messages and relative paths.
struct Ctx<'a> {
    path: &'a Path,
    dir: &'a Path,
}

impl Ctx<'_> {
    fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> WebConfigError {
        WebConfigError::invalid(self.path, field, message)
    }

    fn unsupported(&self, field: &'static str, reason: &'static str) -> WebConfigError {
        WebConfigError::Unsupported {
            path: self.path.to_path_buf(),
            field,
            reason,
        }
    }

    /// Relative paths are taken from the config file's directory, as exporter-toolkit does.
    fn resolve(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn tls(&self, raw: &RawTls) -> Result<Option<TlsSettings>, WebConfigError> {
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
            non_empty(raw.cert_file.as_deref()),
            "cert",
            non_empty(raw.cert.as_deref()),
        )?;
        let key = self.pem(
            KEY_FILE,
            non_empty(raw.key_file.as_deref()),
            "key",
            non_empty(raw.key.as_deref()),
        )?;
        let client_ca = self.pem(
            CLIENT_CA_FILE,
            non_empty(raw.client_ca_file.as_deref()),
            "client_ca",
            non_empty(raw.client_ca.as_deref()),
        )?;
        let enabled = cert.is_some()
            || key.is_some()
            || client_ca.is_some()
            || non_empty(raw.client_auth_type.as_deref()).is_some();
        if !enabled {
            return Ok(None);
        }
        let cert = cert
            .ok_or_else(|| self.invalid("tls_server_config", "missing one of cert or cert_file"))?;
        let key =
            key.ok_or_else(|| self.invalid("tls_server_config", "missing one of key or key_file"))?;
        Ok(Some(TlsSettings {
            versions,
            client_auth,
            cert,
            key,
            client_ca,
        }))
    }

    fn versions(
        &self,
        raw: &RawTls,
    ) -> Result<Vec<&'static SupportedProtocolVersion>, WebConfigError> {
        let min = self.version(
            "min_version",
            non_empty(raw.min_version.as_deref()).unwrap_or("TLS12"),
        )?;
        let max = self.version(
            "max_version",
            non_empty(raw.max_version.as_deref()).unwrap_or("TLS13"),
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
            let bytes =
                super::file::read_small(&file).map_err(|error| WebConfigError::ReadFile {
                    path: self.path.to_path_buf(),
                    field: file_field,
                    file: file.clone(),
                    error,
                })?;
            let origin = file.display().to_string();
            return Ok(Some(PemInput {
                bytes,
                origin,
                file: Some(file),
            }));
        }
        Ok(inline.map(|text| PemInput {
            bytes: text.as_bytes().to_vec(),
            origin: format!("inline {inline_field}"),
            file: None,
        }))
    }

    fn headers(
        &self,
        headers: BTreeMap<String, String>,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
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
                let value = HeaderValue::from_str(&value)
                    .map_err(|_| self.invalid(field, "not a valid HTTP header value"))?;
                Ok((HeaderName::from_static(canonical), value))
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
fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::testpki::{write, Pki};
    use crate::web::Web;
    use base64::Engine as _;
    use rcgen::KeyPair;

    /// The whole load (parse, check, build the acceptor and the auth gate), as the agent does.
    fn load(dir: &Path, yaml: &str) -> Result<Web, WebConfigError> {
        Web::load(&write(dir, "web.yml", yaml))
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
        assert!(config.tls.is_some());
        let headers: Vec<(&str, &str)> = config
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            headers,
            [
                ("x-frame-options", "deny"),
                ("strict-transport-security", "max-age=31536000"),
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
            assert!(config.tls.is_none(), "{yaml:?}");
            assert!(config.authorized(None), "{yaml:?}");
            assert!(config.headers.is_empty(), "{yaml:?}");
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
        assert!(config.tls.is_some());

        let abs_cert = pki.path().join("server.pem");
        let config = load(
            &conf_dir,
            &format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: ../server.key\n",
                abs_cert.display()
            ),
        )
        .unwrap();
        assert!(config.tls.is_some());

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
        assert!(load(pki.path(), &yaml).unwrap().tls.is_some());
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
    fn a_directory_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let err = WebConfig::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }

    #[test]
    fn files_lists_the_config_and_the_pem_files_it_names() {
        let pki = Pki::new();
        let path = write(
            pki.path(),
            "web.yml",
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n",
        );
        let config = WebConfig::load(&path).unwrap();
        assert_eq!(
            config.files(),
            [
                path.clone(),
                pki.path().join("server.pem"),
                pki.path().join("server.key")
            ]
        );
    }
}
