//! Answering reads: GETATTR, LOOKUP, READ (what the backend answers by reference, a range of a
//! granted host file or of a blob, the host fetches natively, blobs through the readahead),
//! READLINK, the directory listings READDIR and READDIRPLUS page through, and FSSTAT.

use std::sync::Arc;

use bytes::Bytes;

use super::cache::{At, Entries, Listed};
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
        let Some((_, mount, path)) = self.locate(id).await? else {
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
        let Some((slot, mount, path)) = self.locate(dir).await? else {
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
            ".." => return Ok(file_id(slot, mount.inodes.ino(parent_of(&path)).await?)),
            _ => {}
        }
        let child = join(&path, name);
        let ino = mount.inodes.ino(&child).await?;
        if mount.attrs.fresh(ino).is_none() {
            if let Err(e) = self.stat_path(mount, ino, &child).await {
                if e == Error::NotFound {
                    mount.inodes.forget(&child).await?;
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
        let (_, mount, path) = self.mount_of(id).await.map_err(|_| Error::IsDir)?;
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
        let (_, mount, path) = self.mount_of(id).await.map_err(|_| Error::Invalid)?;
        mount.backend.readlink(&path).await
    }

    /// Up to `max` entries after the entry whose cookie is `cookie` (0: from the start of a
    /// new enumeration) in the listing `verf` names (0: the directory's current one), fetching
    /// from the plugin only the pages not held. `None` when the verifier names no listing known
    /// now or the cookie no position in it.
    pub async fn readdir(
        &self,
        caller: &Caller,
        dir: FileId,
        cookie: u64,
        verf: u64,
        max: usize,
    ) -> Result<Option<DirPage>, Error> {
        let Some((slot, mount, path)) = self.locate(dir).await? else {
            return Ok(self.readdir_export_root(cookie, max));
        };
        let dir_attrs = self.getattr(dir).await?;
        if dir_attrs.kind != FileKind::Directory {
            return Err(Error::NotDir);
        }
        permissions::read(caller, &dir_attrs)?;
        let (_, ino) = split(dir);
        let verf = if cookie == 0 {
            mount.dirs.start(ino)
        } else {
            match mount.dirs.resume(ino, verf) {
                Some(verf) => verf,
                None => return Ok(None),
            }
        };
        loop {
            let (entries, first, last) = match mount.dirs.at(verf, cookie) {
                At::Held {
                    entries,
                    first,
                    last,
                } => (entries, first, last),
                At::End => (Entries::default(), cookie, true),
                At::Fetch(fetch) => {
                    let limit = mount.dirs.page_size(LIST_PAGE);
                    let (entries, next) = self
                        .fetch_page(slot, mount, &path, fetch.cursor.as_deref(), limit)
                        .await?;
                    mount.dirs.fill(verf, &fetch, entries, next);
                    continue;
                }
                At::Unknown => return Ok(None),
            };
            let start = (cookie - first) as usize;
            let end = (start + max).min(entries.len());
            let updated = self.updated_attrs(mount, &entries[start..end]).await;
            return Ok(Some(DirPage {
                end: last && end == entries.len(),
                entries,
                range: start..end,
                after: cookie,
                updated,
                verf,
            }));
        }
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

    /// The export root's listing: one entry per mount, the mount's slot its cookie.
    fn readdir_export_root(&self, cookie: u64, max: usize) -> Option<DirPage> {
        let start = usize::try_from(cookie)
            .ok()
            .filter(|&c| c <= self.mounts.len())?;
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
            entries: Arc::new(entries),
            after: cookie,
            updated: Vec::new(),
            end: end == self.mounts.len(),
            verf: 0,
        })
    }

    /// One page of a directory from the plugin, from `cursor`: its entries, with their
    /// attributes put in the attribute cache, and the cursor of the next page.
    async fn fetch_page(
        &self,
        slot: usize,
        mount: &Mount,
        path: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Listed>, Option<String>), Error> {
        let page = mount.backend.list_dir(path, cursor, limit).await?;
        let listed: Vec<_> = page
            .entries
            .into_iter()
            .filter(|entry| {
                let valid = check_name(&entry.name).is_ok();
                if !valid {
                    tracing::warn!(mount = %mount.name, dir = path, name = ?entry.name, "plugin listed an invalid name; skipped");
                }
                valid
            })
            .collect();
        let names: Vec<&str> = listed.iter().map(|entry| entry.name.as_str()).collect();
        let inos = mount.inodes.ino_entries(path, &names).await?;
        let mut entries = Vec::with_capacity(listed.len());
        for (entry, child_ino) in listed.into_iter().zip(inos) {
            let child = join(path, &entry.name);
            let attrs = match entry.attrs {
                Some(attrs) => mount.presented(child_ino, &child, attrs).await,
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
        mount.inodes.durable().await?;
        Ok((entries, page.next))
    }

    pub async fn statfs(&self, id: FileId) -> Result<FsStats, Error> {
        match self.locate(id).await? {
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
