//! What the portmapper reports and how it answers: a fixed table of what nfsgw serves (NFS v3,
//! MOUNT v3, NLM v4 and NSM v1 over TCP on the NFS port, NLM and NSM over UDP there too when
//! the port is served over UDP, the portmapper itself over TCP and UDP), and the
//! answer to one call from it, in portmap version 2 or rpcbind versions 3 and 4. Registrations
//! (SET, UNSET) are refused with `false`, CALLIT and the other procedures answer
//! `PROC_UNAVAIL`, and a malformed call gets `GARBAGE_ARGS` or no answer.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use nfs3_types::portmap::{mapping, IPPROTO_TCP, IPPROTO_UDP};
use nfs3_types::rpc::accept_stat_data;
use nfs3_types::xdr_codec::{List, Opaque, Pack, Void};

use crate::rpc::{self, Reader};

pub const PROGRAM: u32 = nfs3_types::portmap::PROGRAM;
const LOWEST_VERSION: u32 = 2;
const HIGHEST_VERSION: u32 = 4;
pub(super) const NFS_PROGRAM: u32 = nfs3_types::nfs3::PROGRAM;
const MOUNT_PROGRAM: u32 = nfs3_types::mount::PROGRAM;
/// The network lock manager, version 4, served on the NFS port.
const NLM_PROGRAM: u32 = 100021;
const NLM_VERSION: u32 = 4;
/// The status monitor of lock clients, version 1, served on the NFS port.
const NSM_PROGRAM: u32 = 100024;
const NSM_VERSION: u32 = 1;
/// The longest netid, address or owner string accepted in an rpcbind argument.
const MAX_STRING: usize = 1024;
/// `r_owner` of every entry in an rpcbind DUMP.
const OWNER: &str = "nfsgw";

// Procedure numbers: portmap version 2, then rpcbind versions 3 and 4.
const PMAPPROC_NULL: u32 = 0;
const PMAPPROC_SET: u32 = 1;
const PMAPPROC_UNSET: u32 = 2;
pub(super) const PMAPPROC_GETPORT: u32 = 3;
const PMAPPROC_DUMP: u32 = 4;
const RPCBPROC_NULL: u32 = 0;
const RPCBPROC_SET: u32 = 1;
const RPCBPROC_UNSET: u32 = 2;
const RPCBPROC_GETADDR: u32 = 3;
const RPCBPROC_DUMP: u32 = 4;
const RPCBPROC_GETTIME: u32 = 6;

/// A transport protocol, as the portmapper names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// The IP protocol number (portmap version 2).
    fn number(self) -> u32 {
        match self {
            Proto::Tcp => IPPROTO_TCP,
            Proto::Udp => IPPROTO_UDP,
        }
    }

    /// The netid (rpcbind versions 3 and 4) of this protocol over `ip`'s family.
    fn netid(self, ip: IpAddr) -> &'static str {
        match (self, ip.is_ipv4()) {
            (Proto::Tcp, true) => "tcp",
            (Proto::Udp, true) => "udp",
            (Proto::Tcp, false) => "tcp6",
            (Proto::Udp, false) => "udp6",
        }
    }
}

/// One served program version.
#[derive(Clone, Debug)]
struct Entry {
    prog: u32,
    vers: u32,
    proto: Proto,
    addr: SocketAddr,
}

/// What nfsgw serves, and so all the portmapper reports.
#[derive(Debug)]
pub struct Table {
    entries: Vec<Entry>,
}

impl Table {
    /// NFS v3, MOUNT v3, NLM v4 and NSM v1 over TCP at `nfs` (NLM and NSM over UDP too with
    /// `lock_udp`), and the portmapper over TCP and UDP at `portmap`.
    pub fn new(nfs: SocketAddr, portmap: SocketAddr, lock_udp: bool) -> Table {
        let mut entries = Vec::new();
        for proto in [Proto::Tcp, Proto::Udp] {
            for vers in (LOWEST_VERSION..=HIGHEST_VERSION).rev() {
                entries.push(Entry {
                    prog: PROGRAM,
                    vers,
                    proto,
                    addr: portmap,
                });
            }
        }
        for (prog, vers) in [
            (MOUNT_PROGRAM, 3),
            (NFS_PROGRAM, 3),
            (NLM_PROGRAM, NLM_VERSION),
            (NSM_PROGRAM, NSM_VERSION),
        ] {
            entries.push(Entry {
                prog,
                vers,
                proto: Proto::Tcp,
                addr: nfs,
            });
        }
        if lock_udp {
            for (prog, vers) in [(NLM_PROGRAM, NLM_VERSION), (NSM_PROGRAM, NSM_VERSION)] {
                entries.push(Entry {
                    prog,
                    vers,
                    proto: Proto::Udp,
                    addr: nfs,
                });
            }
        }
        Table { entries }
    }

