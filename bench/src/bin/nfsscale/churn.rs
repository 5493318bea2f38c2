//! P7c: churn. Creates and removes names in the writable export, `inflight` pairs at a time,
//! and samples the server's resident memory and nfsgw's inode journal after every tenth of the
//! run, so a table or journal that grows with the names ever made shows as growth.

use std::time::Instant;

use anyhow::Result;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::nfs::{mount, Nfs};
use crate::{procfs, Peer};

const SAMPLES: u64 = 10;

/// One sample: names made and removed so far, resident MiB, journal bytes.
type Sample = (u64, f64, Option<u64>);

pub struct Churn {
    pub names_per_second: f64,
    samples: Vec<Sample>,
}

impl Churn {
    /// The last sample's resident memory over the first's.
    pub fn rss_growth(&self) -> f64 {
        self.rss_last() / self.samples[0].1
    }

    pub fn rss_last(&self) -> f64 {
        self.samples.last().unwrap().1
    }

    /// The journal's size at the first and the last sample, when there is one.
    pub fn journal_bytes(&self) -> Option<(u64, u64)> {
        Some((self.samples[0].2?, self.samples.last().unwrap().2?))
    }

    pub fn samples(&self) -> String {
        let each: Vec<String> = self
            .samples
            .iter()
            .map(|(done, rss, journal)| match journal {
                Some(j) => format!("{done}: {rss:.1}, {}", j / 1024),
                None => format!("{done}: {rss:.1}"),
            })
            .collect();
        each.join("; ")
    }
}

pub async fn run(peer: &Peer, total: u64, inflight: usize) -> Result<Churn> {
    let root = mount(peer.mount_addr, &peer.rw_export).await?;
    let nfs = Nfs::connect(peer.nfs_addr).await?;
    let (nfs, root) = (&nfs, &root);
    let step = (total / SAMPLES).max(1);
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut done = 0;
    while done < total {
        let end = (done + step).min(total);
        stream::iter(done..end)
            .map(|i| async move {
                let name = format!("c{i}");
                nfs.create(root, &name).await?;
                nfs.remove(root, &name).await
            })
            .buffer_unordered(inflight)
            .try_collect::<()>()
            .await?;
        done = end;
        let journal = match &peer.journal {
            Some(path) => Some(std::fs::metadata(path)?.len()),
            None => None,
        };
        samples.push((done, procfs::rss_mib(peer.pid)?, journal));
        eprintln!("nfsscale: {} churned {done} names", peer.name);
    }
    Ok(Churn {
        names_per_second: total as f64 / started.elapsed().as_secs_f64(),
        samples,
    })
}
