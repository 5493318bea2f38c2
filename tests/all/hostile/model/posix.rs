//! The model's POSIX rules: who a caller acts as once root is squashed, what it may read and
//! change, and which of the differences between two snapshots, or which parts of an answer,
//! it was not entitled to. A caller here is never root.

use std::collections::{BTreeSet, HashMap};

use nfs3_types::nfs3::{ACCESS3_EXTEND, ACCESS3_LOOKUP, ACCESS3_MODIFY, ACCESS3_READ};

use super::calls::{Answer, Call, CLIENT_MTIME};
use super::host::{describe, shown, Id, Kind, Obj, Snapshot};
use super::Rng;

/// The uids that call: root (squashed to nobody by the mount) and two ordinary users.
pub(super) const UIDS: [u32; 3] = [0, 1000, 1001];
/// The gids callers claim and the seeded tree uses.
pub(super) const GIDS: [u32; 5] = [0, 100, 1000, 1001, 2000];
/// What a squashed root becomes (the mount's default `anon_uid`/`anon_gid`).
pub(super) const NOBODY: u32 = 65534;

/// The AUTH_UNIX credentials a call carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Claimed {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) gids: Vec<u32>,
}

/// Who the caller acts as once the mount squashed root.
pub(super) struct Acting {
    pub(super) uid: u32,
    pub(super) groups: BTreeSet<u32>,
}

impl Claimed {
    pub(super) fn random(rng: &mut Rng) -> Claimed {
        let uid = rng.pick(&UIDS);
        let gid = if rng.chance(60) && uid != 0 {
            uid
        } else {
            rng.pick(&GIDS)
        };
        let gids = (0..rng.below(3)).map(|_| rng.pick(&GIDS)).collect();
        Claimed { uid, gid, gids }
    }

    pub(super) fn acting(&self) -> Acting {
        let squash = |id: u32| if id == 0 { NOBODY } else { id };
        Acting {
            uid: squash(self.uid),
            groups: std::iter::once(self.gid)
                .chain(self.gids.iter().copied())
                .map(squash)
                .collect(),
        }
    }
}

impl std::fmt::Display for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uid {} gid {} gids {:?}", self.uid, self.gid, self.gids)
    }
}

/// The rwx bits (4/2/1) the caller holds on `o`; an owner holds them all, as it could chmod.
/// A symlink's are its mode's, 0777, as on Linux: what they allow is what its kind allows.
fn held(who: &Acting, o: &Obj) -> u32 {
    if who.uid == o.uid {
        7
    } else if who.groups.contains(&o.gid) {
        (o.mode >> 3) & 7
    } else {
        o.mode & 7
    }
}

/// Whether the caller holds all of `bits` on an object of the export.
fn may(who: &Acting, o: &Obj, bits: u32) -> bool {
    !o.outside && held(who, o) & bits == bits
}

/// Linux's protected hard links: the owner, or a reader and writer of a plain file that is
/// not set-user-id nor set-group-id executable.
fn may_link(who: &Acting, o: &Obj) -> bool {
    if o.outside || o.kind == Kind::Dir {
        return false;
    }
    let setid_exec = o.mode & 0o4000 != 0 || o.mode & 0o2010 == 0o2010;
    who.uid == o.uid || (o.kind == Kind::File && !setid_exec && may(who, o, 6))
}

