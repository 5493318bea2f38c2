//! The NFSv3 program (RFC 1813): each procedure decoded, answered through the gateway core,
//! and encoded. Directory-changing replies carry the directory's attributes after the change
//! (weak cache consistency without the "before" half, which RFC 1813 allows).

use std::sync::Arc;

use bytes::Bytes;
use nfs3_types::nfs3::*;
use nfs3_types::rpc::accept_stat_data;
use nfs3_types::xdr_codec::{List, Opaque, Pack, Void};

use super::convert::{changes, fattr, is_empty, post_op, status, wcc};
use super::reply::Outgoing;
use super::wire::{self, Call};
use super::Server;
use crate::backend::types::{Attrs, Device, Error, FileKind, SetAttrs};
use crate::buffer_pool::BufferPool;
use crate::gateway::{permissions, Caller, FileId, Mount, HOST_MAX_FILE_SIZE};

pub const PROGRAM: u32 = 100003;
pub const VERSION: u32 = 3;
/// Procedure names by number, for metrics.
pub const PROCEDURES: [&str; 22] = [
    "NULL",
    "GETATTR",
    "SETATTR",
    "LOOKUP",
    "ACCESS",
    "READLINK",
    "READ",
    "WRITE",
    "CREATE",
    "MKDIR",
    "SYMLINK",
    "MKNOD",
    "REMOVE",
    "RMDIR",
    "RENAME",
    "LINK",
    "READDIR",
    "READDIRPLUS",
    "FSSTAT",
    "FSINFO",
    "PATHCONF",
    "COMMIT",
];

/// Preferred and largest READ/WRITE size: 1 MiB.
const TRANSFER_SIZE: u32 = 1 << 20;
/// Directory entries asked of the gateway per READDIR(PLUS) reply, at most.
const MAX_DIR_ENTRIES: usize = 4096;
/// Reply bytes that are not entries (RPC header, status, attributes, verifier, eof).
const DIR_REPLY_OVERHEAD: usize = 256;
const DEFAULT_FILE_MODE: u32 = 0o644;
const DEFAULT_DIR_MODE: u32 = 0o755;

type Reply = Result<Outgoing, Garbage>;
/// The arguments could not be decoded.
struct Garbage;

fn decode<T: nfs3_types::xdr_codec::Unpack>(args: &[u8]) -> Result<T, Garbage> {
    wire::args(args).ok_or(Garbage)
}

/// WRITE's arguments, with the data as a slice of its record. `nfs3_types` would decode the
/// data into a new, zeroed vector; a slice keeps it where `wire::read_record` put it,
/// block-aligned, so a staged copy writes it to disk without a copy.
struct WriteArgs {
    file: nfs_fh3,
    offset: u64,
    count: u32,
    stable: stable_how,
    data: Bytes,
}

fn decode_write(args: &Bytes) -> Result<WriteArgs, Garbage> {
    use nfs3_types::xdr_codec::Unpack;
    let mut head = std::io::Cursor::new(&args[..]);
    let mut field = || -> Result<_, nfs3_types::xdr_codec::Error> {
        Ok((
            nfs_fh3::unpack(&mut head)?.0,
            u64::unpack(&mut head)?.0,
            u32::unpack(&mut head)?.0,
            stable_how::unpack(&mut head)?.0,
        ))
    };
    let (file, offset, count, stable) = field().map_err(|_| Garbage)?;
    let at = head.position() as usize;
    let data = wire::Reader::new(&args[at..])
        .opaque(wire::MAX_RECORD)
        .ok_or(Garbage)?;
    Ok(WriteArgs {
        file,
        offset,
        count,
        stable,
        data: args.slice_ref(data),
    })
}

/// The mount a call is for: every procedure but NULL starts with a file handle, and the calls
/// that carry two (RENAME, LINK) are refused unless both are in one mount. `None` for the
/// export root and for handles that name nothing.
fn addressed_mount<'a>(server: &'a Server, call: &Call, args: &[u8]) -> Option<&'a Mount> {
    if call.proc_ == 0 {
        return None;
    }
    let handle = wire::Reader::new(args).opaque(NFS3_FHSIZE)?;
    let id = server.gateway.resolve_handle(handle)?.ok()?;
    server.gateway.mount_of_id(id)
}

/// Whether a reply reports a failure: not accepted as SUCCESS, or an NFS status other than
/// NFS3_OK (the word after the 24-byte accepted-reply header that follows the record mark).
fn failed(reply: &[u8]) -> bool {
    reply.get(24..28) != Some(&[0; 4]) || reply.get(28..32).is_some_and(|s| s != [0; 4])
}

