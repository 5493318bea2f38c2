//! The cold tier of a mount's inode table: the names memory let go of, in an embedded B-tree
//! file (redb) beside the inode journal. A row is one name: its inode number, its parent
//! directory's inode number and its last component, and whether the name, a directory, has
//! names of its own in the cold tier. It is kept twice, keyed by (parent, component) for
//! lookups and by inode for handles. Only inodes with a single name come here, so the inode
//! key is unique. A row leaves the tier when it is taken back into memory, so a name is in
//! memory or here, never both. The file holds nothing the journal does not: it is made anew at
//! every start and survives nothing, so its storage never syncs. Every commit is a durable one
//! to redb all the same: redb keeps the pages of a commit that is not durable listed in memory
//! until the next durable commit, and the tier exists to keep memory small.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::{
    Builder, Database, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition,
    WriteTransaction,
};

use crate::positioned_io;

/// (parent inode, component) to inode.
const BY_NAME: TableDefinition<(u64, &str), u64> = TableDefinition::new("by_name");
/// Inode to (parent inode, component, has cold names under it).
const BY_INO: TableDefinition<u64, (u64, &str, bool)> = TableDefinition::new("by_ino");
/// The B-tree's own page cache: the tier exists to keep memory small.
const PAGE_CACHE: usize = 8 << 20;

/// A name in the cold tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColdRow {
    pub ino: u64,
    pub parent: u64,
    pub name: String,
    /// The name is a directory some of whose names are in the cold tier too.
    pub cold_children: bool,
}

pub struct ColdNames {
    db: Database,
}

/// A failure of the cold tier's file.
pub type ColdError = redb::Error;

impl ColdNames {
    /// An empty tier in a new file at `path` (whatever was there is replaced).
    pub fn create(path: &Path) -> Result<ColdNames, ColdError> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let db = Builder::new()
            .set_cache_size(PAGE_CACHE)
            .create_with_backend(UnsyncedFile(file))?;
        let txn = db.begin_write()?;
        txn.open_table(BY_NAME)?;
        txn.open_table(BY_INO)?;
        txn.commit()?;
        Ok(ColdNames { db })
    }

    /// A change to the tier: what it takes out and puts in is seen together at `commit`.
    pub fn change(&self) -> Result<ColdChange, ColdError> {
        Ok(ColdChange {
            txn: self.db.begin_write()?,
        })
    }

    /// A consistent view of the tier as it is now, for reading away from the table's lock.
    pub fn view(&self) -> Result<ColdView, ColdError> {
        let txn = self.db.begin_read()?;
        Ok(ColdView {
            by_ino: txn.open_table(BY_INO)?,
        })
    }
}

/// The tier's file as redb's storage, never synced: the file need not outlive the process, and
/// only one process opens it, so it needs no lock either.
#[derive(Debug)]
struct UnsyncedFile(File);

impl StorageBackend for UnsyncedFile {
    fn len(&self) -> Result<u64, redb::BackendError> {
        Ok(self.0.metadata()?.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), redb::BackendError> {
        Ok(positioned_io::read_exact_at(&self.0, out, offset)?)
    }

    fn set_len(&self, len: u64) -> Result<(), redb::BackendError> {
        Ok(self.0.set_len(len)?)
    }

    fn sync_data(&self) -> Result<(), redb::BackendError> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), redb::BackendError> {
        Ok(positioned_io::write_all_at(&self.0, data, offset)?)
    }
}

/// A cold tier made on first use, so a table that never outgrows memory has no file. One
/// that cannot be made is reported once and not tried again: the names stay in memory.
pub struct LazyCold {
    path: PathBuf,
    made: Mutex<Made>,
}

enum Made {
    NotYet,
    Ready(Arc<ColdNames>),
    Failed,
}

impl LazyCold {
    /// The tier to be made at `path`; a file an earlier run left there goes now.
    pub fn new(path: PathBuf) -> LazyCold {
        let _ = std::fs::remove_file(&path);
        LazyCold {
            path,
            made: Mutex::new(Made::NotYet),
        }
    }

