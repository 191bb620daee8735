//! The direct exchange type: a binding's routing key must equal the message's.

use super::ExchangeType;
use crate::AmqpError;
use amqp_codec::{FieldTable, ShortStr};
use std::collections::HashMap;

#[derive(Debug)]
pub struct Direct<D>(HashMap<ShortStr, Vec<D>>);

impl<D> Default for Direct<D> {
    fn default() -> Self {
        Direct(HashMap::new())
    }
}

impl<D: Clone + PartialEq> ExchangeType<D> for Direct<D> {
    fn insert(&mut self, destination: D, routing_key: &ShortStr, _: &FieldTable) -> Result<(), AmqpError> {
        self.0.entry(routing_key.clone()).or_default().push(destination);
        Ok(())
    }

    fn remove(&mut self, destination: &D, routing_key: &ShortStr, _: &FieldTable) {
        if let Some(dests) = self.0.get_mut(routing_key) {
            if let Some(i) = dests.iter().position(|d| d == destination) {
                dests.swap_remove(i);
            }
            if dests.is_empty() {
                self.0.remove(routing_key);
            }
        }
    }

    fn route(&self, routing_key: &str, _: Option<&FieldTable>, emit: &mut impl FnMut(&D)) {
        if let Some(dests) = self.0.get(routing_key) {
            dests.iter().for_each(emit);
        }
    }
}
