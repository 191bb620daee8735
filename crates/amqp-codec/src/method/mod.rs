//! The `Method` enum: every AMQP 0-9-1 method (with RabbitMQ extensions), its ids, names and wire form.
//!
//! Argument structs live in one file per class; this module holds the enum and the single
//! table (variant, class id, method id, name) that drives decode, encode and the accessors.

mod access;
mod basic;
mod channel;
mod confirm;
mod connection;
mod exchange;
mod queue;

pub use access::*;
pub use basic::*;
pub use channel::*;
pub use confirm::*;
pub use connection::*;
pub use exchange::*;
pub use queue::*;

use bytes::{BufMut, Bytes, BytesMut};

use crate::wire::get_u16;
use crate::CodecError;

/// Decoding and encoding of a method's argument list (everything after class-id and method-id).
pub(crate) trait Args: Sized {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError>;
    fn encode(&self, buf: &mut BytesMut);
}

/// Every method of AMQP 0-9-1 as RabbitMQ speaks it.
///
/// RabbitMQ extensions included: `exchange.bind`/`unbind` (+ `-ok`), `basic.nack`,
/// `confirm.select`/`select-ok`, `connection.blocked`/`unblocked`,
/// `connection.update-secret`/`-ok`. Methods without arguments are unit variants.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    ConnectionStart(ConnectionStart),
    ConnectionStartOk(ConnectionStartOk),
    ConnectionSecure(ConnectionSecure),
    ConnectionSecureOk(ConnectionSecureOk),
    ConnectionTune(ConnectionTune),
    ConnectionTuneOk(ConnectionTuneOk),
    ConnectionOpen(ConnectionOpen),
    ConnectionOpenOk(ConnectionOpenOk),
    ConnectionClose(ConnectionClose),
    ConnectionCloseOk,
    ConnectionBlocked(ConnectionBlocked),
    ConnectionUnblocked,
    ConnectionUpdateSecret(ConnectionUpdateSecret),
    ConnectionUpdateSecretOk,

    ChannelOpen(ChannelOpen),
    ChannelOpenOk(ChannelOpenOk),
    ChannelFlow(ChannelFlow),
    ChannelFlowOk(ChannelFlowOk),
    ChannelClose(ChannelClose),
    ChannelCloseOk,

    AccessRequest(AccessRequest),
    AccessRequestOk(AccessRequestOk),

    ExchangeDeclare(ExchangeDeclare),
    ExchangeDeclareOk,
    ExchangeDelete(ExchangeDelete),
    ExchangeDeleteOk,
    ExchangeBind(ExchangeBind),
    ExchangeBindOk,
    ExchangeUnbind(ExchangeUnbind),
    ExchangeUnbindOk,

    QueueDeclare(QueueDeclare),
    QueueDeclareOk(QueueDeclareOk),
    QueueBind(QueueBind),
    QueueBindOk,
    QueuePurge(QueuePurge),
    QueuePurgeOk(QueuePurgeOk),
    QueueDelete(QueueDelete),
    QueueDeleteOk(QueueDeleteOk),
    QueueUnbind(QueueUnbind),
    QueueUnbindOk,

    BasicQos(BasicQos),
    BasicQosOk,
    BasicConsume(BasicConsume),
    BasicConsumeOk(BasicConsumeOk),
    BasicCancel(BasicCancel),
    BasicCancelOk(BasicCancelOk),
    BasicPublish(BasicPublish),
    BasicReturn(BasicReturn),
    BasicDeliver(BasicDeliver),
    BasicGet(BasicGet),
    BasicGetOk(BasicGetOk),
    /// Carries a reserved `cluster-id` short string: written empty, ignored on decode.
    BasicGetEmpty,
    BasicAck(BasicAck),
    BasicReject(BasicReject),
    BasicRecoverAsync(BasicRecoverAsync),
    BasicRecover(BasicRecover),
    BasicRecoverOk,
    BasicNack(BasicNack),

    TxSelect,
    TxSelectOk,
    TxCommit,
    TxCommitOk,
    TxRollback,
    TxRollbackOk,

    ConfirmSelect(ConfirmSelect),
    ConfirmSelectOk,
}

