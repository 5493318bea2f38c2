//! The portmapper: GETPORT and DUMP over TCP (through `nfs3_client`'s portmapper client) and
//! over UDP (hand-built datagrams), a whole mount that finds its ports through it, malformed
//! calls, a taken port, and, when port 111 is free here, libnfs's `nfs-ls` and `rpcinfo -p`
//! with no ports given at all.

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

use nfs3_client::tokio::{TokioConnector, TokioIo};
use nfs3_client::{Nfs3ConnectionBuilder, PortmapError, PortmapperClient};
use nfs3_types::nfs3::{GETATTR3args, Nfs3Result};
use tokio::io::AsyncWriteExt;

use crate::harness::{
    libnfs_tool, local_mount, run_libnfs, run_with_timeout, spawn, tempdir, Server,
};

const PMAP: u32 = 100_000;
const NFS: u32 = 100_003;
const MOUNT: u32 = 100_005;
const NLM: u32 = 100_021;
const NSM: u32 = 100_024;
const TCP: u32 = 6;
const UDP: u32 = 17;

/// A server with the `local` mount "data" (holding hello.txt) and its portmapper on a port of
/// its own choosing.
fn start() -> (Server, u16, tempfile::TempDir) {
    let root = tempdir("nfsgw-portmap-");
    std::fs::write(
        root.path().join("hello.txt"),
        b"hello through the portmapper",
    )
    .unwrap();
    let server = Server::start_with(&format!(
        "portmap = \"127.0.0.1:0\"\n\n{}",
        local_mount("data", root.path(), false, "")
    ));
    let pm = server
        .portmap_port()
        .unwrap_or_else(|| panic!("no portmapper line:\n{}", server.stdout()));
    assert_ne!(pm, server.port);
    (server, pm, root)
}

/// What nfsgw serves, as (program, version, protocol, port).
fn served(nfs_port: u16, pm: u16) -> BTreeSet<(u32, u32, u32, u32)> {
    let mut want = BTreeSet::from([
        (NFS, 3, TCP, u32::from(nfs_port)),
        (MOUNT, 3, TCP, u32::from(nfs_port)),
        (NLM, 4, TCP, u32::from(nfs_port)),
        (NSM, 1, TCP, u32::from(nfs_port)),
        (NLM, 4, UDP, u32::from(nfs_port)),
        (NSM, 1, UDP, u32::from(nfs_port)),
    ]);
    for vers in 2..=4 {
        want.insert((PMAP, vers, TCP, u32::from(pm)));
        want.insert((PMAP, vers, UDP, u32::from(pm)));
    }
    want
}

async fn portmapper(pm: u16) -> PortmapperClient<TokioIo<tokio::net::TcpStream>> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", pm))
        .await
        .unwrap_or_else(|e| panic!("connect to the portmapper on {pm}: {e}"));
    PortmapperClient::new(TokioIo::new(stream))
}

// ---------------------------------------------------------------------------------------------
// Hand-built calls

fn words(out: &mut Vec<u8>, words: &[u32]) {
    for w in words {
        out.extend_from_slice(&w.to_be_bytes());
    }
}

/// A portmapper call (AUTH_NULL) with these argument words.
fn call(xid: u32, vers: u32, proc_: u32, args: &[u32]) -> Vec<u8> {
    let mut out = Vec::new();
    words(&mut out, &[xid, 0, 2, PMAP, vers, proc_, 0, 0, 0, 0]);
    words(&mut out, args);
    out
}

/// The accept status and result words of a reply to `xid`.
fn parse_reply(xid: u32, reply: &[u8]) -> (u32, Vec<u32>) {
    let w: Vec<u32> = reply
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().expect("whole words")))
        .collect();
    assert!(w.len() >= 6, "short reply {w:?}");
    assert_eq!((w[0], w[1], w[2]), (xid, 1, 0), "xid, REPLY, MSG_ACCEPTED");
    (w[5], w[6..].to_vec())
}

fn udp_socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
}

/// Sends one datagram and waits for the reply to `xid`.
fn udp_call(socket: &UdpSocket, pm: u16, xid: u32, datagram: &[u8]) -> (u32, Vec<u32>) {
    socket.send_to(datagram, ("127.0.0.1", pm)).unwrap();
    let mut buf = [0u8; 65536];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no UDP reply to xid {xid}: {e}"));
    parse_reply(xid, &buf[..n])
}

fn udp_getport(pm: u16, prog: u32, vers: u32, prot: u32) -> u32 {
    let socket = udp_socket();
    let (stat, res) = udp_call(&socket, pm, 7, &call(7, 2, 3, &[prog, vers, prot, 0]));
    assert_eq!(stat, 0, "SUCCESS");
    res[0]
}