pub async fn dispatch(
    server: &Server,
    call: &Call,
    args: &Bytes,
    buffers: &Arc<BufferPool>,
) -> Outgoing {
    let mount = addressed_mount(server, call, args);
    // The mount's squash options decide who the caller is, for every check and new file.
    let caller = mount.map_or_else(|| call.caller.clone(), |m| m.squash.apply(&call.caller));
    let handler = Handler {
        server,
        caller: &caller,
        client: call.client,
        port: call.port,
        xid: call.xid,
        mount,
        buffers,
    };
    let reply = match call.proc_ {
        // Lengths that overrun the record are refused before the decoder allocates them.
        _ if !super::bounds::nfs3(call.proc_, args) => Err(Garbage),
        0 => Ok(wire::success(call.xid, &Void).into()),
        1 => handler.getattr(args).await,
        2 => handler.setattr(args).await,
        3 => handler.lookup(args).await,
        4 => handler.access(args).await,
        5 => handler.readlink(args).await,
        6 => handler.read(args).await,
        7 => handler.write(args).await,
        8 => handler.create(args).await,
        9 => handler.mkdir(args).await,
        10 => handler.symlink(args).await,
        11 => handler.mknod(args).await,
        12 => handler.remove(args, false).await,
        13 => handler.remove(args, true).await,
        14 => handler.rename(args).await,
        15 => handler.link(args).await,
        16 => handler.readdir(args).await,
        17 => handler.readdirplus(args).await,
        18 => handler.fsstat(args).await,
        19 => handler.fsinfo(args).await,
        20 => handler.pathconf(args).await,
        21 => handler.commit(args).await,
        _ => return wire::accepted(call.xid, accept_stat_data::PROC_UNAVAIL).into(),
    };
    let reply = reply
        .unwrap_or_else(|Garbage| wire::accepted(call.xid, accept_stat_data::GARBAGE_ARGS).into());
    if let Some(mount) = mount {
        mount.metrics.request(failed(&reply.head));
    }
    if tracing::enabled!(tracing::Level::DEBUG) {
        // The NFS status follows the 24-byte accepted-reply header (after the record mark).
        let status = reply
            .head
            .get(28..32)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()));
        tracing::debug!(
            xid = call.xid,
            proc = call.proc_,
            uid = caller.uid,
            ?status,
            "nfs3"
        );
    }
    reply
}

struct Handler<'a> {
    server: &'a Server,
    caller: &'a Caller,
    client: std::net::IpAddr,
    /// The call's source port, for mounts that take calls from privileged ports only.
    port: u16,
    xid: u32,
    /// The mount the call is for, when its first handle names one.
    mount: Option<&'a Mount>,
    /// The connection's buffers, for READ data.
    buffers: &'a Arc<BufferPool>,
}

/// An NFS result: the OK body, or a status with the failure body.
fn result<T: Pack, E: Pack>(r: Result<T, (nfsstat3, E)>) -> Nfs3Result<T, E> {
    match r {
        Ok(ok) => Nfs3Result::Ok(ok),
        Err(err) => Nfs3Result::Err(err),
    }
}

fn name_of(raw: &[u8]) -> Result<&str, nfsstat3> {
    std::str::from_utf8(raw).map_err(|_| nfsstat3::NFS3ERR_INVAL)
}

