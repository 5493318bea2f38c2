//! Hostile clients at the front door: what a client can do to nfsgw before any call reaches a
//! mount. Connection floods, records that claim megabytes and stall, idle connections that
//! pile up, clients that no mount allows, MNT used as an oracle of what exists, and calls from
//! unprivileged source ports to `secure` mounts. Every case is played from raw bytes on TCP
//! sockets (or `nfs3_client`) with an ordinary uid, against a default mount that squashes
//! root, and must be refused or survived with nfsgw still answering.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::{squashed_local_mount, tempdir, toml_str, Server};
use crate::raw_rpc::{call_as, opaque, roundtrip, word, GENEROUS, LAST_FRAGMENT};

const NFS_PROGRAM: u32 = 100003;
const MOUNT_PROGRAM: u32 = 100005;
/// An ordinary user, as AUTH_UNIX claims it.
const UID: u32 = 1000;

/// One version 3 call record of `program` as `UID`.
fn call(xid: u32, program: u32, procedure: u32, args: &[u8]) -> Vec<u8> {
    call_as(xid, (program, 3), procedure, UID, args)
}

/// A connection to nfsgw's port from `source` (port 0: any).
async fn connect_from(source: SocketAddr, port: u16) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(source)?;
    socket
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
}

/// A connection from a privileged port (below 1024): the tests run as root.
async fn connect_privileged(port: u16) -> TcpStream {
    let start = 600 + std::process::id() % 400;
    for source in (start..1024).chain(600..start) {
        let from = SocketAddr::from((Ipv4Addr::LOCALHOST, source as u16));
        if let Ok(stream) = connect_from(from, port).await {
            return stream;
        }
    }
    panic!("no privileged port free (are the tests run as root?)");
}

/// Whether nfsgw answers an NFS NULL call on a new connection.
async fn answers_null(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await else {
        return false;
    };
    match roundtrip(&mut stream, &call(1, NFS_PROGRAM, 0, &[])).await {
        Ok(reply) => word(&reply, 4) == 1 && word(&reply, 24) == 0,
        Err(_) => false,
    }
}

/// Whether the server closes `stream` (end of stream or reset) within `GENEROUS`, without
/// sending anything first.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(GENEROUS, stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// A server with one default (squashing) mount of `root`, `server_keys` in `[server]`.
fn server(root: &Path, server_keys: &str) -> Server {
    Server::start_with(&format!(
        "portmap = \"off\"\n{server_keys}\n{}",
        squashed_local_mount("data", root, "")
    ))
}

/// The value in kB of a `/proc/PID/status` line such as `VmRSS`.
fn status_kb(server: &Server, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/PID/status"))
}

/// Sets the server's open file limit (soft and hard) to `files`: lowering needs no privilege,
/// and this machine lets no process raise its hard limit past 20,000, which would leave this
/// test process too few descriptors to exhaust the server's.
fn limit_server_files(server: &Server, files: u64) {
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &server.pid().to_string(),
            &format!("--nofile={files}:{files}"),
        ])
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit failed");
}

