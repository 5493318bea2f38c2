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
/// Buffers handed to one vectored write at most (Linux takes up to 1024).
const MAX_SLICES: usize = 64;

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

    /// Bytes on the wire, record mark included.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len() + self.padding()
    }

    /// Fills in the record mark (one last fragment holding head, tail and padding).
    pub fn seal(mut self) -> Outgoing {
        let len = (self.len() - 4) as u32;
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
}

/// Writes whole records, as many as are ready at once: their heads, tails and padding go out in
/// vectored writes, so replies that were answered together cost one system call between them.
pub async fn write_all<W: AsyncWrite + Unpin>(replies: &[Outgoing], w: &mut W) -> io::Result<()> {
    const ZEROS: [u8; 3] = [0; 3];
    let parts: Vec<&[u8]> = replies
        .iter()
        .flat_map(|r| [&r.head[..], &r.tail[..], &ZEROS[..r.padding()]])
        .filter(|part| !part.is_empty())
        .collect();
    let (mut next, mut skip) = (0, 0);
    while next < parts.len() {
        // The parts not yet written, the first one from where the last write ended.
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let pending =
            std::iter::once(&parts[next][skip..]).chain(parts[next + 1..].iter().copied());
        let mut count = 0;
        for (slice, part) in slices.iter_mut().zip(pending) {
            *slice = IoSlice::new(part);
            count += 1;
        }
        let mut n = w.write_vectored(&slices[..count]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let left = parts[next].len() - skip;
            if n < left {
                skip += n;
                break;
            }
            n -= left;
            (next, skip) = (next + 1, 0);
        }
    }
    Ok(())
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
        write_all(&[reply], &mut out).await.unwrap();
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

    /// Short writes that end inside a head, a tail or a padding lose and repeat nothing, in
    /// one record or across several.
    #[tokio::test]
    async fn short_writes_resume_where_they_ended() {
        let tail: Vec<u8> = (0..37).collect();
        let reply = |head: u8| {
            Outgoing {
                head: vec![0, 0, 0, 0, head, head, head],
                tail: Bytes::from(tail.clone()),
            }
            .seal()
        };
        let mut one = vec![0x80, 0, 0, 43, 9, 9, 9];
        one.extend_from_slice(&tail);
        one.extend_from_slice(&[0, 0, 0]);
        let many: Vec<u8> = (0..100u8)
            .flat_map(|h| {
                let mut r = one.clone();
                r[4..7].fill(h);
                r
            })
            .collect();
        for max in 1..12 {
            let mut w = Trickle {
                out: Vec::new(),
                max,
            };
            write_all(&[reply(9)], &mut w).await.unwrap();
            assert_eq!(w.out, one, "at most {max} bytes per write");

            // More records than one vectored write takes.
            let replies: Vec<Outgoing> = (0..100).map(reply).collect();
            let mut w = Trickle {
                out: Vec::new(),
                max: max * 1000,
            };
            write_all(&replies, &mut w).await.unwrap();
            assert_eq!(
                w.out,
                many,
                "100 records, at most {} bytes per write",
                max * 1000
            );
        }
    }
}
