//! Byte-range locks through NLM v4, played from a raw RPC client on the NFS port: TEST, LOCK
//! (waiting or not), UNLOCK, CANCEL and FREE_ALL between clients; NSM (a client's SM_NOTIFY
//! frees its locks; after a restart nfsgw notifies the hosts that held locks and grants only
//! reclaims in its grace period); mounts without locks; and what a hostile client cannot do:
//! free another address's locks by naming it, lock a handle that is no file of a mount it may
//! use, take more than its share of the table, or trip on ranges at the end of 64 bits.

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
const SHARE: u32 = 20;
const UNSHARE: u32 = 21;
const NM_LOCK: u32 = 22;
const FREE_ALL: u32 = 23;
/// fsh4_access and fsh4_mode (what a share denies) bits.
const R: u32 = 1;
const W: u32 = 2;
/// nlm4_stats.
const GRANTED: u32 = 0;
const DENIED: u32 = 1;
const DENIED_NOLOCKS: u32 = 2;
const BLOCKED: u32 = 3;
const DENIED_GRACE_PERIOD: u32 = 4;
const NSM: (u32, u32) = (100024, 1);
const SM_STAT: u32 = 1;
const SM_MON: u32 = 2;
const SM_NOTIFY: u32 = 6;
/// Locks one client may hold (nfsgw's `LIMITS.per_client`).
const PER_CLIENT: u32 = 4096;
const STALE_FH: u32 = 7;

/// One lock owner: the name its client gives and its process id.
struct Owner<'a> {
    name: &'a str,
    svid: u32,
}

fn owner(name: &str, svid: u32) -> Owner<'_> {
    Owner { name, svid }
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
        self.lock_or_reclaim(block, exclusive, false, lock).await
    }

    async fn lock_or_reclaim(
        &mut self,
        block: bool,
        exclusive: bool,
        reclaim: bool,
        lock: &[u8],
    ) -> u32 {
        let mut args = words(&[block as u32, exclusive as u32]);
        args.extend_from_slice(lock);
        args.extend(words(&[reclaim as u32, 1])); // the client's NSM state
        word(&self.call(LOCK, &args).await, 36)
    }

    /// SHARE or UNSHARE of `owner` (its svid as its owner handle) on `fh`: the status.
    async fn share(
        &mut self,
        procedure: u32,
        owner: &Owner<'_>,
        fh: &[u8],
        access: u32,
        deny: u32,
    ) -> u32 {
        let mut args = opaque(owner.name.as_bytes());
        args.extend(opaque(fh));
        args.extend(opaque(&owner.svid.to_be_bytes()));
        args.extend(words(&[deny, access, 0]));
        let reply = self.call(procedure, &args).await;
        assert_eq!(reply.len(), 44, "cookie, status, sequence");
        word(&reply, 36)
    }

    /// NULL: whether the server answers it (accepted, SUCCESS).
    async fn null(&mut self) -> bool {
        self.xid += 1;
        let record = call_as(self.xid, NLM, 0, 1000, &[]);
        let reply = roundtrip(&mut self.stream, &record).await.unwrap();
        (word(&reply, 24), reply.len()) == (0, 28)
    }

    /// A call of NSM's `procedure`; its results.
    async fn nsm(&mut self, procedure: u32, args: &[u8]) -> Vec<u8> {
        self.xid += 1;
        let record = call_as(self.xid, NSM, procedure, 0, args);
        let reply = roundtrip(&mut self.stream, &record).await.unwrap();
        assert_eq!(word(&reply, 24), 0, "accepted");
        reply[28..].to_vec()
    }

    /// SM_STAT: nfsgw's state number.
    async fn nsm_state(&mut self) -> u32 {
        let results = self.nsm(SM_STAT, &opaque(b"nfsgw")).await;
        assert_eq!(word(&results, 0), 0, "STAT_SUCC");
        word(&results, 4)
    }

    /// SM_NOTIFY from this client: it restarted under `name`.
    async fn sm_notify(&mut self, name: &str) {
        let mut args = opaque(name.as_bytes());
        args.extend(words(&[3]));
        assert!(self.nsm(SM_NOTIFY, &args).await.is_empty(), "a void reply");
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
    server_with_a_file_in_mount(server_keys, "").await
}

