//! The basic, confirm and tx methods of a channel: publish (with mandatory returns, direct
//! reply-to, publisher confirms and transactions), consume/cancel, get, qos, ack/nack/reject and
//! recover.

use crate::channel::{BodyParts, Channel, Ctx, PendingContent, TxOp};
use crate::confirm::ConfirmLog;
use crate::outbound::Outbound;
use crate::pending::{DurableCount, Pending};
use crate::sink::{encode_content, ChannelConsumer};
use amqp_codec::reply_code::NO_ROUTE;
use amqp_codec::*;
use bytes::Bytes;
use std::sync::Arc;
use warren_broker::permissions::{Access, Resource};
use warren_broker::stats::Counted;
use warren_broker::{Confirm, Consumer, OnDurable, Queue};
use warren_core::names::{self, DIRECT_REPLY_TO};
use warren_core::{AmqpError, Message};

impl Channel {
    pub fn handle_basic(&mut self, ctx: &mut Ctx<'_>, method: Method) -> Result<(), AmqpError> {
        match method {
            Method::BasicPublish(m) => self.start_publish(ctx, m)?,
            Method::BasicQos(m) => self.qos(ctx, m)?,
            Method::BasicConsume(m) => self.consume(ctx, m)?,
            Method::BasicCancel(m) => {
                self.cancel(ctx, &m.consumer_tag);
                self.reply(ctx, m.nowait, Method::BasicCancelOk(BasicCancelOk { consumer_tag: m.consumer_tag }));
            }
            Method::BasicGet(m) => self.get(ctx, m)?,
            Method::BasicAck(m) => self.settle_or_buffer(ctx, m.delivery_tag, m.multiple, None)?,
            Method::BasicNack(m) => self.settle_or_buffer(ctx, m.delivery_tag, m.multiple, Some(m.requeue))?,
            Method::BasicReject(m) => self.settle_or_buffer(ctx, m.delivery_tag, false, Some(m.requeue))?,
            Method::BasicRecover(m) => {
                if !m.requeue {
                    return Err(AmqpError::not_implemented("requeue=false"));
                }
                // recover-ok goes first: clients (lapin) drop deliveries prefetched before it.
                self.send(ctx.out, Method::BasicRecoverOk);
                self.recover(m.requeue)?;
            }
            Method::BasicRecoverAsync(m) => self.recover(m.requeue)?,
            Method::ConfirmSelect(m) => {
                if self.tx.is_some() {
                    return Err(AmqpError::precondition_failed("cannot switch from tx to confirm mode"));
                }
                if self.confirm.is_none() {
                    self.confirm = Some(ConfirmLog::new(self.number, ctx.confirm_wake.clone()));
                    self.sink.state.lock().confirm = true;
                }
                self.reply(ctx, m.nowait, Method::ConfirmSelectOk);
            }
            Method::TxSelect => {
                if self.confirm.is_some() {
                    return Err(AmqpError::precondition_failed("cannot switch from confirm to tx mode"));
                }
                self.tx.get_or_insert_with(Vec::new);
                self.sink.state.lock().transactional = true;
                self.send(ctx.out, Method::TxSelectOk);
            }
            Method::TxCommit => {
                let ops = self.tx.replace(Vec::new()).ok_or_else(not_transactional)?;
                // commit-ok promises the persistent messages are on disk: it waits for them.
                let wait = Arc::new(DurableCount::default());
                for op in ops {
                    match op {
                        TxOp::Publish { publish, message } => {
                            // It enters the queues now: TTLs count from the commit.
                            let message = Arc::new(Message::clone(&message).at(ctx.broker.now_ms()));
                            self.route(ctx, &publish, message, Some(&wait))?
                        }
                        TxOp::Settle { tag, multiple, requeue } => self.settle(tag, multiple, requeue)?,
                    }
                }
                if wait.is_settled() {
                    self.send(ctx.out, Method::TxCommitOk);
                } else {
                    *ctx.pending = Some(Pending::TxCommit { channel: self.number, wait });
                }
            }
            Method::TxRollback => {
                self.tx.as_mut().ok_or_else(not_transactional)?.clear();
                self.send(ctx.out, Method::TxRollbackOk);
            }
            other => {
                return Err(AmqpError::command_invalid(format!("unexpected method '{}' on a channel", other.name())));
            }
        }
        Ok(())
    }

    // ---- publish ---------------------------------------------------------------------------

