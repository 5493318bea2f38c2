//! nfsscale: the scale benchmark (issue #25). It runs the same cases against several NFSv3
//! servers, one after the other, each freshly started on the same data, and prints a Markdown
//! table (also written to `--out`):
//!
//! - P7a: a whole listing with READDIRPLUS of directories of 10k, 100k and 1M entries (as many
//!   as `--dirs` names), and the cost per entry of each, against the smallest one's;
//! - P7b: resident memory after listing and LOOKUP-ing every file of the largest directory,
//!   in bytes per file above the server's idle memory;
//! - P7c: churn in a writable export, creating and removing `--churn` names, with the server's
//!   memory and (for nfsgw) its inode journal's size sampled as it goes: they must stay flat;
//! - P9: `--connections` connections, each running a small-file cycle (CREATE, WRITE 4 KiB,
//!   COMMIT, GETATTR, READ, REMOVE) for `--seconds`: cycles per second.
//!
//! ```text
//! nfsscale [--dirs 10000,100000,1000000] [--churn 1000000] [--connections 64] [--seconds 20]
//!          [--inflight 16] [--cases p7a,p7b,p7c,p9] [--out FILE]
//!          --peer NAME,HOST:NFSPORT,MOUNTPORT,RO_EXPORT,RW_EXPORT,PID[,JOURNAL] ...
//! ```
//!
//! The read-only export holds the directories `d<N>` for every N of `--dirs`; the writable one
//! is empty. The first peer is compared with the others. A peer is measured alone (the others
//! idle), since P7b and P7c read its memory.

#[path = "../nfsbench/nfs.rs"]
#[allow(dead_code)]
mod nfs;
#[path = "../nfsbench/procfs.rs"]
#[allow(dead_code)]
mod procfs;
#[path = "../nfsbench/rpc.rs"]
mod rpc;

mod churn;
mod listing;
mod smallfiles;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// One server under test.
pub struct Peer {
    pub name: String,
    pub nfs_addr: SocketAddr,
    pub mount_addr: SocketAddr,
    pub ro_export: String,
    pub rw_export: String,
    pub pid: u32,
    /// nfsgw's inode journal of the writable mount, whose size P7c follows.
    pub journal: Option<PathBuf>,
}

impl Peer {
    fn parse(spec: &str) -> Result<Peer> {
        let parts: Vec<&str> = spec.split(',').collect();
        let (name, nfs, mount, ro, rw, pid, journal) = match parts[..] {
            [name, nfs, mount, ro, rw, pid] => (name, nfs, mount, ro, rw, pid, None),
            [name, nfs, mount, ro, rw, pid, journal] => {
                (name, nfs, mount, ro, rw, pid, Some(journal.into()))
            }
            _ => bail!("--peer {spec}: want NAME,HOST:NFSPORT,MOUNTPORT,RO,RW,PID[,JOURNAL]"),
        };
        let nfs_addr: SocketAddr = nfs.parse().context("--peer address")?;
        Ok(Peer {
            name: name.into(),
            nfs_addr,
            mount_addr: SocketAddr::new(nfs_addr.ip(), mount.parse()?),
            ro_export: ro.into(),
            rw_export: rw.into(),
            pid: pid.parse()?,
            journal,
        })
    }
}

struct Options {
    dirs: Vec<u64>,
    churn: u64,
    connections: usize,
    seconds: u64,
    inflight: usize,
    cases: Vec<String>,
    out: Option<String>,
    peers: Vec<Peer>,
}

fn options() -> Result<Options> {
    let mut o = Options {
        dirs: vec![10_000, 100_000, 1_000_000],
        churn: 1_000_000,
        connections: 64,
        seconds: 20,
        inflight: 16,
        cases: ["p7a", "p7b", "p7c", "p9"].map(String::from).to_vec(),
        out: None,
        peers: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--dirs" => {
                o.dirs = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--churn" => o.churn = value()?.parse()?,
            "--connections" => o.connections = value()?.parse()?,
            "--seconds" => o.seconds = value()?.parse()?,
            "--inflight" => o.inflight = value()?.parse()?,
            "--cases" => o.cases = value()?.split(',').map(str::to_lowercase).collect(),
            "--out" => o.out = Some(value()?),
            "--peer" => o.peers.push(Peer::parse(&value()?)?),
            other => bail!("unknown argument {other}"),
        }
    }
    if o.peers.is_empty() {
        bail!("no --peer");
    }
    o.dirs.sort_unstable();
    Ok(o)
}

/// A table row: the case, then one figure per peer, then the first peer's ratio to each other.
struct Row {
    case: String,
    figures: Vec<f64>,
    /// Whether more is better (ratios are then first/other, else other/first).
    higher_is_better: bool,
    unit: &'static str,
}

