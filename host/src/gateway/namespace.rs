//! Changing names and attributes: CREATE (and its EXCLUSIVE form), MKDIR, SYMLINK, MKNOD,
//! LINK, REMOVE, RMDIR, RENAME and SETATTR, each checked against the caller's permissions and
//! the backend's capabilities, with the mount's inode table, caches and staged copies kept in
//! step with what the backend did.

use super::handles::{file_id, split};
use super::staging::Staging;
use super::{check_name, join, permissions, regular_file, Caller, FileId, Gateway};
use crate::backend::types::{
    Attrs, Capabilities, Device, Error, FileKind, SetAttrs, SetTime, Timestamp,
};

/// What `make` makes in a directory.
enum NewEntry<'a> {
    File {
        mode: u32,
    },
    Directory {
        mode: u32,
    },
    Symlink {
        target: &'a str,
    },
    /// A fifo, socket or device node.
    Node {
        kind: FileKind,
        mode: u32,
        device: Device,
    },
}

impl NewEntry<'_> {
    /// The capability the backend must have declared.
    fn needs(&self) -> Capabilities {
        match self {
            NewEntry::File { .. } => Capabilities::CREATE,
            NewEntry::Directory { .. } => Capabilities::MKDIR,
            NewEntry::Symlink { .. } => Capabilities::SYMLINK,
            NewEntry::Node { .. } => Capabilities::SPECIAL_FILES,
        }
    }
}

impl Gateway {
    /// Creates a regular file and returns its id and attributes. Unless `exclusive`, an
    /// existing regular file is answered as it is (RFC 1813's UNCHECKED): it keeps its owner
    /// and mode, and the caller's attributes go through SETATTR's checks (`setattr`).
    pub async fn create(
        &self,
        caller: &Caller,
        dir: FileId,
        name: &str,
        mode: u32,
        exclusive: bool,
    ) -> Result<(FileId, Attrs), Error> {
        // The plugin is always asked for a new file, so that only a file made by this call is
        // given to the caller (`make`); an existing one is looked up instead.
        let made = self.make(caller, dir, name, NewEntry::File { mode }).await;
        match made {
            Err(Error::Exists) if !exclusive => {
                let id = self.lookup(caller, dir, name).await?;
                let attrs = self.getattr(id).await?;
                match attrs.kind {
                    FileKind::Regular => Ok((id, attrs)),
                    FileKind::Directory => Err(Error::IsDir),
                    _ => Err(Error::Exists),
                }
            }
            other => other,
        }
    }

    /// An EXCLUSIVE create: makes the file, or finds the one an earlier try of this create made
    /// (the same verifier). The verifier is kept in the file's times where the backend keeps
    /// times (it survives a restart), else in memory (it covers retransmissions). The client
    /// then sets the file's attributes, which completes the create (see `setattr`).
    pub async fn create_exclusive(
        &self,
        caller: &Caller,
        dir: FileId,
        name: &str,
        verifier: [u8; 8],
    ) -> Result<(FileId, Attrs), Error> {
        let (_, mount, _) = self.mount_of(dir).await?;
        let in_times = mount.capabilities.contains(Capabilities::SET_TIMES);
        let stamp = Timestamp {
            seconds: u32::from_be_bytes(verifier[..4].try_into().unwrap()).into(),
            nanoseconds: u32::from_be_bytes(verifier[4..].try_into().unwrap()) % 1_000_000_000,
        };
        let tag = u64::from_be_bytes(verifier);
        match self.create(caller, dir, name, 0o600, true).await {
            Ok((id, mut attrs)) => {
                if in_times {
                    let times = SetAttrs {
                        atime: Some(SetTime::At(stamp)),
                        mtime: Some(SetTime::At(stamp)),
                        ..SetAttrs::none()
                    };
                    attrs = self.setattr(caller, id, times).await?;
                }
                mount.exclusive.made(split(id).1, tag);
                Ok((id, attrs))
            }
            Err(Error::Exists) => {
                let id = self.lookup(caller, dir, name).await?;
                let attrs = self.getattr(id).await?;
                let ours = if in_times {
                    attrs.mtime.seconds == stamp.seconds
                        && attrs.mtime.nanoseconds == stamp.nanoseconds
                } else {
                    mount.exclusive.made_with(split(id).1, tag)
                };
                // Times anyone can read are no proof: the file must also be the caller's,
                // where the backend keeps owners.
                let ours = ours
                    && (attrs.uid == caller.uid
                        || !mount.capabilities.contains(Capabilities::SET_OWNER));
                if attrs.kind == FileKind::Regular && ours {
                    Ok((id, attrs))
                } else {
                    Err(Error::Exists)
                }
            }
            Err(e) => Err(e),
        }
    }

