//! Hostile clients against the limits of what the gateway stages and stores: an ordinary uid
//! (AUTH_UNIX 1000) that writes at huge offsets, fills the state directory's disk or keeps
//! ever more files staged must get a clear NFS error (FBIG, NOSPC, JUKEBOX) and leave the
//! server serving; and a RENAME must not wait for the uploads of files it does not rename,
//! shown with an S3 server (s3s-fs) behind a proxy that holds one file's upload.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nfs3_types::nfs3::nfsstat3;
use object_store::path::Path as Key;
use object_store::ObjectStoreExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{squashed_local_mount, tempdir, toml_str, Client, Server, INSECURE};
use crate::s3_server::{S3Server, BUCKET};

const TIB: u64 = 1 << 40;

/// A `[[mount]]` of the test bucket with the bundled s3 plugin and nfsgw's defaults (root
/// squashed; unprivileged ports served for the test client), its files shown as uid 1000's; `keys` are mount keys, `endpoint` replaces the
/// server's own (a proxy in front of it).
fn bucket_mount(s3: &S3Server, keys: &str, endpoint: Option<&str>) -> String {
    let grant = s3.grant("");
    let grant = match endpoint {
        Some(e) => grant.replace(&toml_str(s3.endpoint()), &toml_str(e)),
        None => grant,
    };
    format!(
        "[[mount]]\nname = \"bucket\"\nplugin = \"s3\"\n{INSECURE}{keys}\n[mount.config]\nuid = 1000\n\
         gid = 1000\n{grant}"
    )
}

async fn as_uid_1000(server: &Server, export: &str) -> Client {
    server
        .try_mount_as(export, Some((1000, 1000)))
        .await
        .unwrap_or_else(|e| panic!("mount as uid 1000: {e:?}\n{}", server.stderr()))
}

