//! The S3 cases (issue #7's P3 and P4): an nfsgw mount of a bucket (the bundled `s3` plugin)
//! against the same bucket read and written directly with `object_store`, the crate and
//! version the nfsgw host uses, from this process.
//!
//! - **P3:** the 1 GiB object read start to end: through the mount with the same READs and
//!   calls in flight as P1; directly in two ways, each a row of its own: one streaming GET of
//!   the whole object, and ranged GETs of the READ size with as many in flight. Then once more
//!   (`ReadOne`) by a reader that keeps one READ in flight, against the streaming GET: what a
//!   program reading a file start to end gets when its client does little readahead. And
//!   (`ReadRanges`) as `RANGES` parallel ranges, a quarter each, by as many readers with one
//!   READ in flight each, against as many streaming GETs of those ranges: how a copy tool
//!   that reads a large file in parallel streams reads it.
//! - **P4:** 1 GiB written until the bucket has it: through the mount, CREATE, WRITEs (UNSTABLE,
//!   several in flight), COMMIT, then nfsgw's `/status` polled every `POLL` until it has no
//!   staged file left (when it has an admin listener), then HEAD polled until the object has
//!   the full size (nfsgw uploads once the file has gone unwritten for its `flush_after_ms`);
//!   directly, a multipart upload (`WriteMultipart`, `PART` parts, `PARTS_IN_FLIGHT` at once:
//!   what nfsgw's own upload uses).
//!
//! Runs interleave the peers like the NFS cases; every peer runs each case once untimed first.
//! Server-side CPU is the S3 server's, plus nfsgw's for a mount.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use nfs3_types::nfs3::nfs_fh3;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::cases::{windowed, Case, Prepared, Shape};
use crate::nfs::{self, Nfs};
use crate::{median, procfs, Peer, Row};

/// The object P3 reads, and the size P4 writes.
const OBJECT: &str = "big.bin";
const SIZE: u64 = 1 << 30;
/// P4's direct upload: part size and parts in flight, as nfsgw's host uploads.
const PART: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 8;
/// How often P4 asks the bucket whether the object has arrived.
const POLL: Duration = Duration::from_millis(10);
/// The parallel ranges `ReadRanges` reads the object in.
const RANGES: u64 = 4;
/// The data P4 writes: this many random bytes, repeated.
const PATTERN: usize = 64 << 20;

/// The S3 server, as `--s3 ENDPOINT,BUCKET,KEY_ID,SECRET,PID`.
pub struct S3Server {
    store: Arc<AmazonS3>,
    pid: u32,
}

