//! nfsbench: runs the benchmark cases against several NFSv3 servers serving the same data, with
//! one client that keeps the same number of calls in flight for every server, and prints a
//! Markdown table of medians and of nfsgw's ratios to each peer (also written to `--out`).
//!
//! The first `--peer` is the one compared (nfsgw); the others are its peers. Runs interleave
//! the servers (run 1 of every server, then run 2, ...) so that noise from a shared machine
//! spreads over all of them. Before the timed runs every case runs once untimed, so page cache
//! and server caches are warm for every server alike. Memory (P6) is read from /proc: the
//! first server's resident size idle after `--idle-exports` are mounted, and each server's peak
//! during the P1 runs.
//!
//! ```text
//! nfsbench [--runs 5] [--inflight 16] [--rsize 1048576] [--cold] [--out FILE]
//!          [--big big.bin] [--many many] [--idle-exports /a,/b,/c] [--cases seqread,lookup,..]
//!          --peer NAME,HOST:NFSPORT,MOUNTPORT,EXPORT,PID ...
//!          [--s3 ENDPOINT,BUCKET,KEY_ID,SECRET,PID --s3-peer NAME,HOST:NFSPORT,MOUNTPORT,EXPORT,PID[,ADMIN] ...
//!           [--s3-source FILE] [--s3-cases read,readone,readranges,write]]
//! ```
//!
//! With `--s3`, the S3 cases P3 and P4 (see `s3.rs`) also run: each `--s3-peer` (an nfsgw
//! serving the bucket with the `s3` plugin; the first is compared) against `object_store`
//! straight to the S3 server, in a table of their own. `--cases none` runs only those.

mod cases;
mod nfs;
mod procfs;
mod rpc;
mod s3;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nfs3_types::nfs3::nfs_fh3;

use cases::{Case, Prepared, Shape};
use nfs::Nfs;

struct Peer {
    name: String,
    nfs_addr: SocketAddr,
    mount_addr: SocketAddr,
    export: String,
    pid: u32,
    /// nfsgw's admin listener, when it has one (S3 peers: P4 asks it when the upload is done).
    admin: Option<SocketAddr>,
}

impl Peer {
    fn parse(spec: &str) -> Result<Peer> {
        let parts: Vec<&str> = spec.split(',').collect();
        let (name, nfs_addr, mount_port, export, pid, admin) = match parts[..] {
            [name, nfs, mount, export, pid] => (name, nfs, mount, export, pid, None),
            [name, nfs, mount, export, pid, admin] => {
                let admin = admin.parse().context("--peer admin address")?;
                (name, nfs, mount, export, pid, Some(admin))
            }
            _ => bail!("--peer {spec}: want NAME,HOST:NFSPORT,MOUNTPORT,EXPORT,PID[,ADMIN]"),
        };
        let nfs_addr: SocketAddr = nfs_addr.parse().context("--peer address")?;
        let mount_addr = SocketAddr::new(nfs_addr.ip(), mount_port.parse()?);
        Ok(Peer {
            name: name.into(),
            nfs_addr,
            mount_addr,
            export: export.into(),
            pid: pid.parse()?,
            admin,
        })
    }
}

struct Options {
    runs: usize,
    cold: bool,
    out: Option<String>,
    idle_exports: Vec<String>,
    cases: Vec<Case>,
    peers: Vec<Peer>,
    shape: Shape,
    s3: Option<s3::S3Server>,
    s3_peers: Vec<Peer>,
    s3_source: Option<String>,
    s3_cases: Vec<s3::S3Case>,
}

/// The cases a comma-separated list names, from `all` (names are the variants', any case).
fn pick<T: Copy + std::fmt::Debug>(all: &[T], names: &str) -> Result<Vec<T>> {
    names
        .split(',')
        .map(|name| {
            all.iter()
                .copied()
                .find(|c| format!("{c:?}").eq_ignore_ascii_case(name))
                .with_context(|| format!("no case {name}"))
        })
        .collect()
}

