//! Differential tests against amq-protocol v10 (a dev-dependency used only as an oracle).
//!
//! For arbitrary methods, properties and frames: our encoder's bytes parse with amq-protocol's
//! `parse_frame` to the equivalent value, amq-protocol's `gen_frame` bytes decode with ours to
//! the equivalent value, and both encoders produce identical bytes.
//!
//! Known differences, handled here and nowhere else:
//! - amq-protocol has no fields for reserved/deprecated arguments (`ticket`, `basic.qos`
//!   `prefetch_size`, `connection.open` `capabilities`/`insist`, `connection.open-ok`
//!   `known_hosts`, `channel.open` `out_of_band`, `channel.open-ok` `channel_id`,
//!   `access.request-ok` `ticket`): it writes them as zero/empty and drops them on parse.
//!   We compare with those fields zeroed ([`normalize`]); the one exception is
//!   `access.request-ok`, whose ticket amq-protocol writes as 1.
//! - amq-protocol tables are `BTreeMap`s: keys come out sorted and duplicates collapse. The
//!   strategies here generate unique keys and we compare with keys sorted.
//! - Field-value tags agree (both follow RabbitMQ: `s` = i16, `u` = u16, `l` = i64), so no
//!   value type needs skipping. amq-protocol additionally reads `U` as i16, which we refuse
//!   (as RabbitMQ does); and it accepts heartbeat frames with a payload, which we refuse.

mod common;

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{self as p, AMQPClass};
use amq_protocol::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable as AmqTable, LongString, ShortString,
};
use amqp_codec::*;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

fn ss(s: &ShortStr) -> ShortString {
    ShortString::from(s.as_str())
}

fn ls(b: &Bytes) -> LongString {
    LongString::from(b.to_vec())
}

fn value(v: &FieldValue) -> AMQPValue {
    match v {
        FieldValue::Bool(x) => AMQPValue::Boolean(*x),
        FieldValue::I8(x) => AMQPValue::ShortShortInt(*x),
        FieldValue::U8(x) => AMQPValue::ShortShortUInt(*x),
        FieldValue::I16(x) => AMQPValue::ShortInt(*x),
        FieldValue::U16(x) => AMQPValue::ShortUInt(*x),
        FieldValue::I32(x) => AMQPValue::LongInt(*x),
        FieldValue::U32(x) => AMQPValue::LongUInt(*x),
        FieldValue::I64(x) => AMQPValue::LongLongInt(*x),
        FieldValue::F32(x) => AMQPValue::Float(*x),
        FieldValue::F64(x) => AMQPValue::Double(*x),
        FieldValue::Decimal { scale, value } => AMQPValue::DecimalValue(DecimalValue { scale: *scale, value: *value }),
        FieldValue::LongStr(b) => AMQPValue::LongString(ls(b)),
        FieldValue::Array(a) => AMQPValue::FieldArray(FieldArray::from(a.iter().map(value).collect::<Vec<_>>())),
        FieldValue::Timestamp(t) => AMQPValue::Timestamp(*t),
        FieldValue::Table(t) => AMQPValue::FieldTable(table(t)),
        FieldValue::Void => AMQPValue::Void,
        FieldValue::ByteArray(b) => AMQPValue::ByteArray(ByteArray::from(b.to_vec())),
    }
}

fn table(t: &FieldTable) -> AmqTable {
    let mut out = AmqTable::default();
    for (k, v) in t.iter() {
        out.insert(ss(k), value(v));
    }
    out
}

