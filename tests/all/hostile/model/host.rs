//! The host's side of the model: the seeded tree each sequence starts from, and snapshots of
//! everything under the export (and outside it) by (device, inode), as root sees it with
//! `lstat`, to compare before and after each call.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// An object's identity on the host: (device, inode).
pub(super) type Id = (u64, u64);

/// What an object is, as `lstat` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Device,
}

/// One object as the host sees it.
#[derive(Clone, Debug)]
pub(super) struct Obj {
    pub(super) kind: Kind,
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) size: u64,
    pub(super) mtime: (i64, i64),
    /// A file's bytes or a symlink's target.
    pub(super) content: Vec<u8>,
    /// A directory's entries.
    pub(super) entries: BTreeMap<String, Id>,
    /// Where it is (relative to the test's base directory); the first of its names.
    pub(super) path: String,
    /// Not part of the export: nothing the clients do may touch it.
    pub(super) outside: bool,
}

/// Everything under the export and outside it, by identity.
#[derive(Clone, Default)]
pub(super) struct Snapshot {
    pub(super) objects: BTreeMap<Id, Obj>,
}

/// The host's view of `base/export` and `base/outside` now.
pub(super) fn snapshot(base: &Path) -> Snapshot {
    fn walk(base: &Path, rel: &str, outside: bool, snap: &mut Snapshot) -> Id {
        let path = base.join(rel);
        let meta = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        let id = (meta.dev(), meta.ino());
        if snap.objects.contains_key(&id) {
            return id; // another name of a hard-linked file
        }
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_fifo() {
            Kind::Fifo
        } else if ft.is_socket() {
            Kind::Socket
        } else if ft.is_char_device() || ft.is_block_device() {
            Kind::Device
        } else {
            Kind::File
        };
        let content = match kind {
            Kind::File => std::fs::read(&path).unwrap_or_default(),
            Kind::Symlink => std::fs::read_link(&path)
                .map(|t| t.into_os_string().into_encoded_bytes())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut obj = Obj {
            kind: kind.clone(),
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            content,
            entries: BTreeMap::new(),
            path: rel.to_string(),
            outside,
        };
        if kind == Kind::Dir {
            let mut names: Vec<String> = std::fs::read_dir(&path)
                .unwrap_or_else(|e| panic!("read_dir {}: {e}", path.display()))
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            snap.objects.insert(id, obj.clone());
            for name in names {
                let child = walk(base, &format!("{rel}/{name}"), outside, snap);
                obj.entries.insert(name, child);
            }
        }
        snap.objects.insert(id, obj);
        id
    }
    let mut snap = Snapshot::default();
    walk(base, "export", false, &mut snap);
    walk(base, "outside", true, &mut snap);
    snap
}

impl Snapshot {
    /// The identity of the object at `rel` (not following a final symlink), if it is known.
    pub(super) fn id_of(&self, base: &Path, rel: &str) -> Option<Id> {
        let meta = std::fs::symlink_metadata(base.join(rel)).ok()?;
        let id = (meta.dev(), meta.ino());
        self.objects.contains_key(&id).then_some(id)
    }
}

/// An object for a report: its path, kind, owner, group and mode.
pub(super) fn describe(o: &Obj) -> String {
    format!(
        "/{} ({:?} {}:{} {:04o})",
        o.path, o.kind, o.uid, o.gid, o.mode
    )
}

/// The start of some bytes for a report.
pub(super) fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(48)]);
    let more = if bytes.len() > 48 { "..." } else { "" };
    format!("{text:?}{more}")
}

/// Makes `export/<case>`: a root-owned sticky directory holding files and directories of
/// root, 1000, 1001 and group 2000 with 0600, 0644, 0660, 0700, sticky, set-group-id and
/// set-user-id modes, and symlinks to them, out of the case and out of the export.
pub(super) fn seed_tree(base: &Path, case: &str) {
    let root = base.join("export").join(case);
    let outside = base.join("outside/target");
    let entries: &[(&str, &str, u32, u32, u32)] = &[
        // (path, kind, uid, gid, mode)
        ("", "dir", 0, 0, 0o1777),
        ("secret", "file", 0, 0, 0o600),
        ("public", "file", 0, 0, 0o644),
        ("group100", "file", 0, 100, 0o660),
        ("sgid_exec", "file", 0, 2000, 0o2755),
        ("suid_exec", "file", 0, 0, 0o4755),
        ("rootdir", "dir", 0, 0, 0o700),
        ("rootdir/inner", "file", 0, 0, 0o644),
        ("shared", "dir", 0, 0, 0o777),
        ("shared/rootfile", "file", 0, 0, 0o644),
        ("shared/f1000", "file", 1000, 1000, 0o644),
        ("sticky", "dir", 0, 0, 0o1777),
        ("sticky/rootfile", "file", 0, 0, 0o666),
        ("sticky/f1000", "file", 1000, 1000, 0o644),
        ("sticky/f1001", "file", 1001, 1001, 0o666),
        ("setgid", "dir", 0, 2000, 0o2775),
        ("setgid/g", "file", 0, 2000, 0o664),
        ("u1000", "dir", 1000, 1000, 0o755),
        ("u1000/mine", "file", 1000, 1000, 0o600),
        ("u1000/pub", "file", 1000, 1000, 0o644),
        ("u1000/sub", "dir", 1000, 1000, 0o700),
        ("u1001", "dir", 1001, 1001, 0o700),
        ("u1001/priv", "file", 1001, 1001, 0o600),
        ("link_secret", "symlink:secret", 0, 0, 0),
        ("link_rootdir", "symlink:rootdir", 0, 0, 0),
        ("link_inner", "symlink:rootdir/inner", 0, 0, 0),
        ("link_up", "symlink:../..", 0, 0, 0),
        ("link_outside", "symlink:OUTSIDE", 0, 0, 0),
        ("u1000/link_priv", "symlink:../u1001/priv", 1000, 1000, 0),
    ];
    for &(rel, kind, uid, gid, mode) in entries {
        let path = root.join(rel);
        match kind.split_once(':') {
            Some(("symlink", target)) => {
                let target = if target == "OUTSIDE" {
                    outside.to_str().unwrap()
                } else {
                    target
                };
                std::os::unix::fs::symlink(target, &path).unwrap();
                std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).unwrap();
                continue;
            }
            _ if kind == "dir" => std::fs::create_dir_all(&path).unwrap(),
            _ => std::fs::write(&path, format!("{case}/{rel}: bytes of uid {uid}\n")).unwrap(),
        }
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap_or_else(|e| {
            panic!("chown {} (the test must run as root): {e}", path.display())
        });
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}
