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

/// A server with one mount holding the file `f`, `server_keys` in its `[server]`, and that
/// file's handle.
async fn server_with_a_file(server_keys: &str) -> (Server, tempfile::TempDir, Vec<u8>) {
    let dir = tempdir("nfsgw-locks-");
    std::fs::write(dir.path().join("f"), b"locked").unwrap();
    let server = Server::start_with(&format!(
        "portmap = \"off\"\n{server_keys}\n{}",
        squashed_local_mount("data", dir.path(), "")
    ));
    let mut client = server.mount("/data").await;
    let fh = client.lookup_path("f").await.unwrap();
    (server, dir, fh.data.0.to_vec())
}

#[tokio::test]
async fn locks_conflict_between_clients_and_a_waiter_gets_the_lock_when_it_is_freed() {
    let (server, _dir, fh) = server_with_a_file("").await;
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
    let (server, _dir, fh) = server_with_a_file("").await;
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

/// A client's side of NLM callbacks: one TCP port that answers as the client's portmapper
/// (GETPORT names the same port) and as its lock manager, which records each call it gets
/// (procedure and arguments) and answers GRANTED with `granted_answer`.
struct ClientLockManager {
    port: u16,
    calls: tokio::sync::mpsc::UnboundedReceiver<(u32, Vec<u8>)>,
}

impl ClientLockManager {
    async fn start(granted_answer: u32) -> ClientLockManager {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, calls) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while let Ok(record) = crate::raw_rpc::reply(&mut stream).await {
                        let (xid, prog, proc_) =
                            (word(&record, 4), word(&record, 16), word(&record, 24));
                        // Credentials and verifier, then the arguments.
                        let padded = |len: u32| (len as usize).div_ceil(4) * 4;
                        let cred = 36 + padded(word(&record, 32));
                        let verf = cred + 8 + padded(word(&record, cred + 4));
                        let args = record[verf..].to_vec();
                        let results = match (prog, proc_) {
                            (100_000, 3) => words(&[u32::from(port)]),
                            (100_021, 5) => {
                                let cookie_len = (word(&args, 0) as usize).div_ceil(4) * 4;
                                let mut res = args[..4 + cookie_len].to_vec();
                                res.extend(words(&[granted_answer]));
                                res
                            }
                            _ => Vec::new(),
                        };
                        if prog == 100_021 {
                            let _ = tx.send((proc_, args));
                        }
                        let mut reply = words(&[0, xid, 1, 0, 0, 0, 0]);
                        reply.extend(results);
                        let mark = (reply.len() as u32 - 4) | crate::raw_rpc::LAST_FRAGMENT;
                        reply[..4].copy_from_slice(&mark.to_be_bytes());
                        if tokio::io::AsyncWriteExt::write_all(&mut stream, &reply)
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        ClientLockManager { port, calls }
    }

    /// The next call the client's lock manager got: (procedure, arguments).
    async fn next_call(&mut self) -> (u32, Vec<u8>) {
        tokio::time::timeout(crate::raw_rpc::GENEROUS, self.calls.recv())
            .await
            .expect("a callback within the deadline")
            .expect("the client's lock manager runs")
    }
}

/// A server whose NLM calls clients back at `client_portmap_port`, with one file `f`.
async fn server_calling_back_at(client_portmap_port: u16) -> (Server, tempfile::TempDir, Vec<u8>) {
    server_with_a_file(&format!("client_portmap_port = {client_portmap_port}")).await
}

#[tokio::test]
async fn a_waiting_client_is_called_back_with_granted_and_one_that_declines_frees_the_lock() {
    let mut manager = ClientLockManager::start(GRANTED).await;
    let (server, _dir, fh) = server_calling_back_at(manager.port).await;
    let (a, b) = (
        Owner {
            name: "alpha",
            svid: 1,
        },
        Owner {
            name: "beta",
            svid: 2,
        },
    );
    let mut nlm = Nlm::connect(Ipv4Addr::LOCALHOST, server.port).await;
    assert_eq!(nlm.lock(false, true, &alock(&a, &fh, 0, 0)).await, GRANTED);
    assert_eq!(nlm.lock(true, true, &alock(&b, &fh, 0, 0)).await, BLOCKED);
    let blocked_cookie = nlm.xid;
    assert_eq!(nlm.unlock(&alock(&a, &fh, 0, 0)).await, GRANTED);
    // GRANTED carries the waiting request's cookie, mode and lock as the client sent them.
    let (proc_, args) = manager.next_call().await;
    assert_eq!(proc_, 5, "NLM4_GRANTED");
    let mut want = opaque(&blocked_cookie.to_be_bytes());
    want.extend(words(&[1]));
    want.extend(alock(&b, &fh, 0, 0));
    assert_eq!(args, want);
    assert_eq!(
        nlm.test(false, &alock(&a, &fh, 0, 1)).await,
        (DENIED, Some((2, 0, 0)))
    );

    // A client that answers the GRANTED with DENIED (it stopped waiting) has the lock freed.
    let mut declining = ClientLockManager::start(DENIED).await;
    let (server, _dir2, fh) = server_calling_back_at(declining.port).await;
    let mut nlm = Nlm::connect(Ipv4Addr::LOCALHOST, server.port).await;
    assert_eq!(nlm.lock(false, true, &alock(&a, &fh, 0, 0)).await, GRANTED);
    assert_eq!(nlm.lock(true, true, &alock(&b, &fh, 0, 0)).await, BLOCKED);
    assert_eq!(nlm.unlock(&alock(&a, &fh, 0, 0)).await, GRANTED);
    assert_eq!(declining.next_call().await.0, 5);
    let freed = tokio::time::timeout(crate::raw_rpc::GENEROUS, async {
        while nlm.test(true, &alock(&a, &fh, 0, 0)).await.0 != GRANTED {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(freed.is_ok(), "the declined lock is released");
}

#[tokio::test]
async fn the_asynchronous_msg_calls_are_answered_through_the_client_res_procedures() {
    let mut manager = ClientLockManager::start(GRANTED).await;
    let (server, _dir, fh) = server_calling_back_at(manager.port).await;
    let a = Owner {
        name: "alpha",
        svid: 1,
    };
    let mut nlm = Nlm::connect(Ipv4Addr::LOCALHOST, server.port).await;
    // LOCK_MSG (7): an empty reply now, LOCK_RES (12) to the client with the cookie and status.
    let mut args = opaque(b"msg-cookie");
    args.extend(words(&[0, 1]));
    args.extend(alock(&a, &fh, 0, 0));
    args.extend(words(&[0, 1]));
    let reply = roundtrip(&mut nlm.stream, &call_as(90, NLM, 7, 1000, &args))
        .await
        .unwrap();
    assert_eq!((word(&reply, 24), reply.len()), (0, 28), "an empty reply");
    let (proc_, res) = manager.next_call().await;
    assert_eq!(proc_, 12, "NLM4_LOCK_RES");
    let mut want = opaque(b"msg-cookie");
    want.extend(words(&[GRANTED]));
    assert_eq!(res, want);
    // TEST_MSG (6) by another owner: TEST_RES (11) says DENIED, with the holder.
    let b = Owner {
        name: "beta",
        svid: 2,
    };
    let mut args = opaque(b"t");
    args.extend(words(&[1]));
    args.extend(alock(&b, &fh, 0, 1));
    roundtrip(&mut nlm.stream, &call_as(91, NLM, 6, 1000, &args))
        .await
        .unwrap();
    let (proc_, res) = manager.next_call().await;
    assert_eq!((proc_, word(&res, 8)), (11, DENIED));
}
