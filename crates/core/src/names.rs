//! Rules for exchange and queue names: reserved prefixes, lengths, and server-generated names.

use crate::AmqpError;

/// Names beginning with this prefix are reserved for the broker (AMQP 0-9-1, 2.1.3).
pub const RESERVED_PREFIX: &str = "amq.";
/// The pseudo-queue clients consume from for direct reply-to.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Prefix of the reply-to address the broker hands out for direct reply-to.
pub const DIRECT_REPLY_TO_PREFIX: &str = "amq.rabbitmq.reply-to.";

pub fn is_reserved(name: &str) -> bool {
    name.starts_with(RESERVED_PREFIX)
}

/// RabbitMQ refuses declaring exchanges in the `amq.` namespace with 403.
pub fn check_exchange_declare_name(name: &str) -> Result<(), AmqpError> {
    if is_reserved(name) {
        return Err(AmqpError::access_refused(format!("exchange name '{name}' contains reserved prefix 'amq.*'")));
    }
    Ok(())
}

/// RabbitMQ refuses declaring queues in the `amq.` namespace with 403.
pub fn check_queue_declare_name(name: &str) -> Result<(), AmqpError> {
    if is_reserved(name) {
        return Err(AmqpError::access_refused(format!("queue name '{name}' contains reserved prefix 'amq.*'")));
    }
    Ok(())
}

/// A server-named queue: `amq.gen-` followed by 22 URL-safe base64 characters of `random`.
pub fn generated_queue_name(random: u128) -> String {
    format!("amq.gen-{}", encode_id(random))
}

/// A server-generated consumer tag.
pub fn generated_consumer_tag(random: u128) -> String {
    format!("amq.ctag-{}", encode_id(random))
}

fn encode_id(mut v: u128) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for _ in 0..22 {
        out.push(ALPHABET[(v & 63) as usize] as char);
        v >>= 6;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_have_rabbitmq_shape() {
        let n = generated_queue_name(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
        assert!(n.starts_with("amq.gen-"));
        assert_eq!(n.len(), 8 + 22);
        assert_ne!(generated_queue_name(1), generated_queue_name(2));
        assert!(generated_consumer_tag(7).starts_with("amq.ctag-"));
    }

    #[test]
    fn reserved_prefix_is_refused_with_403() {
        assert_eq!(check_queue_declare_name("amq.foo").unwrap_err().code, 403);
        assert!(check_exchange_declare_name("my.exchange").is_ok());
    }
}
