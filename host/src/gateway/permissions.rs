//! POSIX permission checks made by the host for every plugin, from the caller's AUTH_UNIX
//! credentials and the file's attributes, before a change reaches the plugin.
//!
//! The backend behind a plugin cannot check them itself: nfsgw runs as one user and plugins see
//! no caller. The rules are Linux's: write and search permission on a directory to change its
//! entries, the sticky bit limiting removal to owners, only the owner (or root) changing mode
//! and times, only root giving a file away, hard links only to files the caller owns or may
//! read and write (`protected_hardlinks`), device nodes only by root.
//!
//! Before any check, a mount's squash options (`Squash`) map the caller's identity, as Linux's
//! exports(5) `root_squash`, `all_squash`, `anonuid` and `anongid` do.

use super::Caller;
use crate::backend::types::{Attrs, Error, FileKind, SetAttrs, SetTime};
use crate::config::Squash;

const READ: u32 = 4;
const WRITE: u32 = 2;
const SEARCH: u32 = 1;

impl Squash {
    /// The identity the checks and new files use for this caller (changed in place: no
    /// allocation on the path of every call).
    pub fn apply(&self, mut c: Caller) -> Caller {
        if self.all {
            return Caller {
                uid: self.anon_uid,
                gid: self.anon_gid,
                gids: Vec::new(),
            };
        }
        if !self.root {
            return c;
        }
        let gid = |g: u32| if g == 0 { self.anon_gid } else { g };
        if c.uid == 0 {
            c.uid = self.anon_uid;
        }
        c.gid = gid(c.gid);
        c.gids.iter_mut().for_each(|g| *g = gid(*g));
        c
    }
}

fn is_root(c: &Caller) -> bool {
    c.uid == 0
}

fn in_group(c: &Caller, gid: u32) -> bool {
    c.gid == gid || c.gids.contains(&gid)
}

/// The permission bits (rwx as 4/2/1) the caller holds on a file.
fn bits(c: &Caller, a: &Attrs) -> u32 {
    if c.uid == a.uid {
        (a.mode >> 6) & 7
    } else if in_group(c, a.gid) {
        (a.mode >> 3) & 7
    } else {
        a.mode & 7
    }
}

/// The permission bits (rwx as 4/2/1) the caller holds, root's included: root holds every bit
/// but execute of a file that no one may execute.
pub fn held(c: &Caller, a: &Attrs) -> u32 {
    if !is_root(c) {
        bits(c, a)
    } else if a.kind == FileKind::Directory || a.mode & 0o111 != 0 {
        READ | WRITE | SEARCH
    } else {
        READ | WRITE
    }
}

fn has(c: &Caller, a: &Attrs, wanted: u32) -> bool {
    if is_root(c) {
        // Root may search any directory and read or write anything.
        return true;
    }
    bits(c, a) & wanted == wanted
}

/// Looking a name up needs a directory, and search permission on it.
pub fn lookup(c: &Caller, dir: &Attrs) -> Result<(), Error> {
    if dir.kind != FileKind::Directory {
        Err(Error::NotDir)
    } else if has(c, dir, SEARCH) {
        Ok(())
    } else {
        Err(Error::Access)
    }
}

/// Adding or removing entries needs a directory (a symlink's handle never stands for its
/// target), and write and search permission on it.
pub fn change_entries(c: &Caller, dir: &Attrs) -> Result<(), Error> {
    if dir.kind != FileKind::Directory {
        Err(Error::NotDir)
    } else if has(c, dir, WRITE | SEARCH) {
        Ok(())
    } else {
        Err(Error::Access)
    }
}

/// Whether the sticky bit of `dir` restricts this caller, so the entry's owner must be known.
pub fn sticky_binds(c: &Caller, dir: &Attrs) -> bool {
    dir.mode & 0o1000 != 0 && !is_root(c) && c.uid != dir.uid
}

/// Removing or renaming `entry` out of a sticky directory is for the entry's or the
/// directory's owner only.
pub fn sticky(c: &Caller, dir: &Attrs, entry: &Attrs) -> Result<(), Error> {
    if !sticky_binds(c, dir) || c.uid == entry.uid {
        Ok(())
    } else {
        Err(Error::NotOwner)
    }
}