/// Polls `probe` until it holds, or panics after a generous `limit` saying what was awaited.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !probe().await {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_and_sizes_past_max_file_size_are_fbig() {
    let root = tempdir("nfsgw-hostile-fbig-");
    std::os::unix::fs::chown(root.path(), Some(1000), Some(1000)).unwrap();
    let server = Server::start(&squashed_local_mount(
        "data",
        root.path(),
        "max_file_size = 1048576",
    ));
    let mut nfs = as_uid_1000(&server, "/data").await;
    let dir = nfs.root.clone();
    assert_eq!(nfs.max_file_size(&dir).await, Ok(1 << 20));
    let fh = nfs.create(&dir, "f", 0o644).await.unwrap();
    assert_eq!(
        nfs.write(&fh, (1 << 20) - 1, b"ab").await.err(),
        Some(nfsstat3::NFS3ERR_FBIG)
    );
    assert_eq!(
        nfs.write(&fh, u64::MAX - 1, b"ab").await.err(),
        Some(nfsstat3::NFS3ERR_FBIG),
        "an offset that overflows"
    );
    assert_eq!(
        nfs.set_size(&fh, (1 << 20) + 1).await.err(),
        Some(nfsstat3::NFS3ERR_FBIG)
    );
    assert_eq!(nfs.write(&fh, (1 << 20) - 2, b"ab").await, Ok(2));
    nfs.set_size(&fh, 1 << 20).await.unwrap();
    assert_eq!(
        std::fs::metadata(root.path().join("f")).unwrap().len(),
        1 << 20
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_store_mount_stops_at_s3s_object_limit_by_default() {
    let s3 = S3Server::start();
    let server = Server::start(&bucket_mount(&s3, "flush_after_ms = 3600000", None));
    let mut nfs = as_uid_1000(&server, "/bucket").await;
    let dir = nfs.root.clone();
    assert_eq!(nfs.max_file_size(&dir).await, Ok(5 * TIB));
    let fh = nfs.create(&dir, "huge", 0o644).await.unwrap();
    assert_eq!(
        nfs.write(&fh, 1 << 44, b"x").await.err(),
        Some(nfsstat3::NFS3ERR_FBIG)
    );
    assert_eq!(
        nfs.set_size(&fh, 1 << 44).await.err(),
        Some(nfsstat3::NFS3ERR_FBIG)
    );
    assert_eq!(
        nfs.getattr(&fh).await.unwrap().size,
        0,
        "nothing was staged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn staging_leaves_the_reserve_free_on_the_state_disk() {
    let s3 = S3Server::start();
    // A reserve larger than any disk: every staged byte would go into it.
    let keys = "flush_after_ms = 3600000\nstaging_reserve = 1152921504606846976";
    let mut server = Server::start(&bucket_mount(&s3, keys, None));
    let mut nfs = as_uid_1000(&server, "/bucket").await;
    let dir = nfs.root.clone();
    let fh = nfs.create(&dir, "f", 0o644).await.unwrap();
    assert_eq!(
        nfs.write(&fh, 0, b"data").await.err(),
        Some(nfsstat3::NFS3ERR_NOSPC)
    );
    assert_eq!(nfs.getattr(&fh).await.unwrap().size, 0);
    server.assert_alive();
}

#[tokio::test(flavor = "multi_thread")]
async fn staged_files_beyond_the_budget_wait_with_jukebox() {
    let s3 = S3Server::start();
    let keys = "flush_after_ms = 3600000\nmax_staged_files = 1";
    let server = Server::start(&bucket_mount(&s3, keys, None));
    let mut nfs = as_uid_1000(&server, "/bucket").await;
    let dir = nfs.root.clone();
    let first = nfs.create(&dir, "first", 0o644).await.unwrap();
    let second = nfs.create(&dir, "second", 0o644).await.unwrap();
    nfs.write(&first, 0, b"one").await.unwrap();
    nfs.write(&first, 3, b" more").await.unwrap();
    assert_eq!(
        nfs.write(&second, 0, b"two").await.err(),
        Some(nfsstat3::NFS3ERR_JUKEBOX)
    );
    // Once the first is let go, the second may be staged.
    nfs.remove(&dir, "first").await.unwrap();
    assert_eq!(nfs.write(&second, 0, b"two").await, Ok(3));
    assert_eq!(nfs.read_all(&second).await.unwrap(), b"two");
}

/// A TCP proxy in front of the S3 server. Once armed, it holds every connection whose
/// request bytes hold `marker`: nothing more of it is forwarded, and it stays open until
/// the client gives up on it. Other connections flow both ways.
struct HoldingProxy {
    port: u16,
    armed: Arc<AtomicBool>,
    /// Connections held, and of them those the client closed.
    held: Arc<AtomicUsize>,
    given_up: Arc<AtomicUsize>,
    accepting: tokio::task::JoinHandle<()>,
}

impl HoldingProxy {
    async fn start(upstream: u16, marker: &'static [u8]) -> HoldingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicUsize::new(0));
        let given_up = Arc::new(AtomicUsize::new(0));
        let (a, h, g) = (armed.clone(), held.clone(), given_up.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                let (a, h, g) = (a.clone(), h.clone(), g.clone());
                tokio::spawn(async move {
                    let (mut client_r, mut client_w) = client.into_split();
                    let (mut server_r, mut server_w) = server.into_split();
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut server_r, &mut client_w).await;
                    });
                    let mut buf = vec![0; 64 << 10];
                    let mut holding = false;
                    loop {
                        let n = match client_r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if !holding
                            && a.load(Ordering::SeqCst)
                            && buf[..n].windows(marker.len()).any(|w| w == marker)
                        {
                            holding = true;
                            h.fetch_add(1, Ordering::SeqCst);
                        }
                        if !holding && server_w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    if holding {
                        g.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        HoldingProxy {
            port,
            armed,
            held,
            given_up,
            accepting,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rename_does_not_wait_for_another_files_upload() {
    let s3 = S3Server::start();
    let marker: &[u8] = b"PUT /testbkt/held.bin";
    assert!(std::str::from_utf8(marker).unwrap().contains(BUCKET));
    let proxy = HoldingProxy::start(s3.port, marker).await;
    let keys = "flush_after_ms = 200";
    let server = Server::start(&bucket_mount(&s3, keys, Some(&proxy.endpoint())));
    let mut nfs = as_uid_1000(&server, "/bucket").await;
    let dir = nfs.root.clone();

    let other = nfs.create(&dir, "other.txt", 0o644).await.unwrap();
    nfs.write(&other, 0, b"not held").await.unwrap();
    let direct = s3.direct();
    eventually("other.txt's upload", Duration::from_secs(60), || async {
        match direct.get(&Key::from("other.txt")).await {
            Ok(got) => got.bytes().await.is_ok_and(|b| &b[..] == b"not held"),
            Err(_) => false,
        }
    })
    .await;

    // held.bin's object is made first; then its upload is held.
    let held = nfs.create(&dir, "held.bin", 0o644).await.unwrap();
    proxy.armed.store(true, Ordering::SeqCst);
    nfs.write(&held, 0, b"its upload never ends").await.unwrap();
    eventually(
        "held.bin's upload to start",
        Duration::from_secs(60),
        || async { proxy.held.load(Ordering::SeqCst) > 0 },
    )
    .await;

    let renamed = tokio::time::timeout(
        Duration::from_secs(300),
        nfs.rename(&dir, "other.txt", &dir, "moved.txt"),
    )
    .await
    .expect("the RENAME never completed");
    assert_eq!(renamed, Ok(()));
    assert_eq!(
        proxy.given_up.load(Ordering::SeqCst),
        0,
        "the RENAME completed only once held.bin's upload had given up"
    );
    assert!(direct.head(&Key::from("moved.txt")).await.is_ok());
    let moved = nfs.lookup(&dir, "moved.txt").await.unwrap();
    assert_eq!(nfs.read_all(&moved).await.unwrap(), b"not held");
}
