//! The delivery acknowledgement timeout: a consumer that holds a delivery unacknowledged for
//! longer than its queue's `x-consumer-timeout` (or the broker's `consumer_timeout_ms`) gets its
//! deliveries returned to their queues and is cancelled with a broker-initiated `basic.cancel`.
//! Unlike RabbitMQ, which closes the whole channel, the channel and its other consumers live on;
//! a late ack of a timed-out delivery is ignored.

use crate::basic::{apply_settlement, Settlement};
use crate::sink::ChannelSink;
use amqp_codec::{BasicCancel, Method, ShortStr};
use std::sync::Arc;
use warren_broker::Tick;

impl Tick for ChannelSink {
    fn tick(self: Arc<Self>, now_ms: u64) {
        let mut st = self.state.lock();
        st.timeout_check_ms = None;
        if st.closed {
            return;
        }
        let mut late: Vec<ShortStr> = Vec::new();
        for u in st.unacked.values() {
            let overdue = u.timeout_ms > 0 && u.delivered_at_ms.saturating_add(u.timeout_ms) <= now_ms;
            if let (true, Some(tag)) = (overdue, &u.consumer_tag) {
                if !late.contains(tag) {
                    late.push(tag.clone());
                }
            }
        }
        let mut returned = Vec::new();
        let mut cancelled = Vec::new();
        for tag in &late {
            returned.extend(st.take_timed_out(tag));
            cancelled.extend(st.consumers.remove(tag));
        }
        let next = st
            .unacked
            .values()
            .filter(|u| u.timeout_ms > 0)
            .map(|u| u.delivered_at_ms.saturating_add(u.timeout_ms))
            .min();
        if let Some(at) = next {
            st.timeout_check_ms = Some(at);
            self.timers.schedule(at, &self);
        }
        drop(st);
        apply_settlement(returned, Settlement::Requeue);
        for c in cancelled {
            tracing::warn!(
                channel = self.channel,
                consumer = %c.consumer.tag,
                "delivery acknowledgement timed out: messages returned to the queue and the consumer cancelled"
            );
            if let Some(q) = &c.queue {
                q.cancel_consumer(c.consumer.owner, &c.consumer.tag);
            }
            if self.cancel_notify {
                let method = Method::BasicCancel(BasicCancel { consumer_tag: c.consumer.tag.clone(), nowait: true });
                self.out.write(|buf| amqp_codec::encode_method(buf, self.channel, &method));
            }
        }
    }
}