/// Moving a directory to another parent rewrites its "..": that needs write permission on it.
pub fn move_dir(c: &Caller, moved: &Attrs) -> Result<(), Error> {
    if moved.kind != FileKind::Directory || has(c, moved, WRITE) {
        Ok(())
    } else {
        Err(Error::Access)
    }
}

/// Linux's `protected_hardlinks`: a caller other than root may link only a file it owns, or a
/// regular file it may read and write that is neither set-user-id nor set-group-id executable.
pub fn link_source(c: &Caller, file: &Attrs) -> Result<(), Error> {
    if is_root(c) || c.uid == file.uid {
        return Ok(());
    }
    let setuid = file.mode & 0o4000 != 0;
    let setgid_exec = file.mode & 0o2010 == 0o2010;
    if file.kind == FileKind::Regular && !setuid && !setgid_exec && has(c, file, READ | WRITE) {
        Ok(())
    } else {
        Err(Error::NotOwner)
    }
}

/// Making a block or character device needs root, and a mount that allows devices; fifos and
/// sockets anyone may make.
pub fn make_node(c: &Caller, kind: FileKind, devices_allowed: bool) -> Result<(), Error> {
    let device = matches!(kind, FileKind::BlockDevice | FileKind::CharDevice);
    if device && !(is_root(c) && devices_allowed) {
        return Err(Error::NotOwner);
    }
    Ok(())
}

/// Checks a SETATTR and returns the changes to apply (a set-group-id bit the caller may not
/// set is dropped, as Linux does).
pub fn setattr(c: &Caller, a: &Attrs, mut changes: SetAttrs) -> Result<SetAttrs, Error> {
    let owner = is_root(c) || c.uid == a.uid;
    if let Some(mode) = changes.mode {
        if !owner {
            return Err(Error::NotOwner);
        }
        let group = changes.gid.unwrap_or(a.gid);
        if !is_root(c) && a.kind != FileKind::Directory && mode & 0o2000 != 0 && !in_group(c, group)
        {
            changes.mode = Some(mode & !0o2000);
        }
    }
    if let Some(uid) = changes.uid {
        if uid != a.uid && !is_root(c) {
            return Err(Error::NotOwner);
        }
    }
    if let Some(gid) = changes.gid {
        if gid != a.gid && !is_root(c) && !(c.uid == a.uid && in_group(c, gid)) {
            return Err(Error::NotOwner);
        }
    }
    if changes.size.is_some() && !has(c, a, WRITE) {
        return Err(if a.kind == FileKind::Directory {
            Error::IsDir
        } else {
            Error::Access
        });
    }
    for time in [&changes.atime, &changes.mtime].into_iter().flatten() {
        match time {
            SetTime::At(_) if !owner => return Err(Error::NotOwner),
            SetTime::Now if !owner && !has(c, a, WRITE) => return Err(Error::Access),
            _ => {}
        }
    }
    Ok(changes)
}

/// Reading needs read permission; the owner may always read what it opened (NFS has no open,
/// so the owner is trusted as a local file system trusts an open descriptor).
pub fn read(c: &Caller, a: &Attrs) -> Result<(), Error> {
    if c.uid == a.uid || has(c, a, READ) || has(c, a, SEARCH) {
        Ok(())
    } else {
        Err(Error::Access)
    }
}

