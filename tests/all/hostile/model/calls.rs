//! The NFS calls the model makes: what each is, how it reads in a report, how it goes on the
//! wire (through `nfs3_client`), and what of its answer the checks look at.

use nfs3_client::tokio::TokioIo;
use nfs3_client::Nfs3Connection;
use nfs3_types::nfs3::{
    createhow3, createverf3, devicedata3, diropargs3, filename3, mknoddata3, nfs_fh3, nfspath3,
    nfstime3, sattr3, set_atime, set_mtime, specdata3, stable_how, symlinkdata3, ACCESS3args,
    COMMIT3args, CREATE3args, GETATTR3args, LINK3args, LOOKUP3args, MKDIR3args, MKNOD3args,
    Nfs3Option, Nfs3Result, READ3args, READDIRPLUS3args, READLINK3args, REMOVE3args, RENAME3args,
    RMDIR3args, SETATTR3args, SYMLINK3args, WRITE3args,
};
use nfs3_types::xdr_codec::Opaque;

use super::host::Id;
use super::posix::{GIDS, NOBODY};
use super::Rng;

/// The only time the model's SETATTRs give: a change to it needs ownership.
pub(super) const CLIENT_MTIME: nfstime3 = nfstime3 {
    seconds: 1_000_000,
    nseconds: 0,
};

pub(super) type Conn = Nfs3Connection<TokioIo<tokio::net::TcpStream>>;

/// A handle in the pool, with the object the test believes it names.
#[derive(Clone)]
pub(super) struct Known {
    pub(super) fh: nfs_fh3,
    /// The host object it was issued for; `None` for a forged handle or an unknown object.
    pub(super) id: Option<Id>,
    /// How it was obtained, for reports.
    pub(super) label: String,
}

/// What a call returned that the checks look at.
#[derive(Default)]
pub(super) struct Answer {
    pub(super) status: String,
    pub(super) read: Option<Vec<u8>>,
    pub(super) link: Option<Vec<u8>>,
    pub(super) listed: bool,
    pub(super) looked_up: bool,
    pub(super) access: Option<u32>,
    /// New handles and the names (in the call's directory) they were issued for.
    pub(super) handles: Vec<(String, Option<nfs_fh3>)>,
}

fn status_of<T, E>(res: &Nfs3Result<T, E>) -> String {
    match res {
        Nfs3Result::Ok(_) => "OK".into(),
        Nfs3Result::Err((stat, _)) => format!("{stat:?}"),
    }
}

fn dirop(dir: &nfs_fh3, name: &str) -> diropargs3<'static> {
    diropargs3 {
        dir: dir.clone(),
        name: filename3(Opaque::owned(name.as_bytes().to_vec())),
    }
}

pub(super) fn random_sattr(rng: &mut Rng) -> sattr3 {
    let mut attrs = sattr3::default();
    if rng.chance(50) {
        attrs.mode = Nfs3Option::Some(rng.pick(&[0o777, 0o644, 0o600, 0o4755, 0o2755, 0o1777]));
    }
    if rng.chance(25) {
        attrs.uid = Nfs3Option::Some(rng.pick(&[0, 1000, 1001, NOBODY]));
    }
    if rng.chance(25) {
        attrs.gid = Nfs3Option::Some(rng.pick(&GIDS));
    }
    if rng.chance(20) {
        attrs.size = Nfs3Option::Some(rng.pick(&[0, 3, 100]));
    }
    if rng.chance(20) {
        attrs.mtime = if rng.chance(50) {
            set_mtime::SET_TO_SERVER_TIME
        } else {
            set_mtime::SET_TO_CLIENT_TIME(CLIENT_MTIME)
        };
    }
    if rng.chance(10) {
        attrs.atime = set_atime::SET_TO_SERVER_TIME;
    }
    attrs
}

