//! `warren admin`: operate a running broker from the shell over its management API (the same
//! HTTP API as RabbitMQ's, so it also works against RabbitMQ): list, show, declare, delete,
//! purge, browse and move dead letters, publish and get, export and import definitions, close
//! connections. Output as a table or JSON; the URL and credentials come from flags or the
//! environment (`WARREN_URL`, `WARREN_USER`, `WARREN_PASSWORD`, `WARREN_VHOST`).

mod client;
mod table;

use clap::{Args, Subcommand, ValueEnum};
use client::Client;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct AdminArgs {
    /// The management API's base URL.
    #[arg(long, env = "WARREN_URL", default_value = "http://127.0.0.1:15672", global = true)]
    pub url: String,
    #[arg(long, short = 'u', env = "WARREN_USER", default_value = "guest", global = true)]
    pub user: String,
    #[arg(long, short = 'p', env = "WARREN_PASSWORD", default_value = "guest", hide_env_values = true, global = true)]
    pub password: String,
    /// The vhost objects are in.
    #[arg(long, short = 'V', env = "WARREN_VHOST", default_value = "/", global = true)]
    pub vhost: String,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Table, global = true)]
    pub format: Format,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 60, global = true)]
    pub timeout_s: u64,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Subcommand, Clone)]
pub enum AdminCommand {
    /// List objects: queues, exchanges, bindings, connections, channels, consumers, vhosts,
    /// users, permissions, policies, operator-policies.
    List {
        kind: Kind,
        /// Only these fields (comma-separated, dotted for nested ones).
        #[arg(long)]
        columns: Option<String>,
        /// Every vhost, not only `--vhost` (for kinds that live in a vhost).
        #[arg(long)]
        all_vhosts: bool,
    },
    /// The node's overview (versions, totals, message rates).
    Overview,
    /// Declare an object.
    #[command(subcommand)]
    Declare(Declare),
    /// Delete an object.
    #[command(subcommand)]
    Delete(Delete),
    /// Drop a queue's ready messages.
    Purge { queue: String },
    /// Show a queue's messages without taking them (with their dead-letter history).
    Browse {
        queue: String,
        #[arg(long, default_value_t = 20)]
        count: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Only messages whose last death has this reason.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Move messages out of a queue: back to where each died (the default) or through an
    /// exchange (`--exchange`), atomically per message.
    Move {
        queue: String,
        /// Send them through this exchange instead of back to their source.
        #[arg(long)]
        exchange: Option<String>,
        #[arg(long, requires = "exchange")]
        routing_key: Option<String>,
        /// Most messages to move (all by default).
        #[arg(long)]
        count: Option<u64>,
        /// Only messages whose last death has this reason (rejected, expired, maxlen, ...).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Publish one message.
    Publish {
        #[arg(long, default_value = "")]
        exchange: String,
        #[arg(long)]
        routing_key: String,
        #[arg(long)]
        payload: String,
        /// Properties as JSON, e.g. '{"delivery_mode": 2}'.
        #[arg(long, default_value = "{}")]
        properties: String,
    },
    /// Take messages from a queue (RabbitMQ's get: requeued unless `--ackmode` says otherwise).
    Get {
        queue: String,
        #[arg(long, default_value_t = 1)]
        count: u64,
        #[arg(long, default_value = "ack_requeue_true")]
        ackmode: String,
    },
    /// Write the broker's definitions (RabbitMQ's format) to a file, or `-` for stdout.
    Export { file: PathBuf },
    /// Read definitions (RabbitMQ's format) from a file, or `-` for stdin.
    Import { file: PathBuf },
    /// Close a connection (by the name `list connections` shows).
    Close {
        name: String,
        #[arg(long, default_value = "closed by warren admin")]
        reason: String,
    },
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Kind {
    Queues,
    Exchanges,
    Bindings,
    Connections,
    Channels,
    Consumers,
    Vhosts,
    Users,
    Permissions,
    Policies,
    OperatorPolicies,
}

#[derive(Subcommand, Clone)]
pub enum Declare {
    Queue {
        name: String,
        #[arg(long)]
        durable: bool,
        #[arg(long)]
        auto_delete: bool,
        /// Arguments as JSON, e.g. '{"x-max-length": 1000}'.
        #[arg(long, default_value = "{}")]
        arguments: String,
    },
    Exchange {
        name: String,
        #[arg(long = "type", default_value = "direct")]
        kind: String,
        #[arg(long)]
        durable: bool,
        #[arg(long, default_value = "{}")]
        arguments: String,
    },
    Binding {
        #[command(flatten)]
        ends: BindingEnds,
        #[arg(long, default_value = "")]
        routing_key: String,
    },
    Vhost {
        name: String,
    },
    User {
        name: String,
        #[arg(long)]
        password: String,
        /// Comma-separated: administrator, monitoring, policymaker, management.
        #[arg(long, default_value = "")]
        tags: String,
    },
    Permission {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = ".*")]
        configure: String,
        #[arg(long, default_value = ".*")]
        write: String,
        #[arg(long, default_value = ".*")]
        read: String,
    },
    Policy(PolicyArgs),
    OperatorPolicy(PolicyArgs),
}

/// The two ends of a binding.
#[derive(Args, Clone)]
pub struct BindingEnds {
    /// The source exchange (empty: the default exchange).
    #[arg(long)]
    source: String,
    #[arg(long)]
    destination: String,
    /// `queue` or `exchange`.
    #[arg(long, default_value = "queue")]
    destination_type: String,
}

impl BindingEnds {
    /// `e/{source}/{q|e}/{destination}` as the bindings paths name them.
    fn path(&self) -> String {
        let kind = if self.destination_type == "exchange" { "e" } else { "q" };
        let source = if self.source.is_empty() { "amq.default".to_owned() } else { client::enc(&self.source) };
        format!("e/{source}/{kind}/{}", client::enc(&self.destination))
    }
}

#[derive(Args, Clone)]
pub struct PolicyArgs {
    name: String,
    #[arg(long)]
    pattern: String,
    /// The definition as JSON, e.g. '{"max-length": 1000}'.
    #[arg(long)]
    definition: String,
    #[arg(long, default_value_t = 0)]
    priority: i32,
    #[arg(long, default_value = "all")]
    apply_to: String,
}

#[derive(Subcommand, Clone)]
pub enum Delete {
    Queue {
        name: String,
        #[arg(long)]
        if_empty: bool,
        #[arg(long)]
        if_unused: bool,
    },
    Exchange {
        name: String,
    },
    Binding {
        #[command(flatten)]
        ends: BindingEnds,
        /// The binding's properties key (`list bindings` shows it).
        #[arg(long)]
        properties_key: String,
    },
    Vhost {
        name: String,
    },
    User {
        name: String,
    },
    Permission {
        #[arg(long)]
        user: String,
    },
    Policy {
        name: String,
    },
    OperatorPolicy {
        name: String,
    },
}

/// Runs one admin command; the error is what to print.
pub async fn run(args: AdminArgs, command_for_completions: clap::Command) -> Result<(), String> {
    let client = Client::new(&args)?;
    let v = client::enc(&args.vhost);
    let out = |value: Value| print(args.format, &value, None);
    match args.command.clone() {
        AdminCommand::List { kind, columns, all_vhosts } => {
            let path = list_path(kind, &v, all_vhosts);
            let listed = client.get(&path).await?;
            print(args.format, &listed, Some(columns.as_deref().unwrap_or(table::default_columns(kind))));
        }
        AdminCommand::Overview => out(client.get("/api/overview").await?),
        AdminCommand::Declare(d) => {
            let (path, body) = declare(&v, d)?;
            match path.ends_with("/bindings/__new") {
                true => client.send("POST", &path.replace("/__new", ""), Some(body)).await?,
                false => client.send("PUT", &path, Some(body)).await?,
            };
            println!("declared");
        }
        AdminCommand::Delete(d) => {
            client.send("DELETE", &delete_path(&v, d), None).await?;
            println!("deleted");
        }
        AdminCommand::Purge { queue } => {
            client.send("DELETE", &format!("/api/queues/{v}/{}/contents", client::enc(&queue)), None).await?;
            println!("purged");
        }
        AdminCommand::Browse { queue, count, offset, reason } => {
            let mut path = format!("/api/queues/{v}/{}/messages?count={count}&offset={offset}", client::enc(&queue));
            if let Some(r) = reason {
                path.push_str(&format!("&reason={}", client::enc(&r)));
            }
            let page = client.get(&path).await?;
            print(args.format, &page["messages"], Some("position,death_reason,routing_key,payload_bytes,payload"));
        }
        AdminCommand::Move { queue, exchange, routing_key, count, reason } => {
            let mut body = match exchange {
                Some(x) => json!({"to": "exchange", "exchange": x, "routing_key": routing_key}),
                None => json!({"to": "source"}),
            };
            body["count"] = json!(count);
            body["reason"] = json!(reason);
            let path = format!("/api/queues/{v}/{}/move", client::enc(&queue));
            out(client.send("POST", &path, Some(body)).await?);
        }
        AdminCommand::Publish { exchange, routing_key, payload, properties } => {
            let body = json!({"routing_key": routing_key, "payload": payload, "payload_encoding": "string",
                              "properties": parse_json("--properties", &properties)?});
            let x = if exchange.is_empty() { "amq.default".to_owned() } else { client::enc(&exchange) };
            out(client.send("POST", &format!("/api/exchanges/{v}/{x}/publish"), Some(body)).await?);
        }
        AdminCommand::Get { queue, count, ackmode } => {
            let body = json!({"count": count, "ackmode": ackmode, "encoding": "auto"});
            let got = client.send("POST", &format!("/api/queues/{v}/{}/get", client::enc(&queue)), Some(body)).await?;
            print(args.format, &got, Some("routing_key,redelivered,message_count,payload"));
        }
        AdminCommand::Export { file } => {
            let defs = client.get("/api/definitions").await?;
            let text = serde_json::to_string_pretty(&defs).map_err(|e| e.to_string())?;
            if file.as_os_str() == "-" {
                println!("{text}");
            } else {
                std::fs::write(&file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
                println!("exported to {}", file.display());
            }
        }
        AdminCommand::Import { file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).map_err(|e| e.to_string())?
            } else {
                std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?
            };
            let defs = parse_json(&file.display().to_string(), &text)?;
            client.send("POST", "/api/definitions", Some(defs)).await?;
            println!("imported");
        }
        AdminCommand::Close { name, reason } => {
            client.close_connection(&name, &reason).await?;
            println!("closed");
        }
        AdminCommand::Completions { shell } => {
            let mut command = command_for_completions;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "warren", &mut script);
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
        }
    }
    Ok(())
}

