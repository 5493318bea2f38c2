//! Exclusive creates awaiting their client's follow-up SETATTR. An NFSv3 EXCLUSIVE CREATE
//! carries a verifier instead of attributes; a retransmitted CREATE must find its own file by
//! that verifier, and the client then sends the file's mode (and times) in a SETATTR that
//! completes the create. This table remembers, per file, the verifier and that a create is
//! being completed, for mounts whose backend cannot keep the verifier in the file's times,
//! and so that a backend without modes takes that SETATTR's mode as CREATE takes its mode:
//! as a wish it cannot store, not as a `chmod` to refuse.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a create waits for its SETATTR before it is forgotten (clients send it at once).
const KEEP: Duration = Duration::from_secs(120);

#[derive(Default)]
pub struct ExclusiveCreates {
    pending: Mutex<HashMap<u64, (u64, Instant)>>,
}

impl ExclusiveCreates {
    /// Records a file just made by an exclusive create with this verifier.
    pub fn made(&self, ino: u64, verifier: u64) {
        let mut pending = self.pending.lock().unwrap();
        let now = Instant::now();
        pending.retain(|_, (_, at)| now.duration_since(*at) < KEEP);
        pending.insert(ino, (verifier, now));
    }

    /// Whether this file was made by an exclusive create with this verifier, still awaiting
    /// its SETATTR (a retransmitted CREATE).
    pub fn made_with(&self, ino: u64, verifier: u64) -> bool {
        let pending = self.pending.lock().unwrap();
        pending
            .get(&ino)
            .is_some_and(|(v, at)| *v == verifier && at.elapsed() < KEEP)
    }

    /// Takes the record of a file's exclusive create: true when this SETATTR completes one.
    pub fn complete(&self, ino: u64) -> bool {
        let mut pending = self.pending.lock().unwrap();
        pending
            .remove(&ino)
            .is_some_and(|(_, at)| at.elapsed() < KEEP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_is_found_by_its_verifier_until_its_setattr() {
        let creates = ExclusiveCreates::default();
        creates.made(7, 0xabcd);
        assert!(creates.made_with(7, 0xabcd));
        assert!(!creates.made_with(7, 0xabce), "another client's verifier");
        assert!(!creates.made_with(8, 0xabcd), "another file");
        assert!(creates.complete(7));
        assert!(!creates.complete(7), "completed once");
        assert!(!creates.made_with(7, 0xabcd));
    }
}
