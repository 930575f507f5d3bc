//! A throwaway PKI for the web tests: a CA, a server certificate and client certificates, and
//! a loopback TLS handshake to try an acceptor with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, ProtocolVersion, RootCertStore};
use tokio_rustls::TlsAcceptor;

/// A throwaway PKI written to a temp dir: a CA, a "localhost" server certificate and a
/// client certificate signed by it, plus a self-signed "stranger" client certificate.
pub struct Pki {
    dir: tempfile::TempDir,
    pub ca: CertificateDer<'static>,
    pub client: (CertificateDer<'static>, String),
    pub stranger: (CertificateDer<'static>, String),
}

impl Pki {
    pub fn new() -> Pki {
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
        let stranger = rcgen::generate_simple_self_signed(vec!["stranger".to_string()]).unwrap();

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

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A client trusting the test CA, presenting `identity` if given.
    pub fn client(&self, identity: Option<&(CertificateDer<'static>, String)>) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
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

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs one TLS handshake over loopback; returns the version the server negotiated, or the
/// server's error (with TLS 1.3 the client may finish before the server rejects its cert).
pub async fn handshake(
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