/// Writing needs write permission, with the same owner exception as `read`.
pub fn write(c: &Caller, a: &Attrs) -> Result<(), Error> {
    if c.uid == a.uid || has(c, a, WRITE) {
        Ok(())
    } else {
        Err(Error::Access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::types::Timestamp;

    fn user(uid: u32, gid: u32) -> Caller {
        Caller {
            uid,
            gid,
            gids: vec![],
        }
    }

    const ROOT: Caller = Caller {
        uid: 0,
        gid: 0,
        gids: vec![],
    };

    #[test]
    fn squash_maps_root_or_everyone_to_the_anonymous_ids() {
        let root_squash = Squash {
            root: true,
            all: false,
            anon_uid: 900,
            anon_gid: 901,
        };
        let root = Caller {
            uid: 0,
            gid: 0,
            gids: vec![0, 5],
        };
        let squashed = root_squash.apply(root.clone());
        assert_eq!(
            (squashed.uid, squashed.gid, squashed.gids),
            (900, 901, vec![901, 5])
        );
        let user = Caller {
            uid: 1000,
            gid: 100,
            gids: vec![7],
        };
        let kept = root_squash.apply(user.clone());
        assert_eq!((kept.uid, kept.gid, kept.gids), (1000, 100, vec![7]));
        let all = Squash {
            all: true,
            ..root_squash
        };
        let squashed = all.apply(user.clone());
        assert_eq!((squashed.uid, squashed.gid), (900, 901));
        assert!(squashed.gids.is_empty());
        let same = Squash::NONE.apply(root.clone());
        assert_eq!((same.uid, same.gid), (0, 0));
        // A squashed root is an ordinary user to the checks.
        let secret = Attrs::for_test(FileKind::Regular, 0o600, 1000, 1000);
        assert_eq!(
            read(&root_squash.apply(root.clone()), &secret),
            Err(Error::Access)
        );
        assert_eq!(read(&root, &secret), Ok(()));
    }

    #[test]
    fn directory_changes_need_write_and_search() {
        let dir = Attrs::for_test(FileKind::Directory, 0o755, 1000, 1000);
        assert_eq!(change_entries(&user(1000, 1000), &dir), Ok(()));
        assert_eq!(change_entries(&user(2000, 2000), &dir), Err(Error::Access));
        assert_eq!(change_entries(&ROOT, &dir), Ok(()));
        let no_search = Attrs::for_test(FileKind::Directory, 0o600, 1000, 1000);
        assert_eq!(
            change_entries(&user(1000, 1000), &no_search),
            Err(Error::Access)
        );
        assert_eq!(lookup(&user(1000, 1000), &no_search), Err(Error::Access));
    }

    #[test]
    fn only_directories_have_entries() {
        let owner = user(1000, 1000);
        for kind in [FileKind::Symlink, FileKind::Regular, FileKind::Fifo] {
            let not_dir = Attrs::for_test(kind, 0o777, 1000, 1000);
            assert_eq!(change_entries(&owner, &not_dir), Err(Error::NotDir));
            assert_eq!(lookup(&owner, &not_dir), Err(Error::NotDir));
        }
        let dir = Attrs::for_test(FileKind::Directory, 0o777, 0, 0);
        assert_eq!(change_entries(&owner, &dir), Ok(()));
        assert_eq!(lookup(&owner, &dir), Ok(()));
    }

    #[test]
    fn sticky_directories_protect_other_users_entries() {
        let dir = Attrs::for_test(FileKind::Directory, 0o1777, 0, 0);
        let theirs = Attrs::for_test(FileKind::Regular, 0o644, 3000, 3000);
        assert_eq!(
            sticky(&user(2000, 2000), &dir, &theirs),
            Err(Error::NotOwner)
        );
        assert_eq!(sticky(&user(3000, 3000), &dir, &theirs), Ok(()));
        assert_eq!(sticky(&ROOT, &dir, &theirs), Ok(()));
    }

    #[test]
    fn only_owners_chmod_and_only_root_chowns() {
        let f = Attrs::for_test(FileKind::Regular, 0o644, 1000, 1000);
        let chmod = SetAttrs {
            mode: Some(0o600),
            ..SetAttrs::none()
        };
        assert!(setattr(&user(1000, 1000), &f, chmod).is_ok());
        let chmod = SetAttrs {
            mode: Some(0o600),
            ..SetAttrs::none()
        };
        assert_eq!(
            setattr(&user(2000, 2000), &f, chmod).unwrap_err(),
            Error::NotOwner
        );
        let chown = SetAttrs {
            uid: Some(2000),
            ..SetAttrs::none()
        };
        assert_eq!(
            setattr(&user(1000, 1000), &f, chown).unwrap_err(),
            Error::NotOwner
        );
        let chgrp = Caller {
            uid: 1000,
            gid: 1000,
            gids: vec![50],
        };
        assert!(setattr(
            &chgrp,
            &f,
            SetAttrs {
                gid: Some(50),
                ..SetAttrs::none()
            }
        )
        .is_ok());
        assert_eq!(
            setattr(
                &chgrp,
                &f,
                SetAttrs {
                    gid: Some(51),
                    ..SetAttrs::none()
                }
            )
            .unwrap_err(),
            Error::NotOwner
        );
    }

    #[test]
    fn hard_links_need_ownership_or_read_and_write() {
        let secret = Attrs::for_test(FileKind::Regular, 0o600, 0, 0);
        assert_eq!(
            link_source(&user(1000, 1000), &secret),
            Err(Error::NotOwner)
        );
        assert_eq!(link_source(&ROOT, &secret), Ok(()));
        let readable = Attrs::for_test(FileKind::Regular, 0o644, 0, 0);
        assert_eq!(
            link_source(&user(1000, 1000), &readable),
            Err(Error::NotOwner),
            "read alone is not enough"
        );
        let shared = Attrs::for_test(FileKind::Regular, 0o666, 0, 0);
        assert_eq!(link_source(&user(1000, 1000), &shared), Ok(()));
        let setuid = Attrs::for_test(FileKind::Regular, 0o4666, 0, 0);
        assert_eq!(
            link_source(&user(1000, 1000), &setuid),
            Err(Error::NotOwner)
        );
        let fifo = Attrs::for_test(FileKind::Fifo, 0o666, 0, 0);
        assert_eq!(link_source(&user(1000, 1000), &fifo), Err(Error::NotOwner));
        let own_fifo = Attrs::for_test(FileKind::Fifo, 0o600, 1000, 1000);
        assert_eq!(link_source(&user(1000, 1000), &own_fifo), Ok(()));
    }

    #[test]
    fn devices_are_for_root_on_mounts_that_allow_them() {
        let block = FileKind::BlockDevice;
        assert_eq!(
            make_node(&user(1000, 1000), block, true),
            Err(Error::NotOwner)
        );
        assert_eq!(make_node(&ROOT, block, false), Err(Error::NotOwner));
        assert_eq!(make_node(&ROOT, FileKind::CharDevice, true), Ok(()));
        assert_eq!(make_node(&user(1000, 1000), FileKind::Fifo, false), Ok(()));
        assert_eq!(
            make_node(&user(1000, 1000), FileKind::Socket, false),
            Ok(())
        );
    }

    #[test]
    fn setgid_is_dropped_for_outsiders_of_the_group() {
        let f = Attrs::for_test(FileKind::Regular, 0o644, 1000, 77);
        let ok = setattr(
            &user(1000, 1000),
            &f,
            SetAttrs {
                mode: Some(0o2755),
                ..SetAttrs::none()
            },
        )
        .unwrap();
        assert_eq!(ok.mode, Some(0o755));
    }

    #[test]
    fn truncate_needs_write_and_times_need_ownership() {
        let f = Attrs::for_test(FileKind::Regular, 0o644, 1000, 1000);
        let truncate = SetAttrs {
            size: Some(0),
            ..SetAttrs::none()
        };
        assert_eq!(
            setattr(&user(2000, 2000), &f, truncate).unwrap_err(),
            Error::Access
        );
        let at = SetTime::At(Timestamp {
            seconds: 5,
            nanoseconds: 0,
        });
        let touch = SetAttrs {
            mtime: Some(at),
            ..SetAttrs::none()
        };
        assert_eq!(
            setattr(&user(2000, 2000), &f, touch).unwrap_err(),
            Error::NotOwner
        );
        let writable = Attrs::for_test(FileKind::Regular, 0o666, 1000, 1000);
        let now = SetAttrs {
            mtime: Some(SetTime::Now),
            ..SetAttrs::none()
        };
        assert!(setattr(&user(2000, 2000), &writable, now).is_ok());
    }
}