fn options() -> Result<Options> {
    let mut o = Options {
        runs: 5,
        cold: false,
        out: None,
        idle_exports: Vec::new(),
        cases: cases::ALL.to_vec(),
        peers: Vec::new(),
        shape: Shape {
            big_file: "big.bin".into(),
            many_dir: "many".into(),
            inflight: 16,
            rsize: 1 << 20,
        },
        s3: None,
        s3_peers: Vec::new(),
        s3_source: None,
        s3_cases: s3::ALL.to_vec(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--cold" {
            o.cold = true;
            continue;
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--runs" => o.runs = value.parse()?,
            "--inflight" => o.shape.inflight = value.parse()?,
            "--rsize" => o.shape.rsize = value.parse()?,
            "--out" => o.out = Some(value),
            "--big" => o.shape.big_file = value,
            "--many" => o.shape.many_dir = value,
            "--idle-exports" => o.idle_exports = value.split(',').map(String::from).collect(),
            "--peer" => o.peers.push(Peer::parse(&value)?),
            "--s3" => o.s3 = Some(s3::S3Server::parse(&value)?),
            "--s3-peer" => o.s3_peers.push(Peer::parse(&value)?),
            "--s3-source" => o.s3_source = Some(value),
            "--s3-cases" => o.s3_cases = pick(&s3::ALL, &value)?,
            "--cases" if value == "none" => o.cases = Vec::new(),
            "--cases" => o.cases = pick(&cases::ALL, &value)?,
            _ => bail!("unknown option {flag}"),
        }
    }
    if o.peers.is_empty() || o.runs == 0 || o.shape.inflight == 0 {
        bail!("need at least one --peer, and --runs and --inflight above 0");
    }
    if o.s3.is_some() && o.s3_peers.is_empty() {
        bail!("--s3 needs at least one --s3-peer");
    }
    Ok(o)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// One table row: a value per peer, and the first peer's ratio to each of the others.
struct Row {
    case: String,
    unit: String,
    values: Vec<Option<f64>>,
    goal: String,
}

fn table(peers: &[String], rows: &[Row]) -> String {
    let mut out = String::from("| case | unit |");
    for p in peers {
        out += &format!(" {p} |");
    }
    for p in &peers[1..] {
        out += &format!(" {}/{p} |", peers[0]);
    }
    out += " goal |\n|---|---|";
    out += &"---:|".repeat(2 * peers.len() - 1);
    out += "---|\n";
    for r in rows {
        out += &format!("| {} | {} |", r.case, r.unit);
        for v in &r.values {
            out += &format!(" {} |", fmt(*v));
        }
        for v in &r.values[1..] {
            let ratio = match (r.values[0], v) {
                (Some(a), Some(b)) if *b > 0.0 => format!("{:.2}×", a / b),
                _ => "n/a".into(),
            };
            out += &format!(" {ratio} |");
        }
        out += &format!(" {} |\n", r.goal);
    }
    out
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = options()?;
    let mut conns = Vec::new();
    let mut roots: Vec<nfs_fh3> = Vec::new();
    let mut rsize = o.shape.rsize;
    for p in &o.peers {
        let root = nfs::mount(p.mount_addr, &p.export)
            .await
            .with_context(|| format!("mounting {}", p.name))?;
        let nfs = Arc::new(Nfs::connect(p.nfs_addr).await?);
        let info = nfs.fsinfo(&root).await?;
        eprintln!(
            "nfsbench: {} rtmax {} KiB, rtpref {} KiB",
            p.name,
            info.rtmax >> 10,
            info.rtpref >> 10
        );
        rsize = rsize.min(info.rtmax);
        conns.push(nfs);
        roots.push(root);
    }
    let shape = Shape { rsize, ..o.shape };

    // P6 idle: the first server with every idle export mounted, after it settles.
    let mut idle_mounts = Vec::new();
    for export in &o.idle_exports {
        let root = nfs::mount(o.peers[0].mount_addr, export).await?;
        conns[0].getattr(&root).await?;
        idle_mounts.push(root);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle: Vec<Option<f64>> = o
        .peers
        .iter()
        .map(|p| procfs::rss_mib(p.pid).ok())
        .collect();

    let mut rows = Vec::new();
    let mut cpu_rows = Vec::new();
    let mut peaks: Vec<Option<f64>> = vec![None; o.peers.len()];
    for &case in &o.cases {
        let mut prepared: Vec<Option<Prepared>> = Vec::new();
        for (i, p) in o.peers.iter().enumerate() {
            match case.prepare(&conns[i], &roots[i], &shape).await {
                Ok(prep) => {
                    // The untimed warm-up run.
                    case.run(&conns[i], &prep, &shape).await?;
                    prepared.push(Some(prep));
                }
                Err(e) => {
                    eprintln!("nfsbench: {case:?} skipped for {}: {e:#}", p.name);
                    prepared.push(None);
                }
            }
        }
        let mut rates: HashMap<usize, Vec<f64>> = HashMap::new();
        let mut cpus: HashMap<usize, Vec<f64>> = HashMap::new();
        for run in 0..o.runs {
            for (i, p) in o.peers.iter().enumerate() {
                let Some(prep) = &prepared[i] else { continue };
                if o.cold && case == Case::SeqRead {
                    procfs::drop_caches()?;
                }
                if case == Case::SeqRead {
                    procfs::reset_peak(p.pid)?;
                }
                let cpu0 = procfs::cpu_seconds(p.pid)?;
                let t0 = Instant::now();
                let work = case.run(&conns[i], prep, &shape).await?;
                let secs = t0.elapsed().as_secs_f64();
                let cpu = procfs::cpu_seconds(p.pid)? - cpu0;
                if case == Case::SeqRead {
                    let peak = procfs::peak_mib(p.pid)?;
                    peaks[i] = Some(peaks[i].map_or(peak, |m: f64| m.max(peak)));
                }
                eprintln!(
                    "nfsbench: {case:?} run {} {}: {:.1} {} ({secs:.2} s, server CPU {cpu:.2} s)",
                    run + 1,
                    p.name,
                    work / secs,
                    case.unit()
                );
                rates.entry(i).or_default().push(work / secs);
                cpus.entry(i).or_default().push(cpu);
            }
        }
        let n = o.peers.len();
        rows.push(Row {
            case: case.label(&shape),
            unit: case.unit().into(),
            values: (0..n)
                .map(|i| median(rates.remove(&i).unwrap_or_default()))
                .collect(),
            goal: case.goal().into(),
        });
        cpu_rows.push(Row {
            case: case.label(&shape),
            unit: "CPU s/run".into(),
            values: (0..n)
                .map(|i| median(cpus.remove(&i).unwrap_or_default()))
                .collect(),
            goal: "lower is better".into(),
        });
    }
    rows.push(Row {
        case: "P6 peak RSS during P1".into(),
        unit: "MiB".into(),
        values: peaks,
        goal: format!("{} ≤ 256 MiB", o.peers[0].name),
    });
    rows.push(Row {
        case: format!(
            "P6 RSS idle ({} with {} mounts mounted, peers with one)",
            o.peers[0].name,
            o.idle_exports.len().max(1)
        ),
        unit: "MiB".into(),
        values: idle,
        goal: format!("{} ≤ 64 MiB", o.peers[0].name),
    });
    drop(idle_mounts);

    let names: Vec<String> = o.peers.iter().map(|p| p.name.clone()).collect();
    let main = table(&names, &rows);
    let cpu = table(&names, &cpu_rows);
    let mut report = format!(
        "Medians of {} runs. Rates: higher is better, so a ratio ≥ 1.00× means {} is faster; \
         memory: lower is better.\n\n{main}\nServer CPU time (user + system) per run, medians; \
         a ratio below 1.00× means {} used less CPU:\n\n{cpu}",
        o.runs, o.peers[0].name, o.peers[0].name
    );
    if let Some(server) = &o.s3 {
        let r = s3::run(
            server,
            &o.s3_peers,
            o.s3_source.as_deref(),
            o.runs,
            &shape,
            &o.s3_cases,
        )
        .await?;
        report += &format!(
            "\nS3 cases: {} serving the bucket with the `s3` plugin, against `object_store` \
             0.13 straight to the same s3s-fs (medians of {} runs; MiB/s, higher is better):\n\n{}\n\
             Server-side CPU per run (s3s-fs, plus nfsgw for the mount), medians:\n\n{}",
            r.names[0],
            o.runs,
            table(&r.names, &r.rows),
            table(&r.names, &r.cpu_rows)
        );
    }
    println!("{report}");
    if let Some(out) = &o.out {
        std::fs::write(out, &report).with_context(|| format!("writing {out}"))?;
    }
    Ok(())
}
