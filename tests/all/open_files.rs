//! The host files a `local` mount's reads keep open (`[server.cache] open_files`), end to end:
//! a file replaced or made again on the host, behind nfsgw's back, is read anew, never the
//! file held open before, and a write through nfsgw is read back.

use crate::harness::{local_mount, tempdir, Server};

#[tokio::test]
async fn a_file_replaced_on_the_host_is_read_anew() {
    let dir = tempdir("nfsgw-open-files-");
    let host = |rel: &str| dir.path().join(rel);
    std::fs::create_dir(host("d")).unwrap();
    std::fs::write(host("d/f"), b"old contents").unwrap();
    let server = Server::start(&local_mount("data", dir.path(), false, ""));
    let mut nfs = server.mount("/data").await;
    let fh = nfs.lookup_path("d/f").await.unwrap();
    for _ in 0..3 {
        assert_eq!(nfs.read_all(&fh).await.unwrap(), b"old contents");
    }
    // Each replacement has the same length, so that the attributes the gateway may still
    // have cached bound nothing: what is read is whatever file the host reads.
    std::fs::write(host("d/new"), b"NEW CONTENTS").unwrap();
    std::fs::rename(host("d/new"), host("d/f")).unwrap();
    assert_eq!(nfs.read_all(&fh).await.unwrap(), b"NEW CONTENTS");
    let looked_up = nfs.lookup_path("d/f").await.unwrap();
    assert_eq!(nfs.read_all(&looked_up).await.unwrap(), b"NEW CONTENTS");

    std::fs::remove_file(host("d/f")).unwrap();
    std::fs::write(host("d/f"), b"third time!!").unwrap();
    let looked_up = nfs.lookup_path("d/f").await.unwrap();
    assert_eq!(nfs.read_all(&looked_up).await.unwrap(), b"third time!!");

    nfs.write_all(&looked_up, 0, b"THIRD").await.unwrap();
    assert_eq!(nfs.read_all(&looked_up).await.unwrap(), b"THIRD time!!");
    assert_eq!(std::fs::read(host("d/f")).unwrap(), b"THIRD time!!");
}
