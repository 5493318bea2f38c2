//! The compact tree of names behind a mount's inode table. Each name the table knows is a node:
//! its inode number, the node of its parent directory, and its last path component, kept in
//! one text buffer. Two hash indexes hold node numbers only: (parent, component) to node, and
//! inode to its first node (an inode's other names, hard links, are chained from it). A path is
//! walked down from the root; an inode's path is walked up from its node. So a name costs a
//! few dozen bytes and no allocation of its own, and renaming a directory moves one node
//! however large its subtree. A node taken away is marked dead and leaves its subtree behind,
//! unreachable: a sweep, run once the dead are many, frees them together with everything
//! under them, so a node number is never reused while a live node still points at it.

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

/// The node of the mount's root: the empty path.
pub const ROOT: Slot = 0;
/// A node's parent once the node has been taken away (or freed).
const DEAD: Slot = Slot::MAX;
/// The end of a chain of names.
const NONE: Slot = Slot::MAX;
/// Paths are never deeper than this; a longer chain of parents is taken as broken.
pub const MAX_DEPTH: usize = 4096;
/// Sweeps wait for at least this many dead nodes.
const SWEEP_FLOOR: usize = 1024;
/// The text is rewritten once this many of its bytes, and half of it, are garbage.
const TIDY_FLOOR: usize = 1 << 20;

/// A node's number.
pub type Slot = u32;

/// A node used since the clock hand last passed it.
const REFERENCED: u8 = 1;
/// A directory some of whose names were moved out of memory.
const COLD_CHILDREN: u8 = 2;
/// A node chosen to be moved out of memory, not moved yet.
const CHOSEN: u8 = 4;

#[derive(Clone, Copy)]
struct Node {
    ino: u64,
    /// Where the component starts in `text` (48 bits) and its length (16 bits).
    name: u64,
    parent: Slot,
    /// The next name of the same inode.
    next_name: Slot,
    /// Names in this directory (nodes whose parent this is, dead or not).
    children: u32,
    flags: u8,
}

impl Node {
    fn span(&self) -> std::ops::Range<usize> {
        let start = (self.name >> 16) as usize;
        start..start + (self.name & 0xffff) as usize
    }
}

pub struct NameTree {
    nodes: Vec<Node>,
    free: Vec<Slot>,
    text: Vec<u8>,
    /// Bytes of `text` that no node uses any more.
    garbage: usize,
    /// (parent, component) to node; the root is not in it.
    by_name: HashTable<Slot>,
    /// An inode to its first name's node.
    by_ino: HashTable<Slot>,
    hasher: DefaultHashBuilder,
    /// Nodes taken away since the last sweep.
    dead: usize,
    /// [`SWEEP_FLOOR`] and [`TIDY_FLOOR`], but for tests.
    sweep_floor: usize,
    tidy_floor: usize,
    /// Bytes of the components of the nodes in use, and how many nodes those are (both count
    /// the nodes under a dead one until the sweep).
    live_text: usize,
    live: usize,
    /// Where the clock that chooses nodes to move out of memory stands.
    hand: usize,
}

/// The nodes of a tree, copied so that its names can be listed away from the tree's lock.
pub struct Snapshot {
    nodes: Vec<Node>,
    text: Vec<u8>,
}

impl NameTree {
    pub fn new(root_ino: u64) -> NameTree {
        let mut tree = NameTree {
            nodes: vec![Node {
                ino: root_ino,
                name: 0,
                parent: ROOT,
                next_name: NONE,
                children: 0,
                flags: 0,
            }],
            free: Vec::new(),
            text: Vec::new(),
            garbage: 0,
            by_name: HashTable::new(),
            by_ino: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            dead: 0,
            sweep_floor: SWEEP_FLOOR,
            tidy_floor: TIDY_FLOOR,
            live_text: 0,
            live: 0,
            hand: 0,
        };
        tree.link_name(ROOT);
        tree
    }

    /// Names in use (after a sweep: exactly; before one, names under a dead directory still
    /// count).
    pub fn len(&self) -> usize {
        self.live
    }

    /// Bytes of the components of the names in use.
    pub fn text_len(&self) -> usize {
        self.live_text
    }

