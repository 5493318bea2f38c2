//! Reading the values of a mount's `[mount.config]` (every value arrives as a string), with
//! errors that are sentences for the user naming the key at fault.

use crate::attrs::Ownership;

/// `value` of config key `key` as a number in `radix` (8 for modes, 10 otherwise).
pub fn number(key: &str, value: &str, radix: u32) -> Result<u32, String> {
    u32::from_str_radix(value, radix)
        .map_err(|_| format!("config key `{key}`: {value:?} is not a number"))
}

impl Ownership {
    /// Takes the owner keys `uid`, `gid` (decimal), `file_mode` and `dir_mode` (octal,
    /// permission bits only); false when `key` is none of them.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            "uid" => self.uid = number(key, value, 10)?,
            "gid" => self.gid = number(key, value, 10)?,
            "file_mode" => self.file_mode = number(key, value, 8)? & 0o7777,
            "dir_mode" => self.dir_mode = number(key, value, 8)? & 0o7777,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_in_their_radix_and_refusals_name_the_key() {
        assert_eq!(number("uid", "1000", 10), Ok(1000));
        assert_eq!(number("file_mode", "640", 8), Ok(0o640));
        let err = number("file_mode", "9", 8).unwrap_err();
        assert!(
            err.contains("`file_mode`") && err.contains("\"9\""),
            "{err}"
        );
    }

    #[test]
    fn ownership_takes_only_its_own_keys() {
        let mut owner = Ownership::default();
        assert_eq!(owner.set("uid", "12"), Ok(true));
        assert_eq!(owner.set("dir_mode", "17777"), Ok(true));
        assert_eq!(owner.set("colour", "blue"), Ok(false));
        assert!(owner.set("gid", "x").unwrap_err().contains("`gid`"));
        assert_eq!((owner.uid, owner.dir_mode, owner.gid), (12, 0o7777, 0));
    }
}
