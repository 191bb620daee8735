//! Opening a connection: protocol header, connection.start / start-ok (SASL PLAIN and AMQPLAIN),
//! tune / tune-ok and connection.open, with RabbitMQ's error codes for each refusal.

use crate::io::FrameReader;
use crate::outbound::Outbound;
use amqp_codec::*;
use bytes::Bytes;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use warren_broker::{Broker, VHost};
use warren_core::AmqpError;

/// What the handshake settled.
pub struct Negotiated {
    pub user: String,
    pub vhost: Arc<VHost>,
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat_s: u16,
    pub client_capabilities: ClientCapabilities,
    /// Shown by the management API.
    pub client_properties: FieldTable,
    pub mechanism: String,
    /// The connection's places in its vhost's and user's connection limits, held while it is open.
    pub seats: warren_broker::resource_limits::ConnectionSeats,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ClientCapabilities {
    pub consumer_cancel_notify: bool,
    /// The client understands `connection.blocked` and `connection.unblocked`.
    pub connection_blocked: bool,
}

pub enum HandshakeError {
    /// The peer sent something that is not AMQP 0-9-1; the header was answered and the socket closes.
    BadHeader,
    /// Close the connection with this error (connection.close sent by the caller).
    Refused(AmqpError, u16, u16),
    /// The socket failed or closed.
    Io,
}

/// Read the 8-byte protocol header; answer a wrong one with ours and give up.
pub async fn read_protocol_header<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut S) -> Result<(), HandshakeError> {
    let mut header = [0u8; 8];
    socket.read_exact(&mut header).await.map_err(|_| HandshakeError::Io)?;
    // AMQP 0-9's header in its older form: RabbitMQ speaks 0-9-1 to it, and so do we.
    if &header != PROTOCOL_HEADER && &header != b"AMQP\x01\x01\x00\x09" {
        let _ = socket.write_all(PROTOCOL_HEADER).await;
        let _ = socket.shutdown().await;
        return Err(HandshakeError::BadHeader);
    }
    Ok(())
}

pub fn server_properties() -> FieldTable {
    let mut caps = FieldTable::new();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        caps.insert(cap, FieldValue::Bool(true));
    }
    let s = |v: &str| FieldValue::LongStr(Bytes::copy_from_slice(v.as_bytes()));
    let mut props = FieldTable::new();
    props.insert("capabilities", FieldValue::Table(caps));
    props.insert("cluster_name", s("warren"));
    props.insert("copyright", s("Copyright (c) the Warren authors"));
    props.insert("information", s("Warren message broker, Apache-2.0"));
    props.insert("platform", s("Rust"));
    props.insert("product", s("Warren"));
    props.insert("version", s(env!("CARGO_PKG_VERSION")));
    props
}

/// Everything after the protocol header up to connection.open-ok.
/// A connection over TLS, and the user its verified client certificate names (if any).
pub struct Secured {
    pub identity: Option<String>,
}

pub async fn negotiate<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    out: &Outbound,
    broker: &Broker,
    peer: IpAddr,
    secured: &Option<Secured>,
) -> Result<Negotiated, HandshakeError> {
    let limits = broker.limits();
    let certified = secured.as_ref().and_then(|s| s.identity.as_deref());
    let mechanisms: &'static [u8] = if certified.is_some() { b"PLAIN AMQPLAIN EXTERNAL" } else { b"PLAIN AMQPLAIN" };
    let start = Method::ConnectionStart(ConnectionStart {
        version_major: 0,
        version_minor: 9,
        server_properties: server_properties(),
        mechanisms: Bytes::from_static(mechanisms),
        locales: Bytes::from_static(b"en_US"),
    });
    out.write(|b| encode_method(b, 0, &start));

    let start_ok = match expect_method(reader, limits.frame_max).await? {
        Method::ConnectionStartOk(m) => m,
        other => return Err(unexpected(&other)),
    };
    let client_capabilities = read_capabilities(&start_ok.client_properties);
    let user = match authenticate(broker, &start_ok, peer, certified) {
        Ok(user) => user,
        Err(refused) => {
            // A growing wait per address after failed logins slows password guessing.
            tokio::time::sleep(broker.users().login_delay(peer)).await;
            return Err(refused);
        }
    };

    let tune =
        ConnectionTune { channel_max: limits.channel_max, frame_max: limits.frame_max, heartbeat: limits.heartbeat_s };
    out.write(|b| encode_method(b, 0, &Method::ConnectionTune(tune.clone())));
    let tune_ok = match expect_method(reader, limits.frame_max).await? {
        Method::ConnectionTuneOk(m) => m,
        other => return Err(unexpected(&other)),
    };
    let (channel_max, frame_max) = check_tune(&tune, &tune_ok)?;
    out.set_frame_max(frame_max);

    let open = match expect_method(reader, frame_max).await? {
        Method::ConnectionOpen(m) => m,
        other => return Err(unexpected(&other)),
    };
    let refused = || {
        let e = AmqpError::not_allowed(format!("access to vhost '{}' refused for user '{user}'", open.virtual_host));
        HandshakeError::Refused(e, 10, 40)
    };
    let allowed = broker.permissions().may_open(&open.virtual_host, &user);
    let vhost = match broker.vhost(&open.virtual_host) {
        Some(v) if allowed => v,
        _ => return Err(refused()),
    };
    // As RabbitMQ: the vhost's and the user's connection limits refuse connection.open (530).
    let seats = broker
        .resource_limits()
        .seat_connection(&vhost.name, &user)
        .map_err(|reason| HandshakeError::Refused(AmqpError::not_allowed(reason), 10, 40))?;
    out.write(|b| encode_method(b, 0, &Method::ConnectionOpenOk(ConnectionOpenOk::default())));
    Ok(Negotiated {
        user,
        vhost,
        channel_max,
        frame_max,
        heartbeat_s: tune_ok.heartbeat,
        client_capabilities,
        mechanism: start_ok.mechanism.to_string(),
        client_properties: start_ok.client_properties,
        seats,
    })
}