fn parse_json(what: &str, text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("{what}: not JSON: {e}"))
}

fn print(format: Format, value: &Value, columns: Option<&str>) {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
        Format::Table => print!("{}", table::render(value, columns)),
    }
}

fn list_path(kind: Kind, v: &str, all_vhosts: bool) -> String {
    let (name, per_vhost) = match kind {
        Kind::Queues => ("queues", true),
        Kind::Exchanges => ("exchanges", true),
        Kind::Bindings => ("bindings", true),
        Kind::Connections => ("connections", false),
        Kind::Channels => ("channels", false),
        Kind::Consumers => ("consumers", true),
        Kind::Vhosts => ("vhosts", false),
        Kind::Users => ("users", false),
        Kind::Permissions => ("permissions", false),
        Kind::Policies => ("policies", true),
        Kind::OperatorPolicies => ("operator-policies", true),
    };
    if per_vhost && !all_vhosts {
        format!("/api/{name}/{v}")
    } else {
        format!("/api/{name}")
    }
}

fn declare(v: &str, d: Declare) -> Result<(String, Value), String> {
    let e = client::enc;
    Ok(match d {
        Declare::Queue { name, durable, auto_delete, arguments } => (
            format!("/api/queues/{v}/{}", e(&name)),
            json!({"durable": durable, "auto_delete": auto_delete, "arguments": parse_json("--arguments", &arguments)?}),
        ),
        Declare::Exchange { name, kind, durable, arguments } => (
            format!("/api/exchanges/{v}/{}", e(&name)),
            json!({"type": kind, "durable": durable, "arguments": parse_json("--arguments", &arguments)?}),
        ),
        Declare::Binding { ends, routing_key } => {
            (format!("/api/bindings/{v}/{}/__new", ends.path()), json!({"routing_key": routing_key, "arguments": {}}))
        }
        Declare::Vhost { name } => (format!("/api/vhosts/{}", e(&name)), json!({})),
        Declare::User { name, password, tags } => {
            (format!("/api/users/{}", e(&name)), json!({"password": password, "tags": tags}))
        }
        Declare::Permission { user, configure, write, read } => (
            format!("/api/permissions/{v}/{}", e(&user)),
            json!({"configure": configure, "write": write, "read": read}),
        ),
        Declare::Policy(p) => (format!("/api/policies/{v}/{}", e(&p.name)), policy_body(&p)?),
        Declare::OperatorPolicy(p) => (format!("/api/operator-policies/{v}/{}", e(&p.name)), policy_body(&p)?),
    })
}

