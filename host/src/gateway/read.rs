//! Answering reads: GETATTR, LOOKUP, READ (what the backend answers by reference, a range of a
//! granted host file or of a blob, the host fetches natively, blobs through the readahead),
//! READLINK, the directory listings READDIR and READDIRPLUS page through, and FSSTAT.

use std::sync::Arc;

use bytes::Bytes;

use super::cache::{Listed, Listing};
use super::handles::{file_id, split, EXPORT_ROOT, MOUNT_ROOT_INO};
use super::readahead::Version;
use super::{
    blocking, check_name, join, parent_of, permissions, regular_file, Caller, DirPage, FileId,
    Gateway, Mount, LIST_PAGE,
};
use crate::backend::types::{
    Attrs, BlobRange, Data, Error, FileKind, FileRange, FsStats, ReadResult,
};
use crate::buffer_pool::BufferPool;

impl Gateway {
    pub async fn getattr(&self, id: FileId) -> Result<Attrs, Error> {
        let Some((_, mount, path)) = self.locate(id)? else {
            return Ok(self.export_root_attrs());
        };
        let (_, ino) = split(id);
        if let Some(attrs) = mount.attrs.fresh(ino) {
            return Ok(attrs);
        }
        match self.stat_path(mount, ino, &path).await {
            // The file went away underneath its handle.
            Err(Error::NotFound) if ino != MOUNT_ROOT_INO => Err(Error::Stale),
            other => other,
        }
    }

    pub async fn lookup(&self, caller: &Caller, dir: FileId, name: &str) -> Result<FileId, Error> {
        let Some((slot, mount, path)) = self.locate(dir)? else {
            return match name {
                "." | ".." => Ok(EXPORT_ROOT),
                _ => self
                    .by_name
                    .get(name)
                    .map(|&i| file_id(i + 1, MOUNT_ROOT_INO))
                    .ok_or(Error::NotFound),
            };
        };
        if name != "." && name != ".." {
            check_name(name)?;
        }
        let dir_attrs = self.getattr(dir).await?;
        permissions::lookup(caller, &dir_attrs)?;
        match name {
            "." => return Ok(dir),
            ".." if path.is_empty() => return Ok(EXPORT_ROOT),
            ".." => return Ok(file_id(slot, mount.inodes.ino(parent_of(&path)))),
            _ => {}
        }
        let child = join(&path, name);
        let ino = mount.inodes.ino(&child);
        if mount.attrs.fresh(ino).is_none() {
            if let Err(e) = self.stat_path(mount, ino, &child).await {
                if e == Error::NotFound {
                    mount.inodes.forget(&child);
                }
                return Err(e);
            }
        }
        mount.inodes.durable().await?;
        Ok(file_id(slot, ino))
    }

    /// Up to `count` bytes at `offset`, and whether they reach the end of the file. Data the
    /// host reads itself goes into a buffer of `buffers`.
    pub async fn read(
        &self,
        caller: &Caller,
        id: FileId,
        offset: u64,
        count: u32,
        buffers: &Arc<BufferPool>,
    ) -> Result<(Bytes, bool), Error> {
        let (_, mount, path) = self.mount_of(id).map_err(|_| Error::IsDir)?;
        let attrs = self.getattr(id).await?;
        regular_file(&attrs)?;
        permissions::read(caller, &attrs)?;
        if let Some(staged) = mount.staged(split(id).1) {
            match blocking(move || staged.read(offset, count)).await {
                Err(Error::Stale) => {} // uploaded meanwhile: the backend has it
                other => return other.map(|(data, eof)| (Bytes::from(data), eof)),
            }
        }
        Self::read_backend(mount, &path, offset, count, buffers, Some(&attrs)).await
    }

    /// Reads through the plugin; what it answers by reference, the host fetches natively
    /// after the plugin instance is free again, into a buffer of `buffers`. With the
    /// attributes of the file being read, a blob range may come from the mount's readahead.
    pub(super) async fn read_backend(
        mount: &Mount,
        path: &str,
        offset: u64,
        count: u32,
        buffers: &Arc<BufferPool>,
        attrs: Option<&Attrs>,
    ) -> Result<(Bytes, bool), Error> {
        let ReadResult { data, eof } = mount.backend.read(path, offset, count).await?;
        match data {
            Data::Bytes(mut bytes) => {
                bytes.truncate(count as usize);
                Ok((Bytes::from(bytes), eof))
            }
            Data::HostFile(FileRange { path, offset, len }) => {
                let len = len.min(count.into());
                let grants = mount.backend.host_files().clone();
                let buf = buffers.take(len as usize);
                let (bytes, end) =
                    blocking(move || grants.read_into(&path, offset, len, buf)).await?;
                Ok((buffers.share(bytes), eof || end))
            }
            Data::Blob(BlobRange {
                key,
                offset: at,
                len,
            }) => {
                let Some(store) = mount.backend.blobs() else {
                    tracing::warn!(mount = %mount.name, "the plugin answered a read with a blob, but its mount grants no object store");
                    return Err(Error::Io);
                };
                let len = len.min(count.into());
                // Read ahead when the object is the file (the same offsets and, checked as
                // blocks arrive, the same size).
                let whole = attrs.filter(|a| at == offset && a.size > 0);
                if let Some(version) = whole.map(Version::of) {
                    let size = version.size;
                    let ahead = mount.readahead.read(store, &key, version, offset, len);
                    if let Some(bytes) = ahead.await {
                        crate::metrics::readahead(&mount.name, bytes.len() as u64);
                        let end = offset + bytes.len() as u64 >= size;
                        return Ok((bytes, eof || end));
                    }
                }
                let buf = buffers.take(len as usize);
                let (bytes, meta) = store.get_range(&key, at, len, buf).await?;
                let bytes = buffers.share(bytes);
                let end = at + bytes.len() as u64 >= meta.size;
                Ok((bytes, eof || end))
            }
        }
    }

