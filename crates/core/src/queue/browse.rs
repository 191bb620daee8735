//! Looking at ready messages without taking them (browsing a dead-letter queue), and putting
//! back, untouched, messages a move looked at but did not take.

use super::{Entry, QueueMessages};

/// A ready message seen without taking it.
#[derive(Debug, Clone)]
pub enum Peeked {
    /// In memory.
    Entry(Entry),
    /// On disk only: read it back by its store id.
    Paged { seq: u64, id: u64, redelivered: bool },
}

impl Peeked {
    pub fn seq(&self) -> u64 {
        match self {
            Peeked::Entry(e) => e.seq,
            Peeked::Paged { seq, .. } => *seq,
        }
    }
}

impl QueueMessages {
    /// Appends to `out` up to `count` ready messages in delivery order, after skipping
    /// `*skip` of them (what is skipped here is taken off `*skip`).
    pub fn peek(&self, skip: &mut usize, count: usize, out: &mut Vec<Peeked>) {
        let want = out.len() + count;
        // Whether to go on after `p`.
        let take = |p: Peeked, skip: &mut usize, out: &mut Vec<Peeked>| {
            if *skip > 0 {
                *skip -= 1;
            } else if out.len() < want {
                out.push(p);
            }
            out.len() < want
        };
        for e in self.returned.values() {
            if !take(Peeked::Entry(e.clone()), skip, out) {
                return;
            }
        }
        for run in &self.paged {
            if *skip as u64 >= run.count {
                *skip -= run.count as usize;
                continue;
            }
            for i in 0..run.count {
                let p = Peeked::Paged { seq: run.first_seq + i, id: run.first_id + i, redelivered: run.redelivered };
                if !take(p, skip, out) {
                    return;
                }
            }
        }
        for e in &self.ready {
            if !take(Peeked::Entry(e.clone()), skip, out) {
                return;
            }
        }
    }

    /// Puts back a message taken with `pop_next` that nobody received: at its position, with
    /// its redelivered flag and delivery count as they were.
    pub fn put_back(&mut self, mut entry: Entry) {
        let (seq, redelivered) = (entry.seq, entry.redelivered);
        entry.delivery_count = entry.delivery_count.saturating_sub(1);
        self.return_entry(entry);
        if let Some(e) = self.returned.get_mut(&seq) {
            e.redelivered = redelivered;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Load;
    use crate::Message;
    use std::sync::Arc;

    fn msg(n: u8) -> Arc<Message> {
        Arc::new(Message::new("".into(), "q".into(), bytes::Bytes::new(), bytes::Bytes::from(vec![n])))
    }

    #[test]
    fn peeking_shows_delivery_order_and_put_back_keeps_it() {
        let mut q = QueueMessages::default();
        for n in 0..5 {
            q.push(msg(n));
        }
        let mut expired = Vec::new();
        let first = q.pop_next(0, &mut expired, &mut |_| Load::NotYet).unwrap();
        let second = q.pop_next(0, &mut expired, &mut |_| Load::NotYet).unwrap();
        q.put_back(second);
        q.put_back(first);
        let mut out = Vec::new();
        q.peek(&mut 1, 3, &mut out);
        let bodies: Vec<u8> = out
            .iter()
            .map(|p| match p {
                Peeked::Entry(e) => e.message.body[0],
                Peeked::Paged { .. } => panic!("nothing is paged out"),
            })
            .collect();
        assert_eq!(bodies, [1, 2, 3]);
        let head = q.pop_next(0, &mut expired, &mut |_| Load::NotYet).unwrap();
        assert_eq!((head.message.body[0], head.redelivered, head.delivery_count), (0, false, 1));
        assert_eq!(q.ready_count(), 4);
    }
}