fn policy_body(p: &PolicyArgs) -> Result<Value, String> {
    let mut body = Map::new();
    body.insert("pattern".into(), json!(p.pattern));
    body.insert("definition".into(), parse_json("--definition", &p.definition)?);
    body.insert("priority".into(), json!(p.priority));
    body.insert("apply-to".into(), json!(p.apply_to));
    Ok(Value::Object(body))
}

fn delete_path(v: &str, d: Delete) -> String {
    let e = client::enc;
    match d {
        Delete::Queue { name, if_empty, if_unused } => {
            format!("/api/queues/{v}/{}?if-empty={if_empty}&if-unused={if_unused}", e(&name))
        }
        Delete::Exchange { name } => format!("/api/exchanges/{v}/{}", e(&name)),
        Delete::Binding { ends, properties_key } => format!("/api/bindings/{v}/{}/{}", ends.path(), e(&properties_key)),
        Delete::Vhost { name } => format!("/api/vhosts/{}", e(&name)),
        Delete::User { name } => format!("/api/users/{}", e(&name)),
        Delete::Permission { user } => format!("/api/permissions/{v}/{}", e(&user)),
        Delete::Policy { name } => format!("/api/policies/{v}/{}", e(&name)),
        Delete::OperatorPolicy { name } => format!("/api/operator-policies/{v}/{}", e(&name)),
    }
}
