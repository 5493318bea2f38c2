//! NFSv3's procedures on one file: GETATTR, SETATTR, LOOKUP, ACCESS, READLINK, READ, WRITE
//! and COMMIT, with the ACCESS bits a caller holds.

use bytes::Bytes;
use nfs3_types::nfs3::*;
use nfs3_types::xdr_codec::{Opaque, Void};

use super::{decode, decode_write, name_of, result, Handler, Reply, TRANSFER_SIZE};
use crate::backend::types::{Attrs, FileKind};
use crate::gateway::{permissions, Caller};
use crate::nfs::convert::{changes, fattr, post_op, status, wcc};

impl Handler<'_> {
    pub(super) async fn getattr(&self, args: &[u8]) -> Reply {
        let args: GETATTR3args = decode(args)?;
        let r = async {
            let id = self.id(&args.object).await.map_err(|s| (s, Void))?;
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

    pub(super) async fn setattr(&self, args: &[u8]) -> Reply {
        let args: SETATTR3args = decode(args)?;
        let id = match self.id(&args.object).await {
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
            let ctime = crate::nfs::convert::nfs_time(current.ctime);
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

    pub(super) async fn lookup(&self, args: &[u8]) -> Reply {
        let args: LOOKUP3args = decode(args)?;
        let gw = &self.server.gateway;
        let dir = match self.id(&args.what.dir).await {
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

    pub(super) async fn access(&self, args: &[u8]) -> Reply {
        let args: ACCESS3args = decode(args)?;
        let r = async {
            let id = self
                .id(&args.object)
                .await
                .map_err(|s| (s, ACCESS3resfail::default()))?;
            let attrs = self
                .server
                .gateway
                .getattr(id)
                .await
                .map_err(|e| (status(e), ACCESS3resfail::default()))?;
            let writable = !self.server.gateway.read_only(id).await;
            let access = granted_access(&attrs, self.caller, writable) & args.access;
            Ok(ACCESS3resok {
                obj_attributes: Nfs3Option::Some(fattr(id, &attrs)),
                access,
            })
        }
        .await;
        self.reply(&result(r))
    }

    pub(super) async fn readlink(&self, args: &[u8]) -> Reply {
        let args: READLINK3args = decode(args)?;
        let r = async {
            let id = self
                .id(&args.symlink)
                .await
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

    pub(super) async fn read(&self, args: &[u8]) -> Reply {
        let args: READ3args = decode(args)?;
        let r = async {
            let id = self
                .id(&args.file)
                .await
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

    pub(super) async fn write(&self, record_args: &Bytes) -> Reply {
        let args = decode_write(record_args)?;
        let gw = &self.server.gateway;
        let r = async {
            let id = self
                .id(&args.file)
                .await
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

    pub(super) async fn commit(&self, args: &[u8]) -> Reply {
        let args: COMMIT3args = decode(args)?;
        let r = async {
            let id = self.id(&args.file).await.map_err(|s| {
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
pub(super) fn granted_access(a: &Attrs, c: &Caller, writable: bool) -> u32 {
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