/// 25,000 connections against a server limited to 8,000 open files, up to 15,000 of them
/// open at once: an accept that fails waits and goes on (it used to end nfsgw), the idle
/// connections make room for new ones, and nfsgw answers NULL after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_leaves_nfsgw_answering() {
    let dir = tempdir("nfsgw-front-");
    let mut server = server(dir.path(), "");
    limit_server_files(&server, 8_000);
    let port = server.port;
    let flood = tokio::time::timeout(Duration::from_secs(600), async {
        let mut held = std::collections::VecDeque::new();
        let mut opened = 0;
        for wave in 0..250u32 {
            let connects = (0..100u32).map(|i| {
                // Sources spread over 127.0.0.2-51, each with its own ephemeral ports.
                let n = wave * 100 + i;
                let source = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2 + (n % 50) as u8), 0));
                connect_from(source, port)
            });
            for connection in futures::future::join_all(connects)
                .await
                .into_iter()
                .flatten()
            {
                opened += 1;
                held.push_back(connection);
            }
            while held.len() > 15_000 {
                held.pop_front();
            }
        }
        opened
    })
    .await
    .expect("the flood ends");
    server.assert_alive();
    let mut answered = false;
    for _ in 0..30 {
        if answers_null(port).await {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    server.assert_alive();
    assert!(answered, "NULL after a flood of {flood} connections");
}

/// 400 connections each send the first 2 MiB of a record that claims 4 MiB, and stall. nfsgw
/// takes in no more than its record memory (64 MiB here), not 800 MiB, and closes each one at
/// the record deadline. Memory is nfsgw's peak resident size (VmHWM), before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_records_do_not_pin_their_size_and_meet_the_deadline() {
    let dir = tempdir("nfsgw-front-");
    let server = server(
        dir.path(),
        "record_timeout_ms = 3000\nrecord_memory_mb = 64\nmax_connections_per_client = 1000",
    );
    let before = status_kb(&server, "VmHWM");
    let port = server.port;
    let mut head = ((4u32 << 20) | LAST_FRAGMENT).to_be_bytes().to_vec();
    head.extend_from_slice(&call(9, NFS_PROGRAM, 0, &[])[4..]);
    head.resize(2 << 20, 0);
    let head = std::sync::Arc::new(head);
    let stalls = (0..400).map(|_| {
        let head = head.clone();
        tokio::spawn(async move {
            let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
            // Blocks once nfsgw stops reading; fails once it closes the connection.
            let _ = tokio::time::timeout(GENEROUS, stream.write_all(&head)).await;
            io::Result::Ok(closed_by_server(&mut stream).await)
        })
    });
    let closed = futures::future::join_all(stalls).await;
    let grew_mb = status_kb(&server, "VmHWM").saturating_sub(before) / 1024;
    assert!(
        grew_mb < 300,
        "nfsgw's peak resident memory grew by {grew_mb} MiB for 400 half-sent records"
    );
    let closed = closed
        .into_iter()
        .filter(|c| matches!(c, Ok(Ok(true))))
        .count();
    assert_eq!(closed, 400, "connections closed at the record deadline");
    assert!(answers_null(port).await);
}

/// A client address at its connection limit: a new connection closes one of its idle ones.
/// When none is idle (each is in the middle of a record), the new one is closed instead, and
/// other addresses are not affected. Over the total limit, an idle connection of another
/// address makes room.
#[tokio::test]
async fn connection_limits_close_an_idle_connection_or_the_newcomer() {
    let dir = tempdir("nfsgw-front-");
    let server = server(
        dir.path(),
        "max_connections = 4\nmax_connections_per_client = 2",
    );
    let port = server.port;
    let from = |last: u8| SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), 0));
    let settle = || tokio::time::sleep(Duration::from_millis(500));

    // Two idle connections from 127.0.0.2; a third closes one of them and is served.
    let mut first = connect_from(from(2), port).await.unwrap();
    let mut second = connect_from(from(2), port).await.unwrap();
    settle().await;
    let mut third = connect_from(from(2), port).await.unwrap();
    let null = call(1, NFS_PROGRAM, 0, &[]);
    assert!(
        roundtrip(&mut third, &null).await.is_ok(),
        "the newcomer is served"
    );
    let (closed, first_closed) = tokio::select! {
        closed = closed_by_server(&mut first) => (closed, true),
        closed = closed_by_server(&mut second) => (closed, false),
    };
    assert!(closed, "one idle connection made room");
    let mut survivor = if first_closed { second } else { first };
    assert!(
        roundtrip(&mut survivor, &null).await.is_ok(),
        "the other one is still served"
    );

    // Two connections from 127.0.0.3 in the middle of a record: a third is closed at once.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_from(from(3), port).await.unwrap();
        stream.write_all(&[0x80, 0]).await.unwrap();
        busy.push(stream);
    }
    settle().await;
    let mut refused = connect_from(from(3), port).await.unwrap();
    let _ = refused.write_all(&null).await;
    assert!(
        closed_by_server(&mut refused).await,
        "a newcomer with no idle connection to replace is closed unanswered"
    );

    // Four are open now (two from .2, two busy from .3): a newcomer from .4 replaces an idle
    // one of .2.
    settle().await;
    let mut fourth = connect_from(from(4), port).await.unwrap();
    assert!(roundtrip(&mut fourth, &null).await.is_ok());
}