fn table(peers: &[Peer], rows: &[Row]) -> String {
    let mut out = String::from("| case |");
    for p in peers {
        out += &format!(" {} |", p.name);
    }
    for p in &peers[1..] {
        out += &format!(" {} vs {} |", peers[0].name, p.name);
    }
    out += "\n|---|";
    out += &"---:|".repeat(2 * peers.len() - 1);
    out += "\n";
    for r in rows {
        out += &format!("| {} ({}) |", r.case, r.unit);
        for f in &r.figures {
            out += &format!(" {} |", figure(*f));
        }
        for f in &r.figures[1..] {
            let ratio = if r.higher_is_better {
                r.figures[0] / f
            } else {
                f / r.figures[0]
            };
            if ratio.is_nan() {
                out += " n/a |";
            } else {
                out += &format!(" {ratio:.2}x |");
            }
        }
        out += "\n";
    }
    out
}

fn figure(f: f64) -> String {
    if f.is_nan() {
        "n/a".into()
    } else if f >= 100.0 {
        format!("{f:.0}")
    } else {
        format!("{f:.2}")
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = options()?;
    let want = |case: &str| o.cases.iter().any(|c| c == case);
    let mut rows: Vec<Row> = Vec::new();
    let mut notes = Vec::new();
    let mut add = |case: String, unit, higher_is_better, figure: f64, peer: usize| match rows
        .iter_mut()
        .find(|r| r.case == case)
    {
        Some(r) => r.figures[peer] = figure,
        None => {
            let mut figures = vec![f64::NAN; o.peers.len()];
            figures[peer] = figure;
            rows.push(Row {
                case,
                figures,
                higher_is_better,
                unit,
            })
        }
    };
    for (i, peer) in o.peers.iter().enumerate() {
        eprintln!("nfsscale: measuring {}", peer.name);
        let idle = procfs::rss_mib(peer.pid)?;
        if want("p7a") || want("p7b") {
            let listed = listing::list_all(peer, &o.dirs).await?;
            let smallest = &listed[0];
            for l in &listed {
                let (first, repeat) = (l.micros_per_entry(l.first), l.micros_per_entry(l.repeat));
                add(
                    format!("P7a first listing of {} entries", l.entries),
                    "µs/entry",
                    false,
                    first,
                    i,
                );
                add(
                    format!("P7a repeated listing of {} entries", l.entries),
                    "µs/entry",
                    false,
                    repeat,
                    i,
                );
                if l.entries != smallest.entries {
                    let against = smallest.micros_per_entry(smallest.first);
                    add(
                        format!(
                            "P7a first listing of {} entries, per entry vs {}",
                            l.entries, smallest.entries
                        ),
                        "ratio",
                        false,
                        first / against,
                        i,
                    );
                }
            }
            if want("p7b") {
                let largest = *o.dirs.last().unwrap();
                let files = listing::lookup_all(peer, largest, o.inflight).await?;
                let rss = procfs::rss_mib(peer.pid)?;
                let per_file = (rss - idle) * 1048576.0 / files as f64;
                add(
                    format!("P7b memory after listing and LOOKUP of {files} files"),
                    "bytes/file above idle",
                    false,
                    per_file,
                    i,
                );
                add("P7b resident memory idle".into(), "MiB", false, idle, i);
                add("P7b resident memory after".into(), "MiB", false, rss, i);
            }
        }
        if want("p7c") {
            let c = churn::run(peer, o.churn, o.inflight).await?;
            add(
                format!("P7c churn of {} names", o.churn),
                "names/s",
                true,
                c.names_per_second,
                i,
            );
            add(
                "P7c resident memory, last sample / first".into(),
                "ratio",
                false,
                c.rss_growth(),
                i,
            );
            add(
                "P7c resident memory, last sample".into(),
                "MiB",
                false,
                c.rss_last(),
                i,
            );
            if let Some((first, last)) = c.journal_bytes() {
                add(
                    "P7c inode journal, last sample".into(),
                    "KiB",
                    false,
                    last as f64 / 1024.0,
                    i,
                );
                notes.push(format!(
                    "{}: journal {} KiB at the first sample, {} KiB at the last; samples {}",
                    peer.name,
                    first / 1024,
                    last / 1024,
                    c.samples()
                ));
            } else {
                notes.push(format!("{}: samples {}", peer.name, c.samples()));
            }
        }
        if want("p9") {
            let cycles = smallfiles::run(peer, o.connections, o.seconds).await?;
            add(
                format!("P9 small-file cycles, {} connections", o.connections),
                "cycles/s",
                true,
                cycles,
                i,
            );
        }
    }
    let mut text = table(&o.peers, &rows);
    if !notes.is_empty() {
        text += "\nP7c samples (names done: resident MiB, journal KiB):\n";
        for n in notes {
            text += &format!("- {n}\n");
        }
    }
    print!("{text}");
    if let Some(out) = &o.out {
        std::fs::write(out, &text).with_context(|| format!("writing {out}"))?;
    }
    Ok(())
}
