//! P9: a mixed small-file workload. Every connection runs, one call at a time, the cycle an
//! application that writes small files makes: CREATE, WRITE 4 KiB, COMMIT (its close), GETATTR,
//! READ and REMOVE, each connection on names of its own, until the time is up.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures::future::try_join_all;

use crate::nfs::{mount, Nfs};
use crate::Peer;

const FILE: usize = 4096;

/// Cycles per second, all connections together.
pub async fn run(peer: &Peer, connections: usize, seconds: u64) -> Result<f64> {
    let root = mount(peer.mount_addr, &peer.rw_export).await?;
    let data = vec![0x5a_u8; FILE];
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let (root, data) = (&root, &data);
    let counts = try_join_all((0..connections).map(|c| async move {
        let nfs = Nfs::connect(peer.nfs_addr).await?;
        let mut cycles = 0u64;
        while Instant::now() < until {
            let name = format!("p9-{c}-{cycles}");
            let fh = nfs.create(root, &name).await?;
            nfs.write(&fh, 0, data).await?;
            nfs.commit(&fh).await?;
            let attrs = nfs.getattr(&fh).await?;
            if attrs.size != FILE as u64 {
                bail!(
                    "{}: {name} has {} bytes after a 4 KiB write",
                    peer.name,
                    attrs.size
                );
            }
            let (read, _) = nfs.read(&fh, 0, FILE as u32).await?;
            if read as usize != FILE {
                bail!("{}: {name}: READ returned {read} bytes", peer.name);
            }
            nfs.remove(root, &name).await?;
            cycles += 1;
        }
        anyhow::Ok(cycles)
    }))
    .await?;
    Ok(counts.iter().sum::<u64>() as f64 / started.elapsed().as_secs_f64())
}