    /// The tier, if it has been made.
    pub fn get(&self) -> Option<Arc<ColdNames>> {
        match &*self.made.lock().unwrap() {
            Made::Ready(cold) => Some(cold.clone()),
            _ => None,
        }
    }

    /// The tier, made now if it was not (a file system call: blocking pool only).
    pub fn make(&self) -> Option<Arc<ColdNames>> {
        let mut made = self.made.lock().unwrap();
        if let Made::NotYet = *made {
            *made = match ColdNames::create(&self.path) {
                Ok(cold) => Made::Ready(Arc::new(cold)),
                Err(e) => {
                    tracing::error!(file = %self.path.display(), "the inode table's cold tier cannot be made; its names stay in memory: {e}");
                    Made::Failed
                }
            };
        }
        match &*made {
            Made::Ready(cold) => Some(cold.clone()),
            _ => None,
        }
    }
}

/// One write transaction on the tier.
pub struct ColdChange {
    txn: WriteTransaction,
}

impl ColdChange {
    /// Adds names to the tier.
    pub fn put(&mut self, rows: &[ColdRow]) -> Result<(), ColdError> {
        let mut by_name = self.txn.open_table(BY_NAME)?;
        let mut by_ino = self.txn.open_table(BY_INO)?;
        for row in rows {
            by_name.insert((row.parent, row.name.as_str()), row.ino)?;
            by_ino.insert(row.ino, (row.parent, row.name.as_str(), row.cold_children))?;
        }
        Ok(())
    }

    /// The inodes of the names `names` in the directory `parent` that are in the tier, in
    /// order, leaving them there.
    pub fn child_inos<'n>(
        &self,
        parent: u64,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<Vec<Option<u64>>, ColdError> {
        let by_name = self.txn.open_table(BY_NAME)?;
        let mut inos = Vec::new();
        for name in names {
            inos.push(by_name.get((parent, name))?.map(|guard| guard.value()));
        }
        Ok(inos)
    }

    /// Takes the name `name` in the directory `parent` out of the tier.
    pub fn take_child(&mut self, parent: u64, name: &str) -> Result<Option<ColdRow>, ColdError> {
        let ino = {
            let mut by_name = self.txn.open_table(BY_NAME)?;
            let removed = by_name.remove((parent, name))?;
            removed.map(|guard| guard.value())
        };
        let Some(ino) = ino else {
            return Ok(None);
        };
        let mut by_ino = self.txn.open_table(BY_INO)?;
        let cold_children = by_ino.remove(ino)?.is_some_and(|guard| guard.value().2);
        Ok(Some(ColdRow {
            ino,
            parent,
            name: name.to_string(),
            cold_children,
        }))
    }

    /// Takes the name of the inode `ino` out of the tier.
    pub fn take_ino(&mut self, ino: u64) -> Result<Option<ColdRow>, ColdError> {
        let row = {
            let mut by_ino = self.txn.open_table(BY_INO)?;
            let removed = by_ino.remove(ino)?;
            removed.map(|guard| {
                let (parent, name, cold_children) = guard.value();
                ColdRow {
                    ino,
                    parent,
                    name: name.to_string(),
                    cold_children,
                }
            })
        };
        if let Some(row) = &row {
            let mut by_name = self.txn.open_table(BY_NAME)?;
            by_name.remove((row.parent, row.name.as_str()))?;
        }
        Ok(row)
    }

    /// Takes every name in the directory `parent` out of the tier.
    pub fn take_children(&mut self, parent: u64) -> Result<Vec<ColdRow>, ColdError> {
        let names: Vec<String> = {
            let by_name = self.txn.open_table(BY_NAME)?;
            let mut names = Vec::new();
            for entry in by_name.range((parent, "")..)? {
                let (key, _) = entry?;
                let (at, name) = key.value();
                if at != parent {
                    break;
                }
                names.push(name.to_string());
            }
            names
        };
        let mut rows = Vec::with_capacity(names.len());
        for name in names {
            rows.extend(self.take_child(parent, &name)?);
        }
        Ok(rows)
    }

