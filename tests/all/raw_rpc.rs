//! A raw ONC RPC client over TCP, as a hostile or minimal client speaks it: call records built
//! from words with AUTH_UNIX credentials of any uid, XDR opaques, and replies read whole and
//! picked apart by offset. Tests use it where a library client would never send what they
//! need, or has no such program.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The record mark bit of a record's last fragment.
pub const LAST_FRAGMENT: u32 = 1 << 31;
/// Long enough for anything these tests wait for on a loaded machine; never a measurement.
pub const GENEROUS: Duration = Duration::from_secs(60);

/// XDR words.
pub fn words(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// One RPC call record (with its record mark) of `program` version `version`, as `uid` (and
/// gid `uid`) with AUTH_UNIX credentials from machine "host".
pub fn call_as(
    xid: u32,
    (program, version): (u32, u32),
    procedure: u32,
    uid: u32,
    args: &[u8],
) -> Vec<u8> {
    // xid, CALL, RPC v2, program, version, procedure; AUTH_UNIX: stamp, machine name "host",
    // uid, gid, no groups; AUTH_NULL verifier.
    let mut body = words(&[xid, 0, 2, program, version, procedure, 1, 24, 0, 4]);
    body.extend_from_slice(b"host");
    body.extend(words(&[uid, uid, 0, 0, 0]));
    body.extend_from_slice(args);
    let mut record = (body.len() as u32 | LAST_FRAGMENT).to_be_bytes().to_vec();
    record.extend_from_slice(&body);
    record
}

/// An XDR opaque or string.
pub fn opaque(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out.resize(out.len().div_ceil(4) * 4, 0);
    out
}

/// Reads one reply record (one fragment, as nfsgw sends them), mark included.
pub async fn reply(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut mark = [0u8; 4];
    stream.read_exact(&mut mark).await?;
    let len = (u32::from_be_bytes(mark) & !LAST_FRAGMENT) as usize;
    let mut record = mark.to_vec();
    record.resize(4 + len, 0);
    stream.read_exact(&mut record[4..]).await?;
    Ok(record)
}

/// The word at `at` of a reply (with its mark): 24 is the accept status, 28 the start of the
/// procedure's results.
pub fn word(reply: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(reply[at..at + 4].try_into().unwrap())
}

/// Sends `record` and reads the reply, within `GENEROUS`.
pub async fn roundtrip(stream: &mut TcpStream, record: &[u8]) -> io::Result<Vec<u8>> {
    tokio::time::timeout(GENEROUS, async {
        stream.write_all(record).await?;
        reply(stream).await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no reply"))?
}
