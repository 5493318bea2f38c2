//! Resolving what a request names: file handles to file ids and back, a file id to its mount
//! and mount-relative path, the export root's own attributes, the current attributes of a path
//! (through the mount's cache, else the backend), and whether a client may use a file id at all
//! (the mount's allow list).

use std::net::IpAddr;

use super::handles::{file_id, split, Handle, EXPORT_ROOT, MOUNT_ROOT_INO};
use super::{FileId, Gateway, Located, Mount};
use crate::backend::types::{Attrs, Device, Error, FileKind};

impl Gateway {
    pub fn handle(&self, id: FileId) -> Vec<u8> {
        let (slot, ino) = split(id);
        let handle = match slot.checked_sub(1).and_then(|i| self.mounts.get(i)) {
            None => Handle {
                tag: 0,
                ino: EXPORT_ROOT,
                generation: 0,
            },
            Some(m) => {
                let generation = if ino == MOUNT_ROOT_INO {
                    0
                } else {
                    m.inodes.generation
                };
                Handle {
                    tag: m.tag,
                    ino,
                    generation,
                }
            }
        };
        handle.encode()
    }

    /// The file id of a handle; `None` for bytes that are no handle of ours, `Stale` for a
    /// handle of ours that no longer names anything.
    pub async fn resolve_handle(&self, bytes: &[u8]) -> Option<Result<FileId, Error>> {
        let h = Handle::decode(bytes)?;
        if h.tag == 0 {
            return Some(if h.ino == EXPORT_ROOT {
                Ok(EXPORT_ROOT)
            } else {
                Err(Error::Stale)
            });
        }
        let Some(&index) = self.by_tag.get(&h.tag) else {
            return Some(Err(Error::Stale));
        };
        let mount = &self.mounts[index];
        if h.ino != MOUNT_ROOT_INO {
            if h.generation != mount.inodes.generation {
                return Some(Err(Error::Stale));
            }
            match mount.inodes.path(h.ino).await {
                Ok(Some(_)) => {}
                Ok(None) => return Some(Err(Error::Stale)),
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(file_id(index + 1, h.ino)))
    }

    /// The mount a handle names by its tag, whether or not its inode is still known; `None`
    /// for the export root and for bytes that are no handle of a mount.
    pub fn mount_of_handle(&self, bytes: &[u8]) -> Option<&Mount> {
        let h = Handle::decode(bytes)?;
        self.by_tag.get(&h.tag).map(|&index| &self.mounts[index])
    }

    /// The mount and mount-relative path of a file id; `None` for the export root.
    pub(super) async fn locate(&self, id: FileId) -> Result<Option<Located<'_>>, Error> {
        if id == EXPORT_ROOT {
            return Ok(None);
        }
        let (slot, ino) = split(id);
        let mount = slot
            .checked_sub(1)
            .and_then(|i| self.mounts.get(i))
            .ok_or(Error::Stale)?;
        let path = mount.inodes.path(ino).await?.ok_or(Error::Stale)?;
        Ok(Some((slot, mount, path)))
    }

    pub(super) async fn mount_of(&self, id: FileId) -> Result<Located<'_>, Error> {
        // The export root itself holds nothing but the mounts, and cannot be changed.
        self.locate(id).await?.ok_or(Error::ReadOnly)
    }

    pub(super) fn export_root_attrs(&self) -> Attrs {
        Attrs {
            kind: FileKind::Directory,
            size: 4096,
            mode: 0o555,
            uid: 0,
            gid: 0,
            nlink: 2 + self.mounts.len() as u32,
            atime: self.started,
            mtime: self.started,
            ctime: self.started,
            rdev: Device { major: 0, minor: 0 },
            change: None,
        }
    }

    /// Stats a path through the plugin and caches the answer.
    pub(super) async fn stat_path(
        &self,
        mount: &Mount,
        ino: u64,
        path: &str,
    ) -> Result<Attrs, Error> {
        match mount.backend.stat(path).await {
            Ok(attrs) => {
                let attrs = mount.presented(ino, path, attrs).await;
                mount.attrs.put(ino, attrs.clone());
                Ok(attrs)
            }
            Err(e) => {
                if e == Error::NotFound {
                    mount.attrs.invalidate(ino);
                }
                Err(e)
            }
        }
    }

    /// Whether `client` may use this file id: its mount's allow list holds the address (the
    /// export root: any mount's does). Checked before any call reaches a plugin.
    pub fn allows(&self, id: FileId, client: IpAddr) -> bool {
        let covers = |m: &Mount| m.allow.iter().any(|net| net.contains(&client));
        match split(id).0.checked_sub(1) {
            None => self.mounts.iter().any(covers),
            Some(index) => self.mounts.get(index).is_some_and(covers),
        }
    }

    /// True when nothing under this file id can be changed.
    pub async fn read_only(&self, id: FileId) -> bool {
        match self.locate(id).await {
            Ok(Some((_, mount, _))) => mount.is_read_only(),
            _ => true,
        }
    }

    /// Current attributes of an entry named by its path, through the cache.
    /// Gives no inode number to a path that has none (it may not exist).
    pub(super) async fn entry_attrs(&self, mount: &Mount, path: &str) -> Result<Attrs, Error> {
        match mount.inodes.find(path).await? {
            Some(ino) => match mount.attrs.fresh(ino) {
                Some(attrs) => Ok(attrs),
                None => self.stat_path(mount, ino, path).await,
            },
            None => mount.backend.stat(path).await,
        }
    }
}