    pub async fn mkdir(
        &self,
        caller: &Caller,
        dir: FileId,
        name: &str,
        mode: u32,
    ) -> Result<(FileId, Attrs), Error> {
        self.make(caller, dir, name, NewEntry::Directory { mode })
            .await
    }

    pub async fn symlink(
        &self,
        caller: &Caller,
        dir: FileId,
        name: &str,
        target: &str,
    ) -> Result<(FileId, Attrs), Error> {
        self.make(caller, dir, name, NewEntry::Symlink { target })
            .await
    }

    /// Makes a fifo, socket or device node.
    pub async fn mknod(
        &self,
        caller: &Caller,
        dir: FileId,
        name: &str,
        kind: FileKind,
        mode: u32,
        device: Device,
    ) -> Result<(FileId, Attrs), Error> {
        let (_, mount, _) = self.mount_of(dir).await?;
        permissions::make_node(caller, kind, mount.allow_devices)?;
        let node = NewEntry::Node { kind, mode, device };
        self.make(caller, dir, name, node).await
    }

    /// Shared path of every call that makes a new entry in `dir`: the new entry belongs to
    /// the caller (its group is the directory's when the directory is set-group-id), where
    /// the plugin can set owners.
    async fn make(
        &self,
        caller: &Caller,
        dir: FileId,
        name: &str,
        entry: NewEntry<'_>,
    ) -> Result<(FileId, Attrs), Error> {
        let (slot, mount, path) = self.mount_of(dir).await?;
        check_name(name)?;
        mount.allow(entry.needs())?;
        let dir_attrs = self.getattr(dir).await?;
        permissions::change_entries(caller, &dir_attrs)?;
        let child = join(&path, name);
        let backend = &mount.backend;
        let result = match entry {
            NewEntry::File { mode } => backend.create(&child, mode, true).await,
            NewEntry::Directory { mode } => backend.mkdir(&child, mode).await,
            NewEntry::Symlink { target } => backend.symlink(&child, target).await,
            NewEntry::Node { kind, mode, device } => {
                backend.mknod(&child, kind, mode, device).await
            }
        };
        let made = result.inspect_err(|_| Self::dir_changed(mount, split(dir).1, None))?;
        Self::dir_changed(mount, split(dir).1, made.dir);
        let mut attrs = made.attrs;
        // The backend made a new object: it never inherits a number an old file had there.
        let ino = mount.inodes.fresh(&child).await?;
        mount.inodes.durable().await?;
        let gid = if dir_attrs.mode & 0o2000 != 0 {
            dir_attrs.gid
        } else {
            caller.gid
        };
        if mount.capabilities.contains(Capabilities::SET_OWNER)
            && (attrs.uid != caller.uid || attrs.gid != gid)
        {
            let changes = SetAttrs {
                uid: Some(caller.uid),
                gid: Some(gid),
                ..SetAttrs::none()
            };
            attrs = mount.backend.setattr(&child, changes).await?;
        }
        mount.attrs.put(ino, attrs.clone());
        Ok((file_id(slot, ino), attrs))
    }

    /// Makes another name for a file.
    pub async fn link(
        &self,
        caller: &Caller,
        file: FileId,
        dir: FileId,
        name: &str,
    ) -> Result<Attrs, Error> {
        let (file_slot, _, file_path) = self.mount_of(file).await?;
        let (slot, mount, dir_path) = self.mount_of(dir).await?;
        if file_slot != slot {
            return Err(Error::CrossDevice);
        }
        check_name(name)?;
        mount.allow(Capabilities::HARD_LINK)?;
        permissions::change_entries(caller, &self.getattr(dir).await?)?;
        permissions::link_source(caller, &self.getattr(file).await?)?;
        let (existing, new) = (file_path.to_string(), join(&dir_path, name));
        let result = mount.backend.link(&existing, &new).await;
        let made = result.inspect_err(|_| Self::dir_changed(mount, split(dir).1, None))?;
        Self::dir_changed(mount, split(dir).1, made.dir);
        let attrs = made.attrs;
        mount.inodes.link(&existing, &new).await?;
        mount.inodes.durable().await?;
        let attrs = mount.presented(split(file).1, &new, attrs).await;
        mount.attrs.put(split(file).1, attrs.clone());
        Ok(attrs)
    }

