//! Replies on their way out: the encoded reply, and for READ the file data after it, kept in
//! the buffer it was read into.
//!
//! A READ reply is a small header (status, attributes, count, eof, the data's length) followed
//! by up to 1 MiB of data. Encoding the data into the reply buffer would copy every byte once
//! more and allocate a second megabyte per call; instead the data travels as the reply's
//! `tail`, in whatever buffer it arrived (a local read's vector, an object store's body), and
//! the connection writes header, data and XDR padding with vectored writes. Measured in
//! docs/BENCHMARKS.md (P1, P3).

use std::io::{self, IoSlice};

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};

const LAST_FRAGMENT: u32 = 1 << 31;

/// One reply record: `head` starts with 4 bytes of room for the record mark, `tail` (often
/// empty) follows it on the wire as the data of an XDR opaque, zero-padded to 4 bytes.
pub struct Outgoing {
    pub head: Vec<u8>,
    pub tail: Bytes,
}

impl From<Vec<u8>> for Outgoing {
    fn from(head: Vec<u8>) -> Outgoing {
        Outgoing {
            head,
            tail: Bytes::new(),
        }
    }
}

impl Outgoing {
    /// Zero bytes after the tail, up to the next multiple of 4.
    fn padding(&self) -> usize {
        self.tail.len().next_multiple_of(4) - self.tail.len()
    }

    /// Fills in the record mark (one last fragment holding head, tail and padding).
    pub fn seal(mut self) -> Outgoing {
        let len = (self.head.len() - 4 + self.tail.len() + self.padding()) as u32;
        self.head[..4].copy_from_slice(&(len | LAST_FRAGMENT).to_be_bytes());
        self
    }

    /// The record as one buffer: head, tail and padding.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + self.tail.len() + 3);
        out.extend_from_slice(&self.head);
        out.extend_from_slice(&self.tail);
        out.resize(out.len() + self.padding(), 0);
        out
    }

    /// Writes the whole record.
    pub async fn write_to<W: AsyncWrite + Unpin>(&self, w: &mut W) -> io::Result<()> {
        let zeros = [0u8; 3];
        let parts = [&self.head[..], &self.tail[..], &zeros[..self.padding()]];
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut written = 0;
        while written < total {
            // The parts not yet written, the first one from where the last write ended.
            let mut slices = [IoSlice::new(&[]); 3];
            let mut count = 0;
            let mut skip = written;
            for part in parts {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                slices[count] = IoSlice::new(&part[skip..]);
                skip = 0;
                count += 1;
            }
            let n = w.write_vectored(&slices[..count]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            written += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn head_tail_and_padding_go_out_as_one_record() {
        let reply = Outgoing {
            head: vec![0, 0, 0, 0, 1, 2],
            tail: Bytes::from_static(&[3, 4, 5]),
        }
        .seal();
        let mut out = Vec::new();
        reply.write_to(&mut out).await.unwrap();
        assert_eq!(out, [0x80, 0, 0, 6, 1, 2, 3, 4, 5, 0]);
    }

    /// A writer that takes at most `max` bytes per call, from its first buffer only.
    struct Trickle {
        out: Vec<u8>,
        max: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = buf.len().min(self.max);
            self.out.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Short writes that end inside the head, the tail or the padding lose and repeat nothing.
    #[tokio::test]
    async fn short_writes_resume_where_they_ended() {
        let tail: Vec<u8> = (0..37).collect();
        for max in 1..12 {
            let reply = Outgoing {
                head: vec![0, 0, 0, 0, 9, 9, 9],
                tail: Bytes::from(tail.clone()),
            }
            .seal();
            let mut w = Trickle {
                out: Vec::new(),
                max,
            };
            reply.write_to(&mut w).await.unwrap();
            let mut want = vec![0x80, 0, 0, 43, 9, 9, 9];
            want.extend_from_slice(&tail);
            want.extend_from_slice(&[0, 0, 0]);
            assert_eq!(w.out, want, "at most {max} bytes per write");
        }
    }
}
