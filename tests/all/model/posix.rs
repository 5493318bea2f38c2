//! The reference model: a small POSIX file tree (kinds, contents, modes, owners, hard links)
//! and, for each operation, the NFS statuses a correct server may answer and the tree after a
//! success. Permission rules are the ones docs/SECURITY.md documents for the gateway's checks
//! (Linux's, with the owner override for WRITE that knfsd also has, and none for a truncating
//! SETATTR); when several errors apply at once, any of them is accepted, with the tree
//! unchanged.

use std::collections::BTreeMap;

use nfs3_types::nfs3::nfsstat3::{self, *};

use super::ops::{Op, Spot, DIR_MODES, FILE_MODES, TARGETS, USERS};

/// The identity a squashed root acts as (nfsgw's default `anon_uid` and `anon_gid`).
const NOBODY: u32 = 65534;

pub type Ino = usize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File(Vec<u8>),
    Dir(BTreeMap<String, Ino>),
    Symlink(String),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What a step may answer: OK (with the tree after it) and which errors.
pub struct Expected {
    pub ok: bool,
    pub errors: Vec<nfsstat3>,
}

impl Expected {
    fn ok() -> Expected {
        Expected {
            ok: true,
            errors: Vec::new(),
        }
    }

    fn err(errors: Vec<nfsstat3>) -> Expected {
        Expected { ok: false, errors }
    }

    pub fn allows(&self, status: Option<nfsstat3>) -> bool {
        match status {
            None => self.ok,
            Some(e) => self.errors.contains(&e),
        }
    }
}

/// The model's tree. Inode 0 is the export root.
#[derive(Clone)]
pub struct Model {
    pub nodes: BTreeMap<Ino, Node>,
    next: Ino,
    /// Whether root is squashed to [`NOBODY`].
    squash: bool,
}

/// What a caller acts as, after squashing.
#[derive(Clone, Copy)]
pub struct Acting {
    pub uid: u32,
    pub gid: u32,
}

impl Model {
    /// An empty export whose root is root's, mode 0777, as every sequence starts.
    pub fn new(squash: bool) -> Model {
        let root = Node {
            kind: Kind::Dir(BTreeMap::new()),
            mode: 0o777,
            uid: 0,
            gid: 0,
        };
        Model {
            nodes: BTreeMap::from([(0, root)]),
            next: 1,
            squash,
        }
    }

    pub fn acting(&self, user: usize) -> Acting {
        let (uid, gid) = USERS[user];
        let squash = |id: u32| if self.squash && id == 0 { NOBODY } else { id };
        Acting {
            uid: squash(uid),
            gid: squash(gid),
        }
    }

    /// The caller that acts as `uid`, to search and list what `uid` owns (root when root is
    /// not squashed, as root may do anything).
    pub fn user_acting_as(&self, uid: u32) -> usize {
        (0..USERS.len())
            .find(|&u| !self.squash && u == 0 || self.squash && self.acting(u).uid == uid)
            .unwrap_or(0)
    }

    pub fn entries(&self, dir: Ino) -> Option<&BTreeMap<String, Ino>> {
        match &self.nodes[&dir].kind {
            Kind::Dir(entries) => Some(entries),
            _ => None,
        }
    }

