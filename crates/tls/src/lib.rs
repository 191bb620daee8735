//! TLS for Warren's listeners (AMQP over TLS, HTTPS): a rustls server configuration built from
//! PEM files with a minimum version, a cipher policy and optional client certificates (mutual
//! TLS), kept in a [`TlsSource`] that builds it again when the files change or on SIGHUP, so
//! new connections get the new certificate while open ones keep theirs; and the user a
//! verified client certificate names, for the `EXTERNAL` SASL mechanism.

mod identity;

pub use identity::peer_identity;
pub use tokio_rustls::server::TlsStream;
pub use tokio_rustls::TlsAcceptor;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_rustls::rustls::crypto::{aws_lc_rs, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

/// Which part of a client certificate names its user (RabbitMQ's `ssl_cert_login_from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CertLogin {
    /// The subject's common name (CN).
    #[default]
    CommonName,
    /// The first DNS name, email address or URI among the subject alternative names.
    SubjectAlternativeName,
}

/// The `[tls]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, PEM (leaf first).
    pub cert_file: Option<PathBuf>,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// Certificate authorities whose client certificates are accepted, PEM (mutual TLS).
    pub ca_file: Option<PathBuf>,
    /// Ask clients for a certificate (verified against `ca_file`).
    pub verify_peer: bool,
    /// Refuse clients that present none (with `verify_peer`).
    pub fail_if_no_peer_cert: bool,
    /// The oldest TLS version accepted: "1.2" or "1.3".
    pub min_version: String,
    /// Cipher suites allowed, by their IANA names (e.g. `TLS13_AES_256_GCM_SHA384`); empty:
    /// rustls' defaults, which are all AEAD suites with forward secrecy.
    pub cipher_suites: Vec<String>,
    /// Which part of a verified client certificate names the user of `EXTERNAL`.
    pub cert_login_from: CertLogin,
    /// AMQP over TLS port (0: any free port).
    pub amqps_port: u16,
    /// HTTPS port for the HTTP API; none when unset.
    pub https_port: Option<u16>,
    /// Keep the plain (unencrypted) AMQP and HTTP listeners.
    pub plain_amqp: bool,
    pub plain_http: bool,
    /// How often the files are checked for changes, ms (SIGHUP checks at once).
    pub reload_check_interval_ms: u64,
    /// Longest a TLS handshake may take, ms.
    pub handshake_timeout_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            ca_file: None,
            verify_peer: false,
            fail_if_no_peer_cert: false,
            min_version: "1.2".into(),
            cipher_suites: Vec::new(),
            cert_login_from: CertLogin::CommonName,
            amqps_port: 5671,
            https_port: None,
            plain_amqp: true,
            plain_http: true,
            reload_check_interval_ms: 5_000,
            handshake_timeout_ms: 10_000,
        }
    }
}

impl TlsConfig {
    /// Whether TLS is configured (a certificate and a key).
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() || self.key_file.is_some()
    }

    /// Checks the settings without reading the files.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled() {
            if !self.plain_amqp || !self.plain_http {
                return Err("tls: the plain listeners can be switched off only when TLS is configured".into());
            }
            return Ok(());
        }
        if self.cert_file.is_none() || self.key_file.is_none() {
            return Err("tls: cert_file and key_file go together".into());
        }
        if !matches!(self.min_version.as_str(), "1.2" | "1.3") {
            return Err(format!("tls.min_version must be \"1.2\" or \"1.3\", not \"{}\"", self.min_version));
        }
        if self.verify_peer && self.ca_file.is_none() {
            return Err(
                "tls.verify_peer needs ca_file (the authorities client certificates are checked against)".into()
            );
        }
        if self.fail_if_no_peer_cert && !self.verify_peer {
            return Err("tls.fail_if_no_peer_cert needs verify_peer".into());
        }
        if !(100..=3_600_000).contains(&self.reload_check_interval_ms) {
            return Err("tls.reload_check_interval_ms must be 100 to 3600000".into());
        }
        if !(100..=300_000).contains(&self.handshake_timeout_ms) {
            return Err("tls.handshake_timeout_ms must be 100 to 300000".into());
        }
        Ok(())
    }
}

