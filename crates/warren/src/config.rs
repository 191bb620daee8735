//! The `warren server` configuration: TOML file keys, their defaults, and validation. Command-line
//! flags override the file.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use warren_broker::durable::DurabilityOptions;
use warren_broker::{BrokerConfig, ClockKind, Limits, PolicyConfig, UserConfig};
use warren_store::StoreOptions;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address both listeners bind to. The default `::` accepts IPv6 and IPv4 (dual stack); on a
    /// host without IPv6 it falls back to `0.0.0.0`.
    pub bind: IpAddr,
    /// AMQP 0-9-1 port (0 = any free port).
    pub amqp_port: u16,
    /// HTTP API port (0 = any free port).
    pub http_port: u16,
    /// Where durable data lives; created if missing.
    pub data_dir: PathBuf,
    /// Create the default guest/guest user (loopback only).
    pub default_user: bool,
    pub limits: Limits,
    pub storage: StorageConfig,
    pub users: Vec<UserConfig>,
    pub vhosts: Vec<String>,
    /// `[[policies]]`: queue arguments applied by queue-name pattern.
    pub policies: Vec<PolicyConfig>,
    /// `[http]`: the HTTP API.
    pub http: HttpConfig,
    /// How often the management API works out message rates (RabbitMQ's
    /// `collect_statistics_interval`).
    pub statistics_interval_ms: u64,
    /// `[transforms]`: the workers that run transforms and the budgets transforms may ask for.
    pub transforms: warren_broker::transforms::TransformSettings,
    /// `[tls]`: AMQP over TLS and HTTPS, from PEM files (off without a certificate).
    pub tls: warren_tls::TlsConfig,
    /// `[alarms]`: the memory high watermark and the free disk limit.
    pub alarms: warren_broker::alarms::AlarmConfig,
    /// The program that serves transforms (`<it> transform-worker`); by default this binary.
    #[serde(skip)]
    pub transform_worker: Option<PathBuf>,
    /// Where the broker's time comes from (tests run timers on a manual clock).
    #[serde(skip)]
    pub clock: ClockKind,
}

fn ms(ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(ms)
}

/// The `[http]` section: bounds of the HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest request body accepted, bytes (a larger publish gets 413).
    pub max_body_bytes: usize,
    /// Messages whose outcome is tracked at once, per origin (HTTP publishes, AMQP opt-ins);
    /// the oldest records of that origin go first.
    pub max_tracked_messages: usize,
    /// How long a message's outcome stays queryable, ms.
    pub tracking_retention_ms: u64,
    /// How long an `Idempotency-Key` maps to its first publish, ms.
    pub idempotency_window_ms: u64,
    /// Longest `?wait=` a status request may long-poll, seconds.
    pub max_wait_s: u64,
    /// URL prefixes callbacks may go to; empty allows any.
    pub callback_allow: Vec<String>,
    /// Callback secrets (`whsec_` + base64 key) by vhost, for publishes that bring none.
    pub callback_secrets: std::collections::HashMap<String, String>,
    /// Timeout of one callback or push request, ms.
    pub callback_timeout_ms: u64,
    /// Callback and push requests in flight at once.
    pub callback_concurrency: usize,
    /// Attempts per callback before it is given up.
    pub callback_max_attempts: u32,
    /// Time after which a failing callback is given up, ms.
    pub callback_max_time_ms: u64,
    /// Wait before the first retry, ms; it doubles with each attempt (with ±20% jitter).
    pub callback_backoff_base_ms: u64,
    /// Longest wait between two attempts, ms.
    pub callback_max_backoff_ms: u64,
    /// HTTP connections open at once (plain and TLS together); more are answered 503 at accept.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, ms (slow clients are closed).
    pub header_read_timeout_ms: u64,
    /// Largest request head (request line and headers), bytes (8192 at least); larger gets 431.
    pub max_header_bytes: usize,
    /// How long a client may take to send a request's body, ms; slower gets 408.
    pub body_read_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 16 * 1024 * 1024,
            max_tracked_messages: 100_000,
            tracking_retention_ms: 24 * 60 * 60 * 1000,
            idempotency_window_ms: 24 * 60 * 60 * 1000,
            max_wait_s: 60,
            callback_allow: Vec::new(),
            callback_secrets: Default::default(),
            callback_timeout_ms: 10_000,
            callback_concurrency: 32,
            callback_max_attempts: 8,
            callback_max_time_ms: 24 * 60 * 60 * 1000,
            callback_backoff_base_ms: 1000,
            callback_max_backoff_ms: 5 * 60 * 1000,
            max_connections: 10_000,
            header_read_timeout_ms: 10_000,
            max_header_bytes: 64 * 1024,
            body_read_timeout_ms: 30_000,
        }
    }
}

