//! The connection flood benchmark: how an NFS server holds up while many idle TCP connections
//! are open against it (issue #28: a flood of about 20,000 connections used to end nfsgw).
//!
//! For each `--peer NAME,HOST:PORT,PID` in turn: NFS NULL latency on new connections before the
//! flood, then `--connections` connections opened (from 127.0.0.2-51, so ephemeral ports do not
//! run short) and held while the server's resident memory is read (`/proc/PID/status`) and NULL
//! is timed again on new connections, then the same after they are closed. A NULL that gets no
//! answer within 10 s counts as failed. Prints a Markdown table with the first peer's ratio to
//! each other one. Run as root: it raises its own open file limit (with `prlimit`) to hold the
//! connections.
//!
//! ```text
//! nfsflood [--connections 20000] [--samples 50] --peer NAME,HOST:PORT,PID ...
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How long a NULL call may take before it counts as failed.
const NULL_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections opened at once while flooding.
const WAVE: usize = 200;

struct Peer {
    name: String,
    addr: SocketAddr,
    pid: u32,
}

/// What was measured of one peer.
struct Outcome {
    rss_before_mib: f64,
    rss_flooded_mib: f64,
    opened: usize,
    /// Median NULL latency (ms) and failed NULLs: before, during, after the flood.
    null: [(f64, usize); 3],
}

fn parse_args() -> Result<(usize, usize, Vec<Peer>)> {
    let (mut connections, mut samples, mut peers) = (20_000, 50, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--connections" => connections = value.parse().context("--connections")?,
            "--samples" => samples = value.parse().context("--samples")?,
            "--peer" => {
                let parts: Vec<&str> = value.split(',').collect();
                let [name, addr, pid] = &parts[..] else {
                    bail!("--peer {value}: want NAME,HOST:PORT,PID");
                };
                peers.push(Peer {
                    name: name.to_string(),
                    addr: addr.parse().context("--peer address")?,
                    pid: pid.parse().context("--peer pid")?,
                });
            }
            _ => bail!("unknown flag {flag}"),
        }
    }
    if peers.is_empty() || samples == 0 {
        bail!("usage: nfsflood [--connections N] [--samples N] --peer NAME,HOST:PORT,PID ...");
    }
    Ok((connections, samples, peers))
}

fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .context("no VmRSS")?;
    Ok(kb / 1024.0)
}

/// An NFS NULL call (program 100003, version 3, procedure 0, AUTH_NULL) with its record mark.
fn null_call(xid: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for w in [0x8000_0028, xid, 0, 2, 100_003, 3, 0, 0, 0, 0, 0] {
        out.extend_from_slice(&u32::to_be_bytes(w));
    }
    out
}

/// Connects anew and times one NULL call; `None` when it fails or takes over `NULL_TIMEOUT`.
async fn time_null(addr: SocketAddr) -> Option<Duration> {
    let started = Instant::now();
    let call = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(&null_call(7)).await.ok()?;
        let mut reply = [0u8; 28];
        stream.read_exact(&mut reply).await.ok()?;
        // The xid, and an accepted reply with SUCCESS.
        (reply[4..8] == 7u32.to_be_bytes() && reply[24..28] == [0; 4]).then_some(())
    };
    tokio::time::timeout(NULL_TIMEOUT, call).await.ok()??;
    Some(started.elapsed())
}

/// Median latency in ms and the number of failures of `samples` NULL calls.
async fn nulls(addr: SocketAddr, samples: usize) -> (f64, usize) {
    let mut times = Vec::new();
    let mut failed = 0;
    for _ in 0..samples {
        match time_null(addr).await {
            Some(t) => times.push(t.as_secs_f64() * 1000.0),
            None => failed += 1,
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    (median, failed)
}

async fn connect_from(source: SocketAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(source)?;
    socket.connect(addr).await
}

async fn flood(peer: &Peer, connections: usize, samples: usize) -> Result<Outcome> {
    let before = nulls(peer.addr, samples).await;
    let rss_before_mib = rss_mib(peer.pid)?;
    let mut held = Vec::with_capacity(connections);
    let mut n = 0;
    while n < connections {
        let wave = (n..connections.min(n + WAVE)).map(|i| {
            let source = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2 + (i % 50) as u8), 0));
            tokio::time::timeout(NULL_TIMEOUT, connect_from(source, peer.addr))
        });
        for c in futures::future::join_all(wave).await {
            if let Ok(Ok(stream)) = c {
                held.push(stream);
            }
        }
        n += WAVE;
    }
    let opened = held.len();
    let during = nulls(peer.addr, samples).await;
    let rss_flooded_mib = rss_mib(peer.pid)?;
    drop(held);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = nulls(peer.addr, samples).await;
    Ok(Outcome {
        rss_before_mib,
        rss_flooded_mib,
        opened,
        null: [before, during, after],
    })
}

fn raise_own_file_limit(files: usize) -> Result<()> {
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={files}:{files}"),
        ])
        .status()
        .context("running prlimit")?;
    if !status.success() {
        bail!("prlimit could not raise the open file limit to {files} (run as root)");
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let (connections, samples, peers) = parse_args()?;
    raise_own_file_limit(connections + 1024)?;
    let mut outcomes = Vec::new();
    for peer in &peers {
        eprintln!(
            "nfsflood: {} connections against {}",
            connections, peer.name
        );
        outcomes.push(flood(peer, connections, samples).await?);
    }
    let mut rows: Vec<(String, Vec<f64>)> = vec![
        (
            "RSS before (MiB)".into(),
            outcomes.iter().map(|o| o.rss_before_mib).collect(),
        ),
        (
            format!("RSS with {connections} connections open (MiB)"),
            outcomes.iter().map(|o| o.rss_flooded_mib).collect(),
        ),
        (
            "connections the client got open".into(),
            outcomes.iter().map(|o| o.opened as f64).collect(),
        ),
    ];
    for (i, when) in ["before", "during", "after"].iter().enumerate() {
        rows.push((
            format!("NULL on a new connection {when} (median ms)"),
            outcomes.iter().map(|o| o.null[i].0).collect(),
        ));
        rows.push((
            format!("NULL failed {when} (of {samples})"),
            outcomes.iter().map(|o| o.null[i].1 as f64).collect(),
        ));
    }
    let mut out = String::from("| case |");
    for p in &peers {
        out += &format!(" {} |", p.name);
    }
    for p in &peers[1..] {
        out += &format!(" {}/{} |", peers[0].name, p.name);
    }
    out += "\n|---|";
    out += &"---:|".repeat(2 * peers.len() - 1);
    out += "\n";
    for (case, values) in rows {
        out += &format!("| {case} |");
        for v in &values {
            out += &format!(" {v:.2} |");
        }
        for v in &values[1..] {
            match values[0] / v {
                ratio if ratio.is_finite() => out += &format!(" {ratio:.2} |"),
                _ => out += " – |",
            }
        }
        out += "\n";
    }
    print!("{out}");
    Ok(())
}