/// Decodes a portmap version 2 DUMP result.
fn dump_entries(res: &[u32]) -> BTreeSet<(u32, u32, u32, u32)> {
    let mut out = BTreeSet::new();
    let mut i = 0;
    while res[i] == 1 {
        out.insert((res[i + 1], res[i + 2], res[i + 3], res[i + 4]));
        i += 5;
    }
    assert_eq!(i + 1, res.len(), "the list ends the result");
    out
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn tcp_getport_and_dump_report_exactly_what_is_served() {
    let (server, pm, _root) = start();
    let mut client = portmapper(pm).await;
    client.null().await.expect("NULL");
    assert_eq!(client.getport(NFS, 3, TCP).await.unwrap(), server.port);
    assert_eq!(client.getport(MOUNT, 3, TCP).await.unwrap(), server.port);
    assert_eq!(client.getport(NLM, 4, TCP).await.unwrap(), server.port);
    assert_eq!(client.getport(NSM, 1, TCP).await.unwrap(), server.port);
    assert_eq!(client.getport(NLM, 4, UDP).await.unwrap(), server.port);
    assert_eq!(client.getport(NSM, 1, UDP).await.unwrap(), server.port);
    assert_eq!(client.getport(PMAP, 2, TCP).await.unwrap(), pm);
    for (prog, vers, prot) in [
        (NFS, 3, UDP),
        (MOUNT, 3, UDP),
        (NFS, 2, TCP),
        (NFS, 4, TCP),
        (MOUNT, 1, TCP),
        (NLM, 1, TCP),
        (NLM, 3, UDP),
    ] {
        match client.getport(prog, vers, prot).await {
            Err(PortmapError::ProgramUnavailable) => {}
            other => panic!("GETPORT {prog} v{vers} prot {prot}: {other:?}"),
        }
    }
    let dump: BTreeSet<_> = client
        .dump()
        .await
        .expect("DUMP")
        .into_iter()
        .map(|m| (m.prog, m.vers, m.prot, m.port))
        .collect();
    assert_eq!(dump, served(server.port, pm));
}

#[tokio::test]
async fn a_client_finds_nfs_and_mount_through_the_portmapper() {
    let (server, pm, _root) = start();
    let conn = Nfs3ConnectionBuilder::new(TokioConnector, "127.0.0.1", "/data")
        .connect_from_privileged_port(false)
        .portmapper_port(pm)
        .mount()
        .await
        .unwrap_or_else(|e| panic!("mount through the portmapper: {e:?}\n{}", server.stderr()));
    let root = conn.root_nfs_fh3();
    let mut conn = conn;
    let attrs = conn
        .getattr(&GETATTR3args { object: root })
        .await
        .expect("GETATTR");
    assert!(matches!(attrs, Nfs3Result::Ok(_)));
}

#[test]
fn udp_getport_and_dump_answer_with_no_record_mark() {
    let (server, pm, _root) = start();
    assert_eq!(udp_getport(pm, NFS, 3, TCP), u32::from(server.port));
    assert_eq!(udp_getport(pm, MOUNT, 3, TCP), u32::from(server.port));
    assert_eq!(
        udp_getport(pm, NFS, 3, UDP),
        0,
        "NFS over UDP is not served"
    );
    assert_eq!(
        udp_getport(pm, MOUNT, 3, UDP),
        0,
        "MOUNT over UDP is not served"
    );
    assert_eq!(udp_getport(pm, PMAP, 2, UDP), u32::from(pm));

    let socket = udp_socket();
    let (stat, res) = udp_call(&socket, pm, 9, &call(9, 2, 4, &[]));
    assert_eq!(stat, 0);
    assert_eq!(dump_entries(&res), served(server.port, pm));
    // SET is refused, CALLIT unavailable, version 5 a mismatch.
    let (stat, res) = udp_call(&socket, pm, 10, &call(10, 2, 1, &[NFS, 3, TCP, 2049]));
    assert_eq!((stat, res), (0, vec![0]));
    assert_eq!(
        udp_call(&socket, pm, 11, &call(11, 2, 5, &[NFS, 3, 0, 0])).0,
        3
    );
    let (stat, res) = udp_call(&socket, pm, 12, &call(12, 5, 0, &[]));
    assert_eq!((stat, res), (2, vec![2, 4]), "PROG_MISMATCH 2..4");
}

#[tokio::test]
async fn malformed_calls_leave_it_serving() {
    let (mut server, pm, _root) = start();

    // TCP: a record cut short, a record of garbage, a record mark claiming 2 GiB, a call
    // whose credential claims 4 GiB, and a call with arguments cut short.
    let tcp_send = |bytes: Vec<u8>| async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", pm))
            .await
            .unwrap();
        s.write_all(&bytes).await.unwrap();
        s.shutdown().await.unwrap();
        let mut back = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut back),
        )
        .await
        .expect("the portmapper closes a connection it cannot use");
        back
    };
    let mark = |len: usize| ((len as u32) | 1 << 31).to_be_bytes().to_vec();
    let mut cut = mark(100);
    cut.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    tcp_send(cut).await;
    let mut noise = mark(64);
    noise.extend((0..64u32).map(|i| (i * 37 + 11) as u8));
    tcp_send(noise).await;
    let mut huge = 0xffff_ffffu32.to_be_bytes().to_vec();
    huge.extend_from_slice(&[0; 64]);
    tcp_send(huge).await;
    let mut cred = Vec::new();
    words(&mut cred, &[5, 0, 2, PMAP, 2, 3, 1, u32::MAX]);
    let mut framed = mark(cred.len());
    framed.extend_from_slice(&cred);
    let back = tcp_send(framed).await;
    assert_eq!(
        parse_reply(5, &back[4..]).0,
        4,
        "GARBAGE_ARGS for a 4 GiB credential"
    );
    let short = call(6, 2, 3, &[NFS, 3]);
    let mut framed = mark(short.len());
    framed.extend_from_slice(&short);
    let back = tcp_send(framed).await;
    assert_eq!(
        parse_reply(6, &back[4..]).0,
        4,
        "GARBAGE_ARGS for short arguments"
    );

    // UDP: empty, too short for an xid, garbage, a reply instead of a call, the largest
    // datagram there is.
    let socket = udp_socket();
    for datagram in [
        Vec::new(),
        vec![1, 2, 3],
        (0..1000u32).map(|i| (i * 91 + 7) as u8).collect(),
        {
            let mut reply = call(1, 2, 0, &[]);
            reply[7] = 1;
            reply
        },
        vec![0xff; 65_507],
    ] {
        socket.send_to(&datagram, ("127.0.0.1", pm)).unwrap();
    }
    // None of those is a call: the first reply is to this one, whose netid claims 4 GiB.
    let (stat, _) = udp_call(&socket, pm, 8, &call(8, 4, 3, &[NFS, 3, u32::MAX, 0, 0]));
    assert_eq!(stat, 4, "GARBAGE_ARGS");
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 65536];
    assert!(
        socket.recv(&mut buf).is_err(),
        "no other datagram was answered"
    );

    // Still serving, over both transports, and NFS too.
    assert_eq!(udp_getport(pm, NFS, 3, TCP), u32::from(server.port));
    let mut client = portmapper(pm).await;
    assert_eq!(client.getport(MOUNT, 3, TCP).await.unwrap(), server.port);
    let mut nfs = server.mount("/data").await;
    assert_eq!(
        nfs.read_path("hello.txt").await,
        b"hello through the portmapper"
    );
    server.assert_alive();
}