fn sattr_text(a: &sattr3) -> String {
    let mut out = Vec::new();
    if let Nfs3Option::Some(m) = a.mode {
        out.push(format!("mode {m:04o}"));
    }
    if let Nfs3Option::Some(u) = a.uid {
        out.push(format!("uid {u}"));
    }
    if let Nfs3Option::Some(g) = a.gid {
        out.push(format!("gid {g}"));
    }
    if let Nfs3Option::Some(s) = a.size {
        out.push(format!("size {s}"));
    }
    if !matches!(a.mtime, set_mtime::DONT_CHANGE) {
        out.push("mtime".into());
    }
    if !matches!(a.atime, set_atime::DONT_CHANGE) {
        out.push("atime".into());
    }
    format!("{{{}}}", out.join(", "))
}

/// CREATE's three modes.
pub(super) enum How {
    Unchecked(sattr3),
    Guarded(sattr3),
    Exclusive([u8; 8]),
}

/// What MKNOD makes; devices carry (major, minor).
pub(super) enum Node {
    Char(sattr3, (u32, u32)),
    Block(sattr3, (u32, u32)),
    Socket(sattr3),
    Fifo(sattr3),
}

impl How {
    pub(super) fn wire(&self) -> createhow3 {
        match self {
            How::Unchecked(a) => createhow3::UNCHECKED(a.clone()),
            How::Guarded(a) => createhow3::GUARDED(a.clone()),
            How::Exclusive(v) => createhow3::EXCLUSIVE(createverf3(*v)),
        }
    }
}

impl Node {
    pub(super) fn wire(&self) -> mknoddata3 {
        let device = |a: &sattr3, (major, minor): (u32, u32)| devicedata3 {
            dev_attributes: a.clone(),
            spec: specdata3 {
                specdata1: major,
                specdata2: minor,
            },
        };
        match self {
            Node::Char(a, dev) => mknoddata3::NF3CHR(device(a, *dev)),
            Node::Block(a, dev) => mknoddata3::NF3BLK(device(a, *dev)),
            Node::Socket(a) => mknoddata3::NF3SOCK(a.clone()),
            Node::Fifo(a) => mknoddata3::NF3FIFO(a.clone()),
        }
    }
}

fn some<T: nfs3_types::xdr_codec::Pack + nfs3_types::xdr_codec::Unpack>(
    o: Nfs3Option<T>,
) -> Option<T> {
    match o {
        Nfs3Option::Some(v) => Some(v),
        Nfs3Option::None => None,
    }
}

/// One call to make: its text for reports, and what it does.
pub(super) enum Call {
    Getattr(usize),
    Lookup(usize, String),
    Access(usize),
    Read(usize, u64, u32),
    Write(usize, u64, Vec<u8>, stable_how),
    Setattr(usize, sattr3),
    Create(usize, String, How),
    Mkdir(usize, String, sattr3),
    Symlink(usize, String, String),
    Mknod(usize, String, Node),
    Link(usize, usize, String),
    Remove(usize, String),
    Rmdir(usize, String),
    Rename(usize, String, usize, String),
    Readlink(usize),
    Readdirplus(usize),
    Commit(usize),
}