    pub async fn readlink(&self, id: FileId) -> Result<String, Error> {
        let (_, mount, path) = self.mount_of(id).map_err(|_| Error::Invalid)?;
        mount.backend.readlink(&path).await
    }

    /// Up to `max` entries after the entry whose file id is `cookie` (0: from the start).
    /// `None` when the cookie names no entry of the listing being paged.
    pub async fn readdir(
        &self,
        caller: &Caller,
        dir: FileId,
        cookie: u64,
        max: usize,
    ) -> Result<Option<DirPage>, Error> {
        let Some((slot, mount, path)) = self.locate(dir)? else {
            return Ok(self.readdir_export_root(cookie, max));
        };
        let dir_attrs = self.getattr(dir).await?;
        if dir_attrs.kind != FileKind::Directory {
            return Err(Error::NotDir);
        }
        permissions::read(caller, &dir_attrs)?;
        let (_, ino) = split(dir);
        let cached = if cookie == 0 {
            mount.dirs.fresh(ino)
        } else {
            mount.dirs.current(ino)
        };
        let listing = match cached {
            Some(listing) => listing,
            None => self.fetch_listing(slot, mount, ino, &path).await?,
        };
        let Some(start) = listing.resume_after(cookie) else {
            return Ok(None);
        };
        let end = (start + max).min(listing.entries.len());
        let updated = self
            .updated_attrs(mount, &listing.entries[start..end])
            .await;
        Ok(Some(DirPage {
            end: end == listing.entries.len(),
            listing,
            range: start..end,
            updated,
        }))
    }

    /// Of a page's listed entries, those whose attributes changed since the listing, by
    /// index, in order: the ones put again since, and the ones a change through nfsgw dropped
    /// from the cache (a refused LINK, a MKDIR inside a listed directory), whose listed copy is
    /// stale, stat'ed again. An entry gone meanwhile keeps its listed attributes.
    async fn updated_attrs(&self, mount: &Mount, listed: &[Listed]) -> Vec<(usize, Attrs)> {
        let changed = mount.attrs.changed_since(listed);
        let mut updated = changed.updated;
        if changed.dropped.is_empty() {
            return updated;
        }
        for i in changed.dropped {
            if let Ok(attrs) = self.getattr(listed[i].id).await {
                updated.push((i, attrs));
            }
        }
        updated.sort_by_key(|(i, _)| *i);
        updated
    }

    fn readdir_export_root(&self, cookie: u64, max: usize) -> Option<DirPage> {
        let start = if cookie == 0 {
            0
        } else {
            let (slot, ino) = split(cookie);
            if ino != MOUNT_ROOT_INO || slot == 0 || slot > self.mounts.len() {
                return None;
            }
            slot
        };
        let end = (start + max).min(self.mounts.len());
        let entries = (start..end)
            .map(|i| {
                let m = &self.mounts[i];
                let attrs = m
                    .attrs
                    .last_known(MOUNT_ROOT_INO)
                    .unwrap_or_else(|| self.export_root_attrs());
                Listed {
                    id: file_id(i + 1, MOUNT_ROOT_INO),
                    name: m.name.to_string(),
                    attrs,
                    stamp: 0,
                }
            })
            .collect::<Vec<_>>();
        Some(DirPage {
            range: 0..entries.len(),
            listing: Arc::new(Listing::new(entries)),
            updated: Vec::new(),
            end: end == self.mounts.len(),
        })
    }

    async fn fetch_listing(
        &self,
        slot: usize,
        mount: &Mount,
        ino: u64,
        path: &str,
    ) -> Result<Arc<Listing>, Error> {
        let mut entries = Vec::new();
        let mut cursor = None;
        loop {
            let page = mount
                .backend
                .list_dir(path, cursor.as_deref(), LIST_PAGE)
                .await?;
            for entry in page.entries {
                if check_name(&entry.name).is_err() {
                    tracing::warn!(mount = %mount.name, dir = path, name = ?entry.name, "plugin listed an invalid name; skipped");
                    continue;
                }
                let child = join(path, &entry.name);
                let child_ino = mount.inodes.ino(&child);
                let attrs = match entry.attrs {
                    Some(attrs) => mount.presented(child_ino, &child, attrs),
                    None => match self.stat_path(mount, child_ino, &child).await {
                        Ok(attrs) => attrs,
                        Err(Error::NotFound) => continue,
                        Err(e) => return Err(e),
                    },
                };
                let stamp = mount.attrs.put(child_ino, attrs.clone());
                entries.push(Listed {
                    id: file_id(slot, child_ino),
                    name: entry.name,
                    attrs,
                    stamp,
                });
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        mount.inodes.durable().await?;
        let listing = Arc::new(Listing::new(entries));
        mount.dirs.put(ino, listing.clone());
        Ok(listing)
    }

    pub async fn statfs(&self, id: FileId) -> Result<FsStats, Error> {
        match self.locate(id)? {
            Some((_, mount, _)) => mount.backend.statfs().await,
            None => Ok(FsStats {
                total_bytes: 0,
                free_bytes: 0,
                available_bytes: 0,
                total_files: self.mounts.len() as u64,
                free_files: 0,
                available_files: 0,
            }),
        }
    }
}
