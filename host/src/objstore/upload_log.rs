//! The multipart uploads a mount's store has started and not yet completed or aborted, kept on
//! disk in the state directory, so that the uploads a crash leaves open are aborted at the next
//! start. S3 keeps (and bills) the parts of an open upload until it is aborted, and lists no
//! such upload as an object, so nothing else would ever find them.
//!
//! Each open upload is one small file `<n>.upload` holding its object path and upload id,
//! written (and synced) right after the upload is created and removed once it is completed or
//! aborted. An upload a crash leaves between its creation and its record is not found; a bucket
//! lifecycle rule (`AbortIncompleteMultipartUpload`) covers that window. Without a state
//! directory nothing is recorded. The files are read and written on the blocking pool.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use object_store::path::Path as ObjectPath;
use object_store::MultipartId;

/// Where a store records its open uploads; `None` records nothing.
pub struct UploadLog {
    dir: Option<PathBuf>,
    /// Names new records: the start time, so names of runs never collide, then a counter.
    run: u128,
    next: AtomicU64,
}

/// An upload left open by an earlier run.
pub struct Leftover {
    pub path: ObjectPath,
    pub id: MultipartId,
    pub record: Record,
}

/// The record of one open upload; `clear` it once the upload is completed or aborted.
pub struct Record {
    file: Option<PathBuf>,
}

impl UploadLog {
    /// The log in `dir` (created if missing); `None`: a log that records nothing.
    pub fn open(dir: Option<&Path>) -> std::io::Result<UploadLog> {
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)?;
        }
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(UploadLog {
            dir: dir.map(Path::to_path_buf),
            run,
            next: AtomicU64::new(0),
        })
    }

    /// Records an upload just created. A record that cannot be written is logged: the upload
    /// goes on, and only a crash before it ends would leave it open.
    pub async fn record(&self, path: &ObjectPath, id: &MultipartId) -> Record {
        let Some(dir) = &self.dir else {
            return Record { file: None };
        };
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let file = dir.join(format!("{:x}-{n}.upload", self.run));
        let text = format!("{}\n{id}\n", path.as_ref());
        let target = file.clone();
        let written = blocking(move || {
            use std::io::Write;
            let mut out = std::fs::File::create(&target)?;
            out.write_all(text.as_bytes())?;
            out.sync_all()
        })
        .await;
        match written {
            Ok(()) => Record { file: Some(file) },
            Err(e) => {
                tracing::warn!(path = %path, "cannot record an open multipart upload in {}: {e}", file.display());
                Record { file: None }
            }
        }
    }

    /// The uploads earlier runs recorded and did not clear. An unreadable record is logged
    /// and skipped.
    pub async fn leftovers(&self) -> Vec<Leftover> {
        let Some(dir) = self.dir.clone() else {
            return Vec::new();
        };
        let read = blocking(move || {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(&dir)? {
                let file = entry?.path();
                if file.extension().is_some_and(|e| e == "upload") {
                    let text = std::fs::read_to_string(&file);
                    found.push((file, text));
                }
            }
            Ok(found)
        })
        .await;
        let files = match read {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!("cannot read the open multipart uploads: {e}");
                return Vec::new();
            }
        };
        let mut leftovers = Vec::new();
        for (file, text) in files {
            let parsed = text.ok().and_then(|text| {
                let mut lines = text.lines();
                let path = ObjectPath::parse(lines.next()?).ok()?;
                let id = lines.next().filter(|id| !id.is_empty())?.to_string();
                Some((path, id))
            });
            match parsed {
                Some((path, id)) => leftovers.push(Leftover {
                    path,
                    id,
                    record: Record { file: Some(file) },
                }),
                None => tracing::warn!(
                    "{} is no record of a multipart upload; left alone",
                    file.display()
                ),
            }
        }
        leftovers
    }
}

impl Record {
    /// Forgets the upload: it was completed or aborted.
    pub async fn clear(self) {
        let Some(file) = self.file else { return };
        let shown = file.display().to_string();
        if let Err(e) = blocking(move || std::fs::remove_file(&file)).await {
            tracing::warn!("cannot remove the record {shown} of a finished upload: {e}");
        }
    }
}

/// Runs a file call on the blocking pool; a call past its deadline is an I/O error.
async fn blocking<R: Send + 'static>(
    call: impl FnOnce() -> std::io::Result<R> + Send + 'static,
) -> std::io::Result<R> {
    crate::blocking::run(crate::blocking::DEADLINE, call)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the call ran past its deadline")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_outlive_the_log_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let log = UploadLog::open(Some(dir.path())).unwrap();
        let path = ObjectPath::parse("prefix/a b/c.bin").unwrap();
        let first = log.record(&path, &"id-1".to_string()).await;
        let _second = log.record(&path, &"id-2".to_string()).await;
        first.clear().await;
        std::fs::write(dir.path().join("junk.upload"), "no id").unwrap();
        let later = UploadLog::open(Some(dir.path())).unwrap();
        let left = later.leftovers().await;
        assert_eq!(left.len(), 1, "the cleared record is gone, junk is skipped");
        assert_eq!(left[0].path, path);
        assert_eq!(left[0].id, "id-2");
        let Leftover { record, .. } = left.into_iter().next().unwrap();
        record.clear().await;
        assert!(later.leftovers().await.is_empty());
        assert!(
            dir.path().join("junk.upload").exists(),
            "junk is left alone"
        );
    }

    #[tokio::test]
    async fn without_a_directory_nothing_is_recorded() {
        let log = UploadLog::open(None).unwrap();
        let path = ObjectPath::parse("k").unwrap();
        log.record(&path, &"id".to_string()).await.clear().await;
        assert!(log.leftovers().await.is_empty());
    }
}