    fn component(&self, slot: Slot) -> &str {
        let node = &self.nodes[slot as usize];
        // Only whole `&str`s are copied into `text`.
        std::str::from_utf8(&self.text[node.span()]).expect("components are whole strings")
    }

    fn name_hash(&self, parent: Slot, name: &str) -> u64 {
        self.hasher.hash_one((parent, name))
    }

    /// The node named `name` in the directory `parent`.
    pub fn child(&self, parent: Slot, name: &str) -> Option<Slot> {
        let hash = self.name_hash(parent, name);
        self.by_name
            .find(hash, |&s| {
                self.nodes[s as usize].parent == parent && self.component(s) == name
            })
            .copied()
    }

    pub fn ino_of(&self, slot: Slot) -> u64 {
        self.nodes[slot as usize].ino
    }

    /// The path of a node, if no directory above it has been taken away.
    pub fn path_of(&self, slot: Slot) -> Option<String> {
        path_in(&self.nodes, &self.text, slot)
    }

    /// The nodes of an inode's names, first given first.
    fn names_of(&self, ino: u64) -> impl Iterator<Item = Slot> + '_ {
        std::iter::successors(self.first_name(ino), |&s| {
            Some(self.nodes[s as usize].next_name).filter(|&n| n != NONE)
        })
    }

    /// True if `slot` is its inode's only name and no name was ever given under it, in
    /// memory or out of it: taking it away takes away one file's one name and nothing else.
    pub fn is_alone(&self, slot: Slot) -> bool {
        let node = &self.nodes[slot as usize];
        node.children == 0
            && node.flags & COLD_CHILDREN == 0
            && self.names_of(node.ino).nth(1).is_none()
    }

    /// The node of an inode's first name.
    pub fn first_name(&self, ino: u64) -> Option<Slot> {
        let hash = self.hasher.hash_one(ino);
        self.by_ino
            .find(hash, |&s| self.nodes[s as usize].ino == ino)
            .copied()
    }

    /// Makes `first` the node of an inode's first name, or forgets the inode for `None`.
    fn set_first_name(&mut self, ino: u64, first: Option<Slot>) {
        let Self {
            nodes,
            by_ino,
            hasher,
            ..
        } = self;
        let hash = hasher.hash_one(ino);
        match (
            by_ino.find_entry(hash, |&s| nodes[s as usize].ino == ino),
            first,
        ) {
            (Ok(entry), Some(slot)) => *entry.into_mut() = slot,
            (Ok(entry), None) => {
                entry.remove();
            }
            (Err(absent), Some(slot)) => {
                absent
                    .into_table()
                    .insert_unique(hash, slot, |&s| hasher.hash_one(nodes[s as usize].ino));
            }
            (Err(_), None) => {}
        }
    }

    /// The node of an inode's first name that no directory taken away lies above (a name
    /// under a dead directory stays chained to its inode until the sweep).
    pub fn live_name(&self, ino: u64) -> Option<Slot> {
        self.names_of(ino).find(|&slot| !self.is_within(slot, DEAD))
    }

    /// Every path of an inode, first given first.
    pub fn paths(&self, ino: u64) -> impl Iterator<Item = String> + '_ {
        self.names_of(ino).filter_map(|s| self.path_of(s))
    }

    /// True if `slot` is `ancestor` or lies under it.
    pub fn is_within(&self, slot: Slot, ancestor: Slot) -> bool {
        let mut at = slot;
        for _ in 0..MAX_DEPTH {
            if at == ancestor {
                return true;
            }
            if at == ROOT || at == DEAD {
                return false;
            }
            at = self.nodes[at as usize].parent;
        }
        true
    }

    /// Adds `name` in the directory `parent` for `ino`; the name must be free.
    pub fn add(&mut self, parent: Slot, name: &str, ino: u64) -> Slot {
        let node = Node {
            ino,
            name: self.store(name),
            parent,
            next_name: NONE,
            children: 0,
            flags: REFERENCED,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.nodes[slot as usize] = node;
                slot
            }
            None => {
                let slot = Slot::try_from(self.nodes.len()).expect("fewer than 2^32 names");
                assert!(slot != DEAD, "fewer than 2^32 - 1 names");
                self.nodes.push(node);
                slot
            }
        };
        self.index_name(slot);
        self.link_name(slot);
        self.live += 1;
        self.live_text += name.len();
        slot
    }

    /// Gives a name another inode; its subtree stays.
    pub fn set_ino(&mut self, slot: Slot, ino: u64) {
        self.unlink_name(slot);
        self.nodes[slot as usize].ino = ino;
        self.link_name(slot);
    }

    /// Moves a node (with its subtree) to `name` in `parent`; the name must be free and
    /// `parent` must not lie under the node.
    pub fn move_to(&mut self, slot: Slot, parent: Slot, name: &str) {
        debug_assert!(!self.is_within(parent, slot));
        self.unindex_name(slot);
        let old = self.nodes[slot as usize].span().len();
        self.garbage += old;
        self.live_text = self.live_text - old + name.len();
        let stored = self.store(name);
        let node = &mut self.nodes[slot as usize];
        node.parent = parent;
        node.name = stored;
        self.index_name(slot);
        self.tidy();
    }

    /// Takes a name away; whatever lies under it can no longer be reached, and is freed by the
    /// next sweep.
    pub fn kill(&mut self, slot: Slot) {
        assert!(slot != ROOT, "the root stays");
        self.unname(slot);
        self.dead += 1;
    }

    /// Takes a node out of both indexes and marks it dead.
    fn unname(&mut self, slot: Slot) {
        self.unindex_name(slot);
        self.unlink_name(slot);
        let len = self.nodes[slot as usize].span().len();
        self.garbage += len;
        self.live_text -= len;
        self.live -= 1;
        self.nodes[slot as usize].parent = DEAD;
    }

    /// Sweeps once the dead nodes are many. Not done by `kill` itself, so that a caller's
    /// node numbers stay good until its change is complete.
    pub fn sweep_if_due(&mut self) {
        if self.dead >= self.sweep_floor.max(self.live / 4) {
            self.sweep();
        }
    }

    /// Frees every dead node and every node under one.
    pub fn sweep(&mut self) {
        const UNKNOWN: u8 = 0;
        const IN_USE: u8 = 1;
        const FREED: u8 = 2;
        let mut state = vec![UNKNOWN; self.nodes.len()];
        state[ROOT as usize] = IN_USE;
        for &slot in &self.free {
            state[slot as usize] = FREED;
        }
        let mut chain = Vec::new();
        for start in 0..self.nodes.len() as Slot {
            let mut at = start;
            while state[at as usize] == UNKNOWN {
                chain.push(at);
                let parent = self.nodes[at as usize].parent;
                if parent == DEAD || chain.len() > MAX_DEPTH {
                    break;
                }
                at = parent;
            }
            let verdict = match state[at as usize] {
                IN_USE => IN_USE,
                _ => FREED,
            };
            for slot in chain.drain(..) {
                if verdict == FREED && self.nodes[slot as usize].parent != DEAD {
                    // Under a dead directory, and still indexed.
                    self.unname(slot);
                }
                state[slot as usize] = verdict;
            }
        }
        self.free = (0..self.nodes.len() as Slot)
            .rev()
            .filter(|&s| state[s as usize] == FREED)
            .collect();
        self.dead = 0;
        self.tidy();
    }

    /// Marks a node used, so the clock passes it over once more.
    pub fn touch(&mut self, slot: Slot) {
        self.nodes[slot as usize].flags |= REFERENCED;
    }

    /// True if some names in this directory were moved out of memory.
    pub fn has_cold_children(&self, slot: Slot) -> bool {
        self.nodes[slot as usize].flags & COLD_CHILDREN != 0
    }

    pub fn mark_cold_children(&mut self, slot: Slot) {
        self.nodes[slot as usize].flags |= COLD_CHILDREN;
    }

    /// Up to `max` nodes that may be moved out of memory, chosen by a clock: a node used since
    /// the hand last passed it is passed over once. Only a name with nothing under it in
    /// memory, the only name of its inode, in a directory that has one name, can be chosen. Each chosen node must then be
    /// [`NameTree::evict`]ed or [`NameTree::unchoose`]n.
    pub fn choose(&mut self, max: usize) -> Vec<Slot> {
        let mut chosen = Vec::new();
        let n = self.nodes.len();
        for _ in 0..2 * n {
            if chosen.len() >= max {
                break;
            }
            self.hand = if self.hand + 1 >= n { 1 } else { self.hand + 1 };
            let Some(slot) = Slot::try_from(self.hand).ok().filter(|&s| s != ROOT) else {
                continue;
            };
            let node = &mut self.nodes[slot as usize];
            if node.parent == DEAD || node.children > 0 || node.flags & CHOSEN != 0 {
                continue;
            }
            if node.flags & REFERENCED != 0 {
                node.flags &= !REFERENCED;
                continue;
            }
            let parent = node.parent;
            if !self.only_name(slot) || !self.only_name(parent) {
                continue;
            }
            self.nodes[slot as usize].flags |= CHOSEN;
            chosen.push(slot);
        }
        chosen
    }

    /// True if a node is the only name of its inode. The cold tier keys a name by its
    /// directory's inode, so only the names in a directory of one name can go there.
    fn only_name(&self, slot: Slot) -> bool {
        let node = &self.nodes[slot as usize];
        node.next_name == NONE && self.first_name(node.ino) == Some(slot)
    }

    /// Takes the mark of having names out of memory off a directory, once they are back.
    pub fn clear_cold_children(&mut self, slot: Slot) {
        self.nodes[slot as usize].flags &= !COLD_CHILDREN;
    }

    /// Puts back a node [`NameTree::choose`] chose.
    pub fn unchoose(&mut self, slot: Slot) {
        self.nodes[slot as usize].flags &= !CHOSEN;
    }

    /// What a chosen node holds: its inode, its parent's inode, its component, and whether it
    /// has names out of memory.
    pub fn row(&self, slot: Slot) -> (u64, u64, &str, bool) {
        let node = &self.nodes[slot as usize];
        let parent = self.nodes[node.parent as usize].ino;
        (
            node.ino,
            parent,
            self.component(slot),
            self.has_cold_children(slot),
        )
    }

    /// Frees a chosen node, whose name has been moved out of memory; its directory is marked
    /// as having names out of memory.
    pub fn evict(&mut self, slot: Slot) {
        let parent = self.nodes[slot as usize].parent;
        debug_assert!(self.nodes[slot as usize].flags & CHOSEN != 0);
        self.unname(slot);
        self.nodes[slot as usize].flags = 0;
        self.mark_cold_children(parent);
        self.free.push(slot);
    }

    #[cfg(test)]
    pub fn set_floors(&mut self, sweep: usize, tidy: usize) {
        self.sweep_floor = sweep;
        self.tidy_floor = tidy;
    }

    /// Every name in use with its inode, the root left out, walked in place (a table of its
    /// own, as at start; a shared one is walked through a [`Snapshot`]).
    pub fn each(&self, f: impl FnMut(u64, &str)) {
        each_name(&self.nodes, &self.text, f);
    }

    /// A copy of the nodes, to list the names from.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            nodes: self.nodes.clone(),
            text: self.text.clone(),
        }
    }

    fn store(&mut self, name: &str) -> u64 {
        assert!(name.len() <= 0xffff, "a component fits in 16 bits");
        let start = self.text.len() as u64;
        assert!(start < 1 << 48, "the names fit in 48 bits");
        self.text.extend_from_slice(name.as_bytes());
        (start << 16) | name.len() as u64
    }

    /// Rewrites `text` once most of it is garbage.
    fn tidy(&mut self) {
        if self.garbage < self.tidy_floor.max(self.text.len() / 2) {
            return;
        }
        let mut text = Vec::with_capacity(self.text.len() - self.garbage);
        for node in self.nodes.iter_mut() {
            if node.parent == DEAD {
                node.name = 0;
                continue;
            }
            let span = node.span();
            let start = text.len() as u64;
            text.extend_from_slice(&self.text[span.clone()]);
            node.name = (start << 16) | span.len() as u64;
        }
        self.text = text;
        self.garbage = 0;
    }

    fn index_name(&mut self, slot: Slot) {
        let Self {
            nodes,
            text,
            by_name,
            hasher,
            ..
        } = self;
        let key = |s: Slot| {
            let node = &nodes[s as usize];
            let name = std::str::from_utf8(&text[node.span()]).expect("whole strings");
            hasher.hash_one((node.parent, name))
        };
        by_name.insert_unique(key(slot), slot, |&s| key(s));
        let parent = nodes[slot as usize].parent;
        nodes[parent as usize].children += 1;
    }

    fn unindex_name(&mut self, slot: Slot) {
        let node = self.nodes[slot as usize];
        let hash = self.name_hash(node.parent, self.component(slot));
        if let Ok(entry) = self.by_name.find_entry(hash, |&s| s == slot) {
            entry.remove();
            self.nodes[node.parent as usize].children -= 1;
        }
    }

    /// Chains a node last among its inode's names.
    fn link_name(&mut self, slot: Slot) {
        let ino = self.nodes[slot as usize].ino;
        self.nodes[slot as usize].next_name = NONE;
        match self.names_of(ino).last() {
            None => self.set_first_name(ino, Some(slot)),
            Some(last) => self.nodes[last as usize].next_name = slot,
        }
    }

    /// Takes a node out of its inode's chain of names.
    fn unlink_name(&mut self, slot: Slot) {
        let ino = self.nodes[slot as usize].ino;
        let next = self.nodes[slot as usize].next_name;
        self.nodes[slot as usize].next_name = NONE;
        if self.first_name(ino) == Some(slot) {
            self.set_first_name(ino, Some(next).filter(|&n| n != NONE));
            return;
        }
        let before = self
            .names_of(ino)
            .find(|&s| self.nodes[s as usize].next_name == slot);
        if let Some(before) = before {
            self.nodes[before as usize].next_name = next;
        }
    }
}

