//! The comparison after every step: the whole export as the server shows it (READDIRPLUS in
//! small pages, so cookies carry each listing on; READ of every file; READLINK of every
//! symlink, each by a caller that owns the object) set beside the model's tree, path by path:
//! kind, size, contents, owner, group, mode and link count. Directory sizes are the
//! backend's own and are left out, as are symlink modes (Linux has none to set).

use std::collections::BTreeMap;

use nfs3_types::nfs3::{ftype3, nfs_fh3};

use super::driver::Driver;
use super::posix::{Ino, Kind, Model};

/// READDIRPLUS `(dircount, maxcount)`: room for one or two entries a reply.
const SMALL_PAGES: (u32, u32) = (64, 600);

/// One object as seen at a path.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    size: Option<u64>,
    /// A file's bytes or a symlink's target.
    content: Vec<u8>,
}

/// What the model says is under the root, by path.
fn expected(model: &Model) -> BTreeMap<String, Seen> {
    fn walk(model: &Model, ino: Ino, path: &str, out: &mut BTreeMap<String, Seen>) {
        for (name, &child) in model.entries(ino).expect("a directory") {
            let node = &model.nodes[&child];
            let child_path = format!("{path}/{name}");
            let (kind, mode, size, content) = match &node.kind {
                Kind::File(c) => ("file", node.mode, Some(c.len() as u64), c.clone()),
                Kind::Dir(_) => ("dir", node.mode, None, Vec::new()),
                Kind::Symlink(t) => ("symlink", 0, Some(t.len() as u64), t.clone().into_bytes()),
            };
            let seen = Seen {
                kind,
                mode,
                uid: node.uid,
                gid: node.gid,
                nlink: model.nlink(child),
                size,
                content,
            };
            out.insert(child_path.clone(), seen);
            if kind == "dir" {
                walk(model, child, &child_path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(model, 0, "", &mut out);
    out
}

/// What the server shows under the root, by path.
async fn observed(driver: &mut Driver, model: &Model) -> Result<BTreeMap<String, Seen>, String> {
    let mut out = BTreeMap::new();
    let root = driver.client(0).root.clone();
    let mut dirs: Vec<(String, nfs_fh3, u32)> = vec![(String::new(), root, 0)];
    while let Some((path, fh, owner)) = dirs.pop() {
        let lister = model.user_acting_as(owner);
        let listing = driver
            .client(lister)
            .readdirplus_all_sized(&fh, SMALL_PAGES)
            .await
            .map_err(|e| format!("READDIRPLUS of {path:?}/: {e:?}"))?;
        let mut names = listing.names();
        names.dedup();
        if names.len() != listing.entries.len() {
            return Err(format!(
                "READDIRPLUS of {path:?}/ repeats names: {:?}",
                listing.names()
            ));
        }
        for entry in listing.entries {
            if entry.name == "." || entry.name == ".." {
                continue;
            }
            let child_path = format!("{path}/{}", entry.name);
            let fh = match entry.handle {
                Some(fh) => fh,
                None => driver
                    .client(lister)
                    .lookup(&fh, &entry.name)
                    .await
                    .map_err(|e| format!("LOOKUP of listed {child_path:?}: {e:?}"))?,
            };
            let attrs = match entry.attrs {
                Some(a) => a,
                None => driver
                    .client(lister)
                    .getattr(&fh)
                    .await
                    .map_err(|e| format!("GETATTR of listed {child_path:?}: {e:?}"))?,
            };
            let reader = model.user_acting_as(attrs.uid);
            let (kind, mode, size, content) = match attrs.type_ {
                ftype3::NF3DIR => {
                    dirs.push((child_path.clone(), fh, attrs.uid));
                    ("dir", attrs.mode, None, Vec::new())
                }
                ftype3::NF3LNK => {
                    let target = driver.client(reader).readlink(&fh).await;
                    let target = target.map_err(|e| format!("READLINK {child_path:?}: {e:?}"))?;
                    ("symlink", 0, Some(attrs.size), target.into_bytes())
                }
                ftype3::NF3REG => {
                    let bytes = driver.client(reader).read_all(&fh).await;
                    let bytes = bytes.map_err(|e| format!("READ {child_path:?}: {e:?}"))?;
                    ("file", attrs.mode, Some(attrs.size), bytes)
                }
                other => return Err(format!("{child_path:?} is a {other:?}")),
            };
            let seen = Seen {
                kind,
                mode: mode & 0o7777,
                uid: attrs.uid,
                gid: attrs.gid,
                nlink: attrs.nlink,
                size,
                content,
            };
            out.insert(child_path, seen);
        }
    }
    Ok(out)
}

/// `Err` lists every path where the server and the model differ.
pub async fn compare(driver: &mut Driver, model: &Model) -> Result<(), String> {
    let want = expected(model);
    let got = observed(driver, model).await?;
    let mut differences = Vec::new();
    for path in want
        .keys()
        .chain(got.keys().filter(|p| !want.contains_key(*p)))
    {
        match (want.get(path), got.get(path)) {
            (Some(w), Some(g)) if w == g => {}
            (w, g) => differences.push(format!("  {path}: model {w:?}\n  {path}: server {g:?}")),
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(format!("the tree differs:\n{}", differences.join("\n")))
    }
}