impl Call {
    pub(super) fn text(&self, pool: &[Known]) -> String {
        let h = |i: &usize| format!("h{i}<{}>", pool[*i].label);
        match self {
            Call::Getattr(f) => format!("GETATTR {}", h(f)),
            Call::Lookup(d, n) => format!("LOOKUP {} {n:?}", h(d)),
            Call::Access(f) => format!("ACCESS {} all", h(f)),
            Call::Read(f, o, c) => format!("READ {} offset {o} count {c}", h(f)),
            Call::Write(f, o, d, s) => format!("WRITE {} offset {o} {} bytes {s:?}", h(f), d.len()),
            Call::Setattr(f, a) => format!("SETATTR {} {}", h(f), sattr_text(a)),
            Call::Create(d, n, how) => {
                let how = match how {
                    How::Unchecked(a) => format!("UNCHECKED {}", sattr_text(a)),
                    How::Guarded(a) => format!("GUARDED {}", sattr_text(a)),
                    How::Exclusive(_) => "EXCLUSIVE".into(),
                };
                format!("CREATE {} {n:?} {how}", h(d))
            }
            Call::Mkdir(d, n, a) => format!("MKDIR {} {n:?} {}", h(d), sattr_text(a)),
            Call::Symlink(d, n, t) => format!("SYMLINK {} {n:?} -> {t:?}", h(d)),
            Call::Mknod(d, n, what) => {
                let what = match what {
                    Node::Char(a, dev) => format!("char device {dev:?} {}", sattr_text(a)),
                    Node::Block(a, dev) => format!("block device {dev:?} {}", sattr_text(a)),
                    Node::Socket(a) => format!("socket {}", sattr_text(a)),
                    Node::Fifo(a) => format!("fifo {}", sattr_text(a)),
                };
                format!("MKNOD {} {n:?} {what}", h(d))
            }
            Call::Link(f, d, n) => format!("LINK {} as {} {n:?}", h(f), h(d)),
            Call::Remove(d, n) => format!("REMOVE {} {n:?}", h(d)),
            Call::Rmdir(d, n) => format!("RMDIR {} {n:?}", h(d)),
            Call::Rename(d, n, d2, n2) => format!("RENAME {} {n:?} to {} {n2:?}", h(d), h(d2)),
            Call::Readlink(f) => format!("READLINK {}", h(f)),
            Call::Readdirplus(d) => format!("READDIRPLUS {}", h(d)),
            Call::Commit(f) => format!("COMMIT {}", h(f)),
        }
    }

    /// The directory whose new entries the answer's handles are.
    pub(super) fn dir(&self) -> Option<usize> {
        match self {
            Call::Lookup(d, _)
            | Call::Create(d, _, _)
            | Call::Mkdir(d, _, _)
            | Call::Symlink(d, _, _)
            | Call::Mknod(d, _, _)
            | Call::Readdirplus(d) => Some(*d),
            _ => None,
        }
    }

