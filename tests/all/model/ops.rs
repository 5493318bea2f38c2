//! The operations a reference-model sequence is made of, and the proptest strategy that
//! generates (and shrinks) them: a few names in a few parent directories so that operations
//! collide, small contents at small offsets (holes included), four callers, and modes drawn
//! from tables that always leave an object's owner able to read it (and to search a directory),
//! so the tree stays walkable.

use proptest::prelude::*;

/// The names every operation picks from.
pub const NAMES: [&str; 3] = ["a", "b", "d"];
/// The parent directories operations act in: the export root and two of the names.
pub const PARENTS: [&str; 3] = ["", "d", "a"];
/// Modes a `Mode` index picks for a regular file.
pub const FILE_MODES: [u32; 6] = [0o644, 0o600, 0o666, 0o640, 0o400, 0o604];
/// Modes a `Mode` index picks for a directory: the owner always keeps rwx.
pub const DIR_MODES: [u32; 6] = [0o755, 0o777, 0o700, 0o1777, 0o711, 0o750];
/// What symlinks point at (never followed by the server).
pub const TARGETS: [&str; 3] = ["a", "../b", "/etc/passwd"];

/// A caller as its AUTH_UNIX credential claims: (uid, gid). The last one is uid 1000 in 1001's
/// group, so group permission bits matter.
pub const USERS: [(u32, u32); 4] = [(0, 0), (1000, 1000), (1001, 1001), (1000, 1001)];

/// A name in a parent directory, both as indexes into [`PARENTS`] and [`NAMES`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Spot {
    pub parent: usize,
    pub name: usize,
}

impl Spot {
    /// The parent's path from the export root ("" for the root).
    pub fn parent_path(&self) -> &'static str {
        PARENTS[self.parent]
    }

    pub fn name(&self) -> &'static str {
        NAMES[self.name]
    }

    /// The spot's own path from the export root.
    pub fn path(&self) -> String {
        match self.parent_path() {
            "" => self.name().to_string(),
            parent => format!("{parent}/{}", self.name()),
        }
    }
}

impl std::fmt::Debug for Spot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.path())
    }
}

/// One step of a sequence. `user` indexes [`USERS`]; `mode` indexes [`FILE_MODES`] or
/// [`DIR_MODES`], whichever fits the object.
#[derive(Clone, Debug)]
pub enum Op {
    /// GUARDED CREATE with a mode.
    Create {
        user: usize,
        at: Spot,
        mode: usize,
    },
    Mkdir {
        user: usize,
        at: Spot,
        mode: usize,
    },
    Symlink {
        user: usize,
        at: Spot,
        target: usize,
    },
    /// WRITE, FILE_SYNC or UNSTABLE.
    Write {
        user: usize,
        at: Spot,
        offset: u64,
        data: Vec<u8>,
        stable: bool,
    },
    /// SETATTR of the size.
    Truncate {
        user: usize,
        at: Spot,
        size: u64,
    },
    /// SETATTR of the mode.
    Chmod {
        user: usize,
        at: Spot,
        mode: usize,
    },
    Remove {
        user: usize,
        at: Spot,
    },
    Rmdir {
        user: usize,
        at: Spot,
    },
    Rename {
        user: usize,
        from: Spot,
        to: Spot,
    },
    /// LINK: `to` becomes another name of `from`.
    Link {
        user: usize,
        from: Spot,
        to: Spot,
    },
    Commit {
        user: usize,
        at: Spot,
    },
    /// The server stops (SIGTERM) and starts again on the same config; clients mount again.
    Restart,
}

fn spot() -> impl Strategy<Value = Spot> {
    (0..PARENTS.len(), 0..NAMES.len()).prop_map(|(parent, name)| Spot { parent, name })
}

fn user() -> impl Strategy<Value = usize> {
    0..USERS.len()
}

fn mode() -> impl Strategy<Value = usize> {
    0..FILE_MODES.len()
}

/// One operation; creation is weighted up so that sequences build trees worth changing.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (user(), spot(), mode()).prop_map(|(user, at, mode)| Op::Create { user, at, mode }),
        3 => (user(), spot(), mode()).prop_map(|(user, at, mode)| Op::Mkdir { user, at, mode }),
        1 => (user(), spot(), 0..TARGETS.len())
            .prop_map(|(user, at, target)| Op::Symlink { user, at, target }),
        4 => (
            user(),
            spot(),
            0u64..10,
            prop::collection::vec(prop::sample::select(b"xyz01".to_vec()), 1..6),
            any::<bool>()
        )
            .prop_map(|(user, at, offset, data, stable)| Op::Write {
                user,
                at,
                offset,
                data,
                stable
            }),
        2 => (user(), spot(), 0u64..12).prop_map(|(user, at, size)| Op::Truncate { user, at, size }),
        2 => (user(), spot(), mode()).prop_map(|(user, at, mode)| Op::Chmod { user, at, mode }),
        2 => (user(), spot()).prop_map(|(user, at)| Op::Remove { user, at }),
        1 => (user(), spot()).prop_map(|(user, at)| Op::Rmdir { user, at }),
        2 => (user(), spot(), spot()).prop_map(|(user, from, to)| Op::Rename { user, from, to }),
        1 => (user(), spot(), spot()).prop_map(|(user, from, to)| Op::Link { user, from, to }),
        1 => (user(), spot()).prop_map(|(user, at)| Op::Commit { user, at }),
        1 => Just(Op::Restart),
    ]
}

/// A sequence of up to `steps` operations.
pub fn sequence(steps: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..=steps.max(1))
}