fn props(bp: &BasicProperties) -> p::BasicProperties {
    let mut out = p::BasicProperties::default();
    macro_rules! set {
        ($field:ident, $with:ident) => {
            if let Some(v) = &bp.$field {
                out = out.$with(ss(v));
            }
        };
    }
    set!(content_type, with_content_type);
    set!(content_encoding, with_content_encoding);
    if let Some(h) = &bp.headers {
        out = out.with_headers(table(h));
    }
    if let Some(v) = bp.delivery_mode {
        out = out.with_delivery_mode(v);
    }
    if let Some(v) = bp.priority {
        out = out.with_priority(v);
    }
    set!(correlation_id, with_correlation_id);
    set!(reply_to, with_reply_to);
    set!(expiration, with_expiration);
    set!(message_id, with_message_id);
    if let Some(v) = bp.timestamp {
        out = out.with_timestamp(v);
    }
    set!(kind, with_type);
    set!(user_id, with_user_id);
    set!(app_id, with_app_id);
    set!(cluster_id, with_cluster_id);
    out
}

/// Our method as amq-protocol's value (reserved fields dropped, as amq-protocol does).
fn class(m: &Method) -> AMQPClass {
    use p::{access as a, basic as b, channel as ch, confirm as cf, connection as c, exchange as e, queue as q, tx};
    match m {
        Method::ConnectionStart(x) => AMQPClass::Connection(c::AMQPMethod::Start(c::Start {
            version_major: x.version_major,
            version_minor: x.version_minor,
            server_properties: table(&x.server_properties),
            mechanisms: ls(&x.mechanisms),
            locales: ls(&x.locales),
        })),
        Method::ConnectionStartOk(x) => AMQPClass::Connection(c::AMQPMethod::StartOk(c::StartOk {
            client_properties: table(&x.client_properties),
            mechanism: ss(&x.mechanism),
            response: ls(&x.response),
            locale: ss(&x.locale),
        })),
        Method::ConnectionSecure(x) => {
            AMQPClass::Connection(c::AMQPMethod::Secure(c::Secure { challenge: ls(&x.challenge) }))
        }
        Method::ConnectionSecureOk(x) => {
            AMQPClass::Connection(c::AMQPMethod::SecureOk(c::SecureOk { response: ls(&x.response) }))
        }
        Method::ConnectionTune(x) => AMQPClass::Connection(c::AMQPMethod::Tune(c::Tune {
            channel_max: x.channel_max,
            frame_max: x.frame_max,
            heartbeat: x.heartbeat,
        })),
        Method::ConnectionTuneOk(x) => AMQPClass::Connection(c::AMQPMethod::TuneOk(c::TuneOk {
            channel_max: x.channel_max,
            frame_max: x.frame_max,
            heartbeat: x.heartbeat,
        })),
        Method::ConnectionOpen(x) => {
            AMQPClass::Connection(c::AMQPMethod::Open(c::Open { virtual_host: ss(&x.virtual_host) }))
        }
        Method::ConnectionOpenOk(_) => AMQPClass::Connection(c::AMQPMethod::OpenOk(c::OpenOk {})),
        Method::ConnectionClose(x) => AMQPClass::Connection(c::AMQPMethod::Close(c::Close {
            reply_code: x.reply_code,
            reply_text: ss(&x.reply_text),
            class_id: x.class_id,
            method_id: x.method_id,
        })),
        Method::ConnectionCloseOk => AMQPClass::Connection(c::AMQPMethod::CloseOk(c::CloseOk {})),
        Method::ConnectionBlocked(x) => {
            AMQPClass::Connection(c::AMQPMethod::Blocked(c::Blocked { reason: ss(&x.reason) }))
        }
        Method::ConnectionUnblocked => AMQPClass::Connection(c::AMQPMethod::Unblocked(c::Unblocked {})),
        Method::ConnectionUpdateSecret(x) => AMQPClass::Connection(c::AMQPMethod::UpdateSecret(c::UpdateSecret {
            new_secret: ls(&x.new_secret),
            reason: ss(&x.reason),
        })),
        Method::ConnectionUpdateSecretOk => AMQPClass::Connection(c::AMQPMethod::UpdateSecretOk(c::UpdateSecretOk {})),
        Method::ChannelOpen(_) => AMQPClass::Channel(ch::AMQPMethod::Open(ch::Open {})),
        Method::ChannelOpenOk(_) => AMQPClass::Channel(ch::AMQPMethod::OpenOk(ch::OpenOk {})),
        Method::ChannelFlow(x) => AMQPClass::Channel(ch::AMQPMethod::Flow(ch::Flow { active: x.active })),
        Method::ChannelFlowOk(x) => AMQPClass::Channel(ch::AMQPMethod::FlowOk(ch::FlowOk { active: x.active })),
        Method::ChannelClose(x) => AMQPClass::Channel(ch::AMQPMethod::Close(ch::Close {
            reply_code: x.reply_code,
            reply_text: ss(&x.reply_text),
            class_id: x.class_id,
            method_id: x.method_id,
        })),
        Method::ChannelCloseOk => AMQPClass::Channel(ch::AMQPMethod::CloseOk(ch::CloseOk {})),
        Method::AccessRequest(x) => AMQPClass::Access(a::AMQPMethod::Request(a::Request {
            realm: ss(&x.realm),
            exclusive: x.exclusive,
            passive: x.passive,
            active: x.active,
            write: x.write,
            read: x.read,
        })),
        Method::AccessRequestOk(_) => AMQPClass::Access(a::AMQPMethod::RequestOk(a::RequestOk {})),
        Method::ExchangeDeclare(x) => AMQPClass::Exchange(e::AMQPMethod::Declare(e::Declare {
            exchange: ss(&x.exchange),
            kind: ss(&x.kind),
            passive: x.passive,
            durable: x.durable,
            auto_delete: x.auto_delete,
            internal: x.internal,
            nowait: x.nowait,
            arguments: table(&x.arguments),
        })),
        Method::ExchangeDeclareOk => AMQPClass::Exchange(e::AMQPMethod::DeclareOk(e::DeclareOk {})),
        Method::ExchangeDelete(x) => AMQPClass::Exchange(e::AMQPMethod::Delete(e::Delete {
            exchange: ss(&x.exchange),
            if_unused: x.if_unused,
            nowait: x.nowait,
        })),
        Method::ExchangeDeleteOk => AMQPClass::Exchange(e::AMQPMethod::DeleteOk(e::DeleteOk {})),
        Method::ExchangeBind(x) => AMQPClass::Exchange(e::AMQPMethod::Bind(e::Bind {
            destination: ss(&x.destination),
            source: ss(&x.source),
            routing_key: ss(&x.routing_key),
            nowait: x.nowait,
            arguments: table(&x.arguments),
        })),
        Method::ExchangeBindOk => AMQPClass::Exchange(e::AMQPMethod::BindOk(e::BindOk {})),
        Method::ExchangeUnbind(x) => AMQPClass::Exchange(e::AMQPMethod::Unbind(e::Unbind {
            destination: ss(&x.destination),
            source: ss(&x.source),
            routing_key: ss(&x.routing_key),
            nowait: x.nowait,
            arguments: table(&x.arguments),
        })),
        Method::ExchangeUnbindOk => AMQPClass::Exchange(e::AMQPMethod::UnbindOk(e::UnbindOk {})),
        Method::QueueDeclare(x) => AMQPClass::Queue(q::AMQPMethod::Declare(q::Declare {
            queue: ss(&x.queue),
            passive: x.passive,
            durable: x.durable,
            exclusive: x.exclusive,
            auto_delete: x.auto_delete,
            nowait: x.nowait,
            arguments: table(&x.arguments),
        })),
        Method::QueueDeclareOk(x) => AMQPClass::Queue(q::AMQPMethod::DeclareOk(q::DeclareOk {
            queue: ss(&x.queue),
            message_count: x.message_count,
            consumer_count: x.consumer_count,
        })),
        Method::QueueBind(x) => AMQPClass::Queue(q::AMQPMethod::Bind(q::Bind {
            queue: ss(&x.queue),
            exchange: ss(&x.exchange),
            routing_key: ss(&x.routing_key),
            nowait: x.nowait,
            arguments: table(&x.arguments),
        })),
        Method::QueueBindOk => AMQPClass::Queue(q::AMQPMethod::BindOk(q::BindOk {})),
        Method::QueuePurge(x) => {
            AMQPClass::Queue(q::AMQPMethod::Purge(q::Purge { queue: ss(&x.queue), nowait: x.nowait }))
        }
        Method::QueuePurgeOk(x) => {
            AMQPClass::Queue(q::AMQPMethod::PurgeOk(q::PurgeOk { message_count: x.message_count }))
        }
        Method::QueueDelete(x) => AMQPClass::Queue(q::AMQPMethod::Delete(q::Delete {
            queue: ss(&x.queue),
            if_unused: x.if_unused,
            if_empty: x.if_empty,
            nowait: x.nowait,
        })),
        Method::QueueDeleteOk(x) => {
            AMQPClass::Queue(q::AMQPMethod::DeleteOk(q::DeleteOk { message_count: x.message_count }))
        }
        Method::QueueUnbind(x) => AMQPClass::Queue(q::AMQPMethod::Unbind(q::Unbind {
            queue: ss(&x.queue),
            exchange: ss(&x.exchange),
            routing_key: ss(&x.routing_key),
            arguments: table(&x.arguments),
        })),
        Method::QueueUnbindOk => AMQPClass::Queue(q::AMQPMethod::UnbindOk(q::UnbindOk {})),
        Method::BasicQos(x) => {
            AMQPClass::Basic(b::AMQPMethod::Qos(b::Qos { prefetch_count: x.prefetch_count, global: x.global }))
        }
        Method::BasicQosOk => AMQPClass::Basic(b::AMQPMethod::QosOk(b::QosOk {})),
        Method::BasicConsume(x) => AMQPClass::Basic(b::AMQPMethod::Consume(b::Consume {
            queue: ss(&x.queue),
            consumer_tag: ss(&x.consumer_tag),
            no_local: x.no_local,
            no_ack: x.no_ack,
            exclusive: x.exclusive,
            nowait: x.nowait,
            arguments: table(&x.arguments),
        })),
        Method::BasicConsumeOk(x) => {
            AMQPClass::Basic(b::AMQPMethod::ConsumeOk(b::ConsumeOk { consumer_tag: ss(&x.consumer_tag) }))
        }
        Method::BasicCancel(x) => {
            AMQPClass::Basic(b::AMQPMethod::Cancel(b::Cancel { consumer_tag: ss(&x.consumer_tag), nowait: x.nowait }))
        }
        Method::BasicCancelOk(x) => {
            AMQPClass::Basic(b::AMQPMethod::CancelOk(b::CancelOk { consumer_tag: ss(&x.consumer_tag) }))
        }
        Method::BasicPublish(x) => AMQPClass::Basic(b::AMQPMethod::Publish(b::Publish {
            exchange: ss(&x.exchange),
            routing_key: ss(&x.routing_key),
            mandatory: x.mandatory,
            immediate: x.immediate,
        })),
        Method::BasicReturn(x) => AMQPClass::Basic(b::AMQPMethod::Return(b::Return {
            reply_code: x.reply_code,
            reply_text: ss(&x.reply_text),
            exchange: ss(&x.exchange),
            routing_key: ss(&x.routing_key),
        })),
        Method::BasicDeliver(x) => AMQPClass::Basic(b::AMQPMethod::Deliver(b::Deliver {
            consumer_tag: ss(&x.consumer_tag),
            delivery_tag: x.delivery_tag,
            redelivered: x.redelivered,
            exchange: ss(&x.exchange),
            routing_key: ss(&x.routing_key),
        })),
        Method::BasicGet(x) => AMQPClass::Basic(b::AMQPMethod::Get(b::Get { queue: ss(&x.queue), no_ack: x.no_ack })),
        Method::BasicGetOk(x) => AMQPClass::Basic(b::AMQPMethod::GetOk(b::GetOk {
            delivery_tag: x.delivery_tag,
            redelivered: x.redelivered,
            exchange: ss(&x.exchange),
            routing_key: ss(&x.routing_key),
            message_count: x.message_count,
        })),
        Method::BasicGetEmpty => AMQPClass::Basic(b::AMQPMethod::GetEmpty(b::GetEmpty {})),
        Method::BasicAck(x) => {
            AMQPClass::Basic(b::AMQPMethod::Ack(b::Ack { delivery_tag: x.delivery_tag, multiple: x.multiple }))
        }
        Method::BasicReject(x) => {
            AMQPClass::Basic(b::AMQPMethod::Reject(b::Reject { delivery_tag: x.delivery_tag, requeue: x.requeue }))
        }
        Method::BasicRecoverAsync(x) => {
            AMQPClass::Basic(b::AMQPMethod::RecoverAsync(b::RecoverAsync { requeue: x.requeue }))
        }
        Method::BasicRecover(x) => AMQPClass::Basic(b::AMQPMethod::Recover(b::Recover { requeue: x.requeue })),
        Method::BasicRecoverOk => AMQPClass::Basic(b::AMQPMethod::RecoverOk(b::RecoverOk {})),
        Method::BasicNack(x) => AMQPClass::Basic(b::AMQPMethod::Nack(b::Nack {
            delivery_tag: x.delivery_tag,
            multiple: x.multiple,
            requeue: x.requeue,
        })),
        Method::TxSelect => AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})),
        Method::TxSelectOk => AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
        Method::TxCommit => AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})),
        Method::TxCommitOk => AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
        Method::TxRollback => AMQPClass::Tx(tx::AMQPMethod::Rollback(tx::Rollback {})),
        Method::TxRollbackOk => AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
        Method::ConfirmSelect(x) => AMQPClass::Confirm(cf::AMQPMethod::Select(cf::Select { nowait: x.nowait })),
        Method::ConfirmSelectOk => AMQPClass::Confirm(cf::AMQPMethod::SelectOk(cf::SelectOk {})),
    }
}