/// Every change between `before` and `after` that the caller was not entitled to make.
pub(super) fn forbidden_changes(who: &Acting, before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut found = Vec::new();
    let names_of = |snap: &Snapshot| {
        let mut count: HashMap<Id, Vec<Id>> = HashMap::new();
        for (dir, o) in &snap.objects {
            for child in o.entries.values() {
                count.entry(*child).or_default().push(*dir);
            }
        }
        count
    };
    let (parents_before, parents_after) = (names_of(before), names_of(after));
    for (id, old) in &before.objects {
        let what = describe(old);
        let Some(new) = after.objects.get(id) else {
            if old.outside {
                found.push(format!("{what} outside the export was removed"));
            }
            continue; // otherwise judged as an entry removed from its directory
        };
        if old.outside && (old.content != new.content || old.mode != new.mode) {
            found.push(format!("{what} outside the export changed"));
            continue;
        }
        let changed = old.content != new.content || old.kind != Kind::Dir && old.size != new.size;
        if changed && (old.kind == Kind::Symlink || !may(who, old, 2)) {
            found.push(format!(
                "{what}: content changed ({} bytes {} -> {} bytes {}) without write permission",
                old.size,
                shown(&old.content),
                new.size,
                shown(&new.content)
            ));
        }
        if old.uid != new.uid {
            found.push(format!("{what}: owner changed to uid {}", new.uid));
        }
        if old.gid != new.gid && !(who.uid == old.uid && who.groups.contains(&new.gid)) {
            found.push(format!(
                "{what}: group changed to {} (only its owner may, to a group it is in)",
                new.gid
            ));
        }
        if old.mode != new.mode {
            let only_cleared_setid =
                new.mode | 0o6000 == old.mode | 0o6000 && new.mode & !old.mode == 0;
            let owner = who.uid == old.uid;
            if !(owner || only_cleared_setid && may(who, old, 2)) {
                found.push(format!(
                    "{what}: mode changed to {:04o} by a caller that does not own it",
                    new.mode
                ));
            } else if old.kind != Kind::Dir
                && new.mode & 0o2000 != 0
                && old.mode & 0o2000 == 0
                && !who.groups.contains(&new.gid)
            {
                found.push(format!(
                    "{what}: set-group-id set to {:04o} for group {}, which the caller is not in",
                    new.mode, new.gid
                ));
            }
        }
        // Setting a time to the server's clock needs write permission; to a given time, the
        // ownership (the model's calls give only CLIENT_MTIME).
        let given_time = new.mtime == (i64::from(CLIENT_MTIME.seconds), 0);
        let may_touch = who.uid == old.uid || !given_time && may(who, old, 2);
        if old.mtime != new.mtime && old.entries == new.entries && !may_touch {
            found.push(format!(
                "{what}: mtime changed to {:?} without {}",
                new.mtime,
                if given_time {
                    "owning it"
                } else {
                    "write permission"
                }
            ));
        }
        if old.entries != new.entries {
            if !may(who, old, 3) {
                found.push(format!(
                    "{what}: entries changed without write and search permission (names {:?} -> {:?})",
                    old.entries.keys().collect::<Vec<_>>(),
                    new.entries.keys().collect::<Vec<_>>()
                ));
            }
            for (name, child) in &old.entries {
                if new.entries.get(name) == Some(child) {
                    continue;
                }
                let victim = before.objects.get(child);
                let sticky = old.mode & 0o1000 != 0;
                if sticky && who.uid != old.uid && victim.is_some_and(|v| v.uid != who.uid) {
                    found.push(format!(
                        "{what}: {name:?} (owned by uid {}) removed or replaced from a sticky \
                         directory by a caller that owns neither",
                        victim.map_or(0, |v| v.uid)
                    ));
                }
            }
            for (name, child) in &new.entries {
                if old.entries.get(name) == Some(child) {
                    continue;
                }
                let Some(existing) = before.objects.get(child) else {
                    continue; // a new object, judged below
                };
                let was = parents_before.get(child).map_or(0, Vec::len);
                let now = parents_after.get(child).map_or(0, Vec::len);
                if now > was && !may_link(who, existing) {
                    found.push(format!(
                        "{} hard-linked as {name:?} in {what} by a caller that may not link it",
                        describe(existing)
                    ));
                }
                let moved_dir = existing.kind == Kind::Dir
                    && parents_before.get(child).and_then(|p| p.first()) != Some(id);
                if moved_dir && !may(who, existing, 2) {
                    found.push(format!(
                        "{} moved into {what} without write permission on it",
                        describe(existing)
                    ));
                }
            }
        }
    }
    for (id, new) in &after.objects {
        if before.objects.contains_key(id) {
            continue;
        }
        let what = describe(new);
        if new.outside {
            found.push(format!("{what} created outside the export"));
            continue;
        }
        let parent = parents_after
            .get(id)
            .and_then(|p| p.first())
            .and_then(|p| after.objects.get(p));
        if new.kind == Kind::Device {
            found.push(format!(
                "{what}: a device node made by a caller that is not root"
            ));
        }
        if new.uid != who.uid {
            found.push(format!(
                "{what}: new object owned by uid {}, not by the caller (uid {})",
                new.uid, who.uid
            ));
        }
        let inherited = parent.is_some_and(|p| p.mode & 0o2000 != 0 && p.gid == new.gid);
        if !who.groups.contains(&new.gid) && !inherited {
            found.push(format!(
                "{what}: new object's group {} is neither the caller's nor its set-group-id \
                 directory's",
                new.gid
            ));
        }
        if new.kind != Kind::Dir && new.mode & 0o2000 != 0 && !who.groups.contains(&new.gid) {
            found.push(format!(
                "{what}: new file set-group-id for group {}, which the caller is not in",
                new.gid
            ));
        }
    }
    found
}

