//! Directory listings at scale end to end: cookies are positions in a listing named by its
//! verifier, pages are fetched from the plugin as clients reach them (counted in the plugin
//! call metrics), and a directory larger than `[server.cache] listing_entries` still lists
//! whole and resumes at any cookie it handed out.

use std::collections::HashSet;

use nfs3_types::nfs3::nfsstat3;

use crate::harness::{local_mount, tempdir, Client, Entry, Server};
use crate::ops::{http_get, sample, with_admin};

/// `list-dir` calls the plugin of mount `data` answered so far.
fn list_calls(admin: u16) -> f64 {
    let (_, m) = http_get(admin, "/metrics");
    sample(
        &m,
        "nfsgw_plugin_calls_total{mount=\"data\",op=\"list-dir\"}",
    )
}

fn fill(dir: &std::path::Path, n: usize) -> Vec<String> {
    let names: Vec<String> = (0..n).map(|i| format!("entry-{i:06}")).collect();
    for name in &names {
        std::fs::write(dir.join(name), b"").unwrap();
    }
    names
}

/// Every page of a READDIRPLUS enumeration, each with the (cookie, verifier) it was asked with.
async fn pages(
    nfs: &mut Client,
    dir: &nfs3_types::nfs3::nfs_fh3,
) -> Vec<(u64, [u8; 8], Vec<Entry>)> {
    let (mut cookie, mut verf, mut pages) = (0, [0; 8], Vec::new());
    loop {
        let (entries, next_verf, eof) = nfs.readdirplus_page(dir, cookie, verf).await.unwrap();
        let asked = (cookie, verf);
        verf = next_verf;
        if let Some(last) = entries.last() {
            cookie = last.cookie;
        }
        pages.push((asked.0, asked.1, entries));
        if eof {
            return pages;
        }
        assert!(pages.len() < 100_000, "paging does not end");
    }
}

fn names(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}

#[tokio::test]
async fn a_directory_larger_than_the_listing_bound_lists_whole_and_resumes_at_old_cookies() {
    const N: usize = 20_000;
    let dir = tempdir("nfsgw-listings-");
    let expected = fill(dir.path(), N);
    let server = Server::start_with(&format!(
        "portmap = \"off\"\n[server.cache]\nlisting_entries = 1000\n\n{}",
        local_mount("data", dir.path(), false, "attr_ttl_ms = 600000")
    ));
    let mut nfs = server.mount("/data").await;
    let root = nfs.root.clone();
    let pages = pages(&mut nfs, &root).await;
    assert!(pages.len() > 100, "only {} pages", pages.len());
    let listed: Vec<&Entry> = pages.iter().flat_map(|p| &p.2).collect();
    let listed_names: Vec<&str> = listed.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(listed_names, expected, "every name once, in order");
    let cookies: HashSet<u64> = listed.iter().map(|e| e.cookie).collect();
    assert_eq!(cookies.len(), N, "duplicate cookies");

    // Cookies of early pages (long evicted) and late ones answer the same pages again.
    for at in [5, pages.len() / 2, pages.len() - 1] {
        let (cookie, verf, ref entries) = pages[at];
        let (again, _, _) = nfs.readdirplus_page(&root, cookie, verf).await.unwrap();
        assert_eq!(names(&again), names(entries), "page {at} asked again");
    }
    // A client that sends no verifier resumes in the current listing.
    let (cookie, _, ref entries) = pages[7];
    let (again, _, _) = nfs.readdirplus_page(&root, cookie, [0; 8]).await.unwrap();
    assert_eq!(names(&again), names(entries));
}

#[tokio::test]
async fn listings_fetch_plugin_pages_as_clients_reach_them() {
    const N: usize = 10_000;
    let dir = tempdir("nfsgw-listings-");
    fill(dir.path(), N);
    let (server, admin) = with_admin(&local_mount(
        "data",
        dir.path(),
        false,
        "attr_ttl_ms = 600000",
    ));
    let mut nfs = server.mount("/data").await;
    let root = nfs.root.clone();

    // The first page of a directory of more than one plugin page (4096 entries) asks one.
    let (first, verf, eof) = nfs.readdirplus_page(&root, 0, [0; 8]).await.unwrap();
    assert!(!eof && !first.is_empty());
    assert_eq!(list_calls(admin), 1.0);
    // Resuming inside what is held asks nothing more.
    let (again, _, _) = nfs
        .readdirplus_page(&root, first[3].cookie, verf)
        .await
        .unwrap();
    assert_eq!(again[0].name, first[4].name);
    assert_eq!(list_calls(admin), 1.0);
    // The whole directory: three plugin pages; a new enumeration while fresh: none more.
    let listing = nfs.readdirplus_all(&root).await.unwrap();
    assert_eq!(listing.entries.len(), N);
    assert_eq!(list_calls(admin), 3.0);
    assert_eq!(nfs.readdirplus_all(&root).await.unwrap().entries.len(), N);
    assert_eq!(list_calls(admin), 3.0);
}

#[tokio::test]
async fn a_continuation_in_an_unknown_listing_or_past_its_end_is_a_bad_cookie() {
    let dir = tempdir("nfsgw-listings-");
    fill(dir.path(), 100);
    let server = Server::start(&local_mount("data", dir.path(), false, ""));
    let mut nfs = server.mount("/data").await;
    let root = nfs.root.clone();
    let (page, verf, _) = nfs.readdirplus_page(&root, 0, [0; 8]).await.unwrap();
    assert_ne!(verf, [0; 8], "the verifier names the listing");
    let cookie = page[1].cookie;
    let mut other = verf;
    other[7] ^= 0x55;
    assert_eq!(
        nfs.readdirplus_page(&root, cookie, other)
            .await
            .unwrap_err(),
        nfsstat3::NFS3ERR_BAD_COOKIE
    );
    assert_eq!(
        nfs.readdirplus_page(&root, 1_000_000, verf)
            .await
            .unwrap_err(),
        nfsstat3::NFS3ERR_BAD_COOKIE
    );
    let (resumed, _, _) = nfs.readdirplus_page(&root, cookie, verf).await.unwrap();
    assert_eq!(resumed[0].name, page[2].name);
}