    /// Removes a non-directory (`directory` false) or an empty directory (`directory` true).
    pub async fn remove(
        &self,
        caller: &Caller,
        dir: FileId,
        name: &str,
        directory: bool,
    ) -> Result<(), Error> {
        let (_, mount, path) = self.mount_of(dir).await?;
        check_name(name)?;
        mount.allow(Capabilities::REMOVE)?;
        let child = join(&path, name);
        let dir_attrs = self.getattr(dir).await?;
        permissions::change_entries(caller, &dir_attrs)?;
        if permissions::sticky_binds(caller, &dir_attrs) {
            permissions::sticky(caller, &dir_attrs, &self.entry_attrs(mount, &child).await?)?;
        }
        // No upload of the file may be under way while it goes.
        let staged = mount
            .inodes
            .find(&child)
            .await?
            .and_then(|ino| mount.staged(ino));
        let _uploading = match &staged {
            Some(staged) => Some(staged.upload.lock().await),
            None => None,
        };
        let result = if directory {
            mount.backend.rmdir(&child).await
        } else {
            mount.backend.remove(&child).await
        };
        let after = result.inspect_err(|_| Self::dir_changed(mount, split(dir).1, None))?;
        Self::dir_changed(mount, split(dir).1, after);
        if let Some(ino) = mount.inodes.find(&child).await? {
            mount.attrs.invalidate(ino);
            mount.dirs.remove(ino);
            if let Some(staging) = &mount.staging {
                staging.discard(ino).await;
            }
        }
        mount.inodes.forget(&child).await?;
        mount.inodes.durable().await
    }

