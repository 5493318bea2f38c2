//! Byte-range locks through NLM v4, played from a raw RPC client on the NFS port: TEST, LOCK
//! (waiting or not), UNLOCK, CANCEL and FREE_ALL between clients, and what a hostile client
//! cannot do: free another address's locks by naming it, or lock a handle that is no file of a
//! mount it may use.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

use crate::harness::{squashed_local_mount, tempdir, Server};
use crate::raw_rpc::{call_as, opaque, roundtrip, word, words};

const NLM: (u32, u32) = (100021, 4);
/// Procedures.
const TEST: u32 = 1;
const LOCK: u32 = 2;
const CANCEL: u32 = 3;
const UNLOCK: u32 = 4;
const FREE_ALL: u32 = 23;
/// nlm4_stats.
const GRANTED: u32 = 0;
const DENIED: u32 = 1;
const BLOCKED: u32 = 3;
const STALE_FH: u32 = 7;

/// One lock owner: the name its client gives and its process id.
struct Owner<'a> {
    name: &'a str,
    svid: u32,
}

/// An `nlm4_lock` of `owner` on `fh` over `offset`, `len` (0: to the end).
fn alock(owner: &Owner, fh: &[u8], offset: u64, len: u64) -> Vec<u8> {
    let mut out = opaque(owner.name.as_bytes());
    out.extend(opaque(fh));
    out.extend(opaque(&owner.svid.to_be_bytes()));
    out.extend(words(&[owner.svid]));
    out.extend(offset.to_be_bytes());
    out.extend(len.to_be_bytes());
    out
}

/// An NLM client on one connection.
struct Nlm {
    stream: TcpStream,
    xid: u32,
}

impl Nlm {
    async fn connect(from: Ipv4Addr, port: u16) -> Nlm {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((from, 0))).unwrap();
        let stream = socket
            .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
            .unwrap();
        Nlm { stream, xid: 0 }
    }

    /// Calls `procedure` with `args` after a cookie; the reply (with its record mark).
    async fn call(&mut self, procedure: u32, args: &[u8]) -> Vec<u8> {
        self.xid += 1;
        let mut body = opaque(&self.xid.to_be_bytes());
        body.extend_from_slice(args);
        let record = call_as(self.xid, NLM, procedure, 1000, &body);
        let reply = roundtrip(&mut self.stream, &record).await.unwrap();
        assert_eq!(word(&reply, 24), 0, "accepted");
        assert_eq!(
            &reply[32..36],
            self.xid.to_be_bytes(),
            "the cookie is echoed"
        );
        reply
    }

    /// TEST: the status, and the holder's (svid, offset, len) when DENIED.
    async fn test(&mut self, exclusive: bool, lock: &[u8]) -> (u32, Option<(u32, u64, u64)>) {
        let mut args = words(&[exclusive as u32]);
        args.extend_from_slice(lock);
        let reply = self.call(TEST, &args).await;
        let stat = word(&reply, 36);
        if stat != DENIED {
            return (stat, None);
        }
        // holder: exclusive, svid, oh (4 bytes here), offset, len.
        let svid = word(&reply, 44);
        let offset = u64::from(word(&reply, 56)) << 32 | u64::from(word(&reply, 60));
        let len = u64::from(word(&reply, 64)) << 32 | u64::from(word(&reply, 68));
        (stat, Some((svid, offset, len)))
    }

    async fn lock(&mut self, block: bool, exclusive: bool, lock: &[u8]) -> u32 {
        let mut args = words(&[block as u32, exclusive as u32]);
        args.extend_from_slice(lock);
        args.extend(words(&[0, 1])); // not a reclaim; the client's NSM state
        word(&self.call(LOCK, &args).await, 36)
    }

    async fn cancel(&mut self, exclusive: bool, lock: &[u8]) -> u32 {
        let mut args = words(&[1, exclusive as u32]);
        args.extend_from_slice(lock);
        word(&self.call(CANCEL, &args).await, 36)
    }

    async fn unlock(&mut self, lock: &[u8]) -> u32 {
        word(&self.call(UNLOCK, lock).await, 36)
    }

    /// FREE_ALL of the client named `name` (no cookie; a void reply).
    async fn free_all(&mut self, name: &str) {
        self.xid += 1;
        let mut args = opaque(name.as_bytes());
        args.extend(words(&[2]));
        let record = call_as(self.xid, NLM, FREE_ALL, 1000, &args);
        let reply = roundtrip(&mut self.stream, &record).await.unwrap();
        assert_eq!(word(&reply, 24), 0, "accepted");
    }
}

