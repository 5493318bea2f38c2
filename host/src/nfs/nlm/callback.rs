//! Calls from nfsgw to a client's own lock manager: the GRANTED of a lock the client waited
//! for, and the `_RES` answers of the asynchronous `_MSG` procedures. Each is one call through
//! the client's portmapper (`crate::nfs::outbound`) within a deadline; at most
//! `MAX_IN_FLIGHT` callbacks run at once, and one that cannot run or fails is dropped (a
//! client retries a lock it still waits for, and finds it granted).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::nfs::outbound;

/// Callbacks running at once; more are dropped.
const MAX_IN_FLIGHT: usize = 64;
/// How long one callback may take, from the portmapper lookup to the reply.
const DEADLINE: Duration = Duration::from_secs(10);

/// Where and how callbacks go.
pub struct Callbacks {
    /// The port of clients' portmappers (111).
    portmap_port: u16,
    permits: Arc<Semaphore>,
}

impl Callbacks {
    pub fn new(portmap_port: u16) -> Callbacks {
        Callbacks {
            portmap_port,
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    pub fn portmap_port(&self) -> u16 {
        self.portmap_port
    }

    /// Calls procedure `proc_` of NLM v4 at `client` with `args`, in the background; `done`
    /// gets the reply's results, or `None` when the call failed or could not run.
    pub fn send(
        &self,
        client: IpAddr,
        proc_: u32,
        args: Vec<u8>,
        done: impl FnOnce(Option<Vec<u8>>) + Send + 'static,
    ) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::warn!(%client, "too many NLM callbacks in flight; one dropped");
            done(None);
            return;
        };
        let portmap = SocketAddr::new(client, self.portmap_port);
        tokio::spawn(async move {
            let nlm = (super::PROGRAM, super::VERSION);
            let call = outbound::call_through_portmap(portmap, nlm, proc_, &args);
            let reply = tokio::time::timeout(DEADLINE, call).await.ok().flatten();
            if reply.is_none() {
                tracing::info!(%client, proc_, "an NLM callback to the client failed");
            }
            done(reply);
            drop(permit);
        });
    }
}