    fn start_publish(&mut self, ctx: &mut Ctx<'_>, m: BasicPublish) -> Result<(), AmqpError> {
        if m.immediate {
            return Err(AmqpError::not_implemented("immediate=true"));
        }
        // The write permission, checked once per exchange until permissions change: one atomic
        // load and a name comparison per publish.
        let version = ctx.broker.permissions().version();
        if !matches!(&self.write_allowed, Some((v, x)) if *v == version && *x == m.exchange) {
            ctx.check(Access::Write, Resource::Exchange, &m.exchange)?;
            self.write_allowed = Some((version, m.exchange.clone()));
        }
        self.content = Some(PendingContent { publish: m, properties: None, body_size: 0, body: BodyParts::Empty });
        Ok(())
    }

    /// The content header of the pending publish arrived.
    pub fn content_header(
        &mut self,
        ctx: &mut Ctx<'_>,
        class_id: u16,
        body_size: u64,
        properties: Bytes,
    ) -> Result<(), AmqpError> {
        let max = ctx.broker.limits().max_message_size_bytes;
        let Some(pending) = self.content.as_mut().filter(|p| p.properties.is_none()) else {
            return Err(AmqpError::unexpected_frame("expected content body, got non content body frame instead"));
        };
        if class_id != BASIC_CLASS_ID {
            return Err(AmqpError::unexpected_frame(format!(
                "expected content header for class {BASIC_CLASS_ID}, got one for class {class_id} instead"
            )));
        }
        // Properties are forwarded byte for byte, so malformed ones must never reach a consumer.
        if !raw_properties::is_well_formed(&properties) {
            return Err(AmqpError::syntax_error("malformed content header properties"));
        }
        pending.properties = Some(properties);
        pending.body_size = body_size;
        if body_size > max {
            self.content = None;
            return Err(AmqpError::precondition_failed(format!(
                "message size {body_size} is larger than configured max size {max}"
            )));
        }
        if body_size == 0 {
            self.finish_publish(ctx)?;
        }
        Ok(())
    }

    /// A body frame of the pending publish arrived.
    pub fn content_body(&mut self, ctx: &mut Ctx<'_>, payload: Bytes) -> Result<(), AmqpError> {
        let Some(pending) = self.content.as_mut().filter(|p| p.properties.is_some()) else {
            return Err(AmqpError::unexpected_frame(format!(
                "expected content header for class {BASIC_CLASS_ID}, got non content header frame instead"
            )));
        };
        if (pending.body.len() + payload.len()) as u64 > pending.body_size {
            return Err(AmqpError::unexpected_frame("content body is longer than the size in its header"));
        }
        pending.body.push(payload);
        if pending.body.len() as u64 == pending.body_size {
            self.finish_publish(ctx)?;
        }
        Ok(())
    }

    fn finish_publish(&mut self, ctx: &mut Ctx<'_>) -> Result<(), AmqpError> {
        let Some(PendingContent { publish, properties, body, .. }) = self.content.take() else {
            return Ok(());
        };
        let mut properties = properties.unwrap_or_default();
        if let Some(mode) = raw_properties::delivery_mode(&properties).filter(|m| !matches!(m, 1 | 2)) {
            return Err(AmqpError::precondition_failed(format!(
                "invalid message: delivery_mode {mode} is neither 1 (transient) nor 2 (persistent)"
            )));
        }
        if let Some(claimed) = raw_properties::user_id(&properties) {
            if claimed != ctx.user {
                return Err(AmqpError::precondition_failed(format!(
                    "user_id property set to '{claimed}' but authenticated user was '{}'",
                    ctx.user
                )));
            }
        }
        if let Some(expiration) = raw_properties::expiration(&properties) {
            if let Err(why) = warren_core::message::parse_expiration(expiration) {
                return Err(AmqpError::precondition_failed(format!("invalid expiration '{expiration}': {why}")));
            }
        }
        if raw_properties::reply_to(&properties) == Some(DIRECT_REPLY_TO) {
            properties = self.rewrite_reply_to(properties)?;
        }
        let message = Arc::new(
            Message::new(publish.exchange.clone(), publish.routing_key.clone(), properties, body.into_bytes())
                .at(ctx.broker.now_ms()),
        );
        if self.tx.is_some() {
            ctx.vhost.exchange(&publish.exchange).ok_or_else(|| no_exchange(ctx, &publish.exchange))?;
            return self.buffer_tx_op(ctx, TxOp::Publish { publish, message });
        }
        self.route(ctx, &publish, message, None)
    }