    /// GETPORT: the port of `prog` version `vers` over IP protocol `prot`; 0 if not served.
    fn port(&self, prog: u32, vers: u32, prot: u32) -> u32 {
        self.entries
            .iter()
            .find(|e| e.prog == prog && e.vers == vers && e.proto.number() == prot)
            .map_or(0, |e| u32::from(e.addr.port()))
    }

    /// GETADDR: the universal address of `prog` version `vers` over `netid`; "" if not served.
    /// `local` is the address the call came in on, used for entries bound to a wildcard.
    fn uaddr(&self, prog: u32, vers: u32, netid: &str, local: IpAddr) -> String {
        self.entries
            .iter()
            .find(|e| e.prog == prog && e.vers == vers && e.proto.netid(e.addr.ip()) == netid)
            .map_or_else(String::new, |e| universal_address(e.addr, local))
    }

    /// DUMP, version 2.
    fn mappings(&self) -> List<mapping> {
        List(
            self.entries
                .iter()
                .map(|e| mapping {
                    prog: e.prog,
                    vers: e.vers,
                    prot: e.proto.number(),
                    port: u32::from(e.addr.port()),
                })
                .collect(),
        )
    }

    /// DUMP, versions 3 and 4.
    fn rpcbs(&self, local: IpAddr) -> List<Rpcb> {
        List(
            self.entries
                .iter()
                .map(|e| Rpcb {
                    prog: e.prog,
                    vers: e.vers,
                    netid: e.proto.netid(e.addr.ip()).into(),
                    addr: universal_address(e.addr, local),
                    owner: OWNER.into(),
                })
                .collect(),
        )
    }

    /// The reply to one call (with room for a record mark in front), or `None` to stay silent.
    /// `proto` is the transport the call came on and `local` the address it was sent to.
    pub fn answer(&self, record: &[u8], proto: Proto, local: IpAddr) -> Option<Vec<u8>> {
        // The portmapper answers anyone: it tells where services are, nothing more.
        let call = match rpc::parse_call(record, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))) {
            rpc::Incoming::Call(call) => call,
            rpc::Incoming::Reject(reply) => return Some(reply),
            rpc::Incoming::Ignore => return None,
        };
        let xid = call.xid;
        if call.prog != PROGRAM {
            return Some(rpc::accepted(xid, accept_stat_data::PROG_UNAVAIL));
        }
        let mut args = Reader::new(&record[call.args..]);
        let garbage = || rpc::accepted(xid, accept_stat_data::GARBAGE_ARGS);
        let reply = match (call.vers, call.proc_) {
            (2, PMAPPROC_NULL) => rpc::success(xid, &Void),
            (2, PMAPPROC_SET | PMAPPROC_UNSET) => match read_mapping(&mut args) {
                Some(_) => rpc::success(xid, &false),
                None => garbage(),
            },
            (2, PMAPPROC_GETPORT) => match read_mapping(&mut args) {
                Some(m) => rpc::success(xid, &self.port(m.prog, m.vers, m.prot)),
                None => garbage(),
            },
            (2, PMAPPROC_DUMP) => rpc::success(xid, &self.mappings()),
            (3 | 4, RPCBPROC_NULL) => rpc::success(xid, &Void),
            (3 | 4, RPCBPROC_SET | RPCBPROC_UNSET) => match read_rpcb(&mut args) {
                Some(_) => rpc::success(xid, &false),
                None => garbage(),
            },
            (3 | 4, RPCBPROC_GETADDR) => match read_rpcb(&mut args) {
                Some(r) => {
                    // An empty netid asks about the transport the call came on.
                    let netid = match r.netid.as_str() {
                        "" => proto.netid(local),
                        netid => netid,
                    };
                    let uaddr = self.uaddr(r.prog, r.vers, netid, local);
                    rpc::success(xid, &Opaque::borrowed(uaddr.as_bytes()))
                }
                None => garbage(),
            },
            (3 | 4, RPCBPROC_DUMP) => rpc::success(xid, &self.rpcbs(local)),
            (3 | 4, RPCBPROC_GETTIME) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                rpc::success(xid, &(now.as_secs() as u32))
            }
            (LOWEST_VERSION..=HIGHEST_VERSION, _) => {
                rpc::accepted(xid, accept_stat_data::PROC_UNAVAIL)
            }
            _ => rpc::accepted(
                xid,
                accept_stat_data::PROG_MISMATCH {
                    low: LOWEST_VERSION,
                    high: HIGHEST_VERSION,
                },
            ),
        };
        tracing::debug!(
            xid,
            vers = call.vers,
            proc_ = call.proc_,
            ?proto,
            "portmapper call"
        );
        Some(reply)
    }
}

