//! Broker settings: limits, users and vhosts. Every field has a default so an empty config file
//! runs a broker; every limit is finite.

use amqp_codec::FieldValue;
use serde::Deserialize;
use std::collections::BTreeMap;
use warren_core::policy::{ApplyTo, Policies, Policy};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    pub limits: Limits,
    /// Users besides the default `guest` (which is added unless `default_user = false`).
    pub users: Vec<UserConfig>,
    /// Virtual hosts to create at start; `/` is always present.
    pub vhosts: Vec<String>,
    /// Create the RabbitMQ default user guest/guest (loopback only).
    pub default_user: bool,
    /// Policies applying queue arguments by name pattern.
    pub policies: Vec<PolicyConfig>,
    /// Bounds of message outcome tracking.
    #[serde(skip)]
    pub tracking: crate::tracking::TrackingLimits,
    /// Where tracked outcomes are kept across restarts (in the data directory).
    #[serde(skip)]
    pub tracking_journal: Option<std::path::PathBuf>,
    /// Where time comes from; tests use a manual clock to run timers deterministically.
    #[serde(skip)]
    pub clock: crate::ClockKind,
    /// Bounds of transforms.
    #[serde(skip)]
    pub transforms: crate::transforms::TransformSettings,
    /// The program (and its arguments) that serves transforms; without one, none run.
    #[serde(skip)]
    pub transform_worker: Option<(std::path::PathBuf, Vec<String>)>,
    /// Resource alarms' limits, and where the data lives (whose disk they watch).
    #[serde(skip)]
    pub alarms: crate::alarms::AlarmConfig,
    #[serde(skip)]
    pub data_dir: Option<std::path::PathBuf>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            limits: Limits::default(),
            users: Vec::new(),
            vhosts: vec!["/".to_string()],
            default_user: true,
            policies: Vec::new(),
            tracking: Default::default(),
            tracking_journal: None,
            clock: crate::ClockKind::System,
            transforms: Default::default(),
            transform_worker: None,
            alarms: Default::default(),
            data_dir: None,
        }
    }
}

impl BrokerConfig {
    /// Normalise after loading: `/` always exists, guest is added when asked for.
    pub fn normalized(mut self) -> BrokerConfig {
        if !self.vhosts.iter().any(|v| v == "/") {
            self.vhosts.insert(0, "/".to_string());
        }
        if self.default_user && !self.users.iter().any(|u| u.name == "guest") {
            self.users.push(UserConfig {
                name: "guest".into(),
                password: "guest".into(),
                vhosts: Some(vec!["/".into()]),
                permissions: BTreeMap::new(),
                loopback_only: true,
                tags: vec!["administrator".into()],
            });
        }
        self
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Connections accepted at once; more are refused at the socket.
    pub max_connections: usize,
    /// Channels per connection offered in connection.tune (1..=65535).
    pub channel_max: u16,
    /// Largest frame offered in connection.tune, bytes (>= 4096).
    pub frame_max: u32,
    /// Largest message body accepted, bytes; larger publishes get 406 (RabbitMQ's default is 128 MiB).
    pub max_message_size_bytes: u64,
    /// Heartbeat interval offered in connection.tune, seconds (0 disables).
    pub heartbeat_s: u16,
    /// How long a client has to finish the handshake, milliseconds.
    pub handshake_timeout_ms: u64,
    /// AMQP connections still in their handshake (TLS and AMQP's, before connection.open-ok) at
    /// once; more are closed at accept.
    pub max_unauthenticated_connections: usize,
    /// New connections one source address may open per second (and at once), on AMQP and HTTP
    /// each; more are closed at accept. 0 for no limit.
    pub connection_rate_per_address: u32,
    /// Bytes of encoded frames a connection may have waiting for its socket before deliveries to it
    /// pause and its reader stops reading.
    pub outbound_high_watermark_bytes: usize,
    /// Consumers per channel.
    pub max_consumers_per_channel: usize,
    /// Queues per vhost.
    pub max_queues: usize,
    /// Exchanges per vhost.
    pub max_exchanges: usize,
    /// Publishes and acks a transaction may buffer before tx.commit; more gets 406.
    pub max_uncommitted_tx_ops: usize,
    /// How long a consumer may hold a delivery unacknowledged before Warren returns it to its
    /// queue and cancels that consumer, ms (0 = never); a queue's `x-consumer-timeout` overrides.
    pub consumer_timeout_ms: u64,
    /// Publisher flow control: a publisher feeding a queue whose consumers are more than 8,192
    /// ready messages behind is not read until they are down to 4,096 (for up to
    /// `flow_control_max_hold_ms` at a time), so that the backlog stays bounded while the
    /// consumers are slower. A queue without consumers never holds its publishers.
    pub flow_control: bool,
    /// The longest a publisher is held at once, ms (1 to 60,000). Consumers that did not catch
    /// up within it (hung, or slow by nature) leave their queue absorbing what comes, without
    /// holds, until they do.
    pub flow_control_max_hold_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            channel_max: 2047,
            frame_max: 131_072,
            max_message_size_bytes: 128 * 1024 * 1024,
            heartbeat_s: 60,
            handshake_timeout_ms: 10_000,
            max_unauthenticated_connections: 1_000,
            connection_rate_per_address: 1_000,
            outbound_high_watermark_bytes: 4 * 1024 * 1024,
            max_consumers_per_channel: 10_000,
            max_queues: 100_000,
            max_exchanges: 10_000,
            max_uncommitted_tx_ops: 100_000,
            consumer_timeout_ms: 30 * 60 * 1000,
            flow_control: true,
            flow_control_max_hold_ms: 1_000,
        }
    }
}

