//! P7a and P7b: whole READDIRPLUS listings of large directories, timed, and LOOKUPs of every
//! file of the largest, after which the caller reads the server's memory.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::nfs::{mount, Nfs};
use crate::Peer;

/// What READDIRPLUS asks for: a kernel client's sizes with rsize 1 MiB.
const DIRCOUNT: u32 = 65536;
const MAXCOUNT: u32 = 1 << 20;
/// Listings of each directory: the first, then repeats whose median is reported.
const RUNS: usize = 4;

/// The listing times of one directory: the first since the server started (nothing of it
/// cached by the server), and the median of the repeats.
pub struct Listed {
    pub entries: u64,
    pub first: Duration,
    pub repeat: Duration,
}

impl Listed {
    pub fn micros_per_entry(&self, time: Duration) -> f64 {
        time.as_secs_f64() * 1e6 / self.entries as f64
    }
}

/// Lists `d<N>` for every N of `sizes` (smallest first), `RUNS` times each.
pub async fn list_all(peer: &Peer, sizes: &[u64]) -> Result<Vec<Listed>> {
    let root = mount(peer.mount_addr, &peer.ro_export).await?;
    let nfs = Nfs::connect(peer.nfs_addr).await?;
    let mut out = Vec::new();
    for &n in sizes {
        let (dir, _) = nfs.lookup(&root, &format!("d{n}")).await?;
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            let listed = nfs.readdirplus_all(&dir, DIRCOUNT, MAXCOUNT).await?;
            times.push(started.elapsed());
            // "." and ".." may or may not be listed; every file must be.
            let files = listed
                .iter()
                .filter(|(name, _)| name.starts_with('f'))
                .count() as u64;
            if files != n {
                bail!("{}: d{n} listed {files} files", peer.name);
            }
        }
        let first = times.remove(0);
        times.sort();
        let repeat = times[times.len() / 2];
        out.push(Listed {
            entries: n,
            first,
            repeat,
        });
        eprintln!(
            "nfsscale: {} listed d{n} in {first:?}, then {repeat:?}",
            peer.name
        );
    }
    Ok(out)
}

/// LOOKUPs every file of `d<n>`, `inflight` at a time; returns how many.
pub async fn lookup_all(peer: &Peer, n: u64, inflight: usize) -> Result<u64> {
    let root = mount(peer.mount_addr, &peer.ro_export).await?;
    let nfs = Nfs::connect(peer.nfs_addr).await?;
    let (dir, _) = nfs.lookup(&root, &format!("d{n}")).await?;
    let names: Vec<String> = nfs
        .readdirplus_all(&dir, DIRCOUNT, MAXCOUNT)
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with('f'))
        .collect();
    let (nfs, dir) = (&nfs, &dir);
    stream::iter(names.iter())
        .map(|name| async move { nfs.lookup(dir, name).await.map(|_| ()) })
        .buffer_unordered(inflight)
        .try_collect::<()>()
        .await?;
    Ok(names.len() as u64)
}