/// What an answer revealed that the caller could not see. `object` is the live object the
/// handle names, if the test knows it.
pub(super) fn forbidden_answers(
    who: &Acting,
    call: &Call,
    object: Option<&Obj>,
    a: &Answer,
    before: &Snapshot,
) -> Vec<String> {
    let mut found = Vec::new();
    if let (Some(data), Call::Read(_, offset, _)) = (&a.read, call) {
        let start = *offset as usize;
        let from = |o: &Obj| {
            o.kind == Kind::File
                && may(who, o, 4)
                && o.content.len() >= start + data.len()
                && o.content[start..start + data.len()] == data[..]
        };
        let legitimate = match object {
            Some(o) => from(o),
            None => before.objects.values().any(from),
        };
        if !data.is_empty() && !legitimate {
            let target = object.map_or("an object the test cannot name".into(), describe);
            found.push(format!(
                "READ of {target} returned {} bytes {} that the caller may not read there",
                data.len(),
                shown(data)
            ));
        }
    }
    if let (Some(target), Some(o)) = (&a.link, object) {
        if o.kind != Kind::Symlink || &o.content != target {
            found.push(format!(
                "READLINK of {} returned {} that is not a symlink's target",
                describe(o),
                shown(target)
            ));
        }
    }
    if let Some(o) = object {
        if a.looked_up && (o.kind != Kind::Dir || !may(who, o, 1)) {
            found.push(format!(
                "LOOKUP in {} succeeded for a caller that may not search it",
                describe(o)
            ));
        }
        if a.listed && (o.kind != Kind::Dir || !may(who, o, 4)) {
            found.push(format!(
                "READDIRPLUS listed {} for a caller that may not read it",
                describe(o)
            ));
        }
        if let (Some(granted), true) = (a.access, o.kind != Kind::Symlink) {
            let mut excess = Vec::new();
            if granted & ACCESS3_READ != 0 && !may(who, o, 4) {
                excess.push("READ");
            }
            if granted & (ACCESS3_MODIFY | ACCESS3_EXTEND) != 0 && !may(who, o, 2) {
                excess.push("MODIFY/EXTEND");
            }
            if o.kind == Kind::Dir && granted & ACCESS3_LOOKUP != 0 && !may(who, o, 1) {
                excess.push("LOOKUP");
            }
            if !excess.is_empty() {
                found.push(format!(
                    "ACCESS granted {} on {} beyond its mode",
                    excess.join(", "),
                    describe(o)
                ));
            }
        }
    }
    found
}