impl S3Server {
    pub fn parse(spec: &str) -> Result<S3Server> {
        let parts: Vec<&str> = spec.split(',').collect();
        let [endpoint, bucket, key_id, secret, pid] = parts[..] else {
            bail!("--s3 {spec}: want ENDPOINT,BUCKET,KEY_ID,SECRET,PID");
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_bucket_name(bucket)
            .with_access_key_id(key_id)
            .with_secret_access_key(secret)
            .with_region("us-east-1")
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()
            .context("the object_store client")?;
        Ok(S3Server {
            store: Arc::new(store),
            pid: pid.parse()?,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum S3Case {
    Read,
    /// P3 by a reader with one READ in flight, against one streaming GET.
    ReadOne,
    /// P3 as `RANGES` parallel ranges, one READ in flight in each, against a streaming GET
    /// of each.
    ReadRanges,
    Write,
}

/// The S3 cases, in the order they run.
pub const ALL: [S3Case; 4] = [
    S3Case::Read,
    S3Case::ReadOne,
    S3Case::ReadRanges,
    S3Case::Write,
];

/// How the direct client reads P3.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Get {
    Stream,
    Ranged,
}

impl S3Case {
    fn label(&self, shape: &Shape, wsize: u32, get: Get) -> String {
        match self {
            S3Case::Read => format!(
                "P3 S3 sequential read of a 1 GiB object (mount: {} × {} KiB READs in flight; direct: {})",
                shape.inflight,
                shape.rsize >> 10,
                match get {
                    Get::Stream => "one streaming GET".to_string(),
                    Get::Ranged => format!(
                        "{} × {} KiB ranged GETs in flight",
                        shape.inflight,
                        shape.rsize >> 10
                    ),
                }
            ),
            S3Case::ReadOne => format!(
                "P3 S3 sequential read of a 1 GiB object (mount: 1 × {} KiB READ in flight, each sent when the one before is answered; direct: one streaming GET)",
                shape.rsize >> 10
            ),
            S3Case::ReadRanges => format!(
                "P3 S3 read of a 1 GiB object in {RANGES} parallel ranges (mount: {RANGES} readers, 1 × {} KiB READ in flight each; direct: {RANGES} streaming GETs)",
                shape.rsize >> 10
            ),
            S3Case::Write => format!(
                "P4 S3 write of 1 GiB until the bucket has it (mount: {} × {} KiB WRITEs in flight, COMMIT, then nfsgw's /status and HEAD polled; flush_after_ms 200; direct: multipart, {} MiB parts, {PARTS_IN_FLIGHT} in flight)",
                shape.inflight,
                wsize >> 10,
                PART >> 20
            ),
        }
    }

    fn goal(&self) -> &'static str {
        match self {
            S3Case::Read | S3Case::ReadOne | S3Case::ReadRanges => "≥ 0.9× direct",
            S3Case::Write => "≥ 0.8× direct",
        }
    }
}

/// One column: an nfsgw S3 mount, or the direct client.
enum Side {
    Mount {
        nfs: Arc<Nfs>,
        root: nfs_fh3,
        pid: u32,
        wsize: u32,
        admin: Option<SocketAddr>,
    },
    Direct(Get),
}

/// The S3 table's rows (MiB/s) and CPU rows, and the names of its columns.
pub struct S3Results {
    pub names: Vec<String>,
    pub rows: Vec<Row>,
    pub cpu_rows: Vec<Row>,
}

/// Runs P3 and P4 against every `mounts` peer (nfsgw first) and the direct client, last.
/// `source` is a local copy of the object to upload when the bucket lacks it.
pub async fn run(
    server: &S3Server,
    mounts: &[Peer],
    source: Option<&str>,
    runs: usize,
    shape: &Shape,
    cases: &[S3Case],
) -> Result<S3Results> {
    let store = &server.store;
    ensure_object(store, source).await?;

    let mut sides = Vec::new();
    let mut names = Vec::new();
    let mut rsize = shape.rsize;
    for p in mounts {
        let root = nfs::mount(p.mount_addr, &p.export)
            .await
            .with_context(|| format!("mounting {}", p.name))?;
        let nfs = Arc::new(Nfs::connect(p.nfs_addr).await?);
        let info = nfs.fsinfo(&root).await?;
        rsize = rsize.min(info.rtmax);
        sides.push(Side::Mount {
            nfs,
            root,
            pid: p.pid,
            wsize: info.wtmax.min(1 << 20),
            admin: p.admin,
        });
        names.push(p.name.clone());
    }
    sides.push(Side::Direct(Get::Stream));
    sides.push(Side::Direct(Get::Ranged));
    names.push("object_store".into());
    let shape = Shape {
        big_file: OBJECT.into(),
        many_dir: shape.many_dir.clone(),
        inflight: shape.inflight,
        rsize,
    };
    let one_at_a_time = Shape {
        inflight: 1,
        ..shape.clone()
    };
    let wsize = match sides[0] {
        Side::Mount { wsize, .. } => wsize,
        Side::Direct(_) => 1 << 20,
    };

    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let pattern: Bytes = (0..PATTERN / 8)
        .flat_map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng.to_le_bytes()
        })
        .collect::<Vec<u8>>()
        .into();

    let (mut rows, mut cpu_rows) = (Vec::new(), Vec::new());
    for &case in cases {
        let mut prepared = Vec::new();
        for side in &sides {
            let prep = match (case, side) {
                (
                    S3Case::Read | S3Case::ReadOne | S3Case::ReadRanges,
                    Side::Mount { nfs, root, .. },
                ) => Some(Case::SeqRead.prepare(nfs, root, &shape).await?),
                _ => None,
            };
            prepared.push(prep);
        }
        let mut rates = vec![Vec::new(); sides.len()];
        let mut cpus = vec![Vec::new(); sides.len()];
        // Run 0 is the untimed warm-up.
        for run in 0..=runs {
            for (i, side) in sides.iter().enumerate() {
                if case != S3Case::Read && matches!(side, Side::Direct(Get::Ranged)) {
                    continue;
                }
                let name = names.get(i).map_or("object_store", String::as_str);
                let pids: Vec<u32> = match side {
                    Side::Mount { pid, .. } => vec![server.pid, *pid],
                    Side::Direct(_) => vec![server.pid],
                };
                let cpu0 = cpu_of(&pids)?;
                let own0 = cpu_of(&pids[1..])?;
                let t0 = Instant::now();
                let key = format!("p4-{name}-{run}.bin");
                let mib = match (case, side) {
                    (S3Case::Read, Side::Mount { nfs, .. }) => {
                        let prep = prepared[i].as_ref().expect("prepared");
                        Case::SeqRead.run(nfs, prep, &shape).await?
                    }
                    (S3Case::ReadOne, Side::Mount { nfs, .. }) => {
                        let prep = prepared[i].as_ref().expect("prepared");
                        Case::SeqRead.run(nfs, prep, &one_at_a_time).await?
                    }
                    (S3Case::ReadRanges, Side::Mount { nfs, .. }) => {
                        let prep = prepared[i].as_ref().expect("prepared");
                        mount_ranges(nfs, prep, shape.rsize).await?
                    }
                    (S3Case::Read | S3Case::ReadOne, Side::Direct(Get::Stream)) => {
                        direct_read(store).await?
                    }
                    (S3Case::ReadRanges, Side::Direct(_)) => direct_ranges(store).await?,
                    (S3Case::Read | S3Case::ReadOne, Side::Direct(Get::Ranged)) => {
                        direct_ranged(store, &shape).await?
                    }
                    (
                        S3Case::Write,
                        Side::Mount {
                            nfs, root, admin, ..
                        },
                    ) => {
                        let n = mount_write(nfs, root, &key, &pattern, &shape, wsize).await?;
                        let written = t0.elapsed().as_secs_f64();
                        if let Some(admin) = admin {
                            wait_uploaded(*admin).await?;
                        }
                        wait_visible(store, &key, SIZE).await?;
                        eprintln!(
                            "nfsbench: S3 Write {name}: WRITEs and COMMIT took {written:.2} s, \
                             then {:.2} s until the bucket had the object",
                            t0.elapsed().as_secs_f64() - written
                        );
                        n
                    }
                    (S3Case::Write, Side::Direct(_)) => direct_write(store, &key, &pattern).await?,
                };
                let secs = t0.elapsed().as_secs_f64();
                let cpu = cpu_of(&pids)? - cpu0;
                let own = cpu_of(&pids[1..])? - own0;
                if case == S3Case::Write {
                    match side {
                        Side::Mount { nfs, root, .. } => nfs.remove(root, &key).await?,
                        Side::Direct(_) => store.delete(&Path::from(key.as_str())).await?,
                    }
                }
                let what = if run == 0 {
                    "warm-up".into()
                } else {
                    format!("run {run}")
                };
                let side_name = match side {
                    Side::Direct(get) => format!("object_store ({get:?})"),
                    Side::Mount { .. } => format!("{name} (its own CPU {own:.2} s)"),
                };
                eprintln!(
                    "nfsbench: S3 {case:?} {what} {side_name}: {:.1} MiB/s ({secs:.2} s, server-side CPU {cpu:.2} s)",
                    mib / secs
                );
                if run > 0 {
                    rates[i].push(mib / secs);
                    cpus[i].push(cpu);
                }
            }
        }
        // One row per direct way of reading (P4 has one), the mount columns repeated.
        let mounts = sides.len() - 2;
        let gets: &[Get] = match case {
            S3Case::Read => &[Get::Stream, Get::Ranged],
            S3Case::ReadOne | S3Case::ReadRanges | S3Case::Write => &[Get::Stream],
        };
        for (g, &get) in gets.iter().enumerate() {
            let pick = |v: &[Vec<f64>]| -> Vec<Option<f64>> {
                let mut out: Vec<_> = v[..mounts].iter().map(|r| median(r.clone())).collect();
                out.push(median(v[mounts + g].clone()));
                out
            };
            rows.push(Row {
                case: case.label(&shape, wsize, get),
                unit: "MiB/s".into(),
                values: pick(&rates),
                goal: case.goal().into(),
            });
            cpu_rows.push(Row {
                case: case.label(&shape, wsize, get),
                unit: "CPU s/run".into(),
                values: pick(&cpus),
                goal: "lower is better".into(),
            });
        }
    }
    Ok(S3Results {
        names,
        rows,
        cpu_rows,
    })
}

fn cpu_of(pids: &[u32]) -> Result<f64> {
    pids.iter().map(|&p| procfs::cpu_seconds(p)).sum()
}

/// Uploads `source` as the P3 object unless the bucket has an object of that size already.
async fn ensure_object(store: &AmazonS3, source: Option<&str>) -> Result<()> {
    let path = Path::from(OBJECT);
    if let Ok(meta) = store.head(&path).await {
        if meta.size == SIZE {
            return Ok(());
        }
    }
    let source = source.context("the bucket has no 1 GiB big.bin, and no --s3-source")?;
    eprintln!("nfsbench: uploading {source} as s3 object {OBJECT}");
    let data = tokio::fs::read(source).await?;
    ensure!(data.len() as u64 == SIZE, "{source} is not 1 GiB");
    let data = Bytes::from(data);
    let mut upload = WriteMultipart::new_with_chunk_size(store.put_multipart(&path).await?, PART);
    for at in (0..data.len()).step_by(PART) {
        upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        upload.put(data.slice(at..(at + PART).min(data.len())));
    }
    upload.finish().await?;
    Ok(())
}

/// P3 directly: one GET of the whole object, its body streamed and counted.
async fn direct_read(store: &AmazonS3) -> Result<f64> {
    let mut body = store.get(&Path::from(OBJECT)).await?.into_stream();
    let mut read = 0u64;
    while let Some(chunk) = body.next().await {
        read += chunk?.len() as u64;
    }
    ensure!(read == SIZE, "GET gave {read} of {SIZE} bytes");
    Ok(SIZE as f64 / (1 << 20) as f64)
}

/// `ReadRanges` through a mount: a reader per range, each with one READ of `rsize` in flight.
async fn mount_ranges(nfs: &Arc<Nfs>, prepared: &Prepared, rsize: u32) -> Result<f64> {
    let Prepared::File { fh, size } = prepared else {
        bail!("ReadRanges reads a file");
    };
    ensure!(*size == SIZE, "the object has {size} bytes, not {SIZE}");
    let mut readers = JoinSet::new();
    for range in ranges() {
        let (nfs, fh) = (nfs.clone(), fh.clone());
        readers.spawn(async move {
            let mut at = range.start;
            while at < range.end {
                let want = u64::from(rsize).min(range.end - at);
                let (n, _) = nfs.read(&fh, at, want as u32).await?;
                ensure!(u64::from(n) == want, "short READ at {at}: {n}");
                at += want;
            }
            Ok(())
        });
    }
    while let Some(done) = readers.join_next().await {
        done??;
    }
    Ok(SIZE as f64 / (1 << 20) as f64)
}

/// `ReadRanges` directly: a streaming GET per range, all at once.
async fn direct_ranges(store: &Arc<AmazonS3>) -> Result<f64> {
    let mut readers = JoinSet::new();
    for range in ranges() {
        let store = store.clone();
        readers.spawn(async move {
            let options = GetOptions {
                range: Some(GetRange::Bounded(range.clone())),
                ..GetOptions::default()
            };
            let mut body = store
                .get_opts(&Path::from(OBJECT), options)
                .await?
                .into_stream();
            let mut read = 0u64;
            while let Some(chunk) = body.next().await {
                read += chunk?.len() as u64;
            }
            ensure!(
                read == range.end - range.start,
                "GET of {range:?} gave {read} bytes"
            );
            Ok(())
        });
    }
    while let Some(done) = readers.join_next().await {
        done??;
    }
    Ok(SIZE as f64 / (1 << 20) as f64)
}

/// The object cut into `RANGES` equal ranges.
fn ranges() -> impl Iterator<Item = std::ops::Range<u64>> {
    let each = SIZE / RANGES;
    (0..RANGES).map(move |r| r * each..(r + 1) * each)
}

/// P3 directly, shaped like the mount's reads: ranged GETs of `rsize`, `inflight` at once.
async fn direct_ranged(store: &Arc<AmazonS3>, shape: &Shape) -> Result<f64> {
    let rsize = u64::from(shape.rsize);
    let read = windowed(SIZE.div_ceil(rsize) as usize, shape.inflight, |i| {
        let store = store.clone();
        async move {
            let start = i as u64 * rsize;
            let range = start..(start + rsize).min(SIZE);
            let want = range.end - range.start;
            let bytes = store.get_range(&Path::from(OBJECT), range).await?;
            ensure!(bytes.len() as u64 == want, "short GET at {start}");
            Ok(want)
        }
    })
    .await?;
    ensure!(read == SIZE, "read {read} of {SIZE} bytes");
    Ok(SIZE as f64 / (1 << 20) as f64)
}

/// The `len` bytes at `offset` of the P4 data (the pattern repeated); `len` divides the
/// pattern's length.
fn chunk(pattern: &Bytes, offset: u64, len: usize) -> Bytes {
    let at = (offset % pattern.len() as u64) as usize;
    pattern.slice(at..at + len)
}

/// P4 through a mount: CREATE, the WRITEs with `inflight` at once, COMMIT.
async fn mount_write(
    nfs: &Arc<Nfs>,
    root: &nfs_fh3,
    name: &str,
    pattern: &Bytes,
    shape: &Shape,
    wsize: u32,
) -> Result<f64> {
    let fh = nfs.create(root, name).await?;
    let blocks = SIZE.div_ceil(wsize.into()) as usize;
    let written = windowed(blocks, shape.inflight, |i| {
        let (nfs, fh) = (nfs.clone(), fh.clone());
        let offset = i as u64 * u64::from(wsize);
        let data = chunk(pattern, offset, wsize as usize);
        async move {
            let n = nfs.write(&fh, offset, &data).await?;
            ensure!(n == wsize, "short WRITE at {offset}: {n}");
            Ok(u64::from(n))
        }
    })
    .await?;
    ensure!(written == SIZE, "wrote {written} of {SIZE} bytes");
    nfs.commit(&fh).await?;
    Ok(SIZE as f64 / (1 << 20) as f64)
}

/// Polls nfsgw's `/status` until no mount has a staged file left to upload (two minutes at
/// most). Cheaper for the S3 server than polling it: s3s-fs answers a HEAD that comes between
/// moving a completed upload into place and storing its ETag by hashing the whole object.
async fn wait_uploaded(admin: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut http = TcpStream::connect(admin).await?;
        http.write_all(b"GET /status HTTP/1.0\r\n\r\n").await?;
        let mut answer = String::new();
        http.read_to_string(&mut answer).await?;
        let staged: Vec<&str> = answer
            .split("\"staged_files\":")
            .skip(1)
            .map(|rest| {
                let rest = rest.trim_start();
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap_or("")
            })
            .collect();
        ensure!(
            !staged.is_empty(),
            "no staged_files in {admin}/status: {answer}"
        );
        if staged.iter().all(|n| *n == "0") {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{admin} never finished uploading"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls HEAD until `key` has `size` bytes (two minutes at most).
async fn wait_visible(store: &AmazonS3, key: &str, size: u64) -> Result<()> {
    let path = Path::from(key);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(meta) = store.head(&path).await {
            if meta.size == size {
                return Ok(());
            }
        }
        ensure!(
            Instant::now() < deadline,
            "{key} never reached {size} bytes"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// P4 directly: a multipart upload of the same bytes.
async fn direct_write(store: &AmazonS3, key: &str, pattern: &Bytes) -> Result<f64> {
    let path = Path::from(key);
    let mut upload = WriteMultipart::new_with_chunk_size(store.put_multipart(&path).await?, PART);
    let step = 1 << 20;
    for offset in (0..SIZE).step_by(step) {
        upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        upload.put(chunk(pattern, offset, step));
    }
    upload.finish().await?;
    Ok(SIZE as f64 / (1 << 20) as f64)
}
