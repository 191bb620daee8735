//! Direct reply-to (`amq.rabbitmq.reply-to`): replies go straight to the requester's consumer
//! without a queue. Each requesting channel gets a token; the reply address embeds it.

use crate::Consumer;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use warren_core::names::DIRECT_REPLY_TO_PREFIX;
use warren_core::Message;

#[derive(Default)]
pub struct ReplyToRegistry {
    consumers: Mutex<HashMap<String, Weak<Consumer>>>,
}

impl ReplyToRegistry {
    /// Register a reply consumer; returns the address to put in `reply_to`.
    pub fn register(&self, token: String, consumer: &Arc<Consumer>) -> String {
        let address = format!("{DIRECT_REPLY_TO_PREFIX}{token}");
        self.consumers.lock().insert(token, Arc::downgrade(consumer));
        address
    }

    pub fn unregister(&self, token: &str) {
        self.consumers.lock().remove(token);
    }

    /// Deliver a reply addressed to `routing_key`. `None` if the key is not a reply-to address;
    /// `Some(false)` if it is one whose requester is gone (the reply is dropped, as in RabbitMQ).
    pub fn deliver(&self, routing_key: &str, message: &Arc<Message>) -> Option<bool> {
        let token = routing_key.strip_prefix(DIRECT_REPLY_TO_PREFIX)?;
        let consumer = self.consumers.lock().get(token).and_then(Weak::upgrade);
        Some(match consumer {
            Some(c) => {
                c.sink.deliver_reply(&c, message);
                true
            }
            None => false,
        })
    }
}