    pub async fn rename(
        &self,
        caller: &Caller,
        from_dir: FileId,
        from: &str,
        to_dir: FileId,
        to: &str,
    ) -> Result<(), Error> {
        let (from_slot, mount, from_path) = self.mount_of(from_dir).await?;
        let (to_slot, _, to_path) = self.mount_of(to_dir).await?;
        if from_slot != to_slot {
            return Err(Error::CrossDevice);
        }
        check_name(from)?;
        check_name(to)?;
        mount.allow(Capabilities::RENAME)?;
        let (source, destination) = (join(&from_path, from), join(&to_path, to));
        if source == destination {
            // Nothing to move, but only a name that exists can be renamed (ENOENT otherwise),
            // as Linux's rename(2) answers.
            self.entry_attrs(mount, &source).await?;
            return Ok(());
        }
        let (from_attrs, to_attrs) = (self.getattr(from_dir).await?, self.getattr(to_dir).await?);
        // A directory cannot move under itself; under a file, NOTDIR (below) is the answer.
        if destination.starts_with(&format!("{source}/")) && to_attrs.kind == FileKind::Directory {
            return Err(Error::Invalid);
        }
        permissions::change_entries(caller, &from_attrs)?;
        permissions::change_entries(caller, &to_attrs)?;
        // The entries' own attributes matter only for sticky directories and moves.
        if permissions::sticky_binds(caller, &from_attrs) || from_dir != to_dir {
            let moved = self.entry_attrs(mount, &source).await?;
            permissions::sticky(caller, &from_attrs, &moved)?;
            if from_dir != to_dir {
                permissions::move_dir(caller, &moved)?;
            }
        }
        if permissions::sticky_binds(caller, &to_attrs) {
            match self.entry_attrs(mount, &destination).await {
                Ok(replaced) => permissions::sticky(caller, &to_attrs, &replaced)?,
                Err(Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        // No upload of a file whose name changes (moved, or replaced) may be under way; others
        // go on.
        let moved = format!("{source}/");
        let mut staged = Vec::new();
        let all_staged = mount.staging.as_ref().map(Staging::snapshot_all);
        for s in all_staged.unwrap_or_default() {
            let renamed = mount
                .inodes
                .path(s.ino)
                .await?
                .is_some_and(|p| *p == *source || *p == *destination || p.starts_with(&moved));
            if renamed {
                staged.push(s);
            }
        }
        // One order for every caller, so two renames never wait on each other's locks.
        staged.sort_by_key(|s| s.ino);
        let mut _uploading = Vec::with_capacity(staged.len());
        for s in &staged {
            _uploading.push(s.upload.lock().await);
        }
        let result = mount.backend.rename(&source, &destination).await;
        let renamed = result.inspect_err(|_| {
            Self::dir_changed(mount, split(from_dir).1, None);
            Self::dir_changed(mount, split(to_dir).1, None);
        })?;
        Self::dir_changed(mount, split(from_dir).1, renamed.source_dir);
        Self::dir_changed(mount, split(to_dir).1, renamed.destination_dir);
        // Streams started for the moved names would complete under them: they go.
        for s in &staged {
            // The backend has renamed: the table must follow, whatever this lookup meets.
            let path = mount.inodes.path(s.ino).await.ok().flatten();
            if path.is_some_and(|p| *p == *source || p.starts_with(&moved)) {
                if let Some(stream) = s.take_stream() {
                    stream.cancel();
                }
            }
        }
        if let Some(replaced) = mount.inodes.find(&destination).await? {
            mount.attrs.invalidate(replaced);
            if let Some(staging) = &mount.staging {
                staging.discard(replaced).await;
            }
        }
        mount.inodes.rename(&source, &destination).await?;
        // ctime of the moved entry changed.
        mount
            .attrs
            .invalidate(mount.inodes.ino(&destination).await?);
        mount.inodes.durable().await
    }

    pub async fn setattr(
        &self,
        caller: &Caller,
        id: FileId,
        changes: SetAttrs,
    ) -> Result<Attrs, Error> {
        let (_, mount, path) = self.mount_of(id).await?;
        if let Some(size) = changes.size {
            mount.check_size(size)?;
        }
        let mut changes = changes;
        // The SETATTR that completes an exclusive create brings the mode CREATE could not:
        // a backend without modes ignores it, as it ignores CREATE's.
        if mount.exclusive.complete(split(id).1)
            && !mount.capabilities.contains(Capabilities::SET_MODE)
        {
            changes.mode = None;
        }
        let lacks = |c: Capabilities| !mount.capabilities.contains(c) && !mount.read_only;
        let owner_change = changes.uid.is_some() || changes.gid.is_some();
        if (changes.mode.is_some() && lacks(Capabilities::SET_MODE))
            || (owner_change && lacks(Capabilities::SET_OWNER))
        {
            // A backend without modes or owners takes the change that changes nothing (a
            // `chmod` to the mode the file shows), as file systems with fixed modes do; the
            // caller must still be allowed to make it.
            let current = self.getattr(id).await?;
            changes = permissions::setattr(caller, &current, changes)?;
            if lacks(Capabilities::SET_MODE)
                && changes.mode.map(|m| m & 0o7777) == Some(current.mode & 0o7777)
            {
                changes.mode = None;
            }
            if lacks(Capabilities::SET_OWNER) {
                changes.uid = changes.uid.filter(|&uid| uid != current.uid);
                changes.gid = changes.gid.filter(|&gid| gid != current.gid);
            }
        }
        if !mount.capabilities.contains(Capabilities::SET_TIMES) && !mount.read_only {
            // A backend that keeps no times of its own (an object store stamps each upload)
            // takes "set them to now" as done: that is what its times will say.
            let now_or_unset = |t: &Option<SetTime>| matches!(t, None | Some(SetTime::Now));
            if now_or_unset(&changes.atime) && now_or_unset(&changes.mtime) {
                changes.atime = None;
                changes.mtime = None;
            }
        }
        let mut needed = Capabilities::empty();
        if changes.mode.is_some() {
            needed |= Capabilities::SET_MODE;
        }
        if changes.uid.is_some() || changes.gid.is_some() {
            needed |= Capabilities::SET_OWNER;
        }
        if changes.size.is_some() {
            needed |= Capabilities::TRUNCATE;
        }
        if changes.atime.is_some() || changes.mtime.is_some() {
            needed |= Capabilities::SET_TIMES;
        }
        if needed == Capabilities::empty() {
            return self.getattr(id).await;
        }
        mount.allow(needed)?;
        let current = self.getattr(id).await?;
        if changes.size.is_some() {
            regular_file(&current)?;
        }
        let mut changes = permissions::setattr(caller, &current, changes)?;
        let ino = split(id).1;
        if let (Some(size), Some(_)) = (changes.size, &mount.staging) {
            let attrs = self
                .staged_change(mount, ino, &path, current, move |s| s.truncate(size))
                .await?;
            changes.size = None;
            if changes.is_empty() {
                return Ok(attrs);
            }
        }
        let attrs = mount.backend.setattr(&path, changes).await?;
        let attrs = mount.presented(ino, &path, attrs).await;
        mount.attrs.put(ino, attrs.clone());
        Ok(attrs)
    }
}