/// The current server configuration, built again when its files change.
pub struct TlsSource {
    config: TlsConfig,
    current: ArcSwap<ServerConfig>,
    /// The files' modification times the current configuration was built from.
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

impl TlsSource {
    /// Reads the files and builds the first configuration; `Err` says what is wrong.
    pub fn load(config: TlsConfig) -> Result<Arc<TlsSource>, String> {
        config.validate()?;
        let stamps = stamps(&config);
        let built = build(&config)?;
        Ok(Arc::new(TlsSource { config, current: ArcSwap::from_pointee(built), stamps: Mutex::new(stamps) }))
    }

    pub fn config(&self) -> &TlsConfig {
        &self.config
    }

    /// An acceptor with the configuration of now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.config.handshake_timeout_ms)
    }

    /// Builds the configuration again from the files; on an error the current one stays.
    /// `Ok(true)` if it was replaced.
    pub fn reload(&self, only_if_changed: bool) -> Result<bool, String> {
        let now = stamps(&self.config);
        if only_if_changed && *self.stamps.lock() == now {
            return Ok(false);
        }
        let built = build(&self.config)?;
        self.current.store(Arc::new(built));
        *self.stamps.lock() = now;
        Ok(true)
    }

    /// Reloads on SIGHUP and when the files change (checked every
    /// `reload_check_interval_ms`); runs until the task is dropped.
    pub async fn watch(self: Arc<Self>) {
        let mut every = tokio::time::interval(Duration::from_millis(self.config.reload_check_interval_ms));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let forced = tokio::select! {
                _ = every.tick() => false,
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            };
            match self.reload(!forced) {
                Ok(true) => tracing::info!("TLS certificate and key reloaded; new connections use them"),
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "TLS reload failed; keeping the current certificate"),
            }
        }
    }
}

fn stamps(config: &TlsConfig) -> Vec<Option<SystemTime>> {
    [&config.cert_file, &config.key_file, &config.ca_file]
        .into_iter()
        .map(|p| p.as_ref().and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()))
        .collect()
}

fn build(config: &TlsConfig) -> Result<ServerConfig, String> {
    let (Some(cert_file), Some(key_file)) = (&config.cert_file, &config.key_file) else {
        return Err("tls: cert_file and key_file are required".into());
    };
    let certs = read_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("tls: cannot read a private key from {}: {e}", key_file.display()))?;
    let provider = Arc::new(provider(&config.cipher_suites)?);
    let versions: &[&rustls::SupportedProtocolVersion] = match config.min_version.as_str() {
        "1.3" => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS12, &rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls: {e} (do the cipher suites allow TLS {}?)", config.min_version))?;
    let builder = match (&config.ca_file, config.verify_peer) {
        (Some(ca_file), true) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca_file)? {
                roots.add(cert).map_err(|e| format!("tls: a CA certificate of {}: {e}", ca_file.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if config.fail_if_no_peer_cert { verifier } else { verifier.allow_unauthenticated() };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("tls: {e}"))?)
        }
        _ => builder.with_no_client_auth(),
    };
    builder.with_single_cert(certs, key).map_err(|e| format!("tls: the certificate and key do not make a pair: {e}"))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> =
        CertificateDer::pem_file_iter(path).map_err(|e| format!("tls: cannot read {}: {e}", path.display()))?.collect();
    let certs = certs.map_err(|e| format!("tls: {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("tls: no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// The crypto provider, limited to `names` if any are given.
fn provider(names: &[String]) -> Result<CryptoProvider, String> {
    let mut provider = aws_lc_rs::default_provider();
    if names.is_empty() {
        return Ok(provider);
    }
    let known: Vec<String> = provider.cipher_suites.iter().map(|s| format!("{:?}", s.suite())).collect();
    if let Some(unknown) = names.iter().find(|n| !known.contains(n)) {
        return Err(format!("tls: unknown cipher suite '{unknown}'; known: {}", known.join(", ")));
    }
    provider.cipher_suites.retain(|s| names.contains(&format!("{:?}", s.suite())));
    Ok(provider)
}
