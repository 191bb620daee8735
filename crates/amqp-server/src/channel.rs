//! One AMQP channel: its state machine (open, closing), content assembly for basic.publish, and
//! the exchange and queue methods. Basic, confirm and tx methods live in `basic.rs`.

use crate::confirm::{ConfirmLog, ConfirmWake};
use crate::outbound::Outbound;
use crate::pending::Pending;
use crate::sink::ChannelSink;
use amqp_codec::*;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use warren_broker::permissions::{Access, Resource};
use warren_broker::registry::ConnectionEntry;
use warren_broker::{Broker, Dest, Queue, QueueDeclare, VHost};
use warren_core::{names, AmqpError, ExchangeDef, ExchangeKind};

/// Connection-wide context a channel method needs.
pub struct Ctx<'a> {
    pub broker: &'a Broker,
    pub vhost: &'a Arc<VHost>,
    pub connection_id: u64,
    pub out: &'a Arc<Outbound>,
    pub user: &'a str,
    /// Exclusive queues this connection declared, deleted when it closes.
    pub exclusive_queues: &'a mut Vec<Arc<Queue>>,
    pub cancel_notify: bool,
    /// Wakes the connection task when the store settles publishes of a confirm-mode channel.
    pub confirm_wake: &'a Arc<ConfirmWake>,
    /// Set by a method whose reply must wait for the disk (see `pending.rs`).
    pub pending: &'a mut Option<Pending>,
    /// Queues this read batch published into whose consumers are falling behind.
    pub behind: &'a mut Vec<Arc<Queue>>,
    /// This connection in the broker's registry (its channels are listed there).
    pub entry: &'a Arc<ConnectionEntry>,
}

impl Ctx<'_> {
    /// 403 ACCESS_REFUSED unless the connection's user has `access` to the resource here
    /// (RabbitMQ's configure/write/read permissions).
    pub fn check(&self, access: Access, resource: Resource, name: &str) -> Result<(), AmqpError> {
        self.broker.permissions().check(self.user, &self.vhost.name, access, resource, name)
    }
}

/// A basic.publish whose content header and body frames are still arriving.
pub struct PendingContent {
    pub publish: BasicPublish,
    pub properties: Option<Bytes>,
    pub body_size: u64,
    pub body: BodyParts,
}

/// A body kept zero-copy when it arrives in one frame, concatenated otherwise.
pub enum BodyParts {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl BodyParts {
    pub fn len(&self) -> usize {
        match self {
            BodyParts::Empty => 0,
            BodyParts::One(b) => b.len(),
            BodyParts::Many(b) => b.len(),
        }
    }

    pub fn push(&mut self, chunk: Bytes) {
        *self = match std::mem::replace(self, BodyParts::Empty) {
            BodyParts::Empty => BodyParts::One(chunk),
            BodyParts::One(first) => {
                let mut all = BytesMut::with_capacity(first.len() + chunk.len());
                all.extend_from_slice(&first);
                all.extend_from_slice(&chunk);
                BodyParts::Many(all)
            }
            BodyParts::Many(mut all) => {
                all.extend_from_slice(&chunk);
                BodyParts::Many(all)
            }
        }
    }

    pub fn into_bytes(self) -> Bytes {
        match self {
            BodyParts::Empty => Bytes::new(),
            BodyParts::One(b) => b,
            BodyParts::Many(b) => b.freeze(),
        }
    }
}

pub enum TxOp {
    Publish { publish: BasicPublish, message: Arc<warren_core::Message> },
    Settle { tag: u64, multiple: bool, requeue: Option<bool> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    Open,
    /// We sent channel.close and wait for close-ok, dropping everything else.
    Closing,
}

pub struct Channel {
    pub number: u16,
    pub state: ChannelState,
    pub sink: Arc<ChannelSink>,
    pub content: Option<PendingContent>,
    /// Set in confirm mode: the outcome of every publish, sent in order.
    pub confirm: Option<Arc<ConfirmLog>>,
    pub tx: Option<Vec<TxOp>>,
    /// The last queue declared on this channel: an empty queue name in later methods means it.
    pub last_queue: Option<ShortStr>,
    /// Direct reply-to token and consumer tag, when this channel consumes `amq.rabbitmq.reply-to`.
    pub reply_to: Option<(String, String)>,
    /// The exchange the last publish was allowed to write to, and the permissions' version
    /// then: publishing again to it skips the check until permissions change.
    pub write_allowed: Option<(u64, ShortStr)>,
    /// The channel's place in its user's channel count (`max-channels`), given back with it.
    pub seat: Option<warren_broker::resource_limits::Seat>,
    /// Settlements freed prefetch credit in this read batch: the connection redispatches the
    /// channel's queues once, at the batch's end.
    pub redispatch_due: bool,
}

impl Channel {
    pub fn new(number: u16, out: Arc<Outbound>, cancel_notify: bool, broker: &warren_broker::Broker) -> Channel {
        let timeout_ms = broker.limits().consumer_timeout_ms;
        Channel {
            number,
            state: ChannelState::Open,
            sink: ChannelSink::new(number, out, cancel_notify, broker.timers().clone(), timeout_ms),
            content: None,
            confirm: None,
            tx: None,
            last_queue: None,
            reply_to: None,
            write_allowed: None,
            seat: None,
            redispatch_due: false,
        }
    }