/// "h1.h2.h3.h4.p1.p2" (RFC 1833); an entry bound to a wildcard address reports `local`.
fn universal_address(addr: SocketAddr, local: IpAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        local
    } else {
        addr.ip()
    };
    let port = addr.port();
    format!("{ip}.{}.{}", port >> 8, port & 0xff)
}

fn read_mapping(r: &mut Reader) -> Option<mapping> {
    Some(mapping {
        prog: r.u32()?,
        vers: r.u32()?,
        prot: r.u32()?,
        port: r.u32()?,
    })
}

/// The rpcbind versions 3 and 4 argument and DUMP entry (`struct rpcb`).
#[derive(Debug, PartialEq, Eq)]
struct Rpcb {
    prog: u32,
    vers: u32,
    netid: String,
    addr: String,
    owner: String,
}

fn read_rpcb(r: &mut Reader) -> Option<Rpcb> {
    let (prog, vers) = (r.u32()?, r.u32()?);
    let mut string = || Some(String::from_utf8_lossy(r.opaque(MAX_STRING)?).into_owned());
    Some(Rpcb {
        prog,
        vers,
        netid: string()?,
        addr: string()?,
        owner: string()?,
    })
}

impl Pack for Rpcb {
    fn packed_size(&self) -> usize {
        8 + [&self.netid, &self.addr, &self.owner]
            .iter()
            .map(|s| Opaque::borrowed(s.as_bytes()).packed_size())
            .sum::<usize>()
    }