    pub fn commit(self) -> Result<(), ColdError> {
        self.txn.commit()?;
        Ok(())
    }
}

/// The tier as it was when the view was taken.
pub struct ColdView {
    by_ino: redb::ReadOnlyTable<u64, (u64, &'static str, bool)>,
}

impl ColdView {
    /// The name of an inode.
    pub fn get(&self, ino: u64) -> Result<Option<(u64, String)>, ColdError> {
        Ok(self.by_ino.get(ino)?.map(|guard| {
            let (parent, name, _) = guard.value();
            (parent, name.to_string())
        }))
    }

    /// Every name in the tier, as (inode, parent inode, component), until `f` fails.
    pub fn each(
        &self,
        mut f: impl FnMut(u64, u64, &str) -> Result<(), ColdError>,
    ) -> Result<(), ColdError> {
        for entry in self.by_ino.iter()? {
            let (ino, row) = entry?;
            let (parent, name, _) = row.value();
            f(ino.value(), parent, name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ino: u64, parent: u64, name: &str) -> ColdRow {
        ColdRow {
            ino,
            parent,
            name: name.to_string(),
            cold_children: ino.is_multiple_of(2),
        }
    }

    #[test]
    fn a_name_is_taken_out_by_either_key_and_then_is_gone_from_both() {
        let dir = tempfile::tempdir().unwrap();
        let cold = ColdNames::create(&dir.path().join("t.cold")).unwrap();
        let mut change = cold.change().unwrap();
        change
            .put(&[row(5, 1, "a"), row(6, 1, "b"), row(7, 6, "a")])
            .unwrap();
        change.commit().unwrap();

        let mut change = cold.change().unwrap();
        assert_eq!(change.take_child(1, "a").unwrap(), Some(row(5, 1, "a")));
        assert_eq!(change.take_ino(5).unwrap(), None);
        assert_eq!(change.take_ino(6).unwrap(), Some(row(6, 1, "b")));
        assert_eq!(change.take_child(1, "b").unwrap(), None);
        change.commit().unwrap();

        let mut seen = Vec::new();
        cold.view()
            .unwrap()
            .each(|ino, parent, name| {
                seen.push((ino, parent, name.to_string()));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, vec![(7, 6, "a".to_string())]);
        assert_eq!(cold.view().unwrap().get(7).unwrap(), Some((6, "a".into())));

        let mut change = cold.change().unwrap();
        change.put(&[row(8, 6, "b"), row(9, 7, "c")]).unwrap();
        let taken = change.take_children(6).unwrap();
        assert_eq!(taken, vec![row(7, 6, "a"), row(8, 6, "b")]);
        change.commit().unwrap();
        assert_eq!(cold.view().unwrap().get(7).unwrap(), None);
    }

    /// redb lists in memory the pages of every commit that is not durable, until a durable
    /// one: a tier whose commits were not durable would grow in memory with every change.
    #[test]
    fn a_long_run_of_changes_holds_no_more_heap_than_a_short_one() {
        let dir = tempfile::tempdir().unwrap();
        let cold = ColdNames::create(&dir.path().join("t.cold")).unwrap();
        let replace = |ino: u64| {
            let mut change = cold.change().unwrap();
            change.take_ino(ino - 1).unwrap();
            change.put(&[row(ino, 1, &ino.to_string())]).unwrap();
            change.commit().unwrap();
        };
        (10..1_010).for_each(replace);
        let warm = crate::heap_meter::held_by_this_thread();
        (1_010..21_010).for_each(replace);
        let grown = crate::heap_meter::held_by_this_thread() - warm;
        assert!(
            grown < 64 << 10,
            "20000 changes left {grown} bytes of heap held"
        );
    }

    #[test]
    fn a_new_tier_forgets_the_last_runs_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.cold");
        let cold = ColdNames::create(&path).unwrap();
        let mut change = cold.change().unwrap();
        change.put(&[row(5, 1, "a")]).unwrap();
        change.commit().unwrap();
        drop(cold);
        let cold = ColdNames::create(&path).unwrap();
        assert_eq!(cold.view().unwrap().get(5).unwrap(), None);
    }
}