    pub fn send(&self, out: &Outbound, method: Method) {
        out.write(|b| encode_method(b, self.number, &method));
    }

    /// Resolve an empty queue name to the channel's last declared queue (AMQP's shortcut).
    pub fn queue_name(&self, name: &ShortStr) -> Result<ShortStr, AmqpError> {
        if !name.is_empty() {
            return Ok(name.clone());
        }
        self.last_queue.clone().ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    pub fn handle_method(&mut self, ctx: &mut Ctx<'_>, method: Method) -> Result<(), AmqpError> {
        match method {
            Method::AccessRequest(_) => self.send(ctx.out, Method::AccessRequestOk(AccessRequestOk { ticket: 1 })),
            // As RabbitMQ: clients' suites expect active=false to be refused (540), and
            // active=true changes nothing.
            Method::ChannelFlow(m) if !m.active => return Err(AmqpError::not_implemented("active=false")),
            Method::ChannelFlow(_) => self.send(ctx.out, Method::ChannelFlowOk(ChannelFlowOk { active: true })),
            Method::ChannelFlowOk(_) => {}
            Method::ExchangeDeclare(m) => self.exchange_declare(ctx, m)?,
            Method::ExchangeDelete(m) => {
                ctx.check(Access::Configure, Resource::Exchange, &m.exchange)?;
                ctx.vhost.delete_exchange(&m.exchange, m.if_unused)?;
                self.reply(ctx, m.nowait, Method::ExchangeDeleteOk);
            }
            Method::ExchangeBind(m) => {
                ctx.check(Access::Write, Resource::Exchange, &m.destination)?;
                ctx.check(Access::Read, Resource::Exchange, &m.source)?;
                let dest = ctx.vhost.exchange_dest(&m.destination)?;
                ctx.vhost.bind(&m.source, dest, m.routing_key, m.arguments)?;
                self.reply(ctx, m.nowait, Method::ExchangeBindOk);
            }
            Method::ExchangeUnbind(m) => {
                ctx.check(Access::Write, Resource::Exchange, &m.destination)?;
                ctx.check(Access::Read, Resource::Exchange, &m.source)?;
                // Idempotent, as in RabbitMQ: a missing end means there is no such binding.
                if let Some(dest) = ctx.vhost.exchange(&m.destination) {
                    let dest = Dest::Exchange(dest);
                    ctx.vhost.unbind(&m.source, dest, m.routing_key, m.arguments, ctx.connection_id)?;
                }
                self.reply(ctx, m.nowait, Method::ExchangeUnbindOk);
            }
            Method::QueueDeclare(m) => self.queue_declare(ctx, m)?,
            Method::QueueBind(m) => {
                let name = self.queue_name(&m.queue)?;
                ctx.check(Access::Write, Resource::Queue, &name)?;
                ctx.check(Access::Read, Resource::Exchange, &m.exchange)?;
                let q = ctx.vhost.queue_for(&name, ctx.connection_id)?;
                ctx.vhost.bind(&m.exchange, Dest::Queue(q), m.routing_key, m.arguments)?;
                self.reply(ctx, m.nowait, Method::QueueBindOk);
            }
            Method::QueueUnbind(m) => {
                let name = self.queue_name(&m.queue)?;
                ctx.check(Access::Write, Resource::Queue, &name)?;
                ctx.check(Access::Read, Resource::Exchange, &m.exchange)?;
                // Idempotent, as in RabbitMQ: a missing end means there is no such binding.
                if let Some(q) = ctx.vhost.queue(&name) {
                    ctx.vhost.unbind(&m.exchange, Dest::Queue(q), m.routing_key, m.arguments, ctx.connection_id)?;
                }
                self.send(ctx.out, Method::QueueUnbindOk);
            }
            Method::QueuePurge(m) => {
                let name = self.queue_name(&m.queue)?;
                ctx.check(Access::Read, Resource::Queue, &name)?;
                let message_count = ctx.vhost.purge_queue(&name, ctx.connection_id)?;
                self.reply(ctx, m.nowait, Method::QueuePurgeOk(QueuePurgeOk { message_count }));
            }
            Method::QueueDelete(m) => {
                let name = self.queue_name(&m.queue)?;
                ctx.check(Access::Configure, Resource::Queue, &name)?;
                let message_count = ctx.vhost.delete_queue(&name, m.if_unused, m.if_empty, ctx.connection_id)?;
                ctx.exclusive_queues.retain(|q| q.name != name);
                self.reply(ctx, m.nowait, Method::QueueDeleteOk(QueueDeleteOk { message_count }));
            }
            other => self.handle_basic(ctx, other)?,
        }
        Ok(())
    }

    pub fn reply(&self, ctx: &Ctx<'_>, nowait: bool, method: Method) {
        if !nowait {
            self.send(ctx.out, method);
        }
    }

    /// Let every queue this channel consumes from deliver again (credit was freed).
    pub fn redispatch(&self) {
        let queues: Vec<Arc<Queue>> = {
            let st = self.sink.state.lock();
            let mut qs: Vec<Arc<Queue>> = Vec::new();
            for c in st.consumers.values() {
                if let Some(q) = &c.queue {
                    if !qs.iter().any(|x| Arc::ptr_eq(x, q)) {
                        qs.push(q.clone());
                    }
                }
            }
            qs
        };
        for q in queues {
            q.dispatch();
        }
    }

    fn exchange_declare(&mut self, ctx: &mut Ctx<'_>, m: ExchangeDeclare) -> Result<(), AmqpError> {
        if m.exchange.is_empty() && m.passive {
            return Err(AmqpError::access_refused("operation not permitted on the default exchange"));
        }
        if m.passive {
            if ctx.vhost.exchange(&m.exchange).is_none() {
                return Err(AmqpError::not_found(format!(
                    "no exchange '{}' in vhost '{}'",
                    m.exchange, ctx.vhost.name
                )));
            }
            self.reply(ctx, m.nowait, Method::ExchangeDeclareOk);
            return Ok(());
        }
        let (kind, delayed) = ExchangeKind::declared(&m.kind, &m.arguments)?;
        if m.exchange.is_empty() {
            return Err(AmqpError::access_refused("operation not permitted on the default exchange"));
        }
        ctx.check(Access::Configure, Resource::Exchange, &m.exchange)?;
        if let Some(alternate) = m.arguments.get("alternate-exchange").and_then(text_argument) {
            ctx.check(Access::Write, Resource::Exchange, &alternate)?;
            ctx.check(Access::Read, Resource::Exchange, &m.exchange)?;
        }
        let def = ExchangeDef {
            name: m.exchange,
            kind,
            durable: m.durable,
            auto_delete: m.auto_delete,
            internal: m.internal,
            arguments: m.arguments,
            delayed,
        };
        ctx.vhost.declare_exchange(def, false, ctx.broker.limits().max_exchanges)?;
        self.reply(ctx, m.nowait, Method::ExchangeDeclareOk);
        Ok(())
    }

    fn queue_declare(&mut self, ctx: &mut Ctx<'_>, m: amqp_codec::QueueDeclare) -> Result<(), AmqpError> {
        let name = if m.queue.is_empty() && !m.passive {
            ShortStr::from(names::generated_queue_name(rand::random()))
        } else {
            self.queue_name(&m.queue)?
        };
        if !m.passive {
            ctx.check(Access::Configure, Resource::Queue, &name)?;
            if let Some(dlx) = m.arguments.get("x-dead-letter-exchange").and_then(text_argument) {
                ctx.check(Access::Write, Resource::Exchange, &dlx)?;
                ctx.check(Access::Read, Resource::Queue, &name)?;
            }
        }
        let req = QueueDeclare {
            server_named: m.queue.is_empty() && !m.passive,
            name,
            passive: m.passive,
            durable: m.durable,
            exclusive: m.exclusive,
            auto_delete: m.auto_delete,
            arguments: m.arguments,
        };
        let (q, message_count, consumer_count) =
            ctx.vhost.declare_queue(req, ctx.connection_id, ctx.broker.limits().max_queues)?;
        if q.exclusive_owner == Some(ctx.connection_id) && !ctx.exclusive_queues.iter().any(|x| Arc::ptr_eq(x, &q)) {
            ctx.exclusive_queues.push(q.clone());
        }
        self.last_queue = Some(q.name.clone());
        let ok = QueueDeclareOk { queue: q.name.clone(), message_count, consumer_count };
        self.reply(ctx, m.nowait, Method::QueueDeclareOk(ok));
        Ok(())
    }
}

/// A string argument (an exchange's name in `alternate-exchange`, `x-dead-letter-exchange`).
fn text_argument(v: &FieldValue) -> Option<String> {
    match v {
        FieldValue::LongStr(s) => Some(String::from_utf8_lossy(s).into_owned()),
        _ => None,
    }
}