#[test]
fn a_taken_portmapper_port_stops_startup_with_the_way_out() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let root = tempdir("nfsgw-portmap-");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nportmap = \"127.0.0.1:{port}\"\n\n{}",
        local_mount("data", root.path(), false, "")
    );
    let exited = match spawn(&config) {
        Ok(server) => panic!(
            "nfsgw started with its portmapper port taken:\n{}",
            server.stdout()
        ),
        Err(exited) => exited,
    };
    assert_eq!(exited.status.code(), Some(1), "{exited}");
    assert!(!exited.stdout.contains("serving"), "{exited}");
    let want = format!("nfsgw: server.portmap: 127.0.0.1:{port} is in use");
    assert!(exited.stderr.contains(&want), "{exited}");
    assert!(exited.stderr.contains("systemctl stop rpcbind"), "{exited}");
    assert!(exited.stderr.contains("\"off\""), "{exited}");
}

/// Whether this process can take 127.0.0.1:111 for TCP and UDP (root, and no rpcbind).
fn port_111_is_free() -> Result<(), String> {
    TcpListener::bind("127.0.0.1:111").map_err(|e| format!("TCP: {e}"))?;
    UdpSocket::bind("127.0.0.1:111").map_err(|e| format!("UDP: {e}"))?;
    Ok(())
}

