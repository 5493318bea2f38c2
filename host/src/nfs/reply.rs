//! Replies on their way out: the encoded reply, and for READ the file data after it, kept in
//! the buffer it was read into.
//!
//! A READ reply is a small header (status, attributes, count, eof, the data's length) followed
//! by up to 1 MiB of data. Encoding the data into the reply buffer would copy every byte once
//! more and allocate a second megabyte per call; instead the data travels as the reply's
//! `tail`, and the connection writes header and data with vectored writes. Measured in
//! docs/BENCHMARKS.md (P1).

use std::io::{self, IoSlice};

use tokio::io::{AsyncWrite, AsyncWriteExt};

const LAST_FRAGMENT: u32 = 1 << 31;

/// One reply record: `head` starts with 4 bytes of room for the record mark, `tail` (often
/// empty) follows it on the wire.
pub struct Outgoing {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
}

impl From<Vec<u8>> for Outgoing {
    fn from(head: Vec<u8>) -> Outgoing {
        Outgoing {
            head,
            tail: Vec::new(),
        }
    }
}

impl Outgoing {
    /// Fills in the record mark (one last fragment holding head and tail).
    pub fn seal(mut self) -> Outgoing {
        let len = (self.head.len() - 4 + self.tail.len()) as u32;
        self.head[..4].copy_from_slice(&(len | LAST_FRAGMENT).to_be_bytes());
        self
    }

    /// Writes the whole record.
    pub async fn write_to<W: AsyncWrite + Unpin>(&self, w: &mut W) -> io::Result<()> {
        let (head, tail) = (&self.head[..], &self.tail[..]);
        let mut done = 0;
        while done < head.len() {
            let n = w
                .write_vectored(&[IoSlice::new(&head[done..]), IoSlice::new(tail)])
                .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            done += n;
        }
        w.write_all(&tail[done - head.len()..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn head_and_tail_go_out_as_one_record() {
        let reply = Outgoing {
            head: vec![0, 0, 0, 0, 1, 2],
            tail: vec![3, 4, 5],
        }
        .seal();
        let mut out = Vec::new();
        reply.write_to(&mut out).await.unwrap();
        assert_eq!(out, [0x80, 0, 0, 5, 1, 2, 3, 4, 5]);
    }
}
