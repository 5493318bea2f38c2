//! The benchmark cases: what one run does against one server, and how much work it did.
//!
//! A case prepares once per server (looks up its file or directory, lists its names) and then
//! runs: the same calls, with the same number kept in flight, against every server. A run
//! returns the units of work done (MiB read, calls answered, entries listed), so the driver
//! reports a rate. A case whose data a server lacks fails to prepare and shows as "n/a"; cases
//! for the S3 back end (issue #7's P3/P4) compare a mount with a direct client instead, in `s3.rs`.

use std::future::Future;
use std::sync::Arc;

use anyhow::{bail, ensure, Result};
use nfs3_types::nfs3::nfs_fh3;
use tokio::task::JoinSet;

use crate::nfs::Nfs;

/// Directory entries per READDIRPLUS reply: dircount and maxcount, the same for every server.
const DIRCOUNT: u32 = 64 << 10;
const MAXCOUNT: u32 = 1 << 20;
/// Whole listings per READDIRPLUS run: one takes milliseconds, too short to time alone.
const LISTINGS: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Case {
    /// P1: a large file read start to end, `inflight` READs of `rsize` bytes at a time.
    SeqRead,
    /// P2: LOOKUP of every file of the many-files directory (what `stat` by name costs).
    Lookup,
    /// P2: GETATTR of every file of that directory, by handle.
    Getattr,
    /// P2: `LISTINGS` listings of the whole directory with READDIRPLUS (one call at a time).
    ReaddirPlus,
}

pub const ALL: [Case; 4] = [
    Case::SeqRead,
    Case::Lookup,
    Case::Getattr,
    Case::ReaddirPlus,
];

/// What a case needs from one server, looked up once.
pub enum Prepared {
    File {
        fh: nfs_fh3,
        size: u64,
    },
    Names {
        dir: nfs_fh3,
        names: Arc<Vec<String>>,
    },
    Handles(Arc<Vec<nfs_fh3>>),
    Dir {
        dir: nfs_fh3,
        entries: usize,
    },
}

/// Where the data sits in every export, and how the load is shaped.
#[derive(Clone)]
pub struct Shape {
    pub big_file: String,
    pub many_dir: String,
    pub inflight: usize,
    pub rsize: u32,
}

impl Case {
    pub fn label(&self, shape: &Shape) -> String {
        match self {
            Case::SeqRead => format!(
                "P1 sequential read of {} ({} × {} KiB READs in flight)",
                shape.big_file,
                shape.inflight,
                shape.rsize >> 10
            ),
            Case::Lookup => format!(
                "P2 stat (LOOKUP) of each file in {}/ ({} in flight)",
                shape.many_dir, shape.inflight
            ),
            Case::Getattr => format!(
                "P2 GETATTR of each file in {}/ ({} in flight)",
                shape.many_dir, shape.inflight
            ),
            Case::ReaddirPlus => format!(
                "P2 READDIRPLUS of {}/, whole listing, {LISTINGS} times",
                shape.many_dir
            ),
        }
    }

    pub fn unit(&self) -> &'static str {
        match self {
            Case::SeqRead => "MiB/s",
            Case::Lookup | Case::Getattr => "calls/s",
            Case::ReaddirPlus => "entries/s",
        }
    }

    pub fn goal(&self) -> &'static str {
        match self {
            Case::SeqRead => "≥ 1.0× both",
            _ => "≥ 1.0× ganesha",
        }
    }

    pub async fn prepare(&self, nfs: &Nfs, root: &nfs_fh3, shape: &Shape) -> Result<Prepared> {
        Ok(match self {
            Case::SeqRead => {
                let (fh, _) = nfs.lookup(root, &shape.big_file).await?;
                let size = nfs.getattr(&fh).await?.size;
                Prepared::File { fh, size }
            }
            Case::Lookup | Case::Getattr | Case::ReaddirPlus => {
                let (dir, _) = nfs.lookup(root, &shape.many_dir).await?;
                let listed: Vec<_> = nfs
                    .readdirplus_all(&dir, DIRCOUNT, MAXCOUNT)
                    .await?
                    .into_iter()
                    .filter(|(name, _)| name != "." && name != "..")
                    .collect();
                ensure!(!listed.is_empty(), "{} is empty", shape.many_dir);
                match self {
                    Case::Lookup => Prepared::Names {
                        dir,
                        names: Arc::new(listed.into_iter().map(|(n, _)| n).collect()),
                    },
                    Case::Getattr => {
                        let mut handles = Vec::with_capacity(listed.len());
                        for (name, fh) in listed {
                            handles.push(match fh {
                                Some(fh) => fh,
                                None => nfs.lookup(&dir, &name).await?.0,
                            });
                        }
                        Prepared::Handles(Arc::new(handles))
                    }
                    _ => Prepared::Dir {
                        dir,
                        entries: listed.len(),
                    },
                }
            }
        })
    }

    /// One run; returns the units of work done.
    pub async fn run(&self, nfs: &Arc<Nfs>, prep: &Prepared, shape: &Shape) -> Result<f64> {
        match (self, prep) {
            (Case::SeqRead, Prepared::File { fh, size }) => {
                let (rsize, size) = (shape.rsize as u64, *size);
                let blocks = size.div_ceil(rsize) as usize;
                let read = windowed(blocks, shape.inflight, |i| {
                    let (nfs, fh) = (nfs.clone(), fh.clone());
                    async move {
                        let offset = i as u64 * rsize;
                        let (n, _) = nfs.read(&fh, offset, rsize as u32).await?;
                        ensure!(
                            n as u64 == rsize.min(size - offset),
                            "short READ at {offset}: {n}"
                        );
                        Ok(n as u64)
                    }
                })
                .await?;
                ensure!(read == size, "read {read} of {size} bytes");
                Ok(size as f64 / (1 << 20) as f64)
            }
            (Case::Lookup, Prepared::Names { dir, names }) => {
                windowed(names.len(), shape.inflight, |i| {
                    let (nfs, dir, names) = (nfs.clone(), dir.clone(), names.clone());
                    async move { nfs.lookup(&dir, &names[i]).await.map(|_| 1) }
                })
                .await
                .map(|n| n as f64)
            }
            (Case::Getattr, Prepared::Handles(handles)) => {
                windowed(handles.len(), shape.inflight, |i| {
                    let (nfs, handles) = (nfs.clone(), handles.clone());
                    async move { nfs.getattr(&handles[i]).await.map(|_| 1) }
                })
                .await
                .map(|n| n as f64)
            }
            (Case::ReaddirPlus, Prepared::Dir { dir, entries }) => {
                for _ in 0..LISTINGS {
                    let listed = nfs.readdirplus_all(dir, DIRCOUNT, MAXCOUNT).await?;
                    let files = listed.iter().filter(|(n, _)| n != "." && n != "..").count();
                    ensure!(files == *entries, "listed {files} of {entries} entries");
                }
                Ok((LISTINGS * entries) as f64)
            }
            _ => bail!("{self:?} was prepared for another case"),
        }
    }
}

/// Runs `job(0..n)` with at most `inflight` jobs at once, started in order; sums their results.
pub async fn windowed<F, Fut>(n: usize, inflight: usize, job: F) -> Result<u64>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<u64>> + Send + 'static,
{
    let (mut set, mut next, mut total) = (JoinSet::new(), 0, 0);
    while next < n || !set.is_empty() {
        while next < n && set.len() < inflight {
            set.spawn(job(next));
            next += 1;
        }
        if let Some(done) = set.join_next().await {
            total += done??;
        }
    }
    Ok(total)
}
