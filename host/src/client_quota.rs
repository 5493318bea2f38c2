//! What each client holds of a bounded table (NLM's byte-range locks, its share reservations),
//! counted per client and in all. A holding is taken only while both the table's limit and
//! the client's allow it, and is given back when it goes, so that neither one client nor a
//! crowd of them holds more than the table's bound.

use std::collections::HashMap;
use std::sync::Arc;

/// How many holdings a table allows at most, in all and per client.
#[derive(Clone, Copy, Debug)]
pub struct QuotaLimits {
    pub total: usize,
    pub per_client: usize,
}

/// The holdings of every client of one table.
pub struct ClientQuota {
    limits: QuotaLimits,
    per_client: HashMap<Arc<str>, usize>,
    total: usize,
}

impl ClientQuota {
    pub fn new(limits: QuotaLimits) -> ClientQuota {
        ClientQuota {
            limits,
            per_client: HashMap::new(),
            total: 0,
        }
    }

    /// Takes `n` holdings for `client` if both limits allow them; `false`, and nothing taken,
    /// if not.
    pub fn take(&mut self, client: &Arc<str>, n: usize) -> bool {
        let used = self.per_client.get(client).copied().unwrap_or(0);
        if self.total + n > self.limits.total || used + n > self.limits.per_client {
            return false;
        }
        self.force(client, n);
        true
    }

    /// Takes `n` holdings for `client` whatever the limits: for a change that must not fail
    /// half done (an unlock that splits a range into two).
    pub fn force(&mut self, client: &Arc<str>, n: usize) {
        if n == 0 {
            return;
        }
        *self.per_client.entry(client.clone()).or_default() += n;
        self.total += n;
    }

    /// Gives back `n` of `client`'s holdings.
    pub fn give_back(&mut self, client: &str, n: usize) {
        if n == 0 {
            return;
        }
        if let Some(used) = self.per_client.get_mut(client) {
            *used -= n;
            if *used == 0 {
                self.per_client.remove(client);
            }
        }
        self.total -= n;
    }

    /// Gives back everything `client` holds.
    pub fn forget(&mut self, client: &str) {
        if let Some(count) = self.per_client.remove(client) {
            self.total -= count;
        }
    }

    /// The clients that hold anything.
    pub fn clients(&self) -> Vec<Arc<str>> {
        self.per_client.keys().cloned().collect()
    }

    /// Holdings in all.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_takes_up_to_its_limit_and_all_clients_up_to_the_total() {
        let mut quota = ClientQuota::new(QuotaLimits {
            total: 5,
            per_client: 3,
        });
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        assert!(quota.take(&a, 2));
        assert!(!quota.take(&a, 2), "a would hold 4 of its 3");
        assert!(quota.take(&a, 1));
        assert!(quota.take(&b, 2));
        assert!(!quota.take(&b, 1), "the table would hold 6 of its 5");
        assert_eq!(quota.len(), 5);
        quota.give_back("a", 1);
        assert!(quota.take(&b, 1));
        quota.force(&b, 2);
        assert_eq!(quota.len(), 7, "a forced holding goes over the limits");
        quota.forget("b");
        assert_eq!((quota.len(), quota.clients()), (2, vec![a.clone()]));
        quota.give_back("a", 2);
        assert!(quota.is_empty() && quota.clients().is_empty());
    }
}
