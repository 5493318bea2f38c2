//! NFSv3's directory listings: READDIR and READDIRPLUS, paged by cookie within the client's
//! byte counts. A cookie is an entry's position in a listing, and the cookie verifier names the
//! listing (the gateway's listing cache); a continuation whose verifier or cookie names nothing
//! known answers NFS3ERR_BAD_COOKIE, and the client starts over.

use nfs3_types::nfs3::*;
use nfs3_types::xdr_codec::{List, Opaque, Pack};

use super::{decode, result, Handler, Reply, DIR_REPLY_OVERHEAD, MAX_DIR_ENTRIES};
use crate::gateway::FileId;
use crate::nfs::convert::{fattr, status};

impl Handler<'_> {
    pub(super) async fn readdir(&self, args: &[u8]) -> Reply {
        let args: READDIR3args = decode(args)?;
        let budget = (args.count as usize).saturating_sub(DIR_REPLY_OVERHEAD);
        let (dir, page) = match self
            .dir_page::<READDIR3resfail>(&args.dir, args.cookie, &args.cookieverf, budget / 24 + 1)
            .await
        {
            Ok(found) => found,
            Err(fail) => return self.reply(&result::<READDIR3resok, _>(Err(fail))),
        };
        let dir_attributes = self.post_op(dir).await;
        let mut used = 0;
        let mut entries = Vec::new();
        for (cookie, id, name, _) in page.entries() {
            let size = 4 + 8 + 4 + name.len().div_ceil(4) * 4 + 8;
            if used + size > budget {
                break;
            }
            used += size;
            entries.push(entry3 {
                fileid: id,
                name: filename3(Opaque::borrowed(name.as_bytes())),
                cookie,
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
                cookieverf: cookieverf3(page.verf.to_be_bytes()),
                reply: dirlist3 {
                    entries: List(entries),
                    eof,
                },
            })
        };
        self.reply(&result(r))
    }

    pub(super) async fn readdirplus(&self, args: &[u8]) -> Reply {
        let args: READDIRPLUS3args = decode(args)?;
        let max_bytes = (args.maxcount as usize).saturating_sub(DIR_REPLY_OVERHEAD);
        let max_dir_bytes = args.dircount as usize;
        let (dir, page) = match self
            .dir_page::<READDIRPLUS3resfail>(
                &args.dir,
                args.cookie,
                &args.cookieverf,
                max_bytes / 128 + 1,
            )
            .await
        {
            Ok(found) => found,
            Err(fail) => return self.reply(&result::<READDIRPLUS3resok, _>(Err(fail))),
        };
        let dir_attributes = self.post_op(dir).await;
        let (mut used, mut dir_used) = (0, 0);
        let mut entries = Vec::new();
        for (cookie, id, name, attrs) in page.entries() {
            let name_size = 4 + name.len().div_ceil(4) * 4;
            let dir_size = 8 + name_size + 8;
            let entry = entryplus3 {
                fileid: id,
                name: filename3(Opaque::borrowed(name.as_bytes())),
                cookie,
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
                cookieverf: cookieverf3(page.verf.to_be_bytes()),
                reply: dirlistplus3 {
                    entries: List(entries),
                    eof,
                },
            })
        };
        self.reply(&result(r))
    }

    /// The directory of a READDIR(PLUS) and its page of up to `max` entries after `cookie` in
    /// the listing `verf` names, or the failure reply's status.
    pub(super) async fn dir_page<E: Default>(
        &self,
        dir: &nfs_fh3,
        cookie: u64,
        verf: &cookieverf3,
        max: usize,
    ) -> Result<(FileId, crate::gateway::DirPage), (nfsstat3, E)> {
        let dir = self.id(dir).await.map_err(|s| (s, E::default()))?;
        match self
            .server
            .gateway
            .readdir(
                self.caller,
                dir,
                cookie,
                u64::from_be_bytes(verf.0),
                max.min(MAX_DIR_ENTRIES),
            )
            .await
        {
            Ok(Some(page)) => Ok((dir, page)),
            Ok(None) => Err((nfsstat3::NFS3ERR_BAD_COOKIE, E::default())),
            Err(e) => Err((status(e), E::default())),
        }
    }
}