/// Generates ids, names, argument decode/encode dispatch and `From<Args>` impls from one table.
macro_rules! method_table {
    ($( $variant:ident $( ( $ty:ident ) )? = $class:literal, $method:literal, $name:literal; )*) => {
        impl Method {
            /// The class id (10 connection, 20 channel, 30 access, 40 exchange, 50 queue, 60 basic, 85 confirm, 90 tx).
            pub fn class_id(&self) -> u16 {
                match self { $( Method::$variant { .. } => $class, )* }
            }

            /// The method id within its class.
            pub fn method_id(&self) -> u16 {
                match self { $( Method::$variant { .. } => $method, )* }
            }

            /// The spec name, e.g. `"basic.publish"`, `"queue.declare-ok"`.
            pub fn name(&self) -> &'static str {
                match self { $( Method::$variant { .. } => $name, )* }
            }

            /// The spec name of a class/method id pair, if known.
            pub fn name_of(class_id: u16, method_id: u16) -> Option<&'static str> {
                match (class_id, method_id) {
                    $( ($class, $method) => Some($name), )*
                    _ => None,
                }
            }

            fn decode_args(class_id: u16, method_id: u16, buf: &mut Bytes) -> Result<Method, CodecError> {
                Ok(match (class_id, method_id) {
                    $( ($class, $method) => Method::$variant $( (<$ty as Args>::decode(buf)?) )?, )*
                    _ => return Err(CodecError::UnknownMethod { class_id, method_id }),
                })
            }

            fn encode_args(&self, buf: &mut BytesMut) {
                match self {
                    $( method_table!(@pat $variant args $( $ty )?) => method_table!(@enc args buf $( $ty )?), )*
                }
            }
        }

        $( $(
            impl From<$ty> for Method {
                fn from(args: $ty) -> Method {
                    Method::$variant(args)
                }
            }
        )? )*
    };
    (@pat $variant:ident $args:ident $ty:ident) => { Method::$variant($args) };
    (@pat $variant:ident $args:ident) => { Method::$variant };
    (@enc $args:ident $buf:ident $ty:ident) => { Args::encode($args, $buf) };
    (@enc $args:ident $buf:ident) => { () };
}

method_table! {
    ConnectionStart(ConnectionStart) = 10, 10, "connection.start";
    ConnectionStartOk(ConnectionStartOk) = 10, 11, "connection.start-ok";
    ConnectionSecure(ConnectionSecure) = 10, 20, "connection.secure";
    ConnectionSecureOk(ConnectionSecureOk) = 10, 21, "connection.secure-ok";
    ConnectionTune(ConnectionTune) = 10, 30, "connection.tune";
    ConnectionTuneOk(ConnectionTuneOk) = 10, 31, "connection.tune-ok";
    ConnectionOpen(ConnectionOpen) = 10, 40, "connection.open";
    ConnectionOpenOk(ConnectionOpenOk) = 10, 41, "connection.open-ok";
    ConnectionClose(ConnectionClose) = 10, 50, "connection.close";
    ConnectionCloseOk = 10, 51, "connection.close-ok";
    ConnectionBlocked(ConnectionBlocked) = 10, 60, "connection.blocked";
    ConnectionUnblocked = 10, 61, "connection.unblocked";
    ConnectionUpdateSecret(ConnectionUpdateSecret) = 10, 70, "connection.update-secret";
    ConnectionUpdateSecretOk = 10, 71, "connection.update-secret-ok";

    ChannelOpen(ChannelOpen) = 20, 10, "channel.open";
    ChannelOpenOk(ChannelOpenOk) = 20, 11, "channel.open-ok";
    ChannelFlow(ChannelFlow) = 20, 20, "channel.flow";
    ChannelFlowOk(ChannelFlowOk) = 20, 21, "channel.flow-ok";
    ChannelClose(ChannelClose) = 20, 40, "channel.close";
    ChannelCloseOk = 20, 41, "channel.close-ok";

    AccessRequest(AccessRequest) = 30, 10, "access.request";
    AccessRequestOk(AccessRequestOk) = 30, 11, "access.request-ok";

    ExchangeDeclare(ExchangeDeclare) = 40, 10, "exchange.declare";
    ExchangeDeclareOk = 40, 11, "exchange.declare-ok";
    ExchangeDelete(ExchangeDelete) = 40, 20, "exchange.delete";
    ExchangeDeleteOk = 40, 21, "exchange.delete-ok";
    ExchangeBind(ExchangeBind) = 40, 30, "exchange.bind";
    ExchangeBindOk = 40, 31, "exchange.bind-ok";
    ExchangeUnbind(ExchangeUnbind) = 40, 40, "exchange.unbind";
    ExchangeUnbindOk = 40, 51, "exchange.unbind-ok";

    QueueDeclare(QueueDeclare) = 50, 10, "queue.declare";
    QueueDeclareOk(QueueDeclareOk) = 50, 11, "queue.declare-ok";
    QueueBind(QueueBind) = 50, 20, "queue.bind";
    QueueBindOk = 50, 21, "queue.bind-ok";
    QueuePurge(QueuePurge) = 50, 30, "queue.purge";
    QueuePurgeOk(QueuePurgeOk) = 50, 31, "queue.purge-ok";
    QueueDelete(QueueDelete) = 50, 40, "queue.delete";
    QueueDeleteOk(QueueDeleteOk) = 50, 41, "queue.delete-ok";
    QueueUnbind(QueueUnbind) = 50, 50, "queue.unbind";
    QueueUnbindOk = 50, 51, "queue.unbind-ok";

    BasicQos(BasicQos) = 60, 10, "basic.qos";
    BasicQosOk = 60, 11, "basic.qos-ok";
    BasicConsume(BasicConsume) = 60, 20, "basic.consume";
    BasicConsumeOk(BasicConsumeOk) = 60, 21, "basic.consume-ok";
    BasicCancel(BasicCancel) = 60, 30, "basic.cancel";
    BasicCancelOk(BasicCancelOk) = 60, 31, "basic.cancel-ok";
    BasicPublish(BasicPublish) = 60, 40, "basic.publish";
    BasicReturn(BasicReturn) = 60, 50, "basic.return";
    BasicDeliver(BasicDeliver) = 60, 60, "basic.deliver";
    BasicGet(BasicGet) = 60, 70, "basic.get";
    BasicGetOk(BasicGetOk) = 60, 71, "basic.get-ok";
    BasicGetEmpty = 60, 72, "basic.get-empty";
    BasicAck(BasicAck) = 60, 80, "basic.ack";
    BasicReject(BasicReject) = 60, 90, "basic.reject";
    BasicRecoverAsync(BasicRecoverAsync) = 60, 100, "basic.recover-async";
    BasicRecover(BasicRecover) = 60, 110, "basic.recover";
    BasicRecoverOk = 60, 111, "basic.recover-ok";
    BasicNack(BasicNack) = 60, 120, "basic.nack";

    TxSelect = 90, 10, "tx.select";
    TxSelectOk = 90, 11, "tx.select-ok";
    TxCommit = 90, 20, "tx.commit";
    TxCommitOk = 90, 21, "tx.commit-ok";
    TxRollback = 90, 30, "tx.rollback";
    TxRollbackOk = 90, 31, "tx.rollback-ok";

    ConfirmSelect(ConfirmSelect) = 85, 10, "confirm.select";
    ConfirmSelectOk = 85, 11, "confirm.select-ok";
}

