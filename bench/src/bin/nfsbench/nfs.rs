//! The NFSv3 and MOUNT v3 calls the benchmark makes, on top of the pipelined `Rpc` client.
//!
//! Arguments and most results are XDR through `nfs3_types`. READ results are read by hand: the
//! status, the optional attributes, the count and the eof flag, so the data is never copied
//! out of the reply record (the client should cost every server the same, and little).

use std::io::Cursor;
use std::net::SocketAddr;

use anyhow::{anyhow, bail, Result};
use nfs3_types::mount::{dirpath, mountres3};
use nfs3_types::nfs3::{
    cookieverf3, createhow3, diropargs3, fattr3, filename3, nfs_fh3, sattr3, stable_how,
    COMMIT3args, COMMIT3res, CREATE3args, CREATE3res, FSINFO3args, FSINFO3res, FSINFO3resok,
    GETATTR3args, GETATTR3res, LOOKUP3args, LOOKUP3res, Nfs3Option, Nfs3Result, READ3args,
    READDIRPLUS3args, READDIRPLUS3res, REMOVE3args, REMOVE3res, WRITE3args, WRITE3res,
};
use nfs3_types::xdr_codec::{Opaque, Unpack};

use crate::rpc::Rpc;

const NFS: u32 = 100003;
const MOUNT: u32 = 100005;
const V3: u32 = 3;

fn decode<T: Unpack>(bytes: &[u8]) -> Result<T> {
    T::unpack(&mut Cursor::new(bytes))
        .map(|(v, _)| v)
        .map_err(|e| anyhow!("undecodable reply: {e:?}"))
}

fn ok<T, E>(r: Nfs3Result<T, E>, what: &str) -> Result<T> {
    match r {
        Nfs3Result::Ok(v) => Ok(v),
        Nfs3Result::Err((stat, _)) => bail!("{what}: {stat:?}"),
    }
}

/// Asks the MOUNT server at `addr` for the root handle of `export`.
pub async fn mount(addr: SocketAddr, export: &str) -> Result<nfs_fh3> {
    let rpc = Rpc::connect(addr).await?;
    let reply = rpc
        .call(MOUNT, V3, 1, &dirpath(Opaque::borrowed(export.as_bytes())))
        .await?;
    match decode::<mountres3>(reply.results())? {
        mountres3::Ok(ok) => Ok(nfs_fh3 {
            data: Opaque::owned(ok.fhandle.0.to_vec()),
        }),
        mountres3::Err(stat) => bail!("MNT {export} at {addr}: {stat:?}"),
    }
}

/// One NFS connection.
pub struct Nfs {
    rpc: Rpc,
}

impl Nfs {
    pub async fn connect(addr: SocketAddr) -> Result<Nfs> {
        Ok(Nfs {
            rpc: Rpc::connect(addr).await?,
        })
    }

    pub async fn fsinfo(&self, root: &nfs_fh3) -> Result<FSINFO3resok> {
        let args = FSINFO3args {
            fsroot: root.clone(),
        };
        let reply = self.rpc.call(NFS, V3, 19, &args).await?;
        ok(decode::<FSINFO3res>(reply.results())?, "FSINFO")
    }

    pub async fn getattr(&self, fh: &nfs_fh3) -> Result<fattr3> {
        let args = GETATTR3args { object: fh.clone() };
        let reply = self.rpc.call(NFS, V3, 1, &args).await?;
        Ok(ok(decode::<GETATTR3res>(reply.results())?, "GETATTR")?.obj_attributes)
    }

    /// LOOKUP: the handle and (when the server sends them) the attributes of `name` in `dir`.
    pub async fn lookup(&self, dir: &nfs_fh3, name: &str) -> Result<(nfs_fh3, Option<fattr3>)> {
        let args = LOOKUP3args {
            what: diropargs3 {
                dir: dir.clone(),
                name: filename3(Opaque::borrowed(name.as_bytes())),
            },
        };
        let reply = self.rpc.call(NFS, V3, 3, &args).await?;
        let res = ok(decode::<LOOKUP3res>(reply.results())?, "LOOKUP")?;
        let attrs = match res.obj_attributes {
            Nfs3Option::Some(a) => Some(a),
            Nfs3Option::None => None,
        };
        Ok((res.object, attrs))
    }

