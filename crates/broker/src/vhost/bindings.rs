//! Bindings of a vhost: bind and unbind (idempotent, as in RabbitMQ), their durable keys, and
//! the removal of a destination's bindings everywhere.

use super::VHost;
use crate::durable::defs::{self, Change, DestKind, StoredBinding};
use crate::exchange::{Dest, Exchange};
use amqp_codec::{FieldTable, ShortStr};
use bytes::Bytes;
use std::sync::Arc;
use warren_core::routing::Binding;
use warren_core::AmqpError;

impl VHost {
    fn binding_key(
        &self,
        source: &Exchange,
        dest: &Dest,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Option<Bytes> {
        self.durability.as_ref()?;
        if !source.def.durable || source.is_default() {
            return None;
        }
        let (dest_kind, dest) = match dest {
            Dest::Queue(q) | Dest::Transformed(q, _) if q.persists() => (DestKind::Queue, q.name.clone()),
            Dest::Exchange(e) if e.def.durable => (DestKind::Exchange, e.def.name.clone()),
            _ => return None,
        };
        let b = StoredBinding {
            source: source.def.name.clone(),
            dest_kind,
            dest,
            routing_key: routing_key.clone(),
            arguments: arguments.clone(),
        };
        Some(defs::binding_key(&self.name, &b))
    }

    /// Deletions of every stored binding of `exchange` (as source) whose destination `matches`.
    pub(super) fn binding_deletions(&self, exchange: &Exchange, matches: impl Fn(&Dest) -> bool) -> Vec<Change> {
        if self.durability.is_none() || !exchange.def.durable {
            return Vec::new();
        }
        let bindings = exchange.bindings.read();
        bindings
            .list()
            .iter()
            .filter(|b| matches(&b.destination))
            .filter_map(|b| self.binding_key(exchange, &b.destination, &b.routing_key, &b.arguments))
            .map(|k| (k, None))
            .collect()
    }

    fn check_bindable_source(&self, exchange: &Exchange) -> Result<(), AmqpError> {
        if exchange.is_default() {
            return Err(AmqpError::access_refused(format!(
                "operation not permitted on the default exchange in vhost '{}'",
                self.name
            )));
        }
        Ok(())
    }

    pub fn bind(
        &self,
        source: &str,
        dest: Dest,
        routing_key: ShortStr,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        let exchange = self.existing_exchange(source)?;
        self.check_bindable_source(&exchange)?;
        check_not_default_destination(&dest)?;
        let dest = dest.with_binding_arguments(&arguments)?;
        let key = self.binding_key(&exchange, &dest, &routing_key, &arguments);
        let mut bindings = exchange.bindings.write();
        let added = bindings.add(Binding { destination: dest, routing_key, arguments })?;
        if let (true, Some(key)) = (added, key) {
            self.submit(vec![(key, Some(defs::binding_value()))]);
        }
        Ok(())
    }

    /// Removes a binding. Idempotent, as in RabbitMQ: a missing source or binding is no error.
    /// Only an existing binding to a queue exclusive to another connection is refused (405).
    pub fn unbind(
        &self,
        source: &str,
        dest: Dest,
        routing_key: ShortStr,
        arguments: FieldTable,
        connection: u64,
    ) -> Result<(), AmqpError> {
        check_not_default_destination(&dest)?;
        let dest = dest.with_binding_arguments(&arguments)?;
        let Some(exchange) = self.exchange(source) else { return Ok(()) };
        self.check_bindable_source(&exchange)?;
        let key = self.binding_key(&exchange, &dest, &routing_key, &arguments);
        let binding = Binding { destination: dest, routing_key, arguments };
        let now_empty = {
            let mut bindings = exchange.bindings.write();
            if !bindings.contains(&binding) {
                return Ok(());
            }
            if let Some(q) = binding.destination.queue() {
                q.check_access(connection)?;
            }
            bindings.remove(&binding);
            if let Some(key) = key {
                self.submit(vec![(key, None)]);
            }
            bindings.is_empty()
        };
        if now_empty && exchange.def.auto_delete {
            self.auto_delete_exchange(&exchange);
        }
        Ok(())
    }

    /// The destination exchange for exchange.bind: 404 if missing.
    pub fn exchange_dest(&self, name: &str) -> Result<Dest, AmqpError> {
        self.existing_exchange(name).map(Dest::Exchange)
    }

    fn auto_delete_exchange(&self, exchange: &Arc<Exchange>) {
        self.remove_exchange(exchange);
    }

    /// Remove every binding to `dest`; auto-delete exchanges left without bindings go too.
    pub(super) fn remove_destination_everywhere(&self, dest: &Dest) {
        let mut emptied = Vec::new();
        for exchange in self.exchanges() {
            let changes = self.binding_deletions(&exchange, |d| d.same_target(dest));
            let mut bindings = exchange.bindings.write();
            self.submit(changes);
            // A queue's transformed bindings are destinations of their own.
            let mut gone: Vec<Dest> = vec![dest.clone()];
            for b in bindings.list() {
                if b.destination.same_target(dest) && !gone.contains(&b.destination) {
                    gone.push(b.destination.clone());
                }
            }
            let removed: usize = gone.iter().map(|d| bindings.remove_destination(d)).sum();
            if removed > 0 && bindings.is_empty() && exchange.def.auto_delete {
                emptied.push(exchange.clone());
            }
        }
        for exchange in emptied {
            self.auto_delete_exchange(&exchange);
        }
    }
}

fn check_not_default_destination(dest: &Dest) -> Result<(), AmqpError> {
    match dest {
        Dest::Exchange(d) if d.is_default() => {
            Err(AmqpError::access_refused("operation not permitted on the default exchange"))
        }
        _ => Ok(()),
    }
}