impl Method {
    /// Decodes a method frame payload: class-id, method-id, arguments.
    ///
    /// Unknown ids give `UnknownMethod`; missing or extra bytes give `Malformed`.
    /// Strings in the result share `payload`'s memory.
    pub fn decode(payload: Bytes) -> Result<Method, CodecError> {
        let mut buf = payload;
        let class_id = get_u16(&mut buf)?;
        let method_id = get_u16(&mut buf)?;
        let method = if (class_id, method_id) == (60, 72) {
            basic::decode_get_empty(&mut buf)?;
            Method::BasicGetEmpty
        } else {
            Method::decode_args(class_id, method_id, &mut buf)?
        };
        if !buf.is_empty() {
            return Err(CodecError::Malformed("trailing bytes after method arguments"));
        }
        Ok(method)
    }

    /// Writes class-id, method-id and the arguments.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.class_id());
        buf.put_u16(self.method_id());
        if let Method::BasicGetEmpty = self {
            basic::encode_get_empty(buf);
        } else {
            self.encode_args(buf);
        }
    }

    /// Whether a content header and body frames follow this method
    /// (`basic.publish`, `basic.return`, `basic.deliver`, `basic.get-ok`).
    pub fn has_content(&self) -> bool {
        matches!(
            self,
            Method::BasicPublish(_) | Method::BasicReturn(_) | Method::BasicDeliver(_) | Method::BasicGetOk(_)
        )
    }

    /// Whether this method is a request the peer must answer with a reply method
    /// (its `-ok`, or `get-ok`/`get-empty` for `basic.get`), taking `nowait` into account.
    pub fn is_synchronous_request(&self) -> bool {
        match self {
            Method::ConnectionStart(_)
            | Method::ConnectionSecure(_)
            | Method::ConnectionTune(_)
            | Method::ConnectionOpen(_)
            | Method::ConnectionClose(_)
            | Method::ConnectionUpdateSecret(_)
            | Method::ChannelOpen(_)
            | Method::ChannelFlow(_)
            | Method::ChannelClose(_)
            | Method::AccessRequest(_)
            | Method::BasicQos(_)
            | Method::BasicGet(_)
            | Method::BasicRecover(_)
            | Method::QueueUnbind(_)
            | Method::TxSelect
            | Method::TxCommit
            | Method::TxRollback => true,
            Method::ExchangeDeclare(m) => !m.nowait,
            Method::ExchangeDelete(m) => !m.nowait,
            Method::ExchangeBind(m) => !m.nowait,
            Method::ExchangeUnbind(m) => !m.nowait,
            Method::QueueDeclare(m) => !m.nowait,
            Method::QueueBind(m) => !m.nowait,
            Method::QueuePurge(m) => !m.nowait,
            Method::QueueDelete(m) => !m.nowait,
            Method::BasicConsume(m) => !m.nowait,
            Method::BasicCancel(m) => !m.nowait,
            Method::ConfirmSelect(m) => !m.nowait,
            _ => false,
        }
    }
}
