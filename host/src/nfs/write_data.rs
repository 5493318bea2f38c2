//! Where the data of an NFSv3 WRITE call starts in its record: the hint the front gives the
//! RPC record reader, so that a large WRITE's data lands block-aligned in memory and a staged
//! write reaches the disk without another copy.

use std::net::SocketAddr;

use nfs3_types::nfs3::NFS3_FHSIZE;

use super::nfs3;
use crate::rpc::call::MAX_AUTH;
use crate::rpc::{parse_call, DataAt, Incoming, Reader};

const NFSPROC3_WRITE: u32 = 7;

/// A WRITE call's data starts within this many bytes: header, credentials and verifier (400
/// bytes each at most), file handle, and five words.
const WRITE_HEAD_MAX: usize = 24 + 2 * (8 + MAX_AUTH) + 4 + NFS3_FHSIZE + 20;

/// The hint for NFS records.
pub const WRITE_DATA: DataAt = DataAt {
    head: WRITE_HEAD_MAX,
    find: write_data_at,
};

/// Where the data of an NFSv3 WRITE call starts in its record, from the record's first bytes;
/// None for other calls, or when those bytes end before it.
fn write_data_at(head: &[u8]) -> Option<usize> {
    let Incoming::Call(call) = parse_call(head, SocketAddr::from(([0, 0, 0, 0], 0))) else {
        return None;
    };
    let write = (nfs3::PROGRAM, nfs3::VERSION, NFSPROC3_WRITE);
    if (call.prog, call.vers, call.proc_) != write {
        return None;
    }
    let mut r = Reader::new(&head[call.args..]);
    r.opaque(NFS3_FHSIZE)?;
    // offset (two words), count, stable, then the data's length.
    for _ in 0..5 {
        r.u32()?;
    }
    Some(call.args + r.position())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::buffer_pool::BufferPool;
    use crate::copy_file::gap_to_alignment;
    use crate::rpc::call::build::unix_cred;
    use crate::rpc::record::frame::framed;
    use crate::rpc::{read_record, RecordBudget, MAX_RECORD};

    /// A call of procedure `proc_` shaped as a WRITE of `len` data bytes, with AUTH_UNIX
    /// credentials and an 8-byte handle; and where its data starts.
    fn write_call(proc_: u32, len: usize) -> (Vec<u8>, usize) {
        let cred = unix_cred(0, 0, &[1, 2, 3]);
        let words = |out: &mut Vec<u8>, words: &[u32]| {
            words
                .iter()
                .for_each(|w| out.extend_from_slice(&w.to_be_bytes()))
        };
        let mut out = Vec::new();
        words(&mut out, &[9, 0, 2, nfs3::PROGRAM, nfs3::VERSION, proc_, 1]);
        words(&mut out, &[cred.len() as u32]);
        out.extend_from_slice(&cred);
        words(&mut out, &[0, 0, 8]);
        out.extend_from_slice(b"handle!!");
        words(&mut out, &[0, 4096, len as u32, 0, len as u32]);
        let at = out.len();
        out.extend((0..len).map(|i| (i % 251) as u8));
        (out, at)
    }

    #[test]
    fn only_a_write_with_its_whole_head_has_data() {
        let (record, at) = write_call(NFSPROC3_WRITE, 256 << 10);
        assert_eq!(write_data_at(&record[..WRITE_HEAD_MAX]), Some(at));
        assert_eq!(
            write_data_at(&record[..at - 1]),
            None,
            "the head ends early"
        );
        let (other, _) = write_call(6, 256 << 10);
        assert_eq!(write_data_at(&other), None, "not a WRITE");
    }

    #[tokio::test]
    async fn a_large_write_lands_with_its_data_block_aligned() {
        let pool = BufferPool::new(0);
        let budget = RecordBudget::new(MAX_RECORD);
        let (record, at) = write_call(NFSPROC3_WRITE, 1 << 20);
        // In two fragments, the first one ending inside the data.
        let stream = framed(&record, 100_000);
        let read = read_record(&mut &stream[..], &pool, &budget, &WRITE_DATA)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.bytes, record);
        assert_eq!(gap_to_alignment(Arc::new(read.bytes)[at..].as_ptr()), 0);
    }
}
