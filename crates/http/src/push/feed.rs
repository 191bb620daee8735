//! Filtered push subscriptions: a subscription with a content filter is not a consumer of its
//! queue (a consumer takes whatever comes next); a task takes, as a get, only the messages the
//! filter admits, within the subscription's credit, and leaves the others queued, in order, for
//! other consumers. It waits on the queue's long poll for new messages and on the credit that
//! settled pushes give back.

use super::Live;
use std::sync::Arc;
use warren_broker::stats::Counted;
use warren_core::filter::Filter;

/// Most messages looked at per try.
const MAX_SCAN: usize = 10_000;

/// Feeds `live`'s pushes with the messages `filter` admits until the subscription stops or its
/// queue is deleted.
pub(super) async fn feed(live: Arc<Live>, filter: Filter) {
    let mut stop = live.sink.stop.subscribe();
    let poll = live.queue.long_poll();
    loop {
        if *stop.borrow() {
            return;
        }
        if live.queue.is_deleted() {
            live.sink.stop.send_replace(true);
            return;
        }
        // Both taken before looking, so nothing that happens after the look is missed.
        let ready = poll.ready();
        let room_freed = live.sink.room.notified();
        let room = live.sink.max_in_flight.saturating_sub(live.sink.in_flight.lock().len());
        let got = if room > 0 { live.queue.get_matching(room, MAX_SCAN, &filter) } else { Vec::new() };
        if got.is_empty() {
            tokio::select! {
                _ = ready => {}
                _ = room_freed => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
            continue;
        }
        for entry in got {
            live.sink.broker.http_counters().add_shared(Counted::Deliver, 1);
            live.sink.in_flight.lock().insert(entry.seq);
            let _ = live.sink.to_push.send(entry);
        }
    }
}
