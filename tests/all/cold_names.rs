//! A mount whose inode table holds fewer names than its clients have seen
//! (`[server.cache] inode_entries`): the rest wait in the cold tier beside the journal. Every
//! handle a client holds still names its own file, through a rename of a directory whose names
//! are cold and across a restart, and the names in memory stay within the bound, read from
//! the `nfsgw_inode_names` gauges.

use crate::harness::{local_mount, tempdir};
use crate::ops::{http_get, sample, with_admin};

const BOUND: usize = 64;
const DIRS: usize = 4;
const FILES: usize = 500;

fn names_in(admin: u16, tier: &str) -> f64 {
    let (_, metrics) = http_get(admin, "/metrics");
    sample(
        &metrics,
        &format!("nfsgw_inode_names{{mount=\"data\",tier=\"{tier}\"}}"),
    )
}

#[tokio::test]
async fn handles_stay_valid_while_most_names_wait_in_the_cold_tier() {
    let dir = tempdir("nfsgw-cold-");
    for d in 0..DIRS {
        std::fs::create_dir(dir.path().join(format!("d{d}"))).unwrap();
        for f in 0..FILES {
            std::fs::write(dir.path().join(format!("d{d}/f{f}")), format!("{d}/{f}")).unwrap();
        }
    }
    let (server, admin) = with_admin(&format!(
        "[server.cache]\ninode_entries = {BOUND}\n\n{}",
        local_mount("data", dir.path(), false, "")
    ));
    let mut nfs = server.mount("/data").await;
    let root = nfs.root.clone();

    // Every file seen once, listed with its handle.
    let mut seen = Vec::new();
    for d in 0..DIRS {
        let dir_fh = nfs.lookup(&root, &format!("d{d}")).await.unwrap();
        for entry in nfs.readdirplus_all(&dir_fh).await.unwrap().entries {
            if entry.name.starts_with('f') {
                seen.push((d, entry.name, entry.handle.unwrap(), entry.fileid));
            }
        }
    }
    assert_eq!(seen.len(), DIRS * FILES);
    let (memory, cold) = (names_in(admin, "memory"), names_in(admin, "cold"));
    assert!(memory <= BOUND as f64, "{memory} names in memory");
    assert!(
        cold >= (DIRS * FILES - BOUND) as f64,
        "{cold} names in the cold tier"
    );

    // Every handle still names its file.
    for (d, name, fh, fileid) in &seen {
        assert_eq!(
            nfs.getattr(fh).await.unwrap().fileid,
            *fileid,
            "d{d}/{name}"
        );
    }
    for (d, name, fh, _) in seen.iter().step_by(97) {
        let (data, _) = nfs.read(fh, 0, 64).await.unwrap();
        assert_eq!(data, format!("{d}/{}", &name[1..]).as_bytes());
    }
    assert!(names_in(admin, "memory") <= BOUND as f64);

    // A directory whose names are cold is renamed: its files' handles follow it.
    nfs.rename(&root, "d1", &root, "moved").await.unwrap();
    let moved = nfs.lookup(&root, "moved").await.unwrap();
    for (_, name, fh, fileid) in seen.iter().filter(|s| s.0 == 1) {
        assert_eq!(nfs.getattr(fh).await.unwrap().fileid, *fileid);
        let again = nfs.lookup(&moved, name).await.unwrap();
        assert_eq!(nfs.getattr(&again).await.unwrap().fileid, *fileid, "{name}");
    }
    assert!(nfs.lookup(&root, "d1").await.is_err());

    // After a restart the journal gives every handle back (the cold tier is made anew).
    drop(nfs);
    let server = server.restart();
    let mut nfs = server.mount("/data").await;
    for (d, name, fh, fileid) in seen.iter().step_by(7) {
        assert_eq!(
            nfs.getattr(fh).await.unwrap().fileid,
            *fileid,
            "d{d}/{name}"
        );
    }
    assert!(names_in(admin, "memory") <= BOUND as f64);
}
