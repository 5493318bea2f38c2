//! Online compaction of an inode journal: once the file has outgrown the live table, a fresh
//! file (the header, the reservation watermark, one name record per live name) replaces it
//! while the table goes on serving. The snapshot is taken under the table's lock together with
//! a cut in the journal's stream ([`InodeLog::begin_compaction`]); it is written and synced on
//! the blocking pool while appends and group commits go on into the old file, which keeps a
//! copy of every record written past the cut (the tail). Then, holding the journal's turn so no
//! write is under way, the tail is added to the new file, which is synced and renamed over the
//! old one. A crash before the rename leaves the old journal whole (and a temporary file that
//! the next start overwrites); after it, the new one holds everything that was durable. A write
//! to the old file that fails meanwhile makes the compaction give up, to be tried again later.

use std::io::{self, Write};
use std::sync::Arc;

use tokio::sync::OwnedMutexGuard;

use super::{replace, write_snapshot, InodeLog, Record};

/// What reached the old file after a compaction's cut.
pub(super) struct Tail {
    /// Bytes still to be written that were appended before the cut.
    skip: usize,
    bytes: Vec<u8>,
}

impl Tail {
    /// Keeps what of a chunk just written and synced follows the cut.
    pub(super) fn add(&mut self, written: &[u8]) {
        let before_cut = self.skip.min(written.len());
        self.skip -= before_cut;
        self.bytes.extend_from_slice(&written[before_cut..]);
    }
}

/// A compaction begun: the journal's one compaction, until it is done or given up.
pub struct Compaction {
    _held: OwnedMutexGuard<()>,
}

impl InodeLog {
    /// Begins a compaction unless one is under way: records appended from now on are the
    /// tail, everything before is the snapshot's. Call it under the lock the table's appends
    /// are made under, and take the snapshot under that lock too.
    pub fn begin_compaction(&self) -> Option<Compaction> {
        let turn = self.compacting.clone().try_lock_owned().ok()?;
        let mut pending = self.pending.lock().unwrap();
        if pending.broken {
            return None;
        }
        // A name before the cut is in the snapshot: it can no longer be taken back.
        pending.last_name = None;
        pending.tail = Some(Tail {
            skip: pending.in_flight + pending.bytes.len(),
            bytes: Vec::new(),
        });
        Some(Compaction { _held: turn })
    }

    /// Replaces the file with a snapshot (the watermark `reserved` and the names `names`
    /// gives its argument, one call each) followed by the tail. A compaction that cannot be
    /// done, `names` failing included, is given up (the old file stays), unless the
    /// file is left in doubt, which breaks the journal as a failed sync does.
    pub async fn compact(
        &self,
        compaction: Compaction,
        generation: u32,
        reserved: u64,
        names: impl FnOnce(&mut dyn FnMut(u64, &str)) -> io::Result<()> + Send + 'static,
    ) {
        if let Err(e) = self
            .try_compact(compaction, generation, reserved, names)
            .await
        {
            tracing::warn!(journal = %self.path.display(), "the inode journal was not compacted: {e}");
        }
    }

    async fn try_compact(
        &self,
        compaction: Compaction,
        generation: u32,
        reserved: u64,
        names: impl FnOnce(&mut dyn FnMut(u64, &str)) -> io::Result<()> + Send + 'static,
    ) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let to = tmp.clone();
        // The compaction's guard goes with the call: a call stuck past its deadline still
        // holds it, so no other compaction writes the same temporary file.
        let written = crate::blocking::run(crate::blocking::DEADLINE, move || {
            let reserve = [Record::Reserve { next: reserved }];
            let file = write_snapshot(&to, generation, &reserve, names).and_then(|(file, len)| {
                file.sync_data()?;
                Ok((file, len))
            });
            (compaction, file)
        })
        .await;
        let (compaction, (mut file, snapshot_len)) = match written {
            Ok((compaction, Ok(file))) => (compaction, file),
            Ok((compaction, Err(e))) => {
                self.pending.lock().unwrap().tail = None;
                drop(compaction);
                return Err(e);
            }
            Err(overdue) => {
                // The stuck call keeps the guard: no compaction begins before it returns.
                self.pending.lock().unwrap().tail = None;
                return Err(io::Error::new(io::ErrorKind::TimedOut, overdue));
            }
        };
        let _turn = self.turn.lock().await;
        let tail = {
            let mut pending = self.pending.lock().unwrap();
            let tail = pending.tail.take();
            tail.filter(|_| !pending.broken)
        };
        let Some(tail) = tail else {
            // The temporary file stays: the next compaction, or the next start, writes over it.
            return Err(io::Error::other("a write to the journal failed meanwhile"));
        };
        let path = self.path.clone();
        let tail_len = tail.bytes.len() as u64;
        let replaced = crate::blocking::run(crate::blocking::DEADLINE, move || {
            let _compaction = compaction;
            file.write_all(&tail.bytes)
                .and_then(|()| file.sync_data())
                .map_err(|e| (e, false))?;
            replace(&tmp, &path).map_err(|e| (e, true))
        })
        .await;
        let mut pending = self.pending.lock().unwrap();
        match replaced {
            Ok(Ok(file)) => {
                *self.file.lock().unwrap() = Arc::new(file);
                pending.file_len = snapshot_len + tail_len;
                pending.snapshot_len = snapshot_len;
                pending.compactions += 1;
                Ok(())
            }
            // The old file is still the journal.
            Ok(Err((e, false))) => Err(e),
            Ok(Err((e, true))) => {
                pending.broken = true;
                tracing::error!(journal = %self.path.display(), "the compacted inode journal was not made durable, refusing changes until a restart: {e}");
                Err(e)
            }
            Err(overdue) => {
                pending.broken = true;
                tracing::error!(journal = %self.path.display(), "the inode journal's compaction did not finish in time, refusing changes until a restart");
                Err(io::Error::new(io::ErrorKind::TimedOut, overdue))
            }
        }
    }

    /// Waits for the compaction under way, if any.
    pub async fn compaction_done(&self) {
        let _done = self.compacting.lock().await;
    }

    #[cfg(test)]
    pub fn compactions(&self) -> u64 {
        self.pending.lock().unwrap().compactions
    }
}