    /// Route an assembled message; returns it if mandatory and unroutable; in confirm mode,
    /// records its outcome (ack now, ack once durable, or nack when the store refused it). In a
    /// transaction's commit, `tx_wait` counts the persistent messages still on their way to disk.
    fn route(
        &mut self,
        ctx: &mut Ctx<'_>,
        publish: &BasicPublish,
        message: Arc<Message>,
        tx_wait: Option<&Arc<DurableCount>>,
    ) -> Result<(), AmqpError> {
        // Only a persistent message can wait for the disk: transient ones need no callback.
        let persistent = raw_properties::delivery_mode(&message.properties) == Some(2);
        let confirm = self.confirm.as_ref().map(|log| (log.reserve(), log));
        let on_durable: Option<OnDurable> = match (confirm, tx_wait) {
            _ if !persistent => None,
            (Some((seq, log)), _) => {
                let log = log.clone();
                Some(Box::new(move |durable| log.settle(seq, durable)))
            }
            (None, Some(wait)) => {
                wait.add();
                let wait = wait.clone();
                Some(Box::new(move |durable| wait.settle(durable)))
            }
            (None, None) => None,
        };
        let waits_in_tx = persistent && confirm.is_none() && tx_wait.is_some();
        let routed = ctx.broker.publish(ctx.vhost, &publish.exchange, message.clone(), on_durable);
        if let (true, Some(wait)) = (waits_in_tx, tx_wait) {
            // The callback was dropped uncalled unless the store took the message: settle here.
            match &routed {
                Ok(r) if r.confirm == Confirm::WhenDurable => {}
                Ok(r) => wait.settle(r.confirm != Confirm::Refused),
                Err(_) => wait.settle(false),
            }
        }
        let counters = &self.sink.counters;
        counters.bump(Counted::Publish, 1);
        if confirm.is_some() {
            counters.bump(Counted::PublishInConfirm, 1);
        }
        let routed = match routed {
            Ok(r) => {
                if let Some(b) = &r.consumers_behind {
                    note_behind(ctx.behind, &b.0);
                }
                r
            }
            Err(e) if e.code == amqp_codec::reply_code::NOT_FOUND => return Err(no_exchange(ctx, &publish.exchange)),
            Err(e) => return Err(e),
        };
        if routed.queues > 0 {
            counters.bump(Counted::Routed, 1);
        }
        // A message a contract refused goes back to a mandatory publisher with the reason.
        let refused = routed.refusal.as_ref().map(|r| r.reply_text());
        // A duplicate was taken (and confirmed) without being routed: it is not returned.
        let returned = routed.queues == 0
            && !routed.deduplicated
            && publish.mandatory
            && routed.confirm != Confirm::Refused
            && (!routed.rejected || refused.is_some());
        if routed.queues == 0 && !routed.deduplicated {
            counters.bump(if returned { Counted::ReturnUnroutable } else { Counted::DropUnroutable }, 1);
        }
        if returned {
            let reply_text = match refused {
                Some(text) => {
                    ShortStr::try_from_string(text).unwrap_or_else(|_| ShortStr::from_static("CONTRACT_VIOLATION"))
                }
                None => ShortStr::from_static("NO_ROUTE"),
            };
            let ret = Method::BasicReturn(BasicReturn {
                reply_code: NO_ROUTE,
                reply_text,
                exchange: publish.exchange.clone(),
                routing_key: publish.routing_key.clone(),
            });
            let frame_max = ctx.out.frame_max();
            ctx.out.write(|b| encode_content(b, self.number, &ret, &message, frame_max));
        }
        if let Some((seq, log)) = confirm {
            match routed.confirm {
                // A full queue refused it: nack, even if other queues (or the disk) took it.
                _ if routed.rejected => log.resolve(seq, false),
                Confirm::Now => log.resolve(seq, true),
                Confirm::Refused => log.resolve(seq, false),
                Confirm::WhenDurable => {}
            }
        }
        Ok(())
    }

    /// Send the confirms that are ready: one `basic.ack(multiple)` per run of acks.
    pub fn flush_confirms(&mut self, out: &Outbound) {
        if let Some(log) = &self.confirm {
            let acked = log.flush(out);
            self.sink.counters.bump(Counted::Confirm, acked);
        }
    }

    /// Whether some confirms could be sent now.
    pub fn has_pending_confirms(&self) -> bool {
        self.confirm.as_ref().is_some_and(|log| log.has_ready())
    }

