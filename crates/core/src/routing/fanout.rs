//! The fanout exchange type: every binding matches, whatever the routing key.

use super::ExchangeType;
use crate::AmqpError;
use amqp_codec::{FieldTable, ShortStr};

#[derive(Debug)]
pub struct Fanout<D>(Vec<D>);

impl<D> Default for Fanout<D> {
    fn default() -> Self {
        Fanout(Vec::new())
    }
}

impl<D: Clone + PartialEq> ExchangeType<D> for Fanout<D> {
    fn insert(&mut self, destination: D, _: &ShortStr, _: &FieldTable) -> Result<(), AmqpError> {
        self.0.push(destination);
        Ok(())
    }

    fn remove(&mut self, destination: &D, _: &ShortStr, _: &FieldTable) {
        if let Some(i) = self.0.iter().position(|d| d == destination) {
            self.0.swap_remove(i);
        }
    }

    fn route(&self, _: &str, _: Option<&FieldTable>, emit: &mut impl FnMut(&D)) {
        self.0.iter().for_each(emit);
    }
}
