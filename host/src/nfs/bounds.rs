//! Length checks made before `nfs3_types` decodes a call's arguments. Its decoders allocate an
//! opaque's claimed length before reading its bytes, so a short hostile record that claims a
//! 4 GiB file name would cost a 4 GiB allocation (and, on a host that does not overcommit
//! memory, the process). Here each procedure's arguments are walked field by field, in the
//! order the decoder reads them, with `rpc::Reader`, which allocates nothing and refuses any
//! length longer than what the record has left. A call whose walk fails is GARBAGE_ARGS, as
//! its decoding would have been; after a walk succeeds, every length the decoder meets fits in
//! the record (at most `rpc::MAX_RECORD` bytes).

use nfs3_types::nfs3::NFS3_FHSIZE;

use crate::rpc::Reader;

type Walk = Option<()>;

fn words(r: &mut Reader, n: usize) -> Walk {
    for _ in 0..n {
        r.u32()?;
    }
    Some(())
}

fn flag(r: &mut Reader) -> Option<bool> {
    match r.u32()? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

fn opaque(r: &mut Reader) -> Walk {
    r.opaque(usize::MAX).map(drop)
}

fn fh(r: &mut Reader) -> Walk {
    r.opaque(NFS3_FHSIZE).map(drop)
}

fn diropargs(r: &mut Reader) -> Walk {
    fh(r)?;
    opaque(r)
}

/// `sattr3`: mode, uid, gid (optional words), size (optional hyper), atime and mtime (how to
/// set them, with a time when the client gives it).
fn sattr(r: &mut Reader) -> Walk {
    for _ in 0..3 {
        if flag(r)? {
            words(r, 1)?;
        }
    }
    if flag(r)? {
        words(r, 2)?;
    }
    for _ in 0..2 {
        match r.u32()? {
            0 | 1 => {}
            2 => words(r, 2)?,
            _ => return None,
        }
    }
    Some(())
}

/// Whether the arguments of NFSv3 procedure `proc_` can be decoded without a length that
/// overruns the record. Procedures nfsgw does not serve have nothing to decode.
pub fn nfs3(proc_: u32, args: &[u8]) -> bool {
    let r = &mut Reader::new(args);
    let walk = match proc_ {
        // GETATTR, READLINK, FSSTAT, FSINFO, PATHCONF: a handle.
        1 | 5 | 18 | 19 | 20 => fh(r),
        // SETATTR: handle, attributes, optional guard time.
        2 => fh(r).and_then(|_| sattr(r)).and_then(|_| match flag(r)? {
            true => words(r, 2),
            false => Some(()),
        }),
        // LOOKUP, REMOVE, RMDIR.
        3 | 12 | 13 => diropargs(r),
        // ACCESS: handle, mask.
        4 => fh(r).and_then(|_| words(r, 1)),
        // READ and COMMIT: handle, offset, count.
        6 | 21 => fh(r).and_then(|_| words(r, 3)),
        // WRITE: handle, offset, count, stable, data.
        7 => fh(r).and_then(|_| words(r, 4)).and_then(|_| opaque(r)),
        // CREATE: where, then attributes (UNCHECKED, GUARDED) or a verifier (EXCLUSIVE).
        8 => diropargs(r).and_then(|_| match r.u32()? {
            0 | 1 => sattr(r),
            2 => words(r, 2),
            _ => None,
        }),
        // MKDIR.
        9 => diropargs(r).and_then(|_| sattr(r)),
        // SYMLINK: where, attributes, target.
        10 => diropargs(r).and_then(|_| sattr(r)).and_then(|_| opaque(r)),
        // MKNOD: where, then by type: devices have attributes and numbers, sockets and fifos
        // attributes, other types nothing.
        11 => diropargs(r).and_then(|_| match r.u32()? {
            3 | 4 => sattr(r).and_then(|_| words(r, 2)),
            6 | 7 => sattr(r),
            _ => Some(()),
        }),
        // RENAME: two diropargs.
        14 => diropargs(r).and_then(|_| diropargs(r)),
        // LINK: handle, diropargs.
        15 => fh(r).and_then(|_| diropargs(r)),
        // READDIR: handle, cookie, verifier, count; READDIRPLUS adds maxcount.
        16 => fh(r).and_then(|_| words(r, 5)),
        17 => fh(r).and_then(|_| words(r, 6)),
        _ => Some(()),
    };
    walk.is_some()
}

/// The same for MOUNT v3: MNT and UMNT take a path.
pub fn mount(proc_: u32, args: &[u8]) -> bool {
    match proc_ {
        1 | 3 => opaque(&mut Reader::new(args)).is_some(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    /// A handle of 8 bytes, then a name of `name` bytes claimed.
    fn dirop(claimed: u32, actual: &[u8]) -> Vec<u8> {
        let mut out = words(&[8, 1, 2, claimed]);
        out.extend_from_slice(actual);
        out.resize(out.len().div_ceil(4) * 4, 0);
        out
    }

    #[test]
    fn lengths_that_overrun_the_record_are_refused_before_decoding() {
        assert!(nfs3(3, &dirop(3, b"abc")));
        // LOOKUP of a name that claims 4 GiB in a 16-byte record.
        assert!(!nfs3(3, &dirop(u32::MAX, b"")));
        // A handle longer than NFSv3 allows.
        assert!(!nfs3(1, &words(&[65, 0])));
        // WRITE whose data claims more than follows.
        let mut write = words(&[4, 9, 0, 0, 5, 1, 1 << 30]);
        write.extend_from_slice(b"hello");
        assert!(!nfs3(7, &write));
        // SYMLINK: the target is the last field; its claim is checked too.
        let mut symlink = dirop(1, b"l");
        symlink.extend(words(&[0, 0, 0, 0, 0, 0, u32::MAX]));
        assert!(!nfs3(10, &symlink));
        let mut symlink = dirop(1, b"l");
        symlink.extend(words(&[0, 0, 0, 0, 0, 0, 1]));
        symlink.extend(b"t\0\0\0");
        assert!(nfs3(10, &symlink));
        // MNT of a path that claims 4 GiB.
        assert!(!mount(1, &words(&[u32::MAX])));
        assert!(mount(1, &[words(&[2]), b"/d\0\0".to_vec()].concat()));
    }

    /// Every record that passes the walk is one the decoder reads to the same end: the walk
    /// follows the decoder's fields (checked against `nfs3_types` on well-formed calls).
    #[test]
    fn the_walk_accepts_what_the_decoder_decodes() {
        use nfs3_types::nfs3::*;
        use nfs3_types::xdr_codec::{Opaque, Pack};
        let fh = nfs_fh3 {
            data: Opaque::owned(vec![1; 16]),
        };
        let dir = || diropargs3 {
            dir: fh.clone(),
            name: filename3(Opaque::owned(b"name".to_vec())),
        };
        let attrs = sattr3 {
            mode: Nfs3Option::Some(0o644),
            atime: set_atime::SET_TO_CLIENT_TIME(nfstime3 {
                seconds: 1,
                nseconds: 2,
            }),
            ..sattr3::default()
        };
        let packed = |v: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            v(&mut out);
            out
        };
        let cases: Vec<(u32, Vec<u8>)> = vec![
            (
                2,
                packed(&|o| {
                    SETATTR3args {
                        object: fh.clone(),
                        new_attributes: attrs.clone(),
                        guard: Nfs3Option::Some(nfstime3::default()),
                    }
                    .pack(o)
                    .map(drop)
                    .unwrap()
                }),
            ),
            (
                8,
                packed(&|o| {
                    CREATE3args {
                        where_: dir(),
                        how: createhow3::GUARDED(attrs.clone()),
                    }
                    .pack(o)
                    .map(drop)
                    .unwrap()
                }),
            ),
            (
                11,
                packed(&|o| {
                    MKNOD3args {
                        where_: dir(),
                        what: mknoddata3::NF3CHR(devicedata3 {
                            dev_attributes: attrs.clone(),
                            spec: specdata3 {
                                specdata1: 1,
                                specdata2: 3,
                            },
                        }),
                    }
                    .pack(o)
                    .map(drop)
                    .unwrap()
                }),
            ),
            (
                17,
                packed(&|o| {
                    READDIRPLUS3args {
                        dir: fh.clone(),
                        cookie: 5,
                        cookieverf: cookieverf3::default(),
                        dircount: 100,
                        maxcount: 1000,
                    }
                    .pack(o)
                    .map(drop)
                    .unwrap()
                }),
            ),
        ];
        for (proc_, args) in cases {
            assert!(nfs3(proc_, &args), "procedure {proc_}");
            // Cut anywhere, the walk refuses it as the decoder would.
            assert!(
                !nfs3(proc_, &args[..args.len() - 4]),
                "procedure {proc_}, cut"
            );
        }
    }
}
