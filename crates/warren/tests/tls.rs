//! TLS: AMQP over TLS and HTTPS from PEM files made at test time (a CA, the server's
//! certificate, clients' certificates). A client logs in with PLAIN over TLS, or with
//! `EXTERNAL` as the user its verified certificate names; a certificate from another authority
//! is refused in the handshake; HTTPS serves the API; a certificate replaced on disk is served
//! to new connections while an open one keeps its session.

mod common;

use amqp_codec::{decode_frame, encode_method, Frame, Method};
use bytes::{Bytes, BytesMut};
use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// A certificate authority and what it signs.
struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Authority { cert, key }
    }

    /// A certificate for `names` (subject alternative names) with common name `cn`.
    fn issue(&self, cn: &str, names: &[&str]) -> (String, String) {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn client_config(ca: &Authority, identity: Option<(&str, &str)>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    // Both rustls providers are in the build: name one.
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            use tokio_rustls::rustls::pki_types::pem::PemObject;
            let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
    };
    Arc::new(config)
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn connect(port: u16, config: Arc<ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    TlsConnector::from(config).connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

async fn send(stream: &mut Tls, channel: u16, method: Method) {
    let mut buf = BytesMut::new();
    encode_method(&mut buf, channel, &method);
    within(stream.write_all(&buf)).await.unwrap();
}

/// The next method the server sends (heartbeats skipped); `None` if it closed.
async fn next_method(stream: &mut Tls, buf: &mut BytesMut) -> Option<Method> {
    loop {
        while let Some(frame) = decode_frame(buf, 1 << 20).unwrap() {
            if let Frame::Method { method, .. } = frame {
                return Some(method);
            }
        }
        if within(stream.read_buf(buf)).await.unwrap_or(0) == 0 {
            return None;
        }
    }
}

/// Opens an AMQP connection on `stream` with `mechanism` and `response`: the mechanisms the
/// server offered, and whether it opened (else the close it sent).
async fn open(stream: &mut Tls, buf: &mut BytesMut, mechanism: &str, response: &[u8]) -> (String, Result<(), Method>) {
    within(stream.write_all(b"AMQP\x00\x00\x09\x01")).await.unwrap();
    let Some(Method::ConnectionStart(start)) = next_method(stream, buf).await else { panic!("no connection.start") };
    let offered = String::from_utf8(start.mechanisms.to_vec()).unwrap();
    let start_ok = amqp_codec::ConnectionStartOk {
        client_properties: Default::default(),
        mechanism: mechanism.into(),
        response: Bytes::copy_from_slice(response),
        locale: "en_US".into(),
    };
    send(stream, 0, Method::ConnectionStartOk(start_ok)).await;
    let tune = match next_method(stream, buf).await {
        Some(Method::ConnectionTune(t)) => t,
        Some(other) => return (offered, Err(other)),
        None => panic!("closed after start-ok"),
    };
    let tune_ok =
        amqp_codec::ConnectionTuneOk { channel_max: tune.channel_max, frame_max: tune.frame_max, heartbeat: 0 };
    send(stream, 0, Method::ConnectionTuneOk(tune_ok)).await;
    send(
        stream,
        0,
        Method::ConnectionOpen(amqp_codec::ConnectionOpen { virtual_host: "/".into(), ..Default::default() }),
    )
    .await;
    match next_method(stream, buf).await {
        Some(Method::ConnectionOpenOk(_)) => (offered, Ok(())),
        Some(other) => (offered, Err(other)),
        None => panic!("closed after connection.open"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_and_http_over_tls_with_plain_and_certificate_logins_and_a_reload() {
    let files = tempfile::tempdir().unwrap();
    let ca = Authority::new("warren test CA");
    let (server_cert, server_key) = ca.issue("localhost", &["localhost", "127.0.0.1"]);
    let (alice_cert, alice_key) = ca.issue("alice", &["alice.example"]);
    let stranger = Authority::new("another CA");
    let (mallory_cert, mallory_key) = stranger.issue("alice", &[]);
    let cert_file = write(files.path(), "server.pem", &server_cert);
    let key_file = write(files.path(), "server.key", &server_key);
    let ca_file = write(files.path(), "ca.pem", &ca.cert.pem());
    let (cert, key, ca_path) = (cert_file.clone(), key_file.clone(), ca_file.clone());
    let server = TestServer::start_with(move |c| {
        c.tls = warren_tls::TlsConfig {
            cert_file: Some(cert),
            key_file: Some(key),
            ca_file: Some(ca_path),
            verify_peer: true,
            amqps_port: 0,
            https_port: Some(0),
            reload_check_interval_ms: 100,
            ..Default::default()
        };
        c.users.push(warren_broker::UserConfig {
            name: "alice".into(),
            password: String::new(),
            vhosts: None,
            permissions: Default::default(),
            loopback_only: false,
            tags: Vec::new(),
        });
    })
    .await;
    let amqps = server.running().amqps_addr.expect("an AMQP over TLS listener").port();

    // PLAIN over TLS, without a client certificate: EXTERNAL is not offered.
    let mut guest = connect(amqps, client_config(&ca, None)).await.unwrap();
    let mut guest_buf = BytesMut::new();
    let (offered, opened) = open(&mut guest, &mut guest_buf, "PLAIN", b"\0guest\0guest").await;
    assert_eq!((offered.as_str(), opened.is_ok()), ("PLAIN AMQPLAIN", true));

    // EXTERNAL, as the user alice's certificate names (its common name).
    let mut alice = connect(amqps, client_config(&ca, Some((&alice_cert, &alice_key)))).await.unwrap();
    let mut buf = BytesMut::new();
    let (offered, opened) = open(&mut alice, &mut buf, "EXTERNAL", b"").await;
    assert_eq!((offered.as_str(), opened.is_ok()), ("PLAIN AMQPLAIN EXTERNAL", true));
    let (_, listed, _) = common::http::send(common::http::http().get(server.http_url("/api/connections"))).await;
    let alice_conn = listed.as_array().unwrap().iter().find(|c| c["user"] == "alice").expect("alice's connection");
    assert_eq!((alice_conn["ssl"].clone(), alice_conn["auth_mechanism"].clone()), (true.into(), "EXTERNAL".into()));

    // A certificate from another authority, even naming alice, does not get through the handshake.
    let refused = async {
        let mut stream = connect(amqps, client_config(&ca, Some((&mallory_cert, &mallory_key)))).await?;
        // TLS 1.3 reports the client certificate's refusal on the first read.
        stream.write_all(b"AMQP\x00\x00\x09\x01").await?;
        let mut byte = [0u8; 1];
        match stream.read(&mut byte).await? {
            0 => Err(std::io::Error::other("closed")),
            _ => Ok(()),
        }
    };
    assert!(within(refused).await.is_err(), "a certificate of another CA is refused");

    // HTTPS serves the API, verified against the CA.
    let https = server.running().https_addr.expect("an HTTPS listener").port();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let overview =
        within(client.get(format!("https://localhost:{https}/api/overview")).basic_auth("guest", Some("guest")).send())
            .await
            .unwrap();
    assert_eq!(overview.status(), reqwest::StatusCode::OK);
    // A console login over HTTPS gets a cookie the browser sends back only over HTTPS.
    let login = client
        .post(format!("https://localhost:{https}/api/session"))
        .json(&serde_json::json!({"username": "guest", "password": "guest"}))
        .send();
    let login = within(login).await.unwrap();
    assert_eq!(login.status(), reqwest::StatusCode::OK);
    let cookie = login.headers()[reqwest::header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with(&format!("__Host-warren_session_{https}=")) && cookie.ends_with("; Secure"), "{cookie}");

    // A new certificate on disk is served to new connections; alice's session goes on.
    let (renewed_cert, renewed_key) = ca.issue("localhost-renewed", &["localhost"]);
    std::fs::write(&key_file, &renewed_key).unwrap();
    std::fs::write(&cert_file, &renewed_cert).unwrap();
    let renewed = {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(renewed_cert.as_bytes()).unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stream = connect(amqps, client_config(&ca, None)).await.unwrap();
        if stream.get_ref().1.peer_certificates().unwrap()[0] == renewed {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the renewed certificate was never served");
        tokio::task::yield_now().await;
    }
    send(&mut alice, 1, Method::ChannelOpen(Default::default())).await;
    assert!(matches!(next_method(&mut alice, &mut buf).await, Some(Method::ChannelOpenOk(_))), "the old session works");
}