    fn rewrite_reply_to(&self, properties: Bytes) -> Result<Bytes, AmqpError> {
        let Some((_, address)) = &self.reply_to else {
            return Err(AmqpError::precondition_failed("fast reply consumer does not exist"));
        };
        let mut props = BasicProperties::decode(properties).map_err(AmqpError::syntax_error)?;
        props.reply_to = Some(ShortStr::from(address.as_str()));
        Ok(props.to_raw())
    }

    // ---- consumers -------------------------------------------------------------------------

    fn qos(&mut self, ctx: &mut Ctx<'_>, m: BasicQos) -> Result<(), AmqpError> {
        if m.prefetch_size != 0 {
            return Err(AmqpError::not_implemented(format!("prefetch_size!={}", m.prefetch_size)));
        }
        {
            let mut st = self.sink.state.lock();
            if m.global {
                st.channel_prefetch = m.prefetch_count;
            } else {
                st.consumer_prefetch = m.prefetch_count;
            }
        }
        self.send(ctx.out, Method::BasicQosOk);
        self.redispatch();
        Ok(())
    }

    fn consume(&mut self, ctx: &mut Ctx<'_>, m: BasicConsume) -> Result<(), AmqpError> {
        let tag = if m.consumer_tag.is_empty() {
            ShortStr::from(names::generated_consumer_tag(rand::random()))
        } else {
            m.consumer_tag.clone()
        };
        {
            let st = self.sink.state.lock();
            if st.consumers.contains_key(&tag) {
                return Err(AmqpError::not_allowed(format!("attempt to reuse consumer tag '{tag}'")));
            }
            if st.consumers.len() >= ctx.broker.limits().max_consumers_per_channel {
                return Err(AmqpError::resource_error("too many consumers on this channel"));
            }
        }
        let priority = match m.arguments.get("x-priority") {
            None => 0,
            Some(v) => match v.as_i64().and_then(|p| i32::try_from(p).ok()) {
                Some(p) => p,
                None => return Err(AmqpError::precondition_failed(format!("invalid arg 'x-priority': {v:?}"))),
            },
        };
        let consumer = Arc::new(Consumer {
            tag: tag.clone(),
            no_ack: m.no_ack,
            exclusive: m.exclusive,
            priority,
            owner: (ctx.connection_id, self.number),
            sink: self.sink.clone(),
        });
        if m.queue.as_str() == DIRECT_REPLY_TO {
            return self.consume_reply_to(ctx, m, consumer);
        }
        let name = self.queue_name(&m.queue)?;
        ctx.check(Access::Read, Resource::Queue, &name)?;
        let q = ctx.vhost.queue_for(&name, ctx.connection_id)?;
        {
            let mut st = self.sink.state.lock();
            let prefetch = st.consumer_prefetch;
            st.consumers.insert(tag.clone(), ChannelConsumer::new(consumer.clone(), Some(q.clone()), prefetch));
        }
        // consume-ok must precede the first delivery, which add_consumer may make right away.
        let ok = Method::BasicConsumeOk(BasicConsumeOk { consumer_tag: tag.clone() });
        let send_ok = || self.reply(ctx, m.nowait, ok);
        if let Err(e) = q.add_consumer(consumer, send_ok) {
            self.sink.state.lock().consumers.remove(&tag);
            return Err(e);
        }
        Ok(())
    }

    fn consume_reply_to(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: BasicConsume,
        consumer: Arc<Consumer>,
    ) -> Result<(), AmqpError> {
        if !m.no_ack {
            return Err(AmqpError::precondition_failed("reply consumer cannot acknowledge"));
        }
        if self.reply_to.is_some() {
            return Err(AmqpError::precondition_failed("reply consumer already set"));
        }
        let token = format!("{:032x}", rand::random::<u128>());
        let address = ctx.broker.reply_to().register(token.clone(), &consumer);
        let tag = consumer.tag.clone();
        self.sink.state.lock().consumers.insert(tag.clone(), ChannelConsumer::new(consumer, None, 0));
        self.reply_to = Some((token, address));
        self.reply(ctx, m.nowait, Method::BasicConsumeOk(BasicConsumeOk { consumer_tag: tag }));
        Ok(())
    }

    /// Cancel a consumer (unknown tags are ignored, as the spec allows).
    pub fn cancel(&mut self, ctx: &mut Ctx<'_>, tag: &str) {
        let removed = self.sink.state.lock().consumers.remove(tag);
        let Some(c) = removed else { return };
        match &c.queue {
            Some(q) => ctx.vhost.remove_consumer(q, &c.consumer),
            None => {
                if let Some((token, _)) = self.reply_to.take() {
                    ctx.broker.reply_to().unregister(&token);
                }
            }
        }
    }

