//! Connection admission for nfsgw's TCP listeners: how many connections may be open, in total
//! and per client address, and which one makes room for a newcomer.
//!
//! An [`Admission`] keeps every live connection with its client address and, while it waits
//! for a call, the moment it went idle. A connection over either limit closes the connection
//! that has been idle longest (of the same address, when that address is at its own limit);
//! when none is idle, the newcomer is refused. Each admitted connection holds a [`Ticket`]
//! that says when it is idle or busy, tells it when it was chosen to make room, and gives its
//! place back when dropped. [`accept`] is how a listener takes its next connection, waiting
//! after a failed accept (out of file descriptors) instead of stopping, and
//! [`raise_descriptor_limit`] lifts the process's soft descriptor limit to its hard one at
//! start.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How many connections an [`Admission`] lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub total: usize,
    pub per_client: usize,
}

/// The live connections of one listener.
pub struct Admission {
    limits: Limits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// By admission order.
    live: BTreeMap<u64, Entry>,
    per_client: HashMap<IpAddr, usize>,
}

struct Entry {
    client: IpAddr,
    /// `Some` while the connection waits for a call.
    idle_since: Option<Instant>,
    evicted: Arc<Notify>,
}

impl State {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.live.remove(&id)?;
        if let Some(count) = self.per_client.get_mut(&entry.client) {
            *count -= 1;
            if *count == 0 {
                self.per_client.remove(&entry.client);
            }
        }
        Some(entry)
    }

    /// The connection idle longest, of `client` when given.
    fn longest_idle(&self, client: Option<IpAddr>) -> Option<u64> {
        self.live
            .iter()
            .filter(|(_, e)| client.is_none_or(|c| e.client == c))
            .filter_map(|(id, e)| e.idle_since.map(|since| (since, *id)))
            .min()
            .map(|(_, id)| id)
    }

    /// Closes the connection idle longest (of `client` when given); false when none is idle.
    fn evict(&mut self, client: Option<IpAddr>) -> bool {
        let Some(id) = self.longest_idle(client) else {
            return false;
        };
        if let Some(entry) = self.remove(id) {
            entry.evicted.notify_one();
        }
        true
    }
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            state: Mutex::new(State::default()),
        })
    }

    /// Lets a connection from `client` in, closing an idle one if a limit is reached; `None`
    /// when the limit is reached and no connection that would make room is idle.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Option<Ticket> {
        let mut state = self.state.lock().unwrap();
        let of_client = state.per_client.get(&client).copied().unwrap_or(0);
        if of_client >= self.limits.per_client && !state.evict(Some(client)) {
            return None;
        }
        if state.live.len() >= self.limits.total && !state.evict(None) {
            return None;
        }
        let id = state.next_id;
        state.next_id += 1;
        let evicted = Arc::new(Notify::new());
        state.live.insert(
            id,
            Entry {
                client,
                idle_since: None,
                evicted: evicted.clone(),
            },
        );
        *state.per_client.entry(client).or_default() += 1;
        Some(Ticket {
            admission: self.clone(),
            id,
            evicted,
        })
    }
}

/// One admitted connection's place; dropping it frees the place.
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    evicted: Arc<Notify>,
}

impl Ticket {
    /// The connection waits for a call: it may be closed to make room.
    pub fn idle(&self) {
        self.set_idle(Some(Instant::now()));
    }

    /// The connection reads or answers a call.
    pub fn busy(&self) {
        self.set_idle(None);
    }

    fn set_idle(&self, since: Option<Instant>) {
        let mut state = self.admission.state.lock().unwrap();
        if let Some(entry) = state.live.get_mut(&self.id) {
            if entry.idle_since.is_none() || since.is_none() {
                entry.idle_since = since;
            }
        }
    }

    /// Resolves once the connection was chosen to make room for a newer one.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.state.lock().unwrap().remove(self.id);
    }
}

/// The next connection of `listener`. A failed accept (out of descriptors, say) is logged as
/// `what`'s and waited out ([`accept_backoff`]), so the listener neither spins nor stops.
pub async fn accept(listener: &TcpListener, what: &str) -> (TcpStream, SocketAddr) {
    let mut failed = 0;
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                failed += 1;
                tracing::warn!("{what}: accepting a connection: {e}; waiting");
                tokio::time::sleep(accept_backoff(failed)).await;
            }
        }
    }
}

/// How long a listener waits after its `failed`-th accept error in a row (from 1): 10 ms,
/// doubling up to a second.
fn accept_backoff(failed: u32) -> Duration {
    Duration::from_millis(10u64 << failed.saturating_sub(1).min(7)).min(Duration::from_secs(1))
}

/// Raises the soft limit on open file descriptors to the hard limit; the soft limit in force
/// afterwards (`None` where there is no such limit, or it is unlimited).
pub fn raise_descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            let raised = Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::warn!("cannot raise the open file limit: {e}");
            }
        }
        getrlimit(Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(admission: &Admission) -> usize {
        admission.state.lock().unwrap().live.len()
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn evicted(ticket: &Ticket) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(1), ticket.evicted())
                .await
                .is_ok()
        })
    }

    #[test]
    fn a_client_at_its_limit_closes_its_longest_idle_connection_or_is_refused() {
        let admission = Admission::new(Limits {
            total: 10,
            per_client: 2,
        });
        let first = admission.admit(A).unwrap();
        let second = admission.admit(A).unwrap();
        assert!(admission.admit(A).is_none(), "none idle: refused");
        let other = admission
            .admit(B)
            .expect("another address has its own limit");
        second.idle();
        first.idle();
        other.idle();
        let _third = admission.admit(A).unwrap();
        assert!(evicted(&second), "idle longest");
        assert!(!evicted(&first) && !evicted(&other));
        assert_eq!(live(&admission), 3);
    }

    #[test]
    fn the_total_limit_closes_the_longest_idle_of_any_client_and_places_come_back() {
        let admission = Admission::new(Limits {
            total: 2,
            per_client: 2,
        });
        let a = admission.admit(A).unwrap();
        let b = admission.admit(B).unwrap();
        assert!(admission.admit(A).is_none());
        b.idle();
        a.idle();
        a.busy();
        let c = admission.admit(A).unwrap();
        assert!(evicted(&b) && !evicted(&a));
        drop(c);
        drop(b);
        assert_eq!(live(&admission), 1);
        assert!(admission.admit(B).is_some());
    }

    #[test]
    fn accept_backoff_grows_and_stays_bounded() {
        assert_eq!(accept_backoff(1), Duration::from_millis(10));
        assert_eq!(accept_backoff(2), Duration::from_millis(20));
        assert_eq!(accept_backoff(100), Duration::from_secs(1));
    }
}
