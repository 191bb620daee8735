//! Proptest strategies for every codec type, shared by the round-trip and differential tests.
#![allow(dead_code)]

use amqp_codec::*;
use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};

/// Short strings: arbitrary (printable and not) unicode up to 40 chars, or exactly 255 bytes.
pub fn shortstr() -> BoxedStrategy<ShortStr> {
    prop_oneof![
        8 => "\\PC{0,40}".prop_map(|s: String| ShortStr::try_from_string(s).unwrap()),
        1 => "[a-z]{0,12}".prop_map(ShortStr::from),
        1 => Just(ShortStr::from("x".repeat(255))),
    ]
    .boxed()
}

pub fn bytes() -> BoxedStrategy<Bytes> {
    vec(any::<u8>(), 0..48).prop_map(Bytes::from).boxed()
}

fn leaf_value() -> BoxedStrategy<FieldValue> {
    prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        any::<f32>().prop_filter("NaN != NaN", |f| !f.is_nan()).prop_map(FieldValue::F32),
        any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()).prop_map(FieldValue::F64),
        (any::<u8>(), any::<u32>()).prop_map(|(scale, value)| FieldValue::Decimal { scale, value }),
        bytes().prop_map(FieldValue::LongStr),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
        bytes().prop_map(FieldValue::ByteArray),
    ]
    .boxed()
}

/// Any field value, tables and arrays nested a few levels deep.
pub fn field_value() -> BoxedStrategy<FieldValue> {
    leaf_value()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(FieldValue::Array),
                vec((shortstr(), inner), 0..6).prop_map(|entries| FieldValue::Table(FieldTable(entries))),
            ]
        })
        .boxed()
}

/// Any field table (entries in arbitrary order, duplicate names possible).
pub fn field_table() -> BoxedStrategy<FieldTable> {
    vec((shortstr(), field_value()), 0..8).prop_map(FieldTable).boxed()
}

/// Tables with unique keys (for comparison against map-based implementations).
pub fn unique_key_table() -> BoxedStrategy<FieldTable> {
    field_table().prop_map(dedup_keys).boxed()
}

/// Keeps the first entry of every name, recursively.
pub fn dedup_keys(t: FieldTable) -> FieldTable {
    let mut out: Vec<(ShortStr, FieldValue)> = Vec::new();
    for (k, v) in t.0 {
        if !out.iter().any(|(seen, _)| *seen == k) {
            out.push((k, dedup_value(v)));
        }
    }
    FieldTable(out)
}

fn dedup_value(v: FieldValue) -> FieldValue {
    match v {
        FieldValue::Table(t) => FieldValue::Table(dedup_keys(t)),
        FieldValue::Array(a) => FieldValue::Array(a.into_iter().map(dedup_value).collect()),
        other => other,
    }
}

pub fn properties_with(table: BoxedStrategy<FieldTable>) -> BoxedStrategy<BasicProperties> {
    let s = || proptest::option::of(shortstr());
    (
        (s(), s(), proptest::option::of(table), proptest::option::of(any::<u8>())),
        (proptest::option::of(any::<u8>()), s(), s(), s(), s()),
        (proptest::option::of(any::<u64>()), s(), s(), s(), s()),
    )
        .prop_map(
            |(
                (content_type, content_encoding, headers, delivery_mode),
                (priority, correlation_id, reply_to, expiration, message_id),
                (timestamp, kind, user_id, app_id, cluster_id),
            )| BasicProperties {
                content_type,
                content_encoding,
                headers,
                delivery_mode,
                priority,
                correlation_id,
                reply_to,
                expiration,
                message_id,
                timestamp,
                kind,
                user_id,
                app_id,
                cluster_id,
            },
        )
        .boxed()
}

pub fn properties() -> BoxedStrategy<BasicProperties> {
    properties_with(field_table())
}

fn b() -> BoxedStrategy<bool> {
    any::<bool>().boxed()
}

