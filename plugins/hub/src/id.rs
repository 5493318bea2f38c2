//! What identifies a file's content: its Xet hash (32 bytes) or, for a file stored in git, its
//! git object id (20 bytes). The Hub writes both as lowercase hex; listings keep the bytes (a
//! third of the memory of the text) and turn them back into the same hex when asked.

/// A content id, kept as bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Id {
    None,
    Xet([u8; 32]),
    Git([u8; 20]),
}

/// The bytes of `N * 2` hex digits; none when `text` is anything else.
fn bytes<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Id {
    /// A Xet hash from its hex form; none unless it is 64 hex digits.
    pub fn xet(text: &str) -> Option<Id> {
        bytes(text).map(Id::Xet)
    }

    /// A git object id from its hex form (40 digits); anything else is no id.
    pub fn git(text: &str) -> Id {
        bytes(text).map_or(Id::None, Id::Git)
    }

    /// The Xet hash, in hex.
    pub fn xet_hash(&self) -> Option<String> {
        match self {
            Id::Xet(h) => Some(hex(h)),
            _ => None,
        }
    }

    /// What changes when the content does: the Xet hash, else the git object id, in hex.
    pub fn change(&self) -> Option<String> {
        match self {
            Id::None => None,
            Id::Xet(h) => Some(hex(h)),
            Id::Git(o) => Some(hex(o)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let xet = "0123456789abcdef".repeat(4);
        let id = Id::xet(&xet).unwrap();
        assert_eq!(
            (id.xet_hash(), id.change()),
            (Some(xet.clone()), Some(xet.clone()))
        );
        let oid = "a".repeat(40);
        assert_eq!(Id::git(&oid).change(), Some(oid));
        assert_eq!(Id::git(&"a".repeat(40)).xet_hash(), None);
        assert_eq!(Id::xet("00ff"), None, "too short");
        assert_eq!(Id::xet(&"g".repeat(64)), None, "not hex");
        assert_eq!(Id::git("d1"), Id::None);
        assert_eq!(Id::None.change(), None);
    }
}
