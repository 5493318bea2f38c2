//! NFSv3's questions about the file system: FSSTAT, FSINFO and PATHCONF.

use nfs3_types::nfs3::*;

use super::{decode, result, Handler, Reply, TRANSFER_SIZE};
use crate::gateway::{Mount, HOST_MAX_FILE_SIZE};
use crate::nfs::convert::status;

impl Handler<'_> {
    pub(super) async fn fsstat(&self, args: &[u8]) -> Reply {
        let args: FSSTAT3args = decode(args)?;
        let r = async {
            let id = self
                .id(&args.fsroot)
                .await
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

    pub(super) async fn fsinfo(&self, args: &[u8]) -> Reply {
        let args: FSINFO3args = decode(args)?;
        let r = async {
            let id = self
                .id(&args.fsroot)
                .await
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

    pub(super) async fn pathconf(&self, args: &[u8]) -> Reply {
        let args: PATHCONF3args = decode(args)?;
        let r = async {
            let id = self
                .id(&args.object)
                .await
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
}