async fn expect_method<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    frame_max: u32,
) -> Result<Method, HandshakeError> {
    loop {
        match reader.next_frame(frame_max).await {
            Ok(Some(Frame::Method { channel: 0, method })) => return Ok(method),
            Ok(Some(Frame::Heartbeat { .. })) => continue,
            Ok(Some(_)) => {
                let e = AmqpError::unexpected_frame("expected a method frame on channel 0 during the handshake");
                return Err(HandshakeError::Refused(e, 0, 0));
            }
            Ok(None) => return Err(HandshakeError::Io),
            Err(crate::io::ReadError::Codec(e)) => {
                return Err(HandshakeError::Refused(AmqpError::new(e.reply_code(), e), 0, 0));
            }
            Err(crate::io::ReadError::Io) => return Err(HandshakeError::Io),
        }
    }
}

fn unexpected(method: &Method) -> HandshakeError {
    let e =
        AmqpError::command_invalid(format!("unexpected method '{}' during the connection handshake", method.name()));
    HandshakeError::Refused(e, method.class_id(), method.method_id())
}

fn read_capabilities(client_properties: &FieldTable) -> ClientCapabilities {
    let caps = client_properties.get("capabilities").and_then(FieldValue::as_table);
    let flag = |name: &str| caps.and_then(|c| c.get(name)).and_then(FieldValue::as_bool).unwrap_or(false);
    ClientCapabilities {
        consumer_cancel_notify: flag("consumer_cancel_notify"),
        connection_blocked: flag("connection.blocked"),
    }
}

fn authenticate(
    broker: &Broker,
    start_ok: &ConnectionStartOk,
    peer: IpAddr,
    certified: Option<&str>,
) -> Result<String, HandshakeError> {
    let mechanism = start_ok.mechanism.as_str();
    let refused = || {
        let e = AmqpError::access_refused(format!(
            "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
        ));
        HandshakeError::Refused(e, 10, 11)
    };
    let credentials: Option<(String, Vec<u8>)> = match (mechanism, certified) {
        ("PLAIN", _) => warren_broker::auth::parse_plain(&start_ok.response).map(|(u, p)| (u.to_string(), p.to_vec())),
        ("AMQPLAIN", _) => parse_amqplain(&start_ok.response),
        // The user is the one the verified client certificate names; it must exist.
        ("EXTERNAL", Some(user)) => {
            return match broker.users().certified(user, peer) {
                Some(_) => Ok(user.to_owned()),
                None => {
                    tracing::warn!(%peer, user, "EXTERNAL login refused: no such user (or loopback only)");
                    Err(refused())
                }
            };
        }
        (other, _) => {
            let e = AmqpError::command_invalid(format!("unknown authentication mechanism '{other}'"));
            return Err(HandshakeError::Refused(e, 10, 11));
        }
    };
    let (user, password) = credentials.ok_or_else(refused)?;
    match broker.users().authenticate(&user, &password, peer) {
        Some(_) => Ok(user),
        None => {
            tracing::warn!(%peer, user = %user, mechanism, "login refused");
            Err(refused())
        }
    }
}

/// AMQPLAIN: a field table without its length prefix, holding LOGIN and PASSWORD.
fn parse_amqplain(response: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut framed = bytes::BytesMut::with_capacity(response.len() + 4);
    framed.extend_from_slice(&(response.len() as u32).to_be_bytes());
    framed.extend_from_slice(response);
    let table = FieldTable::decode(&mut framed.freeze()).ok()?;
    let text = |k: &str| match table.get(k) {
        Some(FieldValue::LongStr(s)) => Some(s.to_vec()),
        _ => None,
    };
    let user = String::from_utf8(text("LOGIN")?).ok()?;
    Some((user, text("PASSWORD")?))
}

/// Validate the client's tune-ok against what we offered (530 NOT_ALLOWED, as RabbitMQ).
fn check_tune(offered: &ConnectionTune, ok: &ConnectionTuneOk) -> Result<(u16, u32), HandshakeError> {
    let refuse = |text: String| HandshakeError::Refused(AmqpError::not_allowed(text), 10, 31);
    let channel_max = match ok.channel_max {
        0 => offered.channel_max,
        n if n > offered.channel_max => {
            return Err(refuse(format!(
                "negotiated channel_max = {n} is higher than the maximum allowed value ({})",
                offered.channel_max
            )))
        }
        n => n,
    };
    let frame_max = match ok.frame_max {
        0 => offered.frame_max,
        n if n > offered.frame_max => {
            return Err(refuse(format!(
                "negotiated frame_max = {n} is higher than the maximum allowed value ({})",
                offered.frame_max
            )))
        }
        n if n < FRAME_MIN_SIZE => return Err(refuse(format!("frame_max={n} < {FRAME_MIN_SIZE} min size"))),
        n => n,
    };
    Ok((channel_max, frame_max))
}

/// The connection.close that refuses or ends a connection with `error`.
pub fn close_method(error: &AmqpError, class_id: u16, method_id: u16) -> Method {
    Method::ConnectionClose(ConnectionClose {
        reply_code: error.code,
        reply_text: ShortStr::truncated(&error.text),
        class_id,
        method_id,
    })
}
