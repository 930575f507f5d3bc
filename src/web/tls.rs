//! Builds the rustls acceptor from a checked web config: the certificate chain and key, the
//! protocol versions, and the client-certificate policy of each `client_auth_type`.

use std::path::Path;
use std::sync::Arc;

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
};

use super::config::{
    ClientAuth, PemInput, TlsSettings, WebConfigError, CERT_FILE, CLIENT_CA_FILE, KEY_FILE,
};

/// Builds the acceptor for `settings`, from the config file at `path` (named in errors).
///
/// # Errors
///
/// A certificate or key that does not decode, a key that does not match the certificate, a
/// client-auth mode without the CA it needs (or a CA it cannot use).
pub fn acceptor(path: &Path, settings: &TlsSettings) -> Result<TlsAcceptor, WebConfigError> {
    Builder { path }.acceptor(settings)
}

/// The config file, for error messages.
struct Builder<'a> {
    path: &'a Path,
}

impl Builder<'_> {
    fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> WebConfigError {
        WebConfigError::invalid(self.path, field, message)
    }

    fn tls_error(&self, error: rustls::Error) -> WebConfigError {
        WebConfigError::Tls {
            path: self.path.to_path_buf(),
            error,
        }
    }

    fn acceptor(&self, s: &TlsSettings) -> Result<TlsAcceptor, WebConfigError> {
        let (cert, key) = (&s.cert, &s.key);
        let chain = self.certificates(CERT_FILE, cert)?;
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
            .with_protocol_versions(&s.versions)
            .map_err(|e| self.tls_error(e))?;
        let builder = match self.client_verifier(s.client_auth, s.client_ca.as_ref(), &provider)? {
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
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    fn client_verifier(
        &self,
        auth: ClientAuth,
        client_ca: Option<&PemInput>,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Option<Arc<dyn ClientCertVerifier>>, WebConfigError> {
        let roots = match client_ca {
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
mod tests {
    use crate::web::testpki::{handshake, write, Pki};
    use crate::web::Web;
    use tokio_rustls::rustls::ProtocolVersion;
    use tokio_rustls::TlsAcceptor;

    /// The acceptor of the web config `yaml`, written to `dir/web.yml`.
    fn acceptor(dir: &std::path::Path, yaml: &str) -> TlsAcceptor {
        Web::load(&write(dir, "web.yml", yaml))
            .unwrap()
            .tls
            .unwrap()
    }

    #[test]
    fn acceptor_builds_from_a_self_signed_cert() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        write(dir.path(), "tls/cert.pem", &cert.cert.pem());
        write(dir.path(), "tls/key.pem", &cert.signing_key.serialize_pem());
        let yaml = "tls_server_config:\n  cert_file: tls/cert.pem\n  key_file: tls/key.pem\n";
        acceptor(dir.path(), yaml);
    }

    #[tokio::test]
    async fn handshake_honours_max_version() {
        let pki = Pki::new();
        let base = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
        for (extra, want) in [
            ("", ProtocolVersion::TLSv1_3),
            ("  max_version: TLS12\n", ProtocolVersion::TLSv1_2),
        ] {
            let acceptor = acceptor(pki.path(), &format!("{base}{extra}"));
            let got = handshake(acceptor, pki.client(None)).await;
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
            let acceptor = acceptor(pki.path(), &yaml);
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