    pub(super) async fn run(&self, conn: &mut Conn, pool: &[Known]) -> Result<Answer, String> {
        let fh = |i: &usize| pool[*i].fh.clone();
        let rpc = |e: nfs3_client::RpcError| format!("RPC failed: {e}");
        let mut a = Answer::default();
        match self {
            Call::Getattr(f) => {
                let res = conn.getattr(&GETATTR3args { object: fh(f) }).await;
                a.status = status_of(&res.map_err(rpc)?);
            }
            Call::Lookup(d, n) => {
                let res = conn
                    .lookup(&LOOKUP3args {
                        what: dirop(&fh(d), n),
                    })
                    .await;
                let res = res.map_err(rpc)?;
                a.status = status_of(&res);
                if let Nfs3Result::Ok(ok) = res {
                    a.looked_up = true;
                    a.handles.push((n.clone(), Some(ok.object)));
                }
            }
            Call::Access(f) => {
                let args = ACCESS3args {
                    object: fh(f),
                    access: 0x3f,
                };
                let res = conn.access(&args).await.map_err(rpc)?;
                a.status = status_of(&res);
                if let Nfs3Result::Ok(ok) = res {
                    a.access = Some(ok.access);
                }
            }
            Call::Read(f, offset, count) => {
                let args = READ3args {
                    file: fh(f),
                    offset: *offset,
                    count: *count,
                };
                let res = conn.read(&args).await.map_err(rpc)?;
                a.status = status_of(&res);
                if let Nfs3Result::Ok(ok) = res {
                    a.read = Some(ok.data.into_owned());
                }
            }
            Call::Write(f, offset, data, stable) => {
                let args = WRITE3args {
                    file: fh(f),
                    offset: *offset,
                    count: data.len() as u32,
                    stable: *stable,
                    data: Opaque::borrowed(data),
                };
                a.status = status_of(&conn.write(&args).await.map_err(rpc)?);
            }
            Call::Setattr(f, attrs) => {
                let args = SETATTR3args {
                    object: fh(f),
                    new_attributes: attrs.clone(),
                    guard: Nfs3Option::None,
                };
                a.status = status_of(&conn.setattr(&args).await.map_err(rpc)?);
            }
            Call::Create(d, n, how) => {
                let args = CREATE3args {
                    where_: dirop(&fh(d), n),
                    how: how.wire(),
                };
                let res = conn.create(&args).await.map_err(rpc)?;
                a.status = status_of(&res);
                if let Nfs3Result::Ok(ok) = res {
                    a.handles.push((n.clone(), some(ok.obj)));
                }
            }
            Call::Mkdir(d, n, attrs) => {
                let args = MKDIR3args {
                    where_: dirop(&fh(d), n),
                    attributes: attrs.clone(),
                };
                let res = conn.mkdir(&args).await.map_err(rpc)?;
                a.status = status_of(&res);
                if let Nfs3Result::Ok(ok) = res {
                    a.handles.push((n.clone(), some(ok.obj)));
                }
            }
            Call::Symlink(d, n, target) => {
                let args = SYMLINK3args {
                    where_: dirop(&fh(d), n),
                    symlink: symlinkdata3 {
                        symlink_attributes: sattr3::default(),
                        symlink_data: nfspath3(Opaque::owned(target.as_bytes().to_vec())),
                    },
                };
                let res = conn.symlink(&args).await.map_err(rpc)?;
                a.status = status_of(&res);
                if let Nfs3Result::Ok(ok) = res {
                    a.handles.push((n.clone(), some(ok.obj)));
                }
            }
            Call::Mknod(d, n, what) => {
                let args = MKNOD3args {
                    where_: dirop(&fh(d), n),
                    what: what.wire(),
                };
                let res = conn.mknod(&args).await.map_err(rpc)?;
                a.status = status_of(&res);
                if let Nfs3Result::Ok(ok) = res {
                    a.handles.push((n.clone(), some(ok.obj)));
                }
            }
            Call::Link(f, d, n) => {
                let args = LINK3args {
                    file: fh(f),
                    link: dirop(&fh(d), n),
                };
                a.status = status_of(&conn.link(&args).await.map_err(rpc)?);
            }
            Call::Remove(d, n) => {
                let args = REMOVE3args {
                    object: dirop(&fh(d), n),
                };
                a.status = status_of(&conn.remove(&args).await.map_err(rpc)?);
            }
            Call::Rmdir(d, n) => {
                let args = RMDIR3args {
                    object: dirop(&fh(d), n),
                };
                a.status = status_of(&conn.rmdir(&args).await.map_err(rpc)?);
            }
            Call::Rename(d, n, d2, n2) => {
                let args = RENAME3args {
                    from: dirop(&fh(d), n),
                    to: dirop(&fh(d2), n2),
                };
                a.status = status_of(&conn.rename(&args).await.map_err(rpc)?);
            }
            Call::Readlink(f) => {
                let args = READLINK3args { symlink: fh(f) };
                let res = conn.readlink(&args).await.map_err(rpc)?;
                a.status = status_of(&res);
                if let Nfs3Result::Ok(ok) = res {
                    a.link = Some(ok.data.0.into_owned());
                }
            }
            Call::Readdirplus(d) => {
                let args = READDIRPLUS3args {
                    dir: fh(d),
                    cookie: 0,
                    cookieverf: Default::default(),
                    dircount: 8192,
                    maxcount: 32768,
                };
                let res = conn.readdirplus(&args).await.map_err(rpc)?;
                a.status = status_of(&res);
                if let Nfs3Result::Ok(ok) = res {
                    for e in ok.reply.entries.into_inner() {
                        let name = String::from_utf8_lossy(&e.name.0).into_owned();
                        if name != "." && name != ".." {
                            a.listed = true;
                        }
                        a.handles.push((name, some(e.name_handle)));
                    }
                }
            }
            Call::Commit(f) => {
                let args = COMMIT3args {
                    file: fh(f),
                    offset: 0,
                    count: 0,
                };
                a.status = status_of(&conn.commit(&args).await.map_err(rpc)?);
            }
        }
        Ok(a)
    }
}