/// As [`server_with_a_file`], with `mount_keys` in the mount's table.
async fn server_with_a_file_in_mount(
    server_keys: &str,
    mount_keys: &str,
) -> (Server, tempfile::TempDir, Vec<u8>) {
    let dir = tempdir("nfsgw-locks-");
    std::fs::write(dir.path().join("f"), b"locked").unwrap();
    let server = Server::start_with(&format!(
        "portmap = \"off\"\n{server_keys}\n{}",
        squashed_local_mount("data", dir.path(), mount_keys)
    ));
    let mut client = server.mount("/data").await;
    let fh = client.lookup_path("f").await.unwrap();
    (server, dir, fh.data.0.to_vec())
}

#[tokio::test]
async fn locks_conflict_between_clients_and_a_waiter_gets_the_lock_when_it_is_freed() {
    let (server, _dir, fh) = server_with_a_file("").await;
    let (a, b) = (owner("alpha", 11), owner("beta", 22));
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
    let a = owner("alpha", 1);
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
/// (GETPORT names the same port), as its lock manager and as its status monitor, which record
/// each call they get (program, procedure and arguments); GRANTED is answered with
/// `granted_answer`.
struct ClientLockManager {
    port: u16,
    calls: tokio::sync::mpsc::UnboundedReceiver<(u32, u32, Vec<u8>)>,
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
                        if prog != 100_000 {
                            let _ = tx.send((prog, proc_, args));
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
        self.next_call_of(NLM.0).await
    }

    /// The next call the client got, which is one of `program`'s: (procedure, arguments).
    async fn next_call_of(&mut self, program: u32) -> (u32, Vec<u8>) {
        let (prog, proc_, args) = tokio::time::timeout(crate::raw_rpc::GENEROUS, self.calls.recv())
            .await
            .expect("a callback within the deadline")
            .expect("the client's lock manager runs");
        assert_eq!(prog, program, "the call's program");
        (proc_, args)
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
    let (a, b) = (owner("alpha", 1), owner("beta", 2));
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
    let a = owner("alpha", 1);
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
    let b = owner("beta", 2);
    let mut args = opaque(b"t");
    args.extend(words(&[1]));
    args.extend(alock(&b, &fh, 0, 1));
    roundtrip(&mut nlm.stream, &call_as(91, NLM, 6, 1000, &args))
        .await
        .unwrap();
    let (proc_, res) = manager.next_call().await;
    assert_eq!((proc_, word(&res, 8)), (11, DENIED));
}

#[tokio::test]
async fn a_mount_without_locks_refuses_every_lock_with_denied_nolocks() {
    let (server, _dir, fh) = server_with_a_file_in_mount("", "locks = false").await;
    let a = owner("alpha", 1);
    let mut nlm = Nlm::connect(Ipv4Addr::LOCALHOST, server.port).await;
    let whole = alock(&a, &fh, 0, 0);
    assert_eq!(nlm.lock(false, true, &whole).await, DENIED_NOLOCKS);
    assert_eq!(nlm.lock(true, false, &whole).await, DENIED_NOLOCKS);
    assert_eq!(nlm.test(true, &whole).await, (DENIED_NOLOCKS, None));
    assert_eq!(nlm.unlock(&whole).await, DENIED_NOLOCKS);
    assert_eq!(nlm.share(SHARE, &a, &fh, R, 0).await, DENIED_NOLOCKS);
}

#[tokio::test]
async fn a_client_sm_notify_frees_its_locks_and_only_its_own() {
    let (server, _dir, fh) = server_with_a_file("").await;
    let (a, b) = (owner("alpha", 1), owner("beta", 2));
    let mut nlm = Nlm::connect(Ipv4Addr::LOCALHOST, server.port).await;
    let state = nlm.nsm_state().await;
    assert_eq!(state % 2, 1, "odd while nfsgw runs");
    // nfsgw takes no monitoring requests: it has no local lock manager to call back.
    let mut mon = opaque(b"alpha");
    mon.extend(opaque(b"localhost"));
    mon.extend(words(&[100021, 4, 16, 0, 0, 0, 0]));
    assert_eq!(
        words(&[1, state]),
        nlm.nsm(SM_MON, &mon).await,
        "STAT_FAIL and the state"
    );
    assert_eq!(nlm.lock(false, true, &alock(&a, &fh, 0, 10)).await, GRANTED);
    assert_eq!(
        nlm.lock(false, true, &alock(&b, &fh, 10, 10)).await,
        GRANTED
    );
    // Another address that claims alpha restarted frees nothing.
    let mut other = Nlm::connect(Ipv4Addr::new(127, 0, 0, 2), server.port).await;
    other.sm_notify("alpha").await;
    assert_eq!(other.test(true, &alock(&a, &fh, 0, 1)).await.0, DENIED);
    // The client itself: alpha's locks go, beta's stay; by its address, all of them go.
    nlm.sm_notify("alpha").await;
    assert_eq!(
        other.test(true, &alock(&a, &fh, 0, 10)).await,
        (GRANTED, None)
    );
    assert_eq!(
        other.test(true, &alock(&a, &fh, 10, 1)).await,
        (DENIED, Some((2, 10, 10)))
    );
    nlm.sm_notify("127.0.0.1").await;
    assert_eq!(
        other.test(true, &alock(&a, &fh, 0, 0)).await,
        (GRANTED, None)
    );
}

#[tokio::test]
async fn after_a_restart_lock_holders_are_notified_and_only_reclaims_are_granted_in_grace() {
    let mut client = ClientLockManager::start(GRANTED).await;
    // A grace period far longer than the test, so that nothing here races with its end.
    let keys = format!(
        "client_portmap_port = {}\nlock_grace_seconds = 100000",
        client.port
    );
    let (server, _dir, fh) = server_with_a_file(&keys).await;
    let (a, b) = (owner("alpha", 1), owner("beta", 2));
    let mut nlm = Nlm::connect(Ipv4Addr::LOCALHOST, server.port).await;
    let before = nlm.nsm_state().await;
    // A fresh start has no grace period, and the lock makes the client a recorded holder.
    assert_eq!(nlm.lock(false, true, &alock(&a, &fh, 0, 10)).await, GRANTED);
    drop(nlm);

    let server = server.restart();
    let (proc_, args) = client.next_call_of(NSM.0).await;
    assert_eq!(proc_, SM_NOTIFY);
    let mut nlm = Nlm::connect(Ipv4Addr::LOCALHOST, server.port).await;
    let after = nlm.nsm_state().await;
    assert!(after > before && after % 2 == 1, "{before} then {after}");
    let mut want = opaque(b"127.0.0.1");
    want.extend(words(&[after]));
    assert_eq!(
        args, want,
        "SM_NOTIFY names nfsgw's address and its new state"
    );

    // In grace: a new lock and a TEST wait; the reclaim of the old lock is granted.
    assert_eq!(
        nlm.lock(false, true, &alock(&b, &fh, 20, 1)).await,
        DENIED_GRACE_PERIOD
    );
    assert_eq!(
        nlm.test(true, &alock(&b, &fh, 20, 1)).await,
        (DENIED_GRACE_PERIOD, None)
    );
    assert_eq!(
        nlm.lock_or_reclaim(false, true, true, &alock(&a, &fh, 0, 10))
            .await,
        GRANTED
    );
    assert_eq!(
        nlm.lock_or_reclaim(false, true, true, &alock(&b, &fh, 5, 1))
            .await,
        DENIED,
        "a reclaim still conflicts with what is reclaimed"
    );
    assert_eq!(nlm.unlock(&alock(&a, &fh, 0, 10)).await, GRANTED);
}

#[tokio::test]
async fn a_flood_of_locks_stops_at_the_client_share_and_the_server_still_answers() {
    let (server, _dir, fh) = server_with_a_file("").await;
    let a = owner("flood", 1);
    let mut nlm = Nlm::connect(Ipv4Addr::LOCALHOST, server.port).await;
    // Ranges with gaps between them, so that none merges with another.
    for i in 0..u64::from(PER_CLIENT) {
        assert_eq!(
            nlm.lock(false, true, &alock(&a, &fh, i * 2, 1)).await,
            GRANTED,
            "lock {i}"
        );
    }
    let more = alock(&a, &fh, u64::from(PER_CLIENT) * 2, 1);
    assert_eq!(nlm.lock(false, true, &more).await, DENIED_NOLOCKS);
    assert_eq!(nlm.lock(true, true, &more).await, DENIED_NOLOCKS);
    assert!(nlm.null().await, "NULL is still answered");
    // Another client still gets its locks, and the flooder's FREE_ALL gives its share back.
    let b = owner("calm", 2);
    let mut other = Nlm::connect(Ipv4Addr::new(127, 0, 0, 2), server.port).await;
    assert_eq!(
        other.lock(false, true, &alock(&b, &fh, 1, 1)).await,
        GRANTED
    );
    nlm.free_all("flood").await;
    assert_eq!(nlm.lock(false, true, &more).await, GRANTED);
}

#[tokio::test]
async fn ranges_at_the_end_of_64_bits_and_unknown_owners_are_handled() {
    let (server, _dir, fh) = server_with_a_file("").await;
    let (a, b, stranger) = (
        owner("alpha", 1),
        owner("beta", 2),
        owner("nobody-knows", 99),
    );
    let mut nlm = Nlm::connect(Ipv4Addr::LOCALHOST, server.port).await;
    // A range whose end overflows 64 bits reaches the end of the offsets.
    let near_end = u64::MAX - 10;
    assert_eq!(
        nlm.lock(false, true, &alock(&a, &fh, near_end, 100)).await,
        GRANTED
    );
    assert_eq!(
        nlm.test(true, &alock(&b, &fh, u64::MAX - 1, 1)).await,
        (DENIED, Some((1, near_end, 0)))
    );
    assert_eq!(
        nlm.test(true, &alock(&b, &fh, 0, near_end)).await,
        (GRANTED, None),
        "the range just below is free"
    );
    assert_eq!(
        nlm.lock(false, true, &alock(&b, &fh, 0, u64::MAX)).await,
        DENIED
    );
    // An UNLOCK or CANCEL by an owner that holds nothing answers GRANTED and frees nothing.
    let everything = alock(&stranger, &fh, 0, 0);
    assert_eq!(nlm.unlock(&everything).await, GRANTED);
    assert_eq!(nlm.cancel(true, &everything).await, GRANTED);
    assert_eq!(
        nlm.test(true, &alock(&b, &fh, u64::MAX - 1, 1)).await,
        (DENIED, Some((1, near_end, 0)))
    );
}

/// One call over UDP to nfsgw's NFS port (a datagram is a record without its mark); the
/// reply, with 4 bytes of room in front so that offsets match the TCP replies'.
async fn udp_call(port: u16, program: (u32, u32), procedure: u32, args: &[u8]) -> Vec<u8> {
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let record = call_as(77, program, procedure, 0, args);
    socket
        .send_to(&record[4..], (Ipv4Addr::LOCALHOST, port))
        .await
        .unwrap();
    let mut buf = vec![0; 4 + 8192];
    let n = tokio::time::timeout(crate::raw_rpc::GENEROUS, socket.recv(&mut buf[4..]))
        .await
        .expect("a UDP reply within the deadline")
        .unwrap();
    buf.truncate(4 + n);
    assert_eq!(word(&buf, 4), 77, "the xid is echoed");
    buf
}

#[tokio::test]
async fn nlm_and_nsm_answer_over_udp_and_an_sm_notify_there_frees_the_client_locks() {
    let (server, _dir, fh) = server_with_a_file("").await;
    let a = owner("alpha", 1);
    let mut nlm = Nlm::connect(Ipv4Addr::LOCALHOST, server.port).await;
    assert_eq!(nlm.lock(false, true, &alock(&a, &fh, 0, 0)).await, GRANTED);
    let state = nlm.nsm_state().await;

    assert_eq!(word(&udp_call(server.port, NLM, 0, &[]).await, 24), 0);
    let stat = udp_call(server.port, NSM, SM_STAT, &opaque(b"nfsgw")).await;
    assert_eq!(
        (word(&stat, 24), word(&stat, 28), word(&stat, 32)),
        (0, 0, state)
    );
    // NFS and MOUNT are not served over UDP.
    assert_eq!(
        word(&udp_call(server.port, (100003, 3), 0, &[]).await, 24),
        1,
        "PROG_UNAVAIL"
    );

    let mut notify = opaque(b"alpha");
    notify.extend(words(&[5]));
    let reply = udp_call(server.port, NSM, SM_NOTIFY, &notify).await;
    assert_eq!((word(&reply, 24), reply.len()), (0, 28), "accepted, void");
    let b = owner("beta", 2);
    assert_eq!(nlm.test(true, &alock(&b, &fh, 0, 0)).await, (GRANTED, None));
}

#[tokio::test]
async fn share_reservations_conflict_between_owners_and_go_with_unshare_free_all_and_sm_notify() {
    let (server, _dir, fh) = server_with_a_file("").await;
    let (a, b, c) = (owner("alpha", 1), owner("beta", 2), owner("gamma", 3));
    let mut nlm = Nlm::connect(Ipv4Addr::LOCALHOST, server.port).await;
    // alpha reads and denies writers: beta may read but not write.
    assert_eq!(nlm.share(SHARE, &a, &fh, R, W).await, GRANTED);
    assert_eq!(nlm.share(SHARE, &b, &fh, W, 0).await, DENIED);
    assert_eq!(nlm.share(SHARE, &b, &fh, R, 0).await, GRANTED);
    assert_eq!(
        nlm.share(SHARE, &c, &fh, 0, R).await,
        DENIED,
        "denies the readers"
    );
    // Once alpha unshares, beta may share again for writing.
    assert_eq!(nlm.share(UNSHARE, &a, &fh, R, W).await, GRANTED);
    assert_eq!(nlm.share(SHARE, &b, &fh, R | W, 0).await, GRANTED);
    // FREE_ALL of beta drops its share: gamma may deny everything.
    nlm.free_all("beta").await;
    assert_eq!(nlm.share(SHARE, &c, &fh, R | W, R | W).await, GRANTED);
    assert_eq!(nlm.share(SHARE, &a, &fh, R, 0).await, DENIED);
    // gamma's client restarts (SM_NOTIFY): its share goes too.
    nlm.sm_notify("gamma").await;
    assert_eq!(nlm.share(SHARE, &a, &fh, R, 0).await, GRANTED);
    // An UNSHARE of what is not shared is harmless, and NM_LOCK locks as LOCK does.
    assert_eq!(nlm.share(UNSHARE, &c, &fh, 0, 0).await, GRANTED);
    let mut args = words(&[0, 1]);
    args.extend(alock(&c, &fh, 0, 1));
    args.extend(words(&[0, 1]));
    assert_eq!(word(&nlm.call(NM_LOCK, &args).await, 36), GRANTED);
    assert_eq!(
        nlm.test(true, &alock(&b, &fh, 0, 1)).await,
        (DENIED, Some((3, 0, 1)))
    );
}
