//! DOS share reservations that NFS clients hold on files (NLM SHARE and UNSHARE, which
//! Windows' Client for NFS sends when it opens a file), kept by the host per file beside the
//! byte-range locks (the `locks` module). A share is the access its owner opened the file for
//! (read, write, both, or none) and the access it denies to others; a new share conflicts with
//! another owner's when either denies what the other has. An owner (client and owner handle)
//! holds one share per file: sharing again replaces it. Every share counts against the table's
//! bounds, in all and per client, so a client that floods it is refused and takes nothing from
//! other clients' shares. The table knows nothing of the wire: files are numbers and owners
//! opaque bytes.

use std::collections::HashMap;
use std::sync::Arc;

use crate::client_quota::{ClientQuota, QuotaLimits};

/// Who holds a share: the client (its name or address) and its opaque owner handle.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShareOwner {
    pub client: Arc<str>,
    pub handle: Vec<u8>,
}

/// Bits of access: 1 is read, 2 is write (NLM's `fsh4_access`, and `fsh4_mode` for what a
/// share denies).
pub type Access = u32;
pub const READ: Access = 1;
pub const WRITE: Access = 2;

/// A share held, or asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    pub owner: ShareOwner,
    pub access: Access,
    pub deny: Access,
}

impl Share {
    fn conflicts_with(&self, other: &Share) -> bool {
        self.owner != other.owner
            && (self.access & other.deny != 0 || self.deny & other.access != 0)
    }
}

/// Why a share was not granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShareRefused {
    /// Another owner's share conflicts.
    Conflict,
    /// The table, or the client's part of it, is full.
    Full,
}

/// How many shares the table holds at most, in all and per client.
pub type ShareLimits = QuotaLimits;

/// The shares of every file.
pub struct ShareTable {
    files: HashMap<u64, Vec<Share>>,
    held: ClientQuota,
}

impl ShareTable {
    pub fn new(limits: ShareLimits) -> ShareTable {
        ShareTable {
            files: HashMap::new(),
            held: ClientQuota::new(limits),
        }
    }

    /// Grants `wanted` on `file` unless another owner's share conflicts, in place of what its
    /// owner held there.
    pub fn share(&mut self, file: u64, wanted: Share) -> Result<(), ShareRefused> {
        let shares = self.files.get(&file).map_or(&[][..], Vec::as_slice);
        if shares.iter().any(|s| wanted.conflicts_with(s)) {
            return Err(ShareRefused::Conflict);
        }
        let replaces = shares.iter().any(|s| s.owner == wanted.owner);
        if !replaces && !self.held.take(&wanted.owner.client, 1) {
            return Err(ShareRefused::Full);
        }
        let shares = self.files.entry(file).or_default();
        shares.retain(|s| s.owner != wanted.owner);
        shares.push(wanted);
        Ok(())
    }

    /// Drops what `owner` shares on `file` (UNSHARE); nothing when it shares nothing there.
    pub fn unshare(&mut self, file: u64, owner: &ShareOwner) {
        let Some(shares) = self.files.get_mut(&file) else {
            return;
        };
        let before = shares.len();
        shares.retain(|s| &s.owner != owner);
        let dropped = before - shares.len();
        if shares.is_empty() {
            self.files.remove(&file);
        }
        self.held.give_back(&owner.client, dropped);
    }

    /// Drops every share of a client (FREE_ALL, or its reboot).
    pub fn free_all(&mut self, client: &str) {
        self.files.retain(|_, shares| {
            shares.retain(|s| &*s.owner.client != client);
            !shares.is_empty()
        });
        self.held.forget(client);
    }

    /// The clients that hold shares.
    pub fn clients(&self) -> Vec<Arc<str>> {
        self.held.clients()
    }

    /// Shares held in all.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: ShareLimits = ShareLimits {
        total: 100,
        per_client: 10,
    };

    fn share(client: &str, handle: u8, access: Access, deny: Access) -> Share {
        Share {
            owner: ShareOwner {
                client: client.into(),
                handle: vec![handle],
            },
            access,
            deny,
        }
    }

    #[test]
    fn shares_conflict_when_one_denies_what_the_other_has() {
        let mut t = ShareTable::new(ROOMY);
        assert_eq!(t.share(1, share("a", 1, READ, WRITE)), Ok(()));
        // Reading beside a reader that denies writes is fine; writing is not.
        assert_eq!(t.share(1, share("b", 1, READ, 0)), Ok(()));
        assert_eq!(
            t.share(1, share("c", 1, WRITE, 0)),
            Err(ShareRefused::Conflict)
        );
        // Denying reads to readers is refused too; another file is another matter.
        assert_eq!(
            t.share(1, share("c", 1, 0, READ)),
            Err(ShareRefused::Conflict)
        );
        assert_eq!(t.share(2, share("c", 1, WRITE, READ | WRITE)), Ok(()));
        // An owner never conflicts with itself: sharing again replaces its share, unless the
        // new one conflicts with another owner's (b reads).
        assert_eq!(t.share(1, share("a", 1, READ | WRITE, WRITE)), Ok(()));
        assert_eq!(
            t.share(1, share("a", 1, READ, READ | WRITE)),
            Err(ShareRefused::Conflict)
        );
        t.unshare(1, &share("b", 1, 0, 0).owner);
        assert_eq!(
            t.share(1, share("a", 1, READ | WRITE, READ | WRITE)),
            Ok(())
        );
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.share(1, share("b", 1, 0, 0)),
            Ok(()),
            "no access, no deny"
        );
        assert_eq!(
            t.share(1, share("b", 2, READ, 0)),
            Err(ShareRefused::Conflict)
        );
    }

    #[test]
    fn free_all_and_unshare_give_the_room_back_and_the_bounds_hold() {
        let mut t = ShareTable::new(ShareLimits {
            total: 3,
            per_client: 2,
        });
        assert_eq!(t.share(1, share("a", 1, READ, 0)), Ok(()));
        assert_eq!(t.share(2, share("a", 1, READ, 0)), Ok(()));
        assert_eq!(t.share(3, share("a", 1, READ, 0)), Err(ShareRefused::Full));
        assert_eq!(
            t.share(1, share("a", 1, WRITE, 0)),
            Ok(()),
            "a replacement needs no room"
        );
        assert_eq!(t.share(3, share("b", 1, READ, 0)), Ok(()));
        assert_eq!(t.share(4, share("c", 1, READ, 0)), Err(ShareRefused::Full));
        t.free_all("a");
        assert_eq!(t.len(), 1);
        assert_eq!(t.clients(), [Arc::<str>::from("b")]);
        assert_eq!(t.share(4, share("c", 1, READ, 0)), Ok(()));
        t.unshare(4, &share("c", 1, 0, 0).owner);
        t.unshare(4, &share("nobody", 1, 0, 0).owner);
        assert_eq!(t.len(), 1);
    }
}