impl Limits {
    /// Reject settings that would break the protocol; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=60_000).contains(&self.flow_control_max_hold_ms) {
            return Err("limits.flow_control_max_hold_ms must be from 1 to 60000".into());
        }
        if self.frame_max < amqp_codec::FRAME_MIN_SIZE {
            return Err(format!("limits.frame_max must be at least {}", amqp_codec::FRAME_MIN_SIZE));
        }
        if self.channel_max == 0 {
            return Err("limits.channel_max must be at least 1".into());
        }
        if self.max_connections == 0 {
            return Err("limits.max_connections must be at least 1".into());
        }
        if self.max_unauthenticated_connections == 0 {
            return Err("limits.max_unauthenticated_connections must be at least 1".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub password: String,
    /// Vhosts the user may open, with every permission (`.*`) in each; `*` means all the
    /// configured vhosts. The default is all, unless `permissions` are given.
    #[serde(default)]
    pub vhosts: Option<Vec<String>>,
    /// RabbitMQ's permissions by vhost: `configure`, `write` and `read` regular expressions.
    #[serde(default)]
    pub permissions: BTreeMap<String, PermissionConfig>,
    /// Accept this user only from loopback addresses (as RabbitMQ does for guest).
    #[serde(default)]
    pub loopback_only: bool,
    /// RabbitMQ's user tags: `administrator`, `monitoring`, `policymaker`, `management` decide
    /// what the user may see and do in the management API (none: no access to it).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// One vhost's permissions of a user, as RabbitMQ's `set_permissions` takes them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionConfig {
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// The permissions the configuration gives: (vhost, user, permission). `vhosts` entries get
/// `.*` for all three; explicit `permissions` win for their vhost. Errors name the user.
pub fn configured_permissions(
    users: &[UserConfig],
    vhosts: &[String],
) -> Result<Vec<(String, String, crate::permissions::Permission)>, String> {
    use crate::permissions::Permission;
    let mut out = Vec::new();
    for u in users {
        let listed = match &u.vhosts {
            Some(v) => v.clone(),
            None if u.permissions.is_empty() => vec!["*".into()],
            None => Vec::new(),
        };
        for vhost in vhosts {
            if let Some(p) = u.permissions.get(vhost) {
                let permission = Permission::new(&p.configure, &p.write, &p.read)
                    .map_err(|e| format!("users: '{}' in vhost '{vhost}': {e}", u.name))?;
                out.push((vhost.clone(), u.name.clone(), permission));
            } else if listed.iter().any(|v| v == "*" || v == vhost) {
                out.push((vhost.clone(), u.name.clone(), Permission::full()));
            }
        }
        if let Some(unknown) = u.permissions.keys().find(|v| !vhosts.contains(v)) {
            return Err(format!("users: '{}' has permissions in '{unknown}', which is not a vhost", u.name));
        }
    }
    Ok(out)
}

/// One `[[policies]]` entry: queue arguments applied to the queues of `vhost` whose names match
/// `pattern` (see `warren_core::policy`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    #[serde(default = "root_vhost")]
    pub vhost: String,
    /// A regular expression matched anywhere in the queue name (`^...$` to match it all).
    pub pattern: String,
    /// Of several matching policies, the highest priority applies.
    #[serde(default)]
    pub priority: i32,
    /// An operator policy: its limits apply whenever lower than what the queue asks for.
    #[serde(default)]
    pub operator: bool,
    /// `queues`, `classic_queues`, `quorum_queues`, `exchanges` or `all` (the default).
    #[serde(default = "all_objects")]
    pub apply_to: String,
    /// Keys as in RabbitMQ policies (`message-ttl`, `dead-letter-exchange`, ...).
    pub definition: BTreeMap<String, PolicyValue>,
}

/// A policy value as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PolicyValue {
    Int(i64),
    Bool(bool),
    Text(String),
    Ints(Vec<i64>),
}

fn all_objects() -> String {
    "all".to_string()
}

fn root_vhost() -> String {
    "/".to_string()
}

impl PolicyValue {
    pub fn field_value(&self) -> FieldValue {
        match self {
            PolicyValue::Int(n) => FieldValue::I64(*n),
            PolicyValue::Bool(b) => FieldValue::Bool(*b),
            PolicyValue::Text(s) => FieldValue::LongStr(bytes::Bytes::copy_from_slice(s.as_bytes())),
            PolicyValue::Ints(v) => FieldValue::Array(v.iter().map(|n| FieldValue::I64(*n)).collect()),
        }
    }
}

/// Checks and compiles the configured policies; the error names the policy and what is wrong.
pub fn compile_policies(configs: &[PolicyConfig]) -> Result<Policies, String> {
    let mut policies = Vec::with_capacity(configs.len());
    for (i, c) in configs.iter().enumerate() {
        if configs[..i].iter().any(|o| o.name == c.name && o.vhost == c.vhost) {
            return Err(format!("policies: '{}' is defined twice in vhost '{}'", c.name, c.vhost));
        }
        let definition = c.definition.iter().map(|(k, v)| (k.clone(), v.field_value())).collect();
        let apply_to = ApplyTo::parse(&c.apply_to).map_err(|e| format!("policies: '{}': {e}", c.name))?;
        policies.push(Policy::new(&c.name, &c.vhost, &c.pattern, apply_to, c.priority, c.operator, definition)?);
    }
    Ok(Policies::new(policies))
}