impl Handler<'_> {
    fn reply<T: Pack>(&self, body: &T) -> Reply {
        Ok(wire::success(self.xid, body).into())
    }

    /// The file id of a handle, for a client the handle's mount allows.
    fn id(&self, fh: &nfs_fh3) -> Result<FileId, nfsstat3> {
        let id = match self.server.gateway.resolve_handle(&fh.data) {
            None => return Err(nfsstat3::NFS3ERR_BADHANDLE),
            Some(r) => r.map_err(status)?,
        };
        if !self.server.gateway.allows(id, self.client) {
            return Err(nfsstat3::NFS3ERR_ACCES);
        }
        if !self.server.port_allows(id, self.client, self.port) {
            return Err(nfsstat3::NFS3ERR_PERM);
        }
        Ok(id)
    }

    fn handle(&self, id: FileId) -> nfs_fh3 {
        nfs_fh3 {
            data: Opaque::owned(self.server.gateway.handle(id)),
        }
    }

    async fn attrs(&self, id: FileId) -> Option<Attrs> {
        self.server.gateway.getattr(id).await.ok()
    }

    async fn post_op(&self, id: FileId) -> post_op_attr {
        post_op(id, self.attrs(id).await.as_ref())
    }

    /// Weak cache consistency data of a directory after a change.
    async fn dir_wcc(&self, dir: FileId) -> wcc_data {
        wcc_data {
            before: Nfs3Option::None,
            after: self.post_op(dir).await,
        }
    }

    async fn getattr(&self, args: &[u8]) -> Reply {
        let args: GETATTR3args = decode(args)?;
        let r = async {
            let id = self.id(&args.object).map_err(|s| (s, Void))?;
            let attrs = self
                .server
                .gateway
                .getattr(id)
                .await
                .map_err(|e| (status(e), Void))?;
            Ok(GETATTR3resok {
                obj_attributes: fattr(id, &attrs),
            })
        }
        .await;
        self.reply(&result(r))
    }

    async fn setattr(&self, args: &[u8]) -> Reply {
        let args: SETATTR3args = decode(args)?;
        let id = match self.id(&args.object) {
            Ok(id) => id,
            Err(s) => return self.reply(&SETATTR3res::Err((s, SETATTR3resfail::default()))),
        };
        let before = self.attrs(id).await;
        let before_wcc = || {
            before
                .as_ref()
                .map_or(Nfs3Option::None, |a| Nfs3Option::Some(wcc(a)))
        };
        if let (Nfs3Option::Some(guard), Some(current)) = (&args.guard, &before) {
            let ctime = super::convert::nfs_time(current.ctime);
            if ctime.seconds != guard.seconds || ctime.nseconds != guard.nseconds {
                let obj_wcc = wcc_data {
                    before: before_wcc(),
                    after: post_op(id, Some(current)),
                };
                return self.reply(&SETATTR3res::Err((
                    nfsstat3::NFS3ERR_NOT_SYNC,
                    SETATTR3resfail { obj_wcc },
                )));
            }
        }
        let res = match self
            .server
            .gateway
            .setattr(self.caller, id, changes(&args.new_attributes))
            .await
        {
            Ok(after) => SETATTR3res::Ok(SETATTR3resok {
                obj_wcc: wcc_data {
                    before: before_wcc(),
                    after: Nfs3Option::Some(fattr(id, &after)),
                },
            }),
            Err(e) => {
                let obj_wcc = wcc_data {
                    before: before_wcc(),
                    after: self.post_op(id).await,
                };
                SETATTR3res::Err((status(e), SETATTR3resfail { obj_wcc }))
            }
        };
        self.reply(&res)
    }

    async fn lookup(&self, args: &[u8]) -> Reply {
        let args: LOOKUP3args = decode(args)?;
        let gw = &self.server.gateway;
        let dir = match self.id(&args.what.dir) {
            Ok(dir) => dir,
            Err(s) => {
                return self.reply(&result::<LOOKUP3resok, _>(Err((
                    s,
                    LOOKUP3resfail::default(),
                ))))
            }
        };
        let r = async {
            let name = name_of(&args.what.name.0).map_err(|_| nfsstat3::NFS3ERR_NOENT)?;
            let id = gw.lookup(self.caller, dir, name).await.map_err(status)?;
            if !gw.allows(id, self.client) {
                // From the export root: a mount this client may not use.
                return Err(nfsstat3::NFS3ERR_ACCES);
            }
            Ok(id)
        }
        .await;
        let r = match r {
            Ok(id) => Ok(LOOKUP3resok {
                object: self.handle(id),
                obj_attributes: self.post_op(id).await,
                dir_attributes: self.post_op(dir).await,
            }),
            Err(s) => Err((
                s,
                LOOKUP3resfail {
                    dir_attributes: self.post_op(dir).await,
                },
            )),
        };
        self.reply(&result(r))
    }

    async fn access(&self, args: &[u8]) -> Reply {
        let args: ACCESS3args = decode(args)?;
        let r = async {
            let id = self
                .id(&args.object)
                .map_err(|s| (s, ACCESS3resfail::default()))?;
            let attrs = self
                .server
                .gateway
                .getattr(id)
                .await
                .map_err(|e| (status(e), ACCESS3resfail::default()))?;
            let writable = !self.server.gateway.read_only(id);
            let access = granted_access(&attrs, self.caller, writable) & args.access;
            Ok(ACCESS3resok {
                obj_attributes: Nfs3Option::Some(fattr(id, &attrs)),
                access,
            })
        }
        .await;
        self.reply(&result(r))
    }

    async fn readlink(&self, args: &[u8]) -> Reply {
        let args: READLINK3args = decode(args)?;
        let r = async {
            let id = self
                .id(&args.symlink)
                .map_err(|s| (s, READLINK3resfail::default()))?;
            match self.server.gateway.readlink(id).await {
                Ok(target) => Ok(READLINK3resok {
                    symlink_attributes: self.post_op(id).await,
                    data: nfspath3(Opaque::owned(target.into_bytes())),
                }),
                Err(e) => Err((
                    status(e),
                    READLINK3resfail {
                        symlink_attributes: self.post_op(id).await,
                    },
                )),
            }
        }
        .await;
        self.reply(&result(r))
    }

    async fn read(&self, args: &[u8]) -> Reply {
        let args: READ3args = decode(args)?;
        let r = async {
            let id = self
                .id(&args.file)
                .map_err(|s| (s, READ3resfail::default()))?;
            let count = args.count.min(TRANSFER_SIZE);
            match self
                .server
                .gateway
                .read(self.caller, id, args.offset, count, self.buffers)
                .await
            {
                Ok((data, eof)) => {
                    if let Some(mount) = self.mount {
                        mount.metrics.read(data.len() as u64);
                    }
                    Ok((
                        READ3resok {
                            file_attributes: self.post_op(id).await,
                            count: data.len() as u32,
                            eof,
                            data: Opaque::borrowed(&[]),
                        },
                        data,
                    ))
                }
                Err(e) => Err((
                    status(e),
                    READ3resfail {
                        file_attributes: self.post_op(id).await,
                    },
                )),
            }
        }
        .await;
        match r {
            // The data follows the encoded reply as its tail, uncopied: the reply ends with
            // the opaque's length, written here, and the data (padded on the wire) comes after.
            Ok((ok, data)) => {
                let mut reply = self.reply(&READ3res::Ok(ok))?;
                let at = reply.head.len() - 4;
                reply.head[at..].copy_from_slice(&(data.len() as u32).to_be_bytes());
                reply.tail = data;
                Ok(reply)
            }
            Err(e) => self.reply(&READ3res::Err(e)),
        }
    }

    async fn write(&self, record_args: &Bytes) -> Reply {
        let args = decode_write(record_args)?;
        let gw = &self.server.gateway;
        let r = async {
            let id = self
                .id(&args.file)
                .map_err(|s| (s, WRITE3resfail::default()))?;
            let mut data = args.data;
            data.truncate(args.count as usize);
            let count = data.len() as u32;
            let before = self.attrs(id).await;
            let fail = |s, after| {
                let before = before
                    .as_ref()
                    .map_or(Nfs3Option::None, |a| Nfs3Option::Some(wcc(a)));
                (
                    s,
                    WRITE3resfail {
                        file_wcc: wcc_data { before, after },
                    },
                )
            };
            let after = match gw.write(self.caller, id, args.offset, data).await {
                Ok(after) => after,
                Err(e) => return Err(fail(status(e), self.post_op(id).await)),
            };
            if let Some(mount) = self.mount {
                mount.metrics.written(count.into());
            }
            // Written data is in the backend at once; stable writes are also synced.
            let committed = if args.stable == stable_how::UNSTABLE {
                stable_how::UNSTABLE
            } else {
                gw.sync(id)
                    .await
                    .map_err(|e| fail(status(e), post_op(id, Some(&after))))?;
                stable_how::FILE_SYNC
            };
            Ok(WRITE3resok {
                file_wcc: wcc_data {
                    before: before
                        .as_ref()
                        .map_or(Nfs3Option::None, |a| Nfs3Option::Some(wcc(a))),
                    after: Nfs3Option::Some(fattr(id, &after)),
                },
                count,
                committed,
                verf: writeverf3(self.server.write_verifier),
            })
        }
        .await;
        self.reply(&result(r))
    }

    /// The reply of every procedure that makes a new entry.
    async fn made(
        &self,
        dir: FileId,
        made: Result<(FileId, Attrs), Error>,
    ) -> Result<CREATE3resok, (nfsstat3, wcc_data)> {
        match made {
            Ok((id, attrs)) => Ok(CREATE3resok {
                obj: Nfs3Option::Some(self.handle(id)),
                obj_attributes: Nfs3Option::Some(fattr(id, &attrs)),
                dir_wcc: self.dir_wcc(dir).await,
            }),
            Err(e) => Err((status(e), self.dir_wcc(dir).await)),
        }
    }

    async fn create(&self, args: &[u8]) -> Reply {
        let args: CREATE3args = decode(args)?;
        let gw = &self.server.gateway;
        let dir = self.id(&args.where_.dir);
        let r = match dir {
            Err(s) => Err((s, wcc_data::default())),
            Ok(dir) => {
                let made = match name_of(&args.where_.name.0) {
                    Err(_) => Err(Error::Invalid),
                    Ok(name) => match &args.how {
                        createhow3::UNCHECKED(sattr) | createhow3::GUARDED(sattr) => {
                            let exclusive = matches!(args.how, createhow3::GUARDED(_));
                            let mut wanted = changes(sattr);
                            let mode = wanted.mode.take().unwrap_or(DEFAULT_FILE_MODE);
                            match gw.create(self.caller, dir, name, mode, exclusive).await {
                                Ok((id, attrs)) if is_empty(&wanted) => Ok((id, attrs)),
                                Ok((id, _)) => {
                                    gw.setattr(self.caller, id, wanted).await.map(|a| (id, a))
                                }
                                Err(e) => Err(e),
                            }
                        }
                        createhow3::EXCLUSIVE(verf) => {
                            gw.create_exclusive(self.caller, dir, name, verf.0).await
                        }
                    },
                };
                self.made(dir, made).await
            }
        };
        let r = r.map_err(|(s, dir_wcc)| (s, CREATE3resfail { dir_wcc }));
        self.reply(&result(r))
    }

    async fn mkdir(&self, args: &[u8]) -> Reply {
        let args: MKDIR3args = decode(args)?;
        let r = match self.id(&args.where_.dir) {
            Err(s) => Err((s, wcc_data::default())),
            Ok(dir) => {
                let mut wanted = changes(&args.attributes);
                let mode = wanted.mode.take().unwrap_or(DEFAULT_DIR_MODE);
                let made = match name_of(&args.where_.name.0) {
                    Err(_) => Err(Error::Invalid),
                    Ok(name) => {
                        self.make_then_set(
                            self.server
                                .gateway
                                .mkdir(self.caller, dir, name, mode)
                                .await,
                            wanted,
                        )
                        .await
                    }
                };
                self.made(dir, made).await
            }
        };
        let r = r
            .map(|ok| MKDIR3resok {
                obj: ok.obj,
                obj_attributes: ok.obj_attributes,
                dir_wcc: ok.dir_wcc,
            })
            .map_err(|(s, dir_wcc)| (s, MKDIR3resfail { dir_wcc }));
        self.reply(&result(r))
    }

    /// Applies the attributes a create-like call asked for beyond the mode.
    async fn make_then_set(
        &self,
        made: Result<(FileId, Attrs), Error>,
        wanted: SetAttrs,
    ) -> Result<(FileId, Attrs), Error> {
        let (id, attrs) = made?;
        // Ownership was settled by the gateway; only size and times are left to apply.
        let rest = SetAttrs {
            size: wanted.size,
            atime: wanted.atime,
            mtime: wanted.mtime,
            ..SetAttrs::none()
        };
        if is_empty(&rest) {
            return Ok((id, attrs));
        }
        Ok((
            id,
            self.server.gateway.setattr(self.caller, id, rest).await?,
        ))
    }

    async fn symlink(&self, args: &[u8]) -> Reply {
        let args: SYMLINK3args = decode(args)?;
        let r = match self.id(&args.where_.dir) {
            Err(s) => Err((s, wcc_data::default())),
            Ok(dir) => {
                let made = match (
                    name_of(&args.where_.name.0),
                    std::str::from_utf8(&args.symlink.symlink_data.0),
                ) {
                    (Ok(name), Ok(target)) => {
                        self.server
                            .gateway
                            .symlink(self.caller, dir, name, target)
                            .await
                    }
                    _ => Err(Error::Invalid),
                };
                self.made(dir, made).await
            }
        };
        let r = r
            .map(|ok| SYMLINK3resok {
                obj: ok.obj,
                obj_attributes: ok.obj_attributes,
                dir_wcc: ok.dir_wcc,
            })
            .map_err(|(s, dir_wcc)| (s, SYMLINK3resfail { dir_wcc }));
        self.reply(&result(r))
    }

    async fn mknod(&self, args: &[u8]) -> Reply {
        let args: MKNOD3args = decode(args)?;
        let r = match self.id(&args.where_.dir) {
            Err(s) => Err((s, wcc_data::default())),
            Ok(dir) => {
                let none = Device { major: 0, minor: 0 };
                let what = match &args.what {
                    mknoddata3::NF3CHR(d) => Some((
                        FileKind::CharDevice,
                        &d.dev_attributes,
                        Device {
                            major: d.spec.specdata1,
                            minor: d.spec.specdata2,
                        },
                    )),
                    mknoddata3::NF3BLK(d) => Some((
                        FileKind::BlockDevice,
                        &d.dev_attributes,
                        Device {
                            major: d.spec.specdata1,
                            minor: d.spec.specdata2,
                        },
                    )),
                    mknoddata3::NF3SOCK(s) => Some((FileKind::Socket, s, none)),
                    mknoddata3::NF3FIFO(s) => Some((FileKind::Fifo, s, none)),
                    mknoddata3::default => None,
                };
                let made = match (what, name_of(&args.where_.name.0)) {
                    (None, _) => Err(Error::Invalid),
                    (_, Err(_)) => Err(Error::Invalid),
                    (Some((kind, sattr, device)), Ok(name)) => {
                        let mut wanted = changes(sattr);
                        let mode = wanted.mode.take().unwrap_or(DEFAULT_FILE_MODE);
                        let made = self
                            .server
                            .gateway
                            .mknod(self.caller, dir, name, kind, mode, device)
                            .await;
                        self.make_then_set(made, wanted).await
                    }
                };
                let made = match made {
                    // NFS has its own status for a type the server does not make.
                    Err(Error::Invalid) if matches!(args.what, mknoddata3::default) => {
                        return self.reply(&result::<MKNOD3resok, _>(Err((
                            nfsstat3::NFS3ERR_BADTYPE,
                            MKNOD3resfail {
                                dir_wcc: self.dir_wcc(dir).await,
                            },
                        ))));
                    }
                    other => other,
                };
                self.made(dir, made).await
            }
        };
        let r = r
            .map(|ok| MKNOD3resok {
                obj: ok.obj,
                obj_attributes: ok.obj_attributes,
                dir_wcc: ok.dir_wcc,
            })
            .map_err(|(s, dir_wcc)| (s, MKNOD3resfail { dir_wcc }));
        self.reply(&result(r))
    }

    async fn remove(&self, args: &[u8], directory: bool) -> Reply {
        // REMOVE3args and RMDIR3args have the same shape.
        let args: REMOVE3args = decode(args)?;
        let (r, dir_wcc) = match self.id(&args.object.dir) {
            Err(s) => (Err(s), wcc_data::default()),
            Ok(dir) => {
                let r = match name_of(&args.object.name.0) {
                    Err(s) => Err(s),
                    Ok(name) => self
                        .server
                        .gateway
                        .remove(self.caller, dir, name, directory)
                        .await
                        .map_err(status),
                };
                (r, self.dir_wcc(dir).await)
            }
        };
        if directory {
            let r = r.map(|()| RMDIR3resok { dir_wcc }).map_err(|s| {
                (
                    s,
                    RMDIR3resfail {
                        dir_wcc: wcc_data::default(),
                    },
                )
            });
            self.reply(&result(r))
        } else {
            let r = r.map(|()| REMOVE3resok { dir_wcc }).map_err(|s| {
                (
                    s,
                    REMOVE3resfail {
                        dir_wcc: wcc_data::default(),
                    },
                )
            });
            self.reply(&result(r))
        }
    }

    async fn rename(&self, args: &[u8]) -> Reply {
        let args: RENAME3args = decode(args)?;
        let r = async {
            let from_dir = self.id(&args.from.dir)?;
            let to_dir = self.id(&args.to.dir)?;
            let (from, to) = (name_of(&args.from.name.0)?, name_of(&args.to.name.0)?);
            self.server
                .gateway
                .rename(self.caller, from_dir, from, to_dir, to)
                .await
                .map_err(status)?;
            Ok((from_dir, to_dir))
        }
        .await;
        let r = match r {
            Ok((from_dir, to_dir)) => Ok(RENAME3resok {
                fromdir_wcc: self.dir_wcc(from_dir).await,
                todir_wcc: self.dir_wcc(to_dir).await,
            }),
            Err(s) => Err((s, RENAME3resfail::default())),
        };
        self.reply(&result(r))
    }

    async fn link(&self, args: &[u8]) -> Reply {
        let args: LINK3args = decode(args)?;
        let r = async {
            let file = self.id(&args.file)?;
            let dir = self.id(&args.link.dir)?;
            let name = name_of(&args.link.name.0)?;
            let attrs = self
                .server
                .gateway
                .link(self.caller, file, dir, name)
                .await
                .map_err(status)?;
            Ok((file, dir, attrs))
        }
        .await;
        let r = match r {
            Ok((file, dir, attrs)) => Ok(LINK3resok {
                file_attributes: Nfs3Option::Some(fattr(file, &attrs)),
                linkdir_wcc: self.dir_wcc(dir).await,
            }),
            Err(s) => Err((
                s,
                LINK3resfail {
                    file_attributes: Nfs3Option::None,
                    linkdir_wcc: wcc_data::default(),
                },
            )),
        };
        self.reply(&result(r))
    }

    async fn readdir(&self, args: &[u8]) -> Reply {
        let args: READDIR3args = decode(args)?;
        let budget = (args.count as usize).saturating_sub(DIR_REPLY_OVERHEAD);
        let (dir, page) = match self
            .dir_page::<READDIR3resfail>(&args.dir, args.cookie, budget / 24 + 1)
            .await
        {
            Ok(found) => found,
            Err(fail) => return self.reply(&result::<READDIR3resok, _>(Err(fail))),
        };
        let dir_attributes = self.post_op(dir).await;
        let mut used = 0;
        let mut entries = Vec::new();
        for (id, name, _) in page.entries() {
            let size = 4 + 8 + 4 + name.len().div_ceil(4) * 4 + 8;
            if used + size > budget {
                break;
            }
            used += size;
            entries.push(entry3 {
                fileid: id,
                name: filename3(Opaque::borrowed(name.as_bytes())),
                cookie: id,
            });
        }
        let eof = page.end && entries.len() == page.entry_count();
        let r = if entries.is_empty() && !eof {
            Err((
                nfsstat3::NFS3ERR_TOOSMALL,
                READDIR3resfail { dir_attributes },
            ))
        } else {
            Ok(READDIR3resok {
                dir_attributes,
                cookieverf: cookieverf3::default(),
                reply: dirlist3 {
                    entries: List(entries),
                    eof,
                },
            })
        };
        self.reply(&result(r))
    }

    async fn readdirplus(&self, args: &[u8]) -> Reply {
        let args: READDIRPLUS3args = decode(args)?;
        let max_bytes = (args.maxcount as usize).saturating_sub(DIR_REPLY_OVERHEAD);
        let max_dir_bytes = args.dircount as usize;
        let (dir, page) = match self
            .dir_page::<READDIRPLUS3resfail>(&args.dir, args.cookie, max_bytes / 128 + 1)
            .await
        {
            Ok(found) => found,
            Err(fail) => return self.reply(&result::<READDIRPLUS3resok, _>(Err(fail))),
        };
        let dir_attributes = self.post_op(dir).await;
        let (mut used, mut dir_used) = (0, 0);
        let mut entries = Vec::new();
        for (id, name, attrs) in page.entries() {
            let name_size = 4 + name.len().div_ceil(4) * 4;
            let dir_size = 8 + name_size + 8;
            let entry = entryplus3 {
                fileid: id,
                name: filename3(Opaque::borrowed(name.as_bytes())),
                cookie: id,
                name_attributes: Nfs3Option::Some(fattr(id, attrs)),
                name_handle: Nfs3Option::Some(self.handle(id)),
            };
            let size = 4 + entry.packed_size();
            if used + size > max_bytes || (max_dir_bytes > 0 && dir_used + dir_size > max_dir_bytes)
            {
                break;
            }
            used += size;
            dir_used += dir_size;
            entries.push(entry);
        }
        let eof = page.end && entries.len() == page.entry_count();
        let r = if entries.is_empty() && !eof {
            Err((
                nfsstat3::NFS3ERR_TOOSMALL,
                READDIRPLUS3resfail { dir_attributes },
            ))
        } else {
            Ok(READDIRPLUS3resok {
                dir_attributes,
                cookieverf: cookieverf3::default(),
                reply: dirlistplus3 {
                    entries: List(entries),
                    eof,
                },
            })
        };
        self.reply(&result(r))
    }

    /// The directory of a READDIR(PLUS) and its page of up to `max` entries after `cookie`, or
    /// the failure reply's status.
    async fn dir_page<E: Default>(
        &self,
        dir: &nfs_fh3,
        cookie: u64,
        max: usize,
    ) -> Result<(FileId, crate::gateway::DirPage), (nfsstat3, E)> {
        let dir = self.id(dir).map_err(|s| (s, E::default()))?;
        match self
            .server
            .gateway
            .readdir(self.caller, dir, cookie, max.min(MAX_DIR_ENTRIES))
            .await
        {
            Ok(Some(page)) => Ok((dir, page)),
            Ok(None) => Err((nfsstat3::NFS3ERR_BAD_COOKIE, E::default())),
            Err(e) => Err((status(e), E::default())),
        }
    }

    async fn fsstat(&self, args: &[u8]) -> Reply {
        let args: FSSTAT3args = decode(args)?;
        let r = async {
            let id = self
                .id(&args.fsroot)
                .map_err(|s| (s, FSSTAT3resfail::default()))?;
            match self.server.gateway.statfs(id).await {
                Ok(st) => Ok(FSSTAT3resok {
                    obj_attributes: self.post_op(id).await,
                    tbytes: st.total_bytes,
                    fbytes: st.free_bytes,
                    abytes: st.available_bytes,
                    tfiles: st.total_files,
                    ffiles: st.free_files,
                    afiles: st.available_files,
                    invarsec: 0,
                }),
                Err(e) => Err((
                    status(e),
                    FSSTAT3resfail {
                        obj_attributes: self.post_op(id).await,
                    },
                )),
            }
        }
        .await;
        self.reply(&result(r))
    }

    async fn fsinfo(&self, args: &[u8]) -> Reply {
        let args: FSINFO3args = decode(args)?;
        let r = async {
            let id = self
                .id(&args.fsroot)
                .map_err(|s| (s, FSINFO3resfail::default()))?;
            Ok(FSINFO3resok {
                obj_attributes: self.post_op(id).await,
                rtmax: TRANSFER_SIZE,
                rtpref: TRANSFER_SIZE,
                rtmult: 4096,
                wtmax: TRANSFER_SIZE,
                wtpref: TRANSFER_SIZE,
                wtmult: 4096,
                dtpref: 64 * 1024,
                // Each mount's own limit, so clients refuse larger offsets at once (EFBIG).
                maxfilesize: self.mount.map_or(HOST_MAX_FILE_SIZE, Mount::max_file_size),
                time_delta: nfstime3 {
                    seconds: 0,
                    nseconds: 1,
                },
                properties: FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME,
            })
        }
        .await;
        self.reply(&result(r))
    }

    async fn pathconf(&self, args: &[u8]) -> Reply {
        let args: PATHCONF3args = decode(args)?;
        let r = async {
            let id = self
                .id(&args.object)
                .map_err(|s| (s, PATHCONF3resfail::default()))?;
            Ok(PATHCONF3resok {
                obj_attributes: self.post_op(id).await,
                linkmax: 32_000,
                name_max: 255,
                no_trunc: true,
                chown_restricted: true,
                case_insensitive: false,
                case_preserving: true,
            })
        }
        .await;
        self.reply(&result(r))
    }

    async fn commit(&self, args: &[u8]) -> Reply {
        let args: COMMIT3args = decode(args)?;
        let r = async {
            let id = self.id(&args.file).map_err(|s| {
                (
                    s,
                    COMMIT3resfail {
                        file_wcc: wcc_data::default(),
                    },
                )
            })?;
            match self.server.gateway.sync(id).await {
                Ok(()) => Ok(COMMIT3resok {
                    file_wcc: wcc_data {
                        before: Nfs3Option::None,
                        after: self.post_op(id).await,
                    },
                    verf: writeverf3(self.server.write_verifier),
                }),
                Err(e) => Err((
                    status(e),
                    COMMIT3resfail {
                        file_wcc: wcc_data {
                            before: Nfs3Option::None,
                            after: self.post_op(id).await,
                        },
                    },
                )),
            }
        }
        .await;
        self.reply(&result(r))
    }
}