impl Snapshot {
    /// The inode of every node in use with its node (the root's included), to find a
    /// directory's node by its inode.
    pub fn named(&self) -> impl Iterator<Item = (u64, Slot)> + '_ {
        (0..self.nodes.len() as Slot)
            .filter(|&slot| slot == ROOT || self.nodes[slot as usize].parent != DEAD)
            .map(|slot| (self.nodes[slot as usize].ino, slot))
    }

    /// The path of a node, if no directory above it had been taken away.
    pub fn path_of(&self, slot: Slot) -> Option<String> {
        path_in(&self.nodes, &self.text, slot)
    }

    /// Every name in use with its inode, the root left out.
    pub fn each(&self, f: impl FnMut(u64, &str)) {
        each_name(&self.nodes, &self.text, f);
    }
}

/// Every name in use among `nodes` with its inode, the root left out.
fn each_name(nodes: &[Node], text: &[u8], mut f: impl FnMut(u64, &str)) {
    for slot in 1..nodes.len() as Slot {
        if nodes[slot as usize].parent == DEAD {
            continue;
        }
        if let Some(path) = path_in(nodes, text, slot) {
            f(nodes[slot as usize].ino, &path);
        }
    }
}

/// The path of a node, walked up to the root; `None` under a dead node. The walk is made
/// twice, to size the path and then to fill it from its end, so the path is one allocation.
fn path_in(nodes: &[Node], text: &[u8], slot: Slot) -> Option<String> {
    let up = || {
        std::iter::successors(Some(slot), |&at| Some(nodes[at as usize].parent))
            .take_while(|&at| at != ROOT)
            .map(|at| &nodes[at as usize])
    };
    let mut len = 0;
    for (depth, node) in up().enumerate() {
        if node.parent == DEAD || depth >= MAX_DEPTH {
            return None;
        }
        len += node.span().len() + usize::from(depth > 0);
    }
    let mut path = vec![b'/'; len];
    let mut end = len;
    for node in up() {
        let part = &text[node.span()];
        path[end - part.len()..end].copy_from_slice(part);
        end = end.saturating_sub(part.len() + 1);
    }
    String::from_utf8(path).ok()
}