fn sort_table(t: &FieldTable) -> FieldTable {
    let mut entries: Vec<_> = t.iter().map(|(k, v)| (k.clone(), sort_value(v))).collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    FieldTable(entries)
}

fn sort_value(v: &FieldValue) -> FieldValue {
    match v {
        FieldValue::Table(t) => FieldValue::Table(sort_table(t)),
        FieldValue::Array(a) => FieldValue::Array(a.iter().map(sort_value).collect()),
        other => other.clone(),
    }
}

/// What our decoder should produce from amq-protocol's encoding of `m`:
/// reserved fields zeroed, table keys sorted.
fn normalize(m: &Method) -> Method {
    let mut m = m.clone();
    match &mut m {
        Method::ConnectionStart(x) => x.server_properties = sort_table(&x.server_properties),
        Method::ConnectionStartOk(x) => x.client_properties = sort_table(&x.client_properties),
        Method::ConnectionOpen(x) => {
            x.capabilities = ShortStr::default();
            x.insist = false;
        }
        Method::ConnectionOpenOk(x) => x.known_hosts = ShortStr::default(),
        Method::ChannelOpen(x) => x.out_of_band = ShortStr::default(),
        Method::ChannelOpenOk(x) => x.channel_id = Bytes::new(),
        // amq-protocol writes the reserved access ticket of request-ok as 1.
        Method::AccessRequestOk(x) => x.ticket = 1,
        Method::ExchangeDeclare(x) => {
            x.ticket = 0;
            x.arguments = sort_table(&x.arguments);
        }
        Method::ExchangeDelete(x) => x.ticket = 0,
        Method::ExchangeBind(x) => {
            x.ticket = 0;
            x.arguments = sort_table(&x.arguments);
        }
        Method::ExchangeUnbind(x) => {
            x.ticket = 0;
            x.arguments = sort_table(&x.arguments);
        }
        Method::QueueDeclare(x) => {
            x.ticket = 0;
            x.arguments = sort_table(&x.arguments);
        }
        Method::QueueBind(x) => {
            x.ticket = 0;
            x.arguments = sort_table(&x.arguments);
        }
        Method::QueuePurge(x) => x.ticket = 0,
        Method::QueueDelete(x) => x.ticket = 0,
        Method::QueueUnbind(x) => {
            x.ticket = 0;
            x.arguments = sort_table(&x.arguments);
        }
        Method::BasicQos(x) => x.prefetch_size = 0,
        Method::BasicConsume(x) => {
            x.ticket = 0;
            x.arguments = sort_table(&x.arguments);
        }
        Method::BasicPublish(x) => x.ticket = 0,
        Method::BasicGet(x) => x.ticket = 0,
        _ => {}
    }
    m
}