/// The ACCESS bits a caller holds on a file with these attributes.
fn granted_access(a: &Attrs, c: &Caller, writable: bool) -> u32 {
    let perm = permissions::held(c, a);
    let mut granted = 0;
    if perm & 4 != 0 {
        granted |= ACCESS3_READ;
    }
    if a.kind == FileKind::Directory {
        if perm & 1 != 0 {
            granted |= ACCESS3_LOOKUP;
        }
        if perm & 2 != 0 && writable {
            granted |= ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE;
        }
    } else {
        if perm & 2 != 0 && writable {
            granted |= ACCESS3_MODIFY | ACCESS3_EXTEND;
        }
        if perm & 1 != 0 {
            granted |= ACCESS3_EXECUTE;
        }
    }
    granted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(uid: u32, gid: u32, gids: &[u32]) -> Caller {
        Caller {
            uid,
            gid,
            gids: gids.to_vec(),
        }
    }

    /// WRITE's data is a slice of the call's record, not a copy, and decodes as the XDR
    /// decoder would; data that claims more than the record holds is garbage.
    #[test]
    fn write_data_is_decoded_in_place() {
        let args = WRITE3args {
            file: nfs_fh3 {
                data: Opaque::owned(vec![9; 12]),
            },
            offset: (5 << 32) + 7,
            count: 1000,
            stable: stable_how::DATA_SYNC,
            data: Opaque::owned((0..1000u32).map(|i| i as u8).collect()),
        };
        let mut record = Vec::new();
        args.pack(&mut record).unwrap();
        let record = Bytes::from(record);
        let Ok(decoded) = decode_write(&record) else {
            panic!("a well-formed WRITE did not decode");
        };
        assert_eq!(decoded.file, args.file);
        assert_eq!(decoded.offset, args.offset);
        assert_eq!(decoded.count, 1000);
        assert_eq!(decoded.stable, stable_how::DATA_SYNC);
        assert_eq!(&decoded.data[..], &args.data[..]);
        let within = record.as_ptr_range();
        assert!(
            within.contains(&decoded.data.as_ptr()),
            "the data was copied"
        );
        let cut = record.slice(..record.len() - 8);
        assert!(decode_write(&cut).is_err());
    }

    #[test]
    fn access_follows_owner_group_and_other_bits() {
        let f = Attrs::for_test(FileKind::Regular, 0o640, 1000, 100);
        assert_eq!(
            granted_access(&f, &caller(1000, 1, &[]), true),
            ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND
        );
        assert_eq!(
            granted_access(&f, &caller(2000, 100, &[]), true),
            ACCESS3_READ
        );
        assert_eq!(
            granted_access(&f, &caller(2000, 5, &[100]), true),
            ACCESS3_READ
        );
        assert_eq!(granted_access(&f, &caller(2000, 5, &[]), true), 0);
    }

    #[test]
    fn root_may_not_execute_what_no_one_may() {
        let f = Attrs::for_test(FileKind::Regular, 0o644, 1000, 100);
        assert_eq!(
            granted_access(&f, &caller(0, 0, &[]), true) & ACCESS3_EXECUTE,
            0
        );
        let x = Attrs::for_test(FileKind::Regular, 0o100, 1000, 100);
        assert_ne!(
            granted_access(&x, &caller(0, 0, &[]), true) & ACCESS3_EXECUTE,
            0
        );
    }

    #[test]
    fn read_only_mounts_grant_no_changes() {
        let d = Attrs::for_test(FileKind::Directory, 0o777, 1000, 100);
        let granted = granted_access(&d, &caller(1000, 100, &[]), false);
        assert_eq!(granted, ACCESS3_READ | ACCESS3_LOOKUP);
    }
}