/// The one test that takes port 111 (every other test leaves it alone): libnfs and rpcinfo find
/// everything with no port given, as mount.nfs and Windows' mount.exe do.
#[test]
fn on_port_111_nfs_ls_and_rpcinfo_need_no_ports() {
    if let Err(e) = port_111_is_free() {
        eprintln!("SKIPPED: 127.0.0.1:111 cannot be taken here ({e}): not root, or rpcbind runs");
        return;
    }
    let root = tempdir("nfsgw-portmap-111-");
    std::fs::write(root.path().join("a.txt"), b"12345").unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nportmap = \"127.0.0.1:111\"\n\n{}",
        local_mount("data", root.path(), false, "")
    );
    let server = match spawn(&config) {
        Ok(server) => server,
        Err(exited) if exited.stderr.contains("is in use") => {
            eprintln!("SKIPPED: 127.0.0.1:111 was taken just now\n{exited}");
            return;
        }
        Err(exited) => panic!("nfsgw did not start\n{exited}"),
    };
    assert_eq!(server.portmap_port(), Some(111));
    // The mount lines follow the ready line.
    let printed = std::time::Instant::now();
    while !server.stdout().contains("Windows: mount.exe") && printed.elapsed().as_secs() < 10 {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        server.stdout().contains("Windows: mount.exe"),
        "{}",
        server.stdout()
    );

    if let Some(nfs_ls) = libnfs_tool("nfs-ls") {
        let out = run_libnfs(&server, &nfs_ls, &["nfs://127.0.0.1/data"]);
        let names: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().last().map(str::to_string))
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["a.txt".to_string(), "sub".to_string()]),
            "nfs-ls output:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    let rpcinfo = ["/usr/sbin/rpcinfo", "/sbin/rpcinfo", "/usr/bin/rpcinfo"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file());
    let Some(rpcinfo) = rpcinfo else {
        eprintln!(
            "SKIPPED (rpcinfo part): rpcinfo is not installed (Debian: apt-get install rpcbind)"
        );
        return;
    };
    let out = run_with_timeout(
        Command::new(rpcinfo).args(["-p", "127.0.0.1"]),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rpcinfo -p: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    // "   100003    3   tcp  20490  nfs" under a header line.
    let listed: BTreeSet<(u32, u32, u32, u32)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let prot = match f[2] {
                "tcp" => TCP,
                "udp" => UDP,
                other => panic!("protocol {other} in {l:?}"),
            };
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                prot,
                f[3].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, served(server.port, 111), "rpcinfo -p:\n{text}");
}

/// `nfsgw mount --dry-run` prints the mount command built from the config's `listen` address
/// (or `--server`), and `nfsgw umount --dry-run` the unmount command; neither runs anything.
/// Locks go to nfsgw (no `nolock`) unless the mount sets `locks = false`.
#[test]
fn nfsgw_mount_and_umount_dry_runs_print_the_commands() {
    let root = tempdir("nfsgw-mount-cmd-");
    let at = root.path().join("mnt");
    std::fs::create_dir(&at).unwrap();
    let at = at.to_str().unwrap();
    let config = root.path().join("mounts.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"0.0.0.0:20490\"\n\n{}{}",
            local_mount("data", root.path(), false, ""),
            local_mount("own", root.path(), false, "").replacen(
                "read_only",
                "locks = false\nread_only",
                1
            ),
        ),
    )
    .unwrap();
    let nfsgw = |args: &[&str]| {
        run_with_timeout(
            Command::new(crate::harness::nfsgw_binary()).args(args),
            Duration::from_secs(30),
        )
    };
    let want = format!(
        "mount -t nfs -o vers=3,proto=tcp,port=20490,mountport=20490,mountproto=tcp,\
         rsize=1048576,wsize=1048576 127.0.0.1:/data {at}"
    );
    for args in [
        vec![
            "mount",
            "data",
            at,
            "--config",
            config.to_str().unwrap(),
            "--dry-run",
        ],
        vec![
            "mount",
            "/data",
            at,
            "--server",
            "127.0.0.1:20490",
            "--dry-run",
        ],
    ] {
        let out = nfsgw(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Through sudo when not root.
        let line = stdout.trim().trim_start_matches("sudo ");
        assert_eq!(line, want, "{args:?}");
    }
    let config = config.to_str().unwrap();
    let out = nfsgw(&["mount", "own", at, "--config", config, "--dry-run"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("sudo "),
        format!(
            "mount -t nfs -o vers=3,proto=tcp,port=20490,mountport=20490,mountproto=tcp,nolock,\
             rsize=1048576,wsize=1048576 127.0.0.1:/own {at}"
        )
    );
    let out = nfsgw(&["mount", "nosuch", at, "--config", config]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no mount \"nosuch\"; its mounts: data, own")
    );
    let out = nfsgw(&["umount", at, "--dry-run"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("sudo "),
        format!("umount {at}")
    );
}