/// Any method, every variant equally likely. `table` generates argument tables.
pub fn method_with(table: fn() -> BoxedStrategy<FieldTable>) -> BoxedStrategy<Method> {
    let s = shortstr;
    let unit = |m: Method| Just(m).boxed();
    let arms: Vec<BoxedStrategy<Method>> = vec![
        (any::<u8>(), any::<u8>(), table(), bytes(), bytes())
            .prop_map(|(version_major, version_minor, server_properties, mechanisms, locales)| {
                Method::ConnectionStart(ConnectionStart {
                    version_major,
                    version_minor,
                    server_properties,
                    mechanisms,
                    locales,
                })
            })
            .boxed(),
        (table(), s(), bytes(), s())
            .prop_map(|(client_properties, mechanism, response, locale)| {
                Method::ConnectionStartOk(ConnectionStartOk { client_properties, mechanism, response, locale })
            })
            .boxed(),
        bytes().prop_map(|challenge| Method::ConnectionSecure(ConnectionSecure { challenge })).boxed(),
        bytes().prop_map(|response| Method::ConnectionSecureOk(ConnectionSecureOk { response })).boxed(),
        (any::<u16>(), any::<u32>(), any::<u16>())
            .prop_map(|(channel_max, frame_max, heartbeat)| {
                Method::ConnectionTune(ConnectionTune { channel_max, frame_max, heartbeat })
            })
            .boxed(),
        (any::<u16>(), any::<u32>(), any::<u16>())
            .prop_map(|(channel_max, frame_max, heartbeat)| {
                Method::ConnectionTuneOk(ConnectionTuneOk { channel_max, frame_max, heartbeat })
            })
            .boxed(),
        (s(), s(), b())
            .prop_map(|(virtual_host, capabilities, insist)| {
                Method::ConnectionOpen(ConnectionOpen { virtual_host, capabilities, insist })
            })
            .boxed(),
        s().prop_map(|known_hosts| Method::ConnectionOpenOk(ConnectionOpenOk { known_hosts })).boxed(),
        (any::<u16>(), s(), any::<u16>(), any::<u16>())
            .prop_map(|(reply_code, reply_text, class_id, method_id)| {
                Method::ConnectionClose(ConnectionClose { reply_code, reply_text, class_id, method_id })
            })
            .boxed(),
        unit(Method::ConnectionCloseOk),
        s().prop_map(|reason| Method::ConnectionBlocked(ConnectionBlocked { reason })).boxed(),
        unit(Method::ConnectionUnblocked),
        (bytes(), s())
            .prop_map(|(new_secret, reason)| {
                Method::ConnectionUpdateSecret(ConnectionUpdateSecret { new_secret, reason })
            })
            .boxed(),
        unit(Method::ConnectionUpdateSecretOk),
        s().prop_map(|out_of_band| Method::ChannelOpen(ChannelOpen { out_of_band })).boxed(),
        bytes().prop_map(|channel_id| Method::ChannelOpenOk(ChannelOpenOk { channel_id })).boxed(),
        b().prop_map(|active| Method::ChannelFlow(ChannelFlow { active })).boxed(),
        b().prop_map(|active| Method::ChannelFlowOk(ChannelFlowOk { active })).boxed(),
        (any::<u16>(), s(), any::<u16>(), any::<u16>())
            .prop_map(|(reply_code, reply_text, class_id, method_id)| {
                Method::ChannelClose(ChannelClose { reply_code, reply_text, class_id, method_id })
            })
            .boxed(),
        unit(Method::ChannelCloseOk),
        (s(), b(), b(), b(), b(), b())
            .prop_map(|(realm, exclusive, passive, active, write, read)| {
                Method::AccessRequest(AccessRequest { realm, exclusive, passive, active, write, read })
            })
            .boxed(),
        any::<u16>().prop_map(|ticket| Method::AccessRequestOk(AccessRequestOk { ticket })).boxed(),
        (any::<u16>(), s(), s(), (b(), b(), b(), b(), b()), table())
            .prop_map(|(ticket, exchange, kind, (passive, durable, auto_delete, internal, nowait), arguments)| {
                Method::ExchangeDeclare(ExchangeDeclare {
                    ticket,
                    exchange,
                    kind,
                    passive,
                    durable,
                    auto_delete,
                    internal,
                    nowait,
                    arguments,
                })
            })
            .boxed(),
        unit(Method::ExchangeDeclareOk),
        (any::<u16>(), s(), b(), b())
            .prop_map(|(ticket, exchange, if_unused, nowait)| {
                Method::ExchangeDelete(ExchangeDelete { ticket, exchange, if_unused, nowait })
            })
            .boxed(),
        unit(Method::ExchangeDeleteOk),
        (any::<u16>(), s(), s(), s(), b(), table())
            .prop_map(|(ticket, destination, source, routing_key, nowait, arguments)| {
                Method::ExchangeBind(ExchangeBind { ticket, destination, source, routing_key, nowait, arguments })
            })
            .boxed(),
        unit(Method::ExchangeBindOk),
        (any::<u16>(), s(), s(), s(), b(), table())
            .prop_map(|(ticket, destination, source, routing_key, nowait, arguments)| {
                Method::ExchangeUnbind(ExchangeUnbind { ticket, destination, source, routing_key, nowait, arguments })
            })
            .boxed(),
        unit(Method::ExchangeUnbindOk),
        (any::<u16>(), s(), (b(), b(), b(), b(), b()), table())
            .prop_map(|(ticket, queue, (passive, durable, exclusive, auto_delete, nowait), arguments)| {
                Method::QueueDeclare(QueueDeclare {
                    ticket,
                    queue,
                    passive,
                    durable,
                    exclusive,
                    auto_delete,
                    nowait,
                    arguments,
                })
            })
            .boxed(),
        (s(), any::<u32>(), any::<u32>())
            .prop_map(|(queue, message_count, consumer_count)| {
                Method::QueueDeclareOk(QueueDeclareOk { queue, message_count, consumer_count })
            })
            .boxed(),
        (any::<u16>(), s(), s(), s(), b(), table())
            .prop_map(|(ticket, queue, exchange, routing_key, nowait, arguments)| {
                Method::QueueBind(QueueBind { ticket, queue, exchange, routing_key, nowait, arguments })
            })
            .boxed(),
        unit(Method::QueueBindOk),
        (any::<u16>(), s(), b())
            .prop_map(|(ticket, queue, nowait)| Method::QueuePurge(QueuePurge { ticket, queue, nowait }))
            .boxed(),
        any::<u32>().prop_map(|message_count| Method::QueuePurgeOk(QueuePurgeOk { message_count })).boxed(),
        (any::<u16>(), s(), b(), b(), b())
            .prop_map(|(ticket, queue, if_unused, if_empty, nowait)| {
                Method::QueueDelete(QueueDelete { ticket, queue, if_unused, if_empty, nowait })
            })
            .boxed(),
        any::<u32>().prop_map(|message_count| Method::QueueDeleteOk(QueueDeleteOk { message_count })).boxed(),
        (any::<u16>(), s(), s(), s(), table())
            .prop_map(|(ticket, queue, exchange, routing_key, arguments)| {
                Method::QueueUnbind(QueueUnbind { ticket, queue, exchange, routing_key, arguments })
            })
            .boxed(),
        unit(Method::QueueUnbindOk),
        (any::<u32>(), any::<u16>(), b())
            .prop_map(|(prefetch_size, prefetch_count, global)| {
                Method::BasicQos(BasicQos { prefetch_size, prefetch_count, global })
            })
            .boxed(),
        unit(Method::BasicQosOk),
        (any::<u16>(), s(), s(), (b(), b(), b(), b()), table())
            .prop_map(|(ticket, queue, consumer_tag, (no_local, no_ack, exclusive, nowait), arguments)| {
                Method::BasicConsume(BasicConsume {
                    ticket,
                    queue,
                    consumer_tag,
                    no_local,
                    no_ack,
                    exclusive,
                    nowait,
                    arguments,
                })
            })
            .boxed(),
        s().prop_map(|consumer_tag| Method::BasicConsumeOk(BasicConsumeOk { consumer_tag })).boxed(),
        (s(), b()).prop_map(|(consumer_tag, nowait)| Method::BasicCancel(BasicCancel { consumer_tag, nowait })).boxed(),
        s().prop_map(|consumer_tag| Method::BasicCancelOk(BasicCancelOk { consumer_tag })).boxed(),
        (any::<u16>(), s(), s(), b(), b())
            .prop_map(|(ticket, exchange, routing_key, mandatory, immediate)| {
                Method::BasicPublish(BasicPublish { ticket, exchange, routing_key, mandatory, immediate })
            })
            .boxed(),
        (any::<u16>(), s(), s(), s())
            .prop_map(|(reply_code, reply_text, exchange, routing_key)| {
                Method::BasicReturn(BasicReturn { reply_code, reply_text, exchange, routing_key })
            })
            .boxed(),
        (s(), any::<u64>(), b(), s(), s())
            .prop_map(|(consumer_tag, delivery_tag, redelivered, exchange, routing_key)| {
                Method::BasicDeliver(BasicDeliver { consumer_tag, delivery_tag, redelivered, exchange, routing_key })
            })
            .boxed(),
        (any::<u16>(), s(), b())
            .prop_map(|(ticket, queue, no_ack)| Method::BasicGet(BasicGet { ticket, queue, no_ack }))
            .boxed(),
        (any::<u64>(), b(), s(), s(), any::<u32>())
            .prop_map(|(delivery_tag, redelivered, exchange, routing_key, message_count)| {
                Method::BasicGetOk(BasicGetOk { delivery_tag, redelivered, exchange, routing_key, message_count })
            })
            .boxed(),
        unit(Method::BasicGetEmpty),
        (any::<u64>(), b())
            .prop_map(|(delivery_tag, multiple)| Method::BasicAck(BasicAck { delivery_tag, multiple }))
            .boxed(),
        (any::<u64>(), b())
            .prop_map(|(delivery_tag, requeue)| Method::BasicReject(BasicReject { delivery_tag, requeue }))
            .boxed(),
        b().prop_map(|requeue| Method::BasicRecoverAsync(BasicRecoverAsync { requeue })).boxed(),
        b().prop_map(|requeue| Method::BasicRecover(BasicRecover { requeue })).boxed(),
        unit(Method::BasicRecoverOk),
        (any::<u64>(), b(), b())
            .prop_map(|(delivery_tag, multiple, requeue)| {
                Method::BasicNack(BasicNack { delivery_tag, multiple, requeue })
            })
            .boxed(),
        unit(Method::TxSelect),
        unit(Method::TxSelectOk),
        unit(Method::TxCommit),
        unit(Method::TxCommitOk),
        unit(Method::TxRollback),
        unit(Method::TxRollbackOk),
        b().prop_map(|nowait| Method::ConfirmSelect(ConfirmSelect { nowait })).boxed(),
        unit(Method::ConfirmSelectOk),
    ];
    assert_eq!(arms.len(), METHOD_COUNT);
    Union::new(arms).boxed()
}

/// Number of `Method` variants.
pub const METHOD_COUNT: usize = 66;

pub fn method() -> BoxedStrategy<Method> {
    method_with(field_table)
}

/// Any single frame that is valid on the wire.
pub fn frame() -> BoxedStrategy<Frame> {
    prop_oneof![
        (any::<u16>(), method()).prop_map(|(channel, method)| Frame::Method { channel, method }),
        (any::<u16>(), any::<u64>(), properties()).prop_map(|(channel, body_size, p)| {
            Frame::Header { channel, class_id: 60, body_size, properties: p.to_raw() }
        }),
        (any::<u16>(), vec(any::<u8>(), 0..300))
            .prop_map(|(channel, payload)| Frame::Body { channel, payload: Bytes::from(payload) }),
        Just(Frame::Heartbeat { channel: 0 }),
    ]
    .boxed()
}
