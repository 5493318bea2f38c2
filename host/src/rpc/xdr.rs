//! XDR decoding with bounds: a reader of words and opaques over a byte slice that checks every
//! length against what the slice holds before it takes anything, and the decoding of a whole
//! argument structure through `nfs3_types`.

use std::io;

use nfs3_types::xdr_codec::Unpack;

/// Reads XDR words and opaques from a byte slice; every read checks the bounds first, so a
/// length that claims more than the slice holds allocates nothing.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    /// How many bytes have been read.
    pub fn position(&self) -> usize {
        self.at
    }

    pub fn u32(&mut self) -> Option<u32> {
        let v = self.bytes.get(self.at..self.at + 4)?;
        self.at += 4;
        Some(u32::from_be_bytes(v.try_into().ok()?))
    }

    /// The bytes read since position `start`.
    pub fn taken_since(&self, start: usize) -> &'a [u8] {
        &self.bytes[start.min(self.at)..self.at]
    }

    /// A variable-length opaque (or string) of at most `max` bytes.
    pub fn opaque(&mut self, max: usize) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        if len > max {
            return None;
        }
        let padded = len.div_ceil(4) * 4;
        let v = self.bytes.get(self.at..self.at + len)?;
        self.at += padded;
        (self.at <= self.bytes.len()).then_some(v)
    }
}

/// Decodes procedure arguments; `None` is GARBAGE_ARGS.
pub fn args<T: Unpack>(bytes: &[u8]) -> Option<T> {
    T::unpack(&mut io::Cursor::new(bytes)).ok().map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_past_the_end_or_the_limit_read_nothing() {
        let bytes = [0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0, 9];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.opaque(8), Some(&b"abc"[..]));
        assert_eq!(r.position(), 8);
        assert_eq!(r.u32(), Some(9));
        assert_eq!(r.u32(), None);
        assert_eq!(Reader::new(&bytes).opaque(2), None, "over the limit");
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff]).opaque(usize::MAX),
            None
        );
    }
}
