//! What a mount's plugin may take of the host's memory.
//!
//! `InstanceMemory` is one instance's wasmtime resource limiter: every linear memory and every
//! table of the component (a component may hold several core instances, each with its own)
//! count together against the mount's `memory_mb`, so a second memory or a large table cannot
//! add to what one memory may use. `HostBuffers` is the mount's budget for the buffers the host
//! fills for its plugin's calls (HTTP response bodies, blob reads, listings) while they are in
//! flight: a call reserves what it is about to hold, grows the reservation as data arrives,
//! and gets an error instead of the memory when the budget is spent; the reservation goes back
//! when the call's buffer is handed over or dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Host memory per table element: wasmtime keeps a pointer's worth for each.
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// One instance's memories and tables, counted together against one limit.
pub struct InstanceMemory {
    limit: usize,
    used: usize,
}

impl InstanceMemory {
    pub fn new(limit: usize) -> InstanceMemory {
        InstanceMemory { limit, used: 0 }
    }

    /// Books `bytes` more if the limit allows it.
    fn admit(&mut self, bytes: usize) -> bool {
        match self.used.checked_add(bytes) {
            Some(total) if total <= self.limit => {
                self.used = total;
                true
            }
            _ => false,
        }
    }
}

impl wasmtime::ResourceLimiter for InstanceMemory {
    /// Called for a memory's initial size too (with `current` 0), so every memory counts.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.admit(desired.saturating_sub(current)))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let elements = desired.saturating_sub(current);
        Ok(self.admit(elements.saturating_mul(TABLE_ELEMENT_BYTES)))
    }
}

/// A mount's budget of host buffers for calls in flight.
pub struct HostBuffers {
    limit: usize,
    used: AtomicUsize,
}

impl HostBuffers {
    pub fn new(limit: usize) -> Arc<HostBuffers> {
        Arc::new(HostBuffers {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// An empty reservation, to grow as data arrives.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }
}

/// Bytes of a mount's budget held by one call; given back when dropped.
pub struct Reservation {
    budget: Arc<HostBuffers>,
    bytes: usize,
}

impl Reservation {
    /// Makes the reservation at least `total` bytes; false (and no change) when the budget
    /// cannot give that much.
    pub fn cover(&mut self, total: usize) -> bool {
        let more = total.saturating_sub(self.bytes);
        if more == 0 {
            return true;
        }
        if !self.budget.take(more) {
            return false;
        }
        self.bytes += more;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memories_and_tables_share_one_limit() {
        let mut limiter = InstanceMemory::new(10 << 20);
        assert!(limiter.memory_growing(0, 6 << 20, None).unwrap());
        // A second memory gets only what the first left.
        assert!(!limiter.memory_growing(0, 6 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 3 << 20, None).unwrap());
        // A table's elements count too.
        let elements = (2 << 20) / TABLE_ELEMENT_BYTES;
        assert!(!limiter.table_growing(0, elements, None).unwrap());
        assert!(limiter.table_growing(0, 1000, None).unwrap());
        // Growing the first memory by what is left still fits; a byte more does not.
        let left = (10 << 20) - (9 << 20) - 1000 * TABLE_ELEMENT_BYTES;
        assert!(!limiter
            .memory_growing(6 << 20, (6 << 20) + left + 1, None)
            .unwrap());
        assert!(limiter
            .memory_growing(6 << 20, (6 << 20) + left, None)
            .unwrap());
    }

    #[test]
    fn reservations_share_the_budget_and_give_it_back() {
        let budget = HostBuffers::new(100);
        let mut a = budget.reservation();
        let mut b = budget.reservation();
        assert!(a.cover(60));
        assert!(!b.cover(41), "over the budget");
        assert!(b.cover(40));
        assert!(a.cover(60), "already covered");
        assert!(!a.cover(61));
        drop(a);
        assert!(b.cover(100));
        drop(b);
        assert_eq!(budget.used.load(Ordering::Acquire), 0);
    }
}