/// A server with one mount holding the file `f`, and that file's handle.
async fn server_with_a_file() -> (Server, tempfile::TempDir, Vec<u8>) {
    let dir = tempdir("nfsgw-locks-");
    std::fs::write(dir.path().join("f"), b"locked").unwrap();
    let server = Server::start_with(&format!(
        "portmap = \"off\"\n{}",
        squashed_local_mount("data", dir.path(), "")
    ));
    let mut client = server.mount("/data").await;
    let fh = client.lookup_path("f").await.unwrap();
    (server, dir, fh.data.0.to_vec())
}

#[tokio::test]
async fn locks_conflict_between_clients_and_a_waiter_gets_the_lock_when_it_is_freed() {
    let (server, _dir, fh) = server_with_a_file().await;
    let (a, b) = (
        Owner {
            name: "alpha",
            svid: 11,
        },
        Owner {
            name: "beta",
            svid: 22,
        },
    );
    let mut nlm = Nlm::connect(Ipv4Addr::LOCALHOST, server.port).await;
    assert_eq!(
        nlm.test(true, &alock(&a, &fh, 0, 10)).await,
        (GRANTED, None)
    );
    assert_eq!(nlm.lock(false, true, &alock(&a, &fh, 0, 10)).await, GRANTED);
    // Another owner sees the lock and who holds it; a shared lock past it is fine.
    assert_eq!(
        nlm.test(false, &alock(&b, &fh, 5, 1)).await,
        (DENIED, Some((11, 0, 10)))
    );
    assert_eq!(
        nlm.lock(false, false, &alock(&b, &fh, 10, 0)).await,
        GRANTED
    );
    assert_eq!(nlm.lock(false, true, &alock(&b, &fh, 9, 2)).await, DENIED);
    // A waiting LOCK is BLOCKED until the holder unlocks; the client's retry is granted.
    assert_eq!(nlm.lock(true, true, &alock(&b, &fh, 0, 5)).await, BLOCKED);
    assert_eq!(nlm.unlock(&alock(&a, &fh, 0, 10)).await, GRANTED);
    assert_eq!(nlm.lock(true, true, &alock(&b, &fh, 0, 5)).await, GRANTED);
    assert_eq!(
        nlm.test(false, &alock(&a, &fh, 0, 1)).await,
        (DENIED, Some((22, 0, 5)))
    );
    // A cancelled wait leaves nothing behind.
    assert_eq!(nlm.lock(true, true, &alock(&a, &fh, 0, 1)).await, BLOCKED);
    assert_eq!(nlm.cancel(true, &alock(&a, &fh, 0, 1)).await, GRANTED);
    // FREE_ALL of beta frees everything beta held.
    nlm.free_all("beta").await;
    assert_eq!(nlm.test(true, &alock(&a, &fh, 0, 0)).await, (GRANTED, None));
}

#[tokio::test]
async fn a_client_cannot_free_another_address_locks_nor_lock_what_is_no_file() {
    let (server, _dir, fh) = server_with_a_file().await;
    let a = Owner {
        name: "alpha",
        svid: 1,
    };
    let mut first = Nlm::connect(Ipv4Addr::LOCALHOST, server.port).await;
    assert_eq!(
        first.lock(false, true, &alock(&a, &fh, 0, 0)).await,
        GRANTED
    );
    // Another address that gives the same name is another client: its FREE_ALL frees only
    // its own locks, and its locks conflict with the first client's.
    let mut other = Nlm::connect(Ipv4Addr::new(127, 0, 0, 2), server.port).await;
    other.free_all("alpha").await;
    assert_eq!(
        other.test(true, &alock(&a, &fh, 100, 1)).await,
        (DENIED, Some((1, 0, 0)))
    );
    // A handle that is no handle of nfsgw's is a stale file handle, and locks nothing.
    let mut forged = fh.clone();
    forged[0] ^= 0xff;
    assert_eq!(
        other.lock(false, true, &alock(&a, &forged, 0, 0)).await,
        STALE_FH
    );
    assert_eq!(
        other.test(true, &alock(&a, &forged, 0, 0)).await,
        (STALE_FH, None)
    );
}