/// The `[storage]` section: bounds of the message store in the data directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Size at which a segment file is closed and a new one started; fully acknowledged
    /// segments are deleted whole. 4 KiB ..= 4 GiB - 1; also the largest persistent message.
    pub segment_size_bytes: u32,
    /// Persistent message bytes on their way to the disk (appended, not yet fsynced) above which
    /// publishing connections stop being read until the disk catches up.
    pub max_in_flight_bytes: usize,
    /// Messages on their way to the disk above which publishing connections stop being read.
    pub max_in_flight_messages: usize,
    /// Memory the ready messages of one queue may take; beyond it the oldest ones already in the
    /// log (persistent messages of durable queues) are dropped from memory and read back when
    /// delivered.
    pub queue_memory_bytes: u64,
    /// Memory all queues' ready messages may take together; beyond it, queues over
    /// `queue_memory_bytes` also write their other messages to the log to page them out.
    pub memory_high_watermark_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let store = StoreOptions::default();
        let durability = DurabilityOptions::default();
        StorageConfig {
            segment_size_bytes: store.segment_size_bytes,
            max_in_flight_bytes: durability.max_in_flight_bytes,
            max_in_flight_messages: durability.max_in_flight_messages,
            queue_memory_bytes: durability.queue_memory_bytes,
            memory_high_watermark_bytes: durability.memory_high_watermark_bytes,
        }
    }
}

impl StorageConfig {
    /// The options the store is opened with.
    pub fn durability_options(&self) -> DurabilityOptions {
        DurabilityOptions {
            store: StoreOptions { segment_size_bytes: self.segment_size_bytes, ..StoreOptions::default() },
            max_in_flight_bytes: self.max_in_flight_bytes,
            max_in_flight_messages: self.max_in_flight_messages,
            queue_memory_bytes: self.queue_memory_bytes,
            memory_high_watermark_bytes: self.memory_high_watermark_bytes,
        }
    }

