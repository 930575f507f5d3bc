//! The web config reloaded under a running agent: a changed password, TLS turned on,
//! a rotated certificate (as cert-manager rotates it), a broken edit that keeps the last good
//! config, and SIGHUP, which reloads instead of killing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use common::{fixture, write_atomic, Agent, WAIT};

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

fn users(password: &str) -> String {
    format!(
        "basic_auth_users:\n  prometheus: {}\n",
        bcrypt::hash(password, 4).unwrap()
    )
}

/// A CA, and "localhost" server certificates it signs.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let der = params.self_signed(&key).unwrap().der().clone();
        Ca {
            issuer: Issuer::new(params, key),
            der,
        }
    }

    /// Writes a new server certificate and key to `dir/server.{pem,key}` (each through a
    /// rename), and returns the certificate.
    fn issue(&self, dir: &Path) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        write_atomic(&dir.join("server.key"), &key.serialize_pem());
        write_atomic(&dir.join("server.pem"), &cert.pem());
        cert.der().clone()
    }

    fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// One GET over TLS: the status and the certificate the server presented, or `None` when the
/// handshake or the request failed.
fn tls_get(ca: &Ca, port: u16, auth: &str) -> Option<(u16, CertificateDer<'static>)> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(ca.client(), name).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut tls = StreamOwned::new(conn, sock);
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).ok()?;
    let mut out = Vec::new();
    // The server may close without close_notify; what was read is what counts.
    let _ = tls.read_to_end(&mut out);
    let status = String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let cert = tls.conn.peer_certificates()?.first()?.clone();
    Some((status, cert))
}

fn status_with(agent: &Agent, auth: &str) -> Option<u16> {
    agent
        .try_get("/metrics", &[("Authorization", auth)])
        .map(|r| r.status)
}

#[test]
fn password_certificate_and_tls_itself_change_under_a_running_agent() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    write_atomic(&web, &users("old"));
    let agent =
        Agent::with_scenario(&std::fs::read_to_string(fixture("scenarios/golden.yaml")).unwrap())
            .arg(format!("--web.config.file={}", web.display()))
            .start();
    assert_eq!(status_with(&agent, &basic("prometheus", "old")), Some(200));
    assert_eq!(status_with(&agent, &basic("prometheus", "new")), Some(401));

    // A changed password: the new one works, and the old one stops working (its cached
    // verification goes with the old config).
    write_atomic(&web, &users("new"));
    agent.wait_for(WAIT, "the new password", |a| {
        status_with(a, &basic("prometheus", "new")) == Some(200)
    });
    assert_eq!(status_with(&agent, &basic("prometheus", "old")), Some(401));

    // TLS turned on: plain HTTP stops, TLS serves the first certificate.
    let ca = Ca::new();
    let first = ca.issue(dir.path());
    let tls = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
    write_atomic(&web, &format!("{tls}{}", users("new")));
    let auth = basic("prometheus", "new");
    agent.wait_for(WAIT, "TLS with the first certificate", |a| {
        tls_get(&ca, a.port, &auth) == Some((200, first.clone()))
    });
    assert!(status_with(&agent, &auth).is_none_or(|s| s != 200));

    // The certificate and key rotate, as cert-manager does: no restart.
    let second = ca.issue(dir.path());
    agent.wait_for(WAIT, "TLS with the rotated certificate", |a| {
        tls_get(&ca, a.port, &auth) == Some((200, second.clone()))
    });

    // A broken edit: the last good config stays, and the log says why.
    let refused = |a: &Agent| a.log_text().matches("web config not reloaded").count();
    let before = refused(&agent);
    write_atomic(
        &web,
        "tls_server_config:\n  cert_file: server.pem\n  key_fil: oops\n",
    );
    agent.wait_for(WAIT, "the broken edit logged", |a| refused(a) > before);
    assert_eq!(tls_get(&ca, agent.port, &auth), Some((200, second.clone())));
    assert!(agent.log_text().contains("key_fil"), "{}", agent.log_text());

    // SIGHUP reloads (here the fixed file) and does not kill the agent.
    write_atomic(&web, &format!("{tls}{}", users("new")));
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(agent.child.id() as i32, libc::SIGHUP);
    }
    agent.wait_for(WAIT, "a reload on SIGHUP logged", |a| {
        a.log_text()
            .lines()
            .any(|l| l.contains("web config reloaded") && l.contains("SIGHUP"))
    });
    assert_eq!(tls_get(&ca, agent.port, &auth), Some((200, second.clone())));

    // An emptied file would switch TLS and basic auth off: refused (a restart lowers security,
    // a reload never does), and the agent goes on serving TLS behind the password.
    write_atomic(&web, "");
    agent.wait_for(WAIT, "the downgrade refused", |a| {
        a.log_text().contains("it would lower security")
    });
    assert!(
        agent.log_text().contains("TLS, basic auth"),
        "{}",
        agent.log_text()
    );
    assert_eq!(tls_get(&ca, agent.port, &auth), Some((200, second.clone())));
    assert_eq!(tls_get(&ca, agent.port, ""), Some((401, second)));
    assert!(status_with(&agent, &auth).is_none_or(|s| s != 200));
    let status = agent.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn sighup_without_a_web_config_is_logged_not_fatal() {
    let agent =
        Agent::with_scenario(&std::fs::read_to_string(fixture("scenarios/golden.yaml")).unwrap())
            .start();
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(agent.child.id() as i32, libc::SIGHUP);
    }
    agent.wait_for(WAIT, "SIGHUP logged", |a| {
        a.log_text().contains("SIGHUP received")
    });
    assert_eq!(agent.get("/healthz", &[]).status, 200);
}