/// A connection that sends nothing is closed after the idle timeout.
#[tokio::test]
async fn idle_connections_are_closed() {
    let dir = tempdir("nfsgw-front-");
    let server = server(dir.path(), "idle_timeout_ms = 1000");
    let mut idle = TcpStream::connect((Ipv4Addr::LOCALHOST, server.port))
        .await
        .unwrap();
    assert!(roundtrip(&mut idle, &call(1, NFS_PROGRAM, 0, &[]))
        .await
        .is_ok());
    assert!(closed_by_server(&mut idle).await, "closed once idle");
}

/// A server whose only mount allows 10.0.0.0/8 closes a connection from 127.0.0.1 at accept:
/// no call is answered, not even NULL.
#[tokio::test]
async fn an_address_no_mount_allows_is_closed_at_accept() {
    let dir = tempdir("nfsgw-front-");
    let server = Server::start(&squashed_local_mount(
        "data",
        dir.path(),
        "allow = [\"10.0.0.0/8\"]",
    ));
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, server.port))
        .await
        .unwrap();
    let _ = stream.write_all(&call(1, NFS_PROGRAM, 0, &[])).await;
    let _ = stream.write_all(&call(2, MOUNT_PROGRAM, 0, &[])).await;
    assert!(
        closed_by_server(&mut stream).await,
        "closed without a reply"
    );
}

/// MNT of a path inside a mount that does not allow the client answers the same whether the
/// path exists or not.
#[tokio::test]
async fn mnt_from_a_disallowed_client_tells_nothing_of_what_exists() {
    let (open, closed) = (tempdir("nfsgw-front-"), tempdir("nfsgw-front-"));
    std::fs::create_dir(closed.path().join("exists")).unwrap();
    let server = Server::start(&format!(
        "{}{}",
        squashed_local_mount("open", open.path(), ""),
        squashed_local_mount("closed", closed.path(), "allow = [\"127.0.0.2\"]"),
    ));
    let mut answers = Vec::new();
    for path in ["/closed/exists", "/closed/absent", "/closed/absent/deeper"] {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, server.port))
            .await
            .unwrap();
        let reply = roundtrip(
            &mut stream,
            &call(1, MOUNT_PROGRAM, 1, &opaque(path.as_bytes())),
        )
        .await
        .unwrap();
        answers.push((word(&reply, 24), word(&reply, 28)));
    }
    // MNT3ERR_ACCES for every path.
    assert_eq!(
        answers,
        vec![(0, 13); 3],
        "accept status, mount status per path"
    );
}

/// A `secure` mount (the default) takes MNT and NFS calls only from privileged ports: from an
/// unprivileged port MNT is refused and a call with a valid handle gets NFS3ERR_PERM.
#[tokio::test]
async fn a_secure_mount_refuses_unprivileged_ports() {
    let dir = tempdir("nfsgw-front-");
    let server = Server::start(&format!(
        "[[mount]]\nname = \"data\"\nplugin = \"local\"\n[mount.config]\nroot = {}\n",
        toml_str(dir.path().to_str().unwrap())
    ));
    let port = server.port;
    let mnt = call(1, MOUNT_PROGRAM, 1, &opaque(b"/data"));

    let mut privileged = connect_privileged(port).await;
    let reply = roundtrip(&mut privileged, &mnt).await.unwrap();
    assert_eq!(word(&reply, 28), 0, "MNT from a privileged port");
    let handle_len = word(&reply, 32) as usize;
    let handle = reply[36..36 + handle_len].to_vec();
    let getattr = call(2, NFS_PROGRAM, 1, &opaque(&handle));
    let reply = roundtrip(&mut privileged, &getattr).await.unwrap();
    assert_eq!(word(&reply, 28), 0, "GETATTR from a privileged port");

    let mut unprivileged = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .unwrap();
    assert!(unprivileged.local_addr().unwrap().port() >= 1024);
    let reply = roundtrip(&mut unprivileged, &mnt).await.unwrap();
    assert_eq!(
        word(&reply, 28),
        13,
        "MNT3ERR_ACCES from an unprivileged port"
    );
    let reply = roundtrip(&mut unprivileged, &getattr).await.unwrap();
    assert_eq!(
        word(&reply, 28),
        1,
        "NFS3ERR_PERM from an unprivileged port"
    );
}
