//! The NFS front: NFSv3 and MOUNT on one TCP port, through the `nfsserve` crate.
//!
//! `adapter` translates nfsserve's file-system trait into gateway calls; this module binds
//! the listener and runs it.

mod adapter;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use nfsserve::tcp::{NFSTcp, NFSTcpListener};

use crate::gateway::Gateway;

/// A bound NFS listener, ready to serve.
pub struct NfsServer {
    listener: NFSTcpListener<adapter::NfsAdapter>,
}

impl NfsServer {
    pub async fn bind(addr: SocketAddr, gateway: Arc<Gateway>) -> Result<NfsServer> {
        if addr.is_ipv6() {
            bail!("server.listen: IPv6 addresses are not supported yet; use an IPv4 address such as 127.0.0.1");
        }
        let listener = NFSTcpListener::bind(&addr.to_string(), adapter::NfsAdapter::new(gateway))
            .await
            .with_context(|| format!("server.listen: cannot listen on {addr}"))?;
        Ok(NfsServer { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr::new(
            self.listener.get_listen_ip(),
            self.listener.get_listen_port(),
        )
    }

    pub async fn serve(self) -> Result<()> {
        self.listener
            .handle_forever()
            .await
            .context("the NFS listener stopped")
    }
}