    /// READ: how many bytes came back, and the eof flag.
    pub async fn read(&self, fh: &nfs_fh3, offset: u64, count: u32) -> Result<(u32, bool)> {
        let args = READ3args {
            file: fh.clone(),
            offset,
            count,
        };
        let reply = self.rpc.call(NFS, V3, 6, &args).await?;
        let r = reply.results();
        let word = |at: usize| -> Result<u32> {
            r.get(at..at + 4)
                .map(|w| u32::from_be_bytes(w.try_into().unwrap()))
                .ok_or_else(|| anyhow!("short READ reply"))
        };
        if word(0)? != 0 {
            bail!("READ: status {}", word(0)?);
        }
        // post_op_attr: a flag, then 84 bytes of fattr3.
        let at = if word(4)? == 1 { 8 + 84 } else { 8 };
        let (count, eof, len) = (word(at)?, word(at + 4)? != 0, word(at + 8)?);
        if len != count || r.len() < at + 12 + len as usize {
            bail!("READ reply of {} bytes claims {count}", r.len());
        }
        Ok((count, eof))
    }

    /// CREATE (UNCHECKED, no attributes set): the new file's handle.
    pub async fn create(&self, dir: &nfs_fh3, name: &str) -> Result<nfs_fh3> {
        let args = CREATE3args {
            where_: diropargs3 {
                dir: dir.clone(),
                name: filename3(Opaque::borrowed(name.as_bytes())),
            },
            how: createhow3::UNCHECKED(sattr3::default()),
        };
        let reply = self.rpc.call(NFS, V3, 8, &args).await?;
        match ok(decode::<CREATE3res>(reply.results())?, "CREATE")?.obj {
            Nfs3Option::Some(fh) => Ok(fh),
            Nfs3Option::None => Ok(self.lookup(dir, name).await?.0),
        }
    }

    /// WRITE, UNSTABLE (as a kernel client writes before COMMIT): how many bytes were taken.
    pub async fn write(&self, fh: &nfs_fh3, offset: u64, data: &[u8]) -> Result<u32> {
        let args = WRITE3args {
            file: fh.clone(),
            offset,
            count: data.len() as u32,
            stable: stable_how::UNSTABLE,
            data: Opaque::borrowed(&[]),
        };
        let reply = self.rpc.call_with_tail(NFS, V3, 7, &args, data).await?;
        Ok(ok(decode::<WRITE3res>(reply.results())?, "WRITE")?.count)
    }

    /// COMMIT of the whole file (what `fsync` and `close` send).
    pub async fn commit(&self, fh: &nfs_fh3) -> Result<()> {
        let args = COMMIT3args {
            file: fh.clone(),
            offset: 0,
            count: 0,
        };
        let reply = self.rpc.call(NFS, V3, 21, &args).await?;
        ok(decode::<COMMIT3res>(reply.results())?, "COMMIT").map(|_| ())
    }

    /// REMOVE of `name` in `dir`.
    pub async fn remove(&self, dir: &nfs_fh3, name: &str) -> Result<()> {
        let args = REMOVE3args {
            object: diropargs3 {
                dir: dir.clone(),
                name: filename3(Opaque::borrowed(name.as_bytes())),
            },
        };
        let reply = self.rpc.call(NFS, V3, 12, &args).await?;
        ok(decode::<REMOVE3res>(reply.results())?, "REMOVE").map(|_| ())
    }

    /// Lists a whole directory with READDIRPLUS; returns the names and handles.
    pub async fn readdirplus_all(
        &self,
        dir: &nfs_fh3,
        dircount: u32,
        maxcount: u32,
    ) -> Result<Vec<(String, Option<nfs_fh3>)>> {
        let (mut cookie, mut verf) = (0, cookieverf3::default());
        let mut out = Vec::new();
        loop {
            let args = READDIRPLUS3args {
                dir: dir.clone(),
                cookie,
                cookieverf: verf,
                dircount,
                maxcount,
            };
            let reply = self.rpc.call(NFS, V3, 17, &args).await?;
            let res = ok(decode::<READDIRPLUS3res>(reply.results())?, "READDIRPLUS")?;
            verf = res.cookieverf;
            for e in res.reply.entries.0 {
                cookie = e.cookie;
                let name = String::from_utf8_lossy(&e.name.0).into_owned();
                let fh = match e.name_handle {
                    Nfs3Option::Some(fh) => Some(fh),
                    Nfs3Option::None => None,
                };
                out.push((name, fh));
            }
            if res.reply.eof {
                return Ok(out);
            }
        }
    }
}