fn normalize_props(p: &BasicProperties) -> BasicProperties {
    let mut p = p.clone();
    p.headers = p.headers.as_ref().map(sort_table);
    p
}

fn amq_bytes(frame: &AMQPFrame) -> Vec<u8> {
    let ctx = gen_frame(frame)(WriteContext::from(Vec::new())).expect("amq-protocol gen_frame");
    ctx.into_inner().0
}

fn amq_parse(bytes: &[u8]) -> AMQPFrame {
    let (rest, frame) = parse_frame(bytes).expect("amq-protocol parse_frame");
    assert!(rest.is_empty(), "amq-protocol left {} bytes", rest.len());
    frame
}

fn ours_decode(bytes: &[u8]) -> Frame {
    let mut buf = BytesMut::from(bytes);
    let f = decode_frame(&mut buf, 0).expect("our decode").expect("complete frame");
    assert!(buf.is_empty());
    f
}

fn unique_table() -> BoxedStrategy<FieldTable> {
    common::unique_key_table()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    /// Ours -> amq-protocol: our bytes parse to the equivalent amq-protocol method.
    #[test]
    fn our_methods_parse_in_amq_protocol(channel in any::<u16>(), m in common::method_with(unique_table)) {
        let mut buf = BytesMut::new();
        encode_method(&mut buf, channel, &m);
        prop_assert_eq!(amq_parse(&buf), AMQPFrame::Method(channel, class(&m)));
    }

    /// amq-protocol -> ours: amq-protocol's bytes decode to our method (reserved fields zero),
    /// and our encoding of that method is byte-identical to amq-protocol's.
    #[test]
    fn amq_protocol_methods_decode_in_ours(channel in any::<u16>(), m in common::method_with(unique_table)) {
        let wire = amq_bytes(&AMQPFrame::Method(channel, class(&m)));
        let expected = normalize(&m);
        prop_assert_eq!(ours_decode(&wire), Frame::Method { channel, method: expected.clone() });
        let mut ours = BytesMut::new();
        encode_method(&mut ours, channel, &expected);
        prop_assert_eq!(&ours[..], &wire[..]);
    }

    /// Content headers both ways, including a headers table with every value type.
    #[test]
    fn content_headers_agree(channel in any::<u16>(), body_size in any::<u64>(), bp in common::properties_with(common::unique_key_table())) {
        let mut buf = BytesMut::new();
        encode_content_header(&mut buf, channel, 60, body_size, &bp.to_raw());
        prop_assert_eq!(
            amq_parse(&buf),
            AMQPFrame::Header(channel, AMQPContentHeader { class_id: 60, body_size, properties: props(&bp) })
        );

        let header = AMQPContentHeader { class_id: 60, body_size, properties: props(&bp) };
        let wire = amq_bytes(&AMQPFrame::Header(channel, header));
        let expected = normalize_props(&bp);
        match ours_decode(&wire) {
            Frame::Header { channel: c, class_id: 60, body_size: s, properties } => {
                prop_assert_eq!(c, channel);
                prop_assert_eq!(s, body_size);
                prop_assert_eq!(BasicProperties::decode(properties).unwrap(), expected.clone());
            }
            other => prop_assert!(false, "unexpected frame {:?}", other),
        }
        let mut ours = BytesMut::new();
        encode_content_header(&mut ours, channel, 60, body_size, &expected.to_raw());
        prop_assert_eq!(&ours[..], &wire[..]);
    }

    #[test]
    fn body_frames_agree(channel in any::<u16>(), body in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let wire = amq_bytes(&AMQPFrame::Body(channel, body.clone()));
        let mut ours = BytesMut::new();
        encode_frame(&mut ours, &Frame::Body { channel, payload: Bytes::from(body.clone()) });
        prop_assert_eq!(&ours[..], &wire[..]);
        prop_assert_eq!(amq_parse(&ours), AMQPFrame::Body(channel, body.clone()));
        prop_assert_eq!(ours_decode(&wire), Frame::Body { channel, payload: Bytes::from(body) });
    }

    /// Valid encodings with a few bytes overwritten: both decoders accept and reject alike.
    #[test]
    fn decoders_agree_on_mutated_methods(
        m in common::method_with(unique_table),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut payload = BytesMut::new();
        m.encode(&mut payload);
        let len = payload.len();
        for (i, v) in flips {
            payload[i.index(len)] = v;
        }
        let mut frame = vec![1, 0, 1];
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        frame.push(FRAME_END);
        let ours = decode_frame(&mut BytesMut::from(&frame[..]), 0);
        let theirs = parse_frame(&frame[..]);
        if !payload.contains(&b'U') {
            prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "ours {:?} theirs {:?}", ours, theirs);
        }
    }

    /// On random method payloads (valid class/method prefix, random arguments) both decoders
    /// accept and reject the same inputs, and agree on the accepted values.
    #[test]
    fn decoders_agree_on_random_arguments(m in common::method(), args in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut payload = Vec::new();
        payload.extend_from_slice(&m.class_id().to_be_bytes());
        payload.extend_from_slice(&m.method_id().to_be_bytes());
        payload.extend_from_slice(&args);
        let mut frame = vec![1, 0, 1];
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        frame.push(FRAME_END);

        let ours = decode_frame(&mut BytesMut::from(&frame[..]), 0);
        let theirs = parse_frame(&frame[..]);
        // amq-protocol reads 'U' as i16; we refuse it like RabbitMQ. Skip inputs containing it.
        if !args.contains(&b'U') {
            prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "ours {:?} theirs {:?}", ours, theirs);
        }
        if let (Ok(Some(Frame::Method { method, .. })), Ok((_, AMQPFrame::Method(_, c)))) = (ours, theirs) {
            // Values compare equal unless a NaN float is involved; compare re-encodings then.
            let mine = class(&method);
            if mine != c {
                let (a, b) = (amq_bytes(&AMQPFrame::Method(1, mine)), amq_bytes(&AMQPFrame::Method(1, c)));
                prop_assert_eq!(a, b);
            }
        }
    }
}

#[test]
fn heartbeat_agrees() {
    let wire = amq_bytes(&AMQPFrame::Heartbeat);
    let mut ours = BytesMut::new();
    encode_heartbeat(&mut ours);
    assert_eq!(&ours[..], &wire[..]);
    assert_eq!(ours_decode(&wire), Frame::Heartbeat { channel: 0 });
}

#[test]
fn protocol_header_agrees() {
    assert_eq!(
        amq_bytes(&AMQPFrame::ProtocolHeader(amq_protocol::frame::ProtocolVersion::amqp_0_9_1())),
        PROTOCOL_HEADER.to_vec()
    );
}