    fn validate(&self) -> Result<(), String> {
        self.durability_options().store.validate().map_err(|e| format!("storage: {e}"))?;
        if self.max_in_flight_bytes == 0 || self.max_in_flight_messages == 0 {
            return Err("storage: max_in_flight_bytes and max_in_flight_messages must be positive".into());
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([0u16; 8]),
            amqp_port: 5672,
            http_port: 15672,
            data_dir: PathBuf::from("warren-data"),
            default_user: true,
            limits: Limits::default(),
            storage: StorageConfig::default(),
            users: Vec::new(),
            vhosts: vec!["/".into()],
            policies: Vec::new(),
            http: HttpConfig::default(),
            statistics_interval_ms: warren_management::DEFAULT_STATISTICS_INTERVAL_MS,
            transforms: Default::default(),
            tls: Default::default(),
            alarms: Default::default(),
            transform_worker: None,
            clock: ClockKind::System,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))
    }

    pub fn validate(&self) -> Result<(), String> {
        self.limits.validate()?;
        self.storage.validate()?;
        self.transforms.validate()?;
        self.tls.validate()?;
        self.alarms.validate()?;
        warren_broker::compile_policies(&self.policies)?;
        for (vhost, secret) in &self.http.callback_secrets {
            if warren_http::secret_key(secret).is_none() {
                return Err(format!("http.callback_secrets: the secret of vhost '{vhost}' is not 'whsec_' + base64"));
            }
        }
        if self.http.max_connections == 0
            || self.http.header_read_timeout_ms == 0
            || self.http.body_read_timeout_ms == 0
        {
            return Err(
                "http.max_connections, header_read_timeout_ms and body_read_timeout_ms must be at least 1".into()
            );
        }
        if !(8192..=16 * 1024 * 1024).contains(&self.http.max_header_bytes) {
            return Err("http.max_header_bytes must be 8192 to 16777216".into());
        }
        if self.http.callback_max_attempts == 0 || self.http.callback_concurrency == 0 {
            return Err("http.callback_max_attempts and http.callback_concurrency must be at least 1".into());
        }
        if !(100..=3_600_000).contains(&self.statistics_interval_ms) {
            return Err("statistics_interval_ms must be 100 to 3600000 (1 hour)".into());
        }
        for u in &self.users {
            if u.name.is_empty() {
                return Err("users: a user has an empty name".into());
            }
        }
        let broker = self.broker_config();
        warren_broker::configured_permissions(&broker.users, &broker.vhosts)?;
        Ok(())
    }

    /// The HTTP API's bounds.
    pub fn http_settings(&self) -> warren_http::Settings {
        warren_http::Settings {
            max_body_bytes: self.http.max_body_bytes,
            idempotency_window: std::time::Duration::from_millis(self.http.idempotency_window_ms),
            max_wait: std::time::Duration::from_secs(self.http.max_wait_s),
            callback_allow: self.http.callback_allow.clone(),
            callback_secrets: self.http.callback_secrets.clone(),
            callback_timeout: ms(self.http.callback_timeout_ms),
            callback_concurrency: self.http.callback_concurrency,
            callback_max_attempts: self.http.callback_max_attempts,
            callback_max_time: ms(self.http.callback_max_time_ms),
            callback_backoff_base: ms(self.http.callback_backoff_base_ms),
            callback_max_backoff: ms(self.http.callback_max_backoff_ms),
            data_dir: Some(self.data_dir.clone()),
            max_connections: self.http.max_connections,
            header_read_timeout: ms(self.http.header_read_timeout_ms),
            max_header_bytes: self.http.max_header_bytes,
            body_read_timeout: ms(self.http.body_read_timeout_ms),
            ..warren_http::Settings::default()
        }
    }

    pub fn broker_config(&self) -> BrokerConfig {
        BrokerConfig {
            limits: self.limits.clone(),
            users: self.users.clone(),
            vhosts: self.vhosts.clone(),
            default_user: self.default_user,
            policies: self.policies.clone(),
            tracking: warren_broker::tracking::TrackingLimits {
                max_records: self.http.max_tracked_messages,
                retention_ms: self.http.tracking_retention_ms,
            },
            tracking_journal: Some(self.data_dir.join("tracking.log")),
            clock: self.clock,
            transforms: self.transforms,
            transform_worker: self
                .transform_worker
                .clone()
                .or_else(|| std::env::current_exe().ok())
                .map(|program| (program, vec!["transform-worker".to_owned()])),
            alarms: self.alarms.clone(),
            data_dir: Some(self.data_dir.clone()),
        }
        .normalized()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file_parses_and_unknown_keys_are_refused() {
        let cfg: Config = toml::from_str(
            r#"
            bind = "127.0.0.1"
            amqp_port = 5673
            data_dir = "/tmp/w"
            vhosts = ["/", "staging"]
            [limits]
            frame_max = 65536
            max_connections = 10
            [[users]]
            name = "app"
            password = "s3cret"
            vhosts = ["staging"]
            "#,
        )
        .unwrap();
        assert_eq!(cfg.amqp_port, 5673);
        assert_eq!(cfg.limits.frame_max, 65536);
        assert_eq!(cfg.limits.channel_max, 2047, "unset keys keep defaults");
        let broker = cfg.broker_config();
        assert!(broker.users.iter().any(|u| u.name == "guest"));
        assert!(toml::from_str::<Config>("amqp_prot = 1").is_err());
        let bad: Config = toml::from_str("[limits]\nframe_max = 100").unwrap();
        assert!(bad.validate().unwrap_err().contains("frame_max"));
        let small: Config = toml::from_str("[storage]\nsegment_size_bytes = 65536").unwrap();
        assert_eq!(small.storage.durability_options().store.segment_size_bytes, 65536);
        let transforms: Config = toml::from_str("[transforms]\nworkers = 3\ndefault_timeout_ms = 200").unwrap();
        assert_eq!((transforms.transforms.workers, transforms.transforms.max_timeout_ms), (3, 30_000));
        let bad: Config = toml::from_str("[transforms]\ndefault_timeout_ms = 60000").unwrap();
        assert!(bad.validate().unwrap_err().contains("transforms"));
        assert!(toml::from_str::<Config>("[transforms]\nworker = 3").is_err(), "unknown keys are refused");
        let bad: Config = toml::from_str("[storage]\nsegment_size_bytes = 100").unwrap();
        assert!(bad.validate().unwrap_err().contains("segment_size_bytes"), "{:?}", bad.validate());
    }

    #[test]
    fn policies_parse_and_bad_ones_are_refused_at_start() {
        let cfg: Config = toml::from_str(
            r#"
            [[policies]]
            name = "events"
            pattern = "^events\\."
            priority = 5
            definition = { message-ttl = 60000, dead-letter-exchange = "dlx", retry-delays = [1000, 5000] }
            [[policies]]
            name = "cap"
            operator = true
            pattern = ".*"
            definition = { max-length = 100000 }
            "#,
        )
        .unwrap();
        assert!(cfg.validate().is_ok(), "{:?}", cfg.validate());
        assert_eq!(cfg.broker_config().policies.len(), 2);
        let bad: Config =
            toml::from_str("[[policies]]\nname = \"p\"\npattern = \".*\"\ndefinition = { max-lenght = 1 }").unwrap();
        assert!(bad.validate().unwrap_err().contains("max-lenght not recognised"));
        let bad: Config = toml::from_str("[[policies]]\nname = \"p\"\npattern = \"(\"\ndefinition = {}").unwrap();
        assert!(bad.validate().unwrap_err().contains("pattern should be a regular expression but is invalid"));
    }
}
