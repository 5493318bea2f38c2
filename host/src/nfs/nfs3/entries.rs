//! NFSv3's procedures that make, remove and rename directory entries: CREATE (all three
//! modes), MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME and LINK.

use nfs3_types::nfs3::*;

use super::{decode, name_of, result, Handler, Reply, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE};
use crate::backend::types::{Attrs, Device, Error, FileKind, SetAttrs};
use crate::gateway::FileId;
use crate::nfs::convert::{changes, fattr, is_empty, status};

impl Handler<'_> {
    /// The reply of every procedure that makes a new entry.
    pub(super) async fn made(
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

    pub(super) async fn create(&self, args: &[u8]) -> Reply {
        let args: CREATE3args = decode(args)?;
        let gw = &self.server.gateway;
        let dir = self.id(&args.where_.dir).await;
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

    pub(super) async fn mkdir(&self, args: &[u8]) -> Reply {
        let args: MKDIR3args = decode(args)?;
        let r = match self.id(&args.where_.dir).await {
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
    pub(super) async fn make_then_set(
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

    pub(super) async fn symlink(&self, args: &[u8]) -> Reply {
        let args: SYMLINK3args = decode(args)?;
        let r = match self.id(&args.where_.dir).await {
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

    pub(super) async fn mknod(&self, args: &[u8]) -> Reply {
        let args: MKNOD3args = decode(args)?;
        let r = match self.id(&args.where_.dir).await {
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

    pub(super) async fn remove(&self, args: &[u8], directory: bool) -> Reply {
        // REMOVE3args and RMDIR3args have the same shape.
        let args: REMOVE3args = decode(args)?;
        let (r, dir_wcc) = match self.id(&args.object.dir).await {
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

    pub(super) async fn rename(&self, args: &[u8]) -> Reply {
        let args: RENAME3args = decode(args)?;
        let r = async {
            let from_dir = self.id(&args.from.dir).await?;
            let to_dir = self.id(&args.to.dir).await?;
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

    pub(super) async fn link(&self, args: &[u8]) -> Reply {
        let args: LINK3args = decode(args)?;
        let r = async {
            let file = self.id(&args.file).await?;
            let dir = self.id(&args.link.dir).await?;
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
}