    /// The object at a path from the root, if every part exists.
    pub fn lookup(&self, path: &str) -> Option<Ino> {
        let mut ino = 0;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = *self.entries(ino)?.get(part)?;
        }
        Some(ino)
    }

    /// A spot's parent (which may be no directory) and the object at the spot, if any.
    pub fn at(&self, spot: Spot) -> (Option<Ino>, Option<Ino>) {
        let parent = self.lookup(spot.parent_path());
        let child = parent
            .and_then(|p| self.entries(p))
            .and_then(|e| e.get(spot.name()).copied());
        (parent, child)
    }

    /// How many directory entries name `ino` (a directory also counts "." and its
    /// subdirectories' "..").
    pub fn nlink(&self, ino: Ino) -> u32 {
        let names = self
            .nodes
            .values()
            .filter_map(|n| match &n.kind {
                Kind::Dir(e) => Some(e.values().filter(|&&i| i == ino).count() as u32),
                _ => None,
            })
            .sum::<u32>();
        match self.entries(ino) {
            Some(e) => {
                let subdirs = e.values().filter(|&&i| self.entries(i).is_some()).count();
                names + 1 + subdirs as u32 + u32::from(ino == 0)
            }
            None => names,
        }
    }

    fn is_dir(&self, ino: Ino) -> bool {
        self.entries(ino).is_some()
    }

    fn bits(&self, c: Acting, ino: Ino) -> u32 {
        let n = &self.nodes[&ino];
        if c.uid == n.uid {
            (n.mode >> 6) & 7
        } else if c.gid == n.gid {
            (n.mode >> 3) & 7
        } else {
            n.mode & 7
        }
    }

    fn has(&self, c: Acting, ino: Ino, wanted: u32) -> bool {
        c.uid == 0 || self.bits(c, ino) & wanted == wanted
    }

    fn owns(&self, c: Acting, ino: Ino) -> bool {
        c.uid == 0 || c.uid == self.nodes[&ino].uid
    }

    /// Whether a sticky `dir` keeps the caller from removing or replacing `entry`.
    fn sticky_blocks(&self, c: Acting, dir: Ino, entry: Ino) -> bool {
        self.nodes[&dir].mode & 0o1000 != 0 && !self.owns(c, dir) && !self.owns(c, entry)
    }

    /// The errors of changing `dir`'s entries: none, or NOTDIR alone, or ACCES.
    fn entry_errors(&self, c: Acting, dir: Ino) -> Result<Vec<nfsstat3>, nfsstat3> {
        if !self.is_dir(dir) {
            return Err(NFS3ERR_NOTDIR);
        }
        Ok(if self.has(c, dir, 0o3) {
            Vec::new()
        } else {
            vec![NFS3ERR_ACCES]
        })
    }

    fn add(&mut self, kind: Kind, mode: u32, c: Acting) -> Ino {
        let ino = self.next;
        self.next += 1;
        let node = Node {
            kind,
            mode,
            uid: c.uid,
            gid: c.gid,
        };
        self.nodes.insert(ino, node);
        ino
    }

    fn entries_mut(&mut self, dir: Ino) -> &mut BTreeMap<String, Ino> {
        match &mut self.nodes.get_mut(&dir).expect("a known inode").kind {
            Kind::Dir(entries) => entries,
            _ => panic!("inode {dir} is no directory"),
        }
    }

    /// Drops the objects no name reaches any more.
    fn collect(&mut self) {
        let mut reached = vec![0];
        let mut i = 0;
        while i < reached.len() {
            if let Some(e) = self.entries(reached[i]) {
                for &child in e.values() {
                    if !reached.contains(&child) {
                        reached.push(child);
                    }
                }
            }
            i += 1;
        }
        self.nodes.retain(|ino, _| reached.contains(ino));
    }

    /// Whether `ino` is `ancestor` or inside it.
    fn within(&self, ino: Ino, ancestor: Ino) -> bool {
        if ino == ancestor {
            return true;
        }
        self.nodes.iter().any(|(&d, n)| match &n.kind {
            Kind::Dir(e) => e.values().any(|&i| i == ino) && self.within(d, ancestor),
            _ => false,
        })
    }

    /// What `op` may answer; applies it to the model when OK is the expected answer. `None`:
    /// the step cannot be sent (an object it acts on does not exist, so there is no handle)
    /// or is left out (a symlink's mode, a non-file's size), and nothing changes.
    pub fn apply(&mut self, op: &Op) -> Option<Expected> {
        match *op {
            Op::Create { user, at, mode } => {
                let kind = Kind::File(Vec::new());
                self.make(user, at, kind, FILE_MODES[mode])
            }
            Op::Mkdir { user, at, mode } => {
                let kind = Kind::Dir(BTreeMap::new());
                self.make(user, at, kind, DIR_MODES[mode])
            }
            Op::Symlink { user, at, target } => {
                let kind = Kind::Symlink(TARGETS[target].to_string());
                self.make(user, at, kind, 0o777)
            }
            Op::Write {
                user,
                at,
                offset,
                ref data,
                ..
            } => {
                let ino = self.at(at).1?;
                let c = self.acting(user);
                let may = c.uid == self.nodes[&ino].uid || self.has(c, ino, 0o2);
                self.file_op(ino, may, NFS3ERR_ACCES, |content| {
                    let end = offset as usize + data.len();
                    if content.len() < end {
                        content.resize(end, 0);
                    }
                    content[offset as usize..end].copy_from_slice(data);
                })
            }
            Op::Truncate { user, at, size } => {
                let ino = self.at(at).1?;
                if !matches!(self.nodes[&ino].kind, Kind::File(_)) {
                    return None;
                }
                let may = self.has(self.acting(user), ino, 0o2);
                self.file_op(ino, may, NFS3ERR_ACCES, |content| {
                    content.resize(size as usize, 0)
                })
            }
            Op::Chmod { user, at, mode } => {
                let ino = self.at(at).1?;
                let mode = match self.nodes[&ino].kind {
                    Kind::File(_) => FILE_MODES[mode],
                    Kind::Dir(_) => DIR_MODES[mode],
                    Kind::Symlink(_) => return None,
                };
                if !self.owns(self.acting(user), ino) {
                    return Some(Expected::err(vec![NFS3ERR_PERM]));
                }
                self.nodes.get_mut(&ino).expect("known").mode = mode;
                Some(Expected::ok())
            }
            Op::Commit { user, at } => {
                let ino = self.at(at).1?;
                let c = self.acting(user);
                let may = c.uid == self.nodes[&ino].uid || self.has(c, ino, 0o2);
                let mut expected = self.file_op(ino, true, NFS3ERR_ACCES, |_| {})?;
                if expected.ok && !may {
                    // COMMIT changes no bytes: a server may or may not check write access.
                    expected.errors.push(NFS3ERR_ACCES);
                }
                Some(expected)
            }
            Op::Remove { user, at } => self.unlink(user, at, false),
            Op::Rmdir { user, at } => self.unlink(user, at, true),
            Op::Rename { user, from, to } => self.rename(user, from, to),
            Op::Link { user, from, to } => self.link(user, from, to),
            Op::Restart => Some(Expected::ok()),
        }
    }

    /// A READ-WRITE-COMMIT-style call on `ino`: ISDIR for a directory, INVAL for anything
    /// else that is no regular file, `denied` unless `may`, else `change` on the contents.
    fn file_op(
        &mut self,
        ino: Ino,
        may: bool,
        denied: nfsstat3,
        change: impl FnOnce(&mut Vec<u8>),
    ) -> Option<Expected> {
        let node = self.nodes.get_mut(&ino).expect("known");
        Some(match &mut node.kind {
            Kind::Dir(_) => Expected::err(vec![NFS3ERR_ISDIR]),
            Kind::Symlink(_) => Expected::err(vec![NFS3ERR_INVAL]),
            Kind::File(_) if !may => Expected::err(vec![denied]),
            Kind::File(content) => {
                change(content);
                Expected::ok()
            }
        })
    }

    /// CREATE (GUARDED), MKDIR and SYMLINK.
    fn make(&mut self, user: usize, at: Spot, kind: Kind, mode: u32) -> Option<Expected> {
        let (parent, existing) = self.at(at);
        let parent = parent?;
        let c = self.acting(user);
        let mut errors = match self.entry_errors(c, parent) {
            Err(e) => return Some(Expected::err(vec![e])),
            Ok(errors) => errors,
        };
        if existing.is_some() {
            errors.push(NFS3ERR_EXIST);
        }
        if !errors.is_empty() {
            return Some(Expected::err(errors));
        }
        let ino = self.add(kind, mode, c);
        self.entries_mut(parent).insert(at.name().to_string(), ino);
        Some(Expected::ok())
    }

    /// REMOVE (`dir` false) and RMDIR (`dir` true).
    fn unlink(&mut self, user: usize, at: Spot, dir: bool) -> Option<Expected> {
        let (parent, existing) = self.at(at);
        let parent = parent?;
        let c = self.acting(user);
        let mut errors = match self.entry_errors(c, parent) {
            Err(e) => return Some(Expected::err(vec![e])),
            Ok(errors) => errors,
        };
        let Some(ino) = existing else {
            errors.push(NFS3ERR_NOENT);
            return Some(Expected::err(errors));
        };
        if self.sticky_blocks(c, parent, ino) {
            errors.push(NFS3ERR_PERM);
        }
        match (dir, self.entries(ino)) {
            (false, Some(_)) => errors.push(NFS3ERR_ISDIR),
            (true, None) => errors.push(NFS3ERR_NOTDIR),
            (true, Some(e)) if !e.is_empty() => errors.push(NFS3ERR_NOTEMPTY),
            _ => {}
        }
        if !errors.is_empty() {
            return Some(Expected::err(errors));
        }
        self.entries_mut(parent).remove(at.name());
        self.collect();
        Some(Expected::ok())
    }

    fn rename(&mut self, user: usize, from: Spot, to: Spot) -> Option<Expected> {
        let (from_parent, source) = self.at(from);
        let (to_parent, target) = self.at(to);
        let (from_parent, to_parent) = (from_parent?, to_parent?);
        let c = self.acting(user);
        let mut errors = Vec::new();
        for dir in [from_parent, to_parent] {
            match self.entry_errors(c, dir) {
                Err(e) => errors.push(e),
                Ok(e) => errors.extend(e),
            }
        }
        if errors.contains(&NFS3ERR_NOTDIR) {
            return Some(Expected::err(errors));
        }
        let Some(source) = source else {
            errors.push(NFS3ERR_NOENT);
            return Some(Expected::err(errors));
        };
        if self.sticky_blocks(c, from_parent, source)
            || target.is_some_and(|t| self.sticky_blocks(c, to_parent, t))
        {
            errors.push(NFS3ERR_PERM);
        }
        let moving_dir = self.is_dir(source);
        if moving_dir && from_parent != to_parent && !self.has(c, source, 0o2) {
            errors.push(NFS3ERR_ACCES);
        }
        if moving_dir && self.within(to_parent, source) {
            errors.push(NFS3ERR_INVAL);
        }
        if target == Some(source) {
            // Two names of one object (or one name): nothing to do, which a server may also
            // refuse for the reasons above.
            return Some(Expected { ok: true, errors });
        }
        if let Some(t) = target {
            match (moving_dir, self.entries(t)) {
                (true, None) => errors.push(NFS3ERR_NOTDIR),
                (false, Some(_)) => errors.push(NFS3ERR_ISDIR),
                _ => {}
            }
            // A directory that is not empty cannot be replaced, whatever would replace it
            // (Linux answers so first when it is the source's ancestor).
            if self.entries(t).is_some_and(|e| !e.is_empty()) {
                errors.extend([NFS3ERR_NOTEMPTY, NFS3ERR_EXIST]);
            }
        }
        if !errors.is_empty() {
            return Some(Expected::err(errors));
        }
        self.entries_mut(from_parent).remove(from.name());
        self.entries_mut(to_parent)
            .insert(to.name().to_string(), source);
        self.collect();
        Some(Expected::ok())
    }

    /// LINK: a hard link to a directory is refused with PERM (Linux's EPERM; the memory
    /// backend answers the same), and a non-owner may link only a regular file it may read
    /// and write (protected hard links).
    fn link(&mut self, user: usize, from: Spot, to: Spot) -> Option<Expected> {
        let source = self.at(from).1?;
        let (to_parent, target) = self.at(to);
        let to_parent = to_parent?;
        let c = self.acting(user);
        let mut errors = match self.entry_errors(c, to_parent) {
            Err(e) => return Some(Expected::err(vec![e])),
            Ok(errors) => errors,
        };
        let regular = matches!(self.nodes[&source].kind, Kind::File(_));
        let may_link = self.owns(c, source) || regular && self.has(c, source, 0o6);
        if self.is_dir(source) || !may_link {
            errors.push(NFS3ERR_PERM);
        }
        if target.is_some() {
            errors.push(NFS3ERR_EXIST);
        }
        if !errors.is_empty() {
            return Some(Expected::err(errors));
        }
        self.entries_mut(to_parent)
            .insert(to.name().to_string(), source);
        Some(Expected::ok())
    }
}