    fn get(&mut self, ctx: &mut Ctx<'_>, m: BasicGet) -> Result<(), AmqpError> {
        let name = self.queue_name(&m.queue)?;
        ctx.check(Access::Read, Resource::Queue, &name)?;
        let q = ctx.vhost.queue_for(&name, ctx.connection_id)?;
        match q.get(m.no_ack) {
            Some((entry, remaining)) => self.sink.deliver_get(&q, entry, m.no_ack, remaining),
            None => {
                self.sink.counters.bump(Counted::GetEmpty, 1);
                self.send(ctx.out, Method::BasicGetEmpty)
            }
        }
        Ok(())
    }

    // ---- acknowledgements ------------------------------------------------------------------

    fn settle_or_buffer(
        &mut self,
        ctx: &Ctx<'_>,
        tag: u64,
        multiple: bool,
        requeue: Option<bool>,
    ) -> Result<(), AmqpError> {
        if self.tx.is_some() {
            return self.buffer_tx_op(ctx, TxOp::Settle { tag, multiple, requeue });
        }
        self.settle(tag, multiple, requeue)
    }

    /// Buffer an operation until tx.commit, within the configured bound.
    fn buffer_tx_op(&mut self, ctx: &Ctx<'_>, op: TxOp) -> Result<(), AmqpError> {
        let max = ctx.broker.limits().max_uncommitted_tx_ops;
        let ops = self.tx.as_mut().ok_or_else(not_transactional)?;
        if ops.len() >= max {
            return Err(AmqpError::precondition_failed(format!(
                "transaction holds {max} uncommitted operations, the configured maximum"
            )));
        }
        ops.push(op);
        Ok(())
    }

    /// Ack (`requeue` None), or nack/reject with or without requeue.
    fn settle(&mut self, tag: u64, multiple: bool, requeue: Option<bool>) -> Result<(), AmqpError> {
        let settled = self.sink.state.lock().settle(tag, multiple);
        let Some(settled) = settled else {
            return Err(AmqpError::precondition_failed(format!("unknown delivery tag {tag}")));
        };
        if requeue.is_none() {
            self.sink.counters.bump(Counted::Ack, settled.len() as u64);
        }
        let how = match requeue {
            None => Settlement::Ack,
            Some(true) => Settlement::Requeue,
            Some(false) => Settlement::Reject,
        };
        apply_settlement(settled, how);
        // The connection redispatches once at the end of the read batch: a client that acks one
        // message at a time sends many acks to a read, and each would otherwise lock the queue
        // and write deliveries on its own.
        self.redispatch_due = true;
        Ok(())
    }

    fn recover(&mut self, requeue: bool) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        let all = self.sink.state.lock().take_all_unacked();
        apply_settlement(all, Settlement::Requeue);
        self.redispatch();
        Ok(())
    }
}

/// What the client (or its going away) decided for settled deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Ack,
    /// Back to the queue (nack/reject with requeue, recover, or the channel closed).
    Requeue,
    /// Nack or reject without requeue: dead-lettered or dropped.
    Reject,
}

/// Apply a settlement to deliveries, one queue call per run of the same queue.
pub fn apply_settlement(settled: Vec<crate::sink::Unacked>, how: Settlement) {
    let mut i = 0;
    while i < settled.len() {
        let q = settled[i].queue.clone();
        let mut j = i;
        while j < settled.len() && Arc::ptr_eq(&settled[j].queue, &q) {
            j += 1;
        }
        let seqs = settled[i..j].iter().map(|u| u.seq);
        match how {
            Settlement::Ack => q.ack(seqs),
            Settlement::Requeue => q.requeue(seqs),
            Settlement::Reject => q.reject(seqs),
        }
        i = j;
    }
}

/// At most this many queues are remembered as behind per read batch (a publisher feeding more
/// at once is held for the first ones).
const MAX_BEHIND_PER_BATCH: usize = 16;

fn note_behind(behind: &mut Vec<Arc<Queue>>, queue: &Arc<Queue>) {
    if behind.len() < MAX_BEHIND_PER_BATCH && !behind.iter().any(|q| Arc::ptr_eq(q, queue)) {
        behind.push(queue.clone());
    }
}

fn not_transactional() -> AmqpError {
    AmqpError::precondition_failed("channel is not transactional")
}

fn no_exchange(ctx: &Ctx<'_>, name: &str) -> AmqpError {
    AmqpError::not_found(format!("no exchange '{name}' in vhost '{}'", ctx.vhost.name))
}