    fn pack(&self, out: &mut impl io::Write) -> nfs3_types::xdr_codec::Result<usize> {
        let mut n = self.prog.pack(out)? + self.vers.pack(out)?;
        for s in [&self.netid, &self.addr, &self.owner] {
            n += Opaque::borrowed(s.as_bytes()).pack(out)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn table() -> Table {
        Table::new(
            "127.0.0.1:20490".parse().unwrap(),
            "127.0.0.1:111".parse().unwrap(),
            true,
        )
    }

    pub(crate) fn words(out: &mut Vec<u8>, words: &[u32]) {
        for w in words {
            out.extend_from_slice(&w.to_be_bytes());
        }
    }

    /// A call record (AUTH_NULL) to the portmapper with these argument bytes.
    pub(crate) fn call(vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        words(&mut out, &[42, 0, 2, PROGRAM, vers, proc_, 0, 0, 0, 0]);
        out.extend_from_slice(args);
        out
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        words(out, &[s.len() as u32]);
        out.extend_from_slice(s.as_bytes());
        out.resize(out.len().div_ceil(4) * 4, 0);
    }

    fn rpcb_args(prog: u32, vers: u32, netid: &str) -> Vec<u8> {
        let mut out = Vec::new();
        words(&mut out, &[prog, vers]);
        for s in [netid, "", ""] {
            string(&mut out, s);
        }
        out
    }

    /// The accept status and result bytes of a reply (after the 4-byte mark placeholder).
    pub(crate) fn result(reply: &[u8]) -> (u32, Vec<u8>) {
        let word = |i: usize| u32::from_be_bytes(reply[4 + 4 * i..8 + 4 * i].try_into().unwrap());
        assert_eq!(
            (word(0), word(1), word(2)),
            (42, 1, 0),
            "xid, REPLY, ACCEPTED"
        );
        (word(5), reply[4 + 24..].to_vec())
    }

    fn answer(t: &Table, record: &[u8]) -> (u32, Vec<u8>) {
        result(&t.answer(record, Proto::Tcp, LOCAL).expect("an answer"))
    }

    fn u32s(bytes: &[u8]) -> Vec<u32> {
        bytes
            .chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn getport(t: &Table, prog: u32, vers: u32, prot: u32) -> u32 {
        let mut args = Vec::new();
        words(&mut args, &[prog, vers, prot, 0]);
        let (stat, res) = answer(t, &call(2, PMAPPROC_GETPORT, &args));
        assert_eq!(stat, 0);
        u32s(&res)[0]
    }

    #[test]
    fn getport_answers_only_what_is_served() {
        let t = table();
        assert_eq!(getport(&t, NFS_PROGRAM, 3, IPPROTO_TCP), 20490);
        assert_eq!(getport(&t, MOUNT_PROGRAM, 3, IPPROTO_TCP), 20490);
        assert_eq!(getport(&t, NFS_PROGRAM, 3, IPPROTO_UDP), 0);
        assert_eq!(getport(&t, MOUNT_PROGRAM, 3, IPPROTO_UDP), 0);
        assert_eq!(getport(&t, NFS_PROGRAM, 4, IPPROTO_TCP), 0);
        assert_eq!(getport(&t, MOUNT_PROGRAM, 1, IPPROTO_TCP), 0);
        assert_eq!(getport(&t, NLM_PROGRAM, 4, IPPROTO_TCP), 20490);
        assert_eq!(getport(&t, NLM_PROGRAM, 4, IPPROTO_UDP), 20490);
        assert_eq!(getport(&t, NSM_PROGRAM, 1, IPPROTO_TCP), 20490);
        assert_eq!(getport(&t, NSM_PROGRAM, 1, IPPROTO_UDP), 20490);
        let tcp_only = Table::new(
            "127.0.0.1:20490".parse().unwrap(),
            "127.0.0.1:111".parse().unwrap(),
            false,
        );
        assert_eq!(getport(&tcp_only, NLM_PROGRAM, 4, IPPROTO_UDP), 0);
        assert_eq!(getport(&tcp_only, NSM_PROGRAM, 1, IPPROTO_UDP), 0);
        assert_eq!(getport(&t, PROGRAM, 2, IPPROTO_UDP), 111);
    }

    #[test]
    fn dump_lists_exactly_the_served_programs() {
        let (stat, res) = answer(&table(), &call(2, PMAPPROC_DUMP, &[]));
        assert_eq!(stat, 0);
        let mut got = Vec::new();
        let w = u32s(&res);
        let mut i = 0;
        while w[i] == 1 {
            got.push((w[i + 1], w[i + 2], w[i + 3], w[i + 4]));
            i += 5;
        }
        assert_eq!(i + 1, w.len(), "the list ends with its last word");
        got.sort();
        let mut want = vec![
            (NFS_PROGRAM, 3, 6, 20490),
            (MOUNT_PROGRAM, 3, 6, 20490),
            (NLM_PROGRAM, 4, 6, 20490),
            (NSM_PROGRAM, 1, 6, 20490),
            (NLM_PROGRAM, 4, 17, 20490),
            (NSM_PROGRAM, 1, 17, 20490),
        ];
        for vers in 2..=4 {
            want.push((PROGRAM, vers, 6, 111));
            want.push((PROGRAM, vers, 17, 111));
        }
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn getaddr_gives_universal_addresses() {
        let t = table();
        let getaddr = |vers, prog, pvers, netid: &str, proto| {
            let record = call(vers, RPCBPROC_GETADDR, &rpcb_args(prog, pvers, netid));
            let (stat, res) = result(&t.answer(&record, proto, LOCAL).unwrap());
            assert_eq!(stat, 0);
            let len = u32s(&res[..4])[0] as usize;
            String::from_utf8(res[4..4 + len].to_vec()).unwrap()
        };
        // 20490 = 80 * 256 + 10
        assert_eq!(
            getaddr(4, NFS_PROGRAM, 3, "tcp", Proto::Tcp),
            "127.0.0.1.80.10"
        );
        assert_eq!(
            getaddr(3, MOUNT_PROGRAM, 3, "tcp", Proto::Udp),
            "127.0.0.1.80.10"
        );
        assert_eq!(getaddr(3, MOUNT_PROGRAM, 3, "udp", Proto::Tcp), "");
        assert_eq!(getaddr(4, NFS_PROGRAM, 3, "tcp6", Proto::Tcp), "");
        assert_eq!(
            getaddr(4, NFS_PROGRAM, 3, "", Proto::Tcp),
            "127.0.0.1.80.10"
        );
        assert_eq!(getaddr(4, NFS_PROGRAM, 3, "", Proto::Udp), "");
        assert_eq!(getaddr(3, PROGRAM, 4, "udp", Proto::Udp), "127.0.0.1.0.111");
    }

    #[test]
    fn wildcard_addresses_report_the_address_called() {
        let t = Table::new(
            "0.0.0.0:2049".parse().unwrap(),
            "0.0.0.0:111".parse().unwrap(),
            true,
        );
        let record = call(4, RPCBPROC_GETADDR, &rpcb_args(NFS_PROGRAM, 3, "tcp"));
        let reply = t
            .answer(&record, Proto::Tcp, "192.168.1.5".parse().unwrap())
            .unwrap();
        assert!(String::from_utf8_lossy(&reply).contains("192.168.1.5.8.1"));
    }

    #[test]
    fn rpcbind_dump_carries_netids_and_addresses() {
        let (stat, res) = answer(&table(), &call(3, RPCBPROC_DUMP, &[]));
        assert_eq!(stat, 0);
        let mut r = Reader::new(&res);
        let mut got = Vec::new();
        while r.u32() == Some(1) {
            got.push(read_rpcb(&mut r).unwrap());
        }
        assert_eq!(got.len(), 12);
        assert!(got.contains(&Rpcb {
            prog: NFS_PROGRAM,
            vers: 3,
            netid: "tcp".into(),
            addr: "127.0.0.1.80.10".into(),
            owner: OWNER.into(),
        }));
        assert!(got
            .iter()
            .all(|e| e.prog != NFS_PROGRAM || e.netid == "tcp"));
    }

    #[test]
    fn registrations_are_refused_and_the_rest_is_unavailable() {
        let t = table();
        let mut m = Vec::new();
        words(&mut m, &[NFS_PROGRAM, 3, IPPROTO_TCP, 2049]);
        for (vers, proc_, args) in [
            (2, PMAPPROC_SET, m.clone()),
            (2, PMAPPROC_UNSET, m.clone()),
            (3, RPCBPROC_SET, rpcb_args(NFS_PROGRAM, 3, "tcp")),
            (4, RPCBPROC_UNSET, rpcb_args(NFS_PROGRAM, 3, "tcp")),
        ] {
            assert_eq!(answer(&t, &call(vers, proc_, &args)), (0, vec![0, 0, 0, 0]));
        }
        for (vers, proc_) in [(2, 5), (3, 5), (4, 9), (4, 11), (3, 7), (2, 99)] {
            assert_eq!(answer(&t, &call(vers, proc_, &[])).0, 3, "PROC_UNAVAIL");
        }
        for vers in [0, 2, 3, 4] {
            let (stat, res) = answer(&t, &call(vers, 0, &[]));
            if vers == 0 {
                // PROG_MISMATCH 2..4
                assert_eq!((stat, u32s(&res)), (2, vec![2, 4]));
            } else {
                assert_eq!((stat, res.len()), (0, 0));
            }
        }
        let mut other = call(2, 0, &[]);
        other[12..16].copy_from_slice(&NFS_PROGRAM.to_be_bytes());
        assert_eq!(answer(&t, &other).0, 1, "PROG_UNAVAIL");
        let (stat, res) = answer(&t, &call(4, RPCBPROC_GETTIME, &[]));
        assert!(stat == 0 && u32s(&res)[0] > 1_600_000_000);
    }

    #[test]
    fn malformed_calls_are_garbage_or_silent() {
        let t = table();
        // Truncated arguments.
        assert_eq!(answer(&t, &call(2, PMAPPROC_GETPORT, &[0, 0, 0, 1])).0, 4);
        assert_eq!(answer(&t, &call(3, RPCBPROC_GETADDR, &[0; 12])).0, 4);
        // A netid claiming 4 GiB.
        let mut huge = Vec::new();
        words(&mut huge, &[NFS_PROGRAM, 3, u32::MAX]);
        assert_eq!(answer(&t, &call(4, RPCBPROC_GETADDR, &huge)).0, 4);
        // Not calls at all.
        assert!(t.answer(&[1, 2], Proto::Udp, LOCAL).is_none());
        assert!(t.answer(&[0; 64], Proto::Udp, LOCAL).is_some());
        let mut reply = call(2, 0, &[]);
        reply[7] = 1;
        assert!(t.answer(&reply, Proto::Udp, LOCAL).is_none());
        // Every prefix of a good call, and some noise, is answered or dropped without panicking.
        let good = call(4, RPCBPROC_GETADDR, &rpcb_args(NFS_PROGRAM, 3, "tcp"));
        for n in 0..good.len() {
            let _ = t.answer(&good[..n], Proto::Tcp, LOCAL);
        }
        let mut x = 0x2545_f491_u32;
        for _ in 0..2000 {
            let mut noise = good.clone();
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let at = x as usize % noise.len();
            noise[at] = (x >> 8) as u8;
            let _ = t.answer(&noise, Proto::Udp, LOCAL);
        }
    }
}
