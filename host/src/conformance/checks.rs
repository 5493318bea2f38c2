//! The conformance checks themselves, run through the gateway core as a root caller against
//! the scratch mount's directory: each one needs some capabilities, and is skipped when the
//! plugin does not declare them.

use std::collections::BTreeSet;

use anyhow::Result;
use bytes::Bytes;

use super::Outcome;
use crate::backend::types::{Attrs, Capabilities, Error, FileKind, SetAttrs, SetTime, Timestamp};
use crate::backend::Backend;
use crate::buffer_pool::BufferPool;
use crate::gateway::handles::EXPORT_ROOT;
use crate::gateway::{Caller, FileId, Gateway};

/// Enough entries that a plugin's listing takes more than one `list-dir` page.
const MANY: usize = 4200;

/// Runs every check on the mount `gateway` serves (named "check"), whose plugin declares
/// `caps`.
pub(super) async fn run(
    gateway: Gateway,
    caps: Capabilities,
) -> Result<Vec<(&'static str, Outcome)>> {
    let root = gateway
        .lookup(&ROOT, EXPORT_ROOT, "check")
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut suite = Suite {
        gateway,
        root,
        caps,
        checks: Vec::new(),
    };
    suite.run().await;
    Ok(suite.checks)
}

const ROOT: Caller = Caller {
    uid: 0,
    gid: 0,
    gids: Vec::new(),
};

type Check = std::result::Result<(), String>;

/// Fails a check with a message unless `cond` holds.
fn ensure(cond: bool, why: impl FnOnce() -> String) -> Check {
    if cond {
        Ok(())
    } else {
        Err(why())
    }
}

/// The error a call must have given.
fn expect_err<T: std::fmt::Debug>(
    what: &str,
    got: std::result::Result<T, Error>,
    want: Error,
) -> Check {
    match got {
        Err(e) if e == want => Ok(()),
        other => Err(format!("{what}: expected {want:?}, got {other:?}")),
    }
}

fn ok<T>(what: &str, r: std::result::Result<T, Error>) -> std::result::Result<T, String> {
    r.map_err(|e| format!("{what}: {e:?}"))
}

struct Suite {
    gateway: Gateway,
    root: FileId,
    caps: Capabilities,
    checks: Vec<(&'static str, Outcome)>,
}

impl Suite {
    async fn record(
        &mut self,
        name: &'static str,
        needs: Capabilities,
        check: impl AsyncFnOnce(&Suite) -> Check,
    ) {
        let outcome = if !self.caps.contains(needs) {
            Outcome::Skipped("capability not declared")
        } else {
            match check(self).await {
                Ok(()) => Outcome::Passed,
                Err(why) => Outcome::Failed(why),
            }
        };
        self.checks.push((name, outcome));
    }

    async fn names(&self, dir: FileId) -> std::result::Result<Vec<String>, String> {
        let mut names = Vec::new();
        let (mut cookie, mut verf) = (0, 0);
        loop {
            let page = ok(
                "readdir",
                self.gateway.readdir(&ROOT, dir, cookie, verf, 512).await,
            )?
            .ok_or("readdir: a cookie it handed out was refused")?;
            verf = page.verf;
            for (at, _, name, _) in page.entries() {
                names.push(name.to_string());
                cookie = at;
            }
            if page.end {
                return Ok(names);
            }
        }
    }

    async fn put(
        &self,
        dir: FileId,
        name: &str,
        data: &[u8],
    ) -> std::result::Result<FileId, String> {
        let (id, _) = ok(
            "create",
            self.gateway.create(&ROOT, dir, name, 0o644, false).await,
        )?;
        if !data.is_empty() {
            ok(
                "write",
                self.gateway.write(&ROOT, id, 0, data.to_vec().into()).await,
            )?;
        }
        Ok(id)
    }

    /// The scratch mount's backend, for checks that call it directly.
    fn backend(&self) -> &dyn Backend {
        self.gateway.mounts()[0].backend().as_ref()
    }

    /// Fails unless `answered`, the attributes a change answered for the directory `dir`, are
    /// what a stat of that directory says right after. A change may answer none.
    async fn as_stat_says(&self, what: &str, dir: &str, answered: Option<Attrs>) -> Check {
        let Some(answered) = answered else {
            return Ok(());
        };
        let stat = ok("stat", self.backend().stat(dir).await)?;
        ensure(answered.same_state(&stat), || {
            format!("{what} answered {answered:?} for {dir:?}, but a stat says {stat:?}")
        })
    }

    async fn content(&self, id: FileId) -> std::result::Result<Vec<u8>, String> {
        let mut out = Vec::new();
        // Each chunk's buffer is reused for the next, as a connection's are.
        let buffers = BufferPool::new(2 << 20);
        loop {
            let (chunk, eof) = ok(
                "read",
                self.gateway
                    .read(&ROOT, id, out.len() as u64, 1 << 20, &buffers)
                    .await,
            )?;
            out.extend_from_slice(&chunk);
            if eof || chunk.is_empty() {
                return Ok(out);
            }
        }
    }

    async fn run(&mut self) {
        let none = Capabilities::empty();

        self.record("root is a directory", none, async |s: &Suite| {
            let a = ok("getattr of the root", s.gateway.getattr(s.root).await)?;
            ensure(a.kind == FileKind::Directory, || {
                format!("kind {:?}", a.kind)
            })
        })
        .await;
        self.record("listing the root completes", none, async |s: &Suite| {
            s.names(s.root).await.map(|_| ())
        })
        .await;
        self.record("a missing name is not-found", none, async |s: &Suite| {
            expect_err(
                "lookup",
                s.gateway.lookup(&ROOT, s.root, "no-such-entry-here").await,
                Error::NotFound,
            )
        })
        .await;
        self.record(
            "every listed entry can be looked up and read",
            none,
            async |s: &Suite| {
                for name in s.names(s.root).await? {
                    let id = ok(
                        &format!("lookup {name}"),
                        s.gateway.lookup(&ROOT, s.root, &name).await,
                    )?;
                    let a = ok(&format!("getattr {name}"), s.gateway.getattr(id).await)?;
                    if a.kind == FileKind::Regular {
                        let data = s.content(id).await?;
                        ensure(data.len() as u64 == a.size, || {
                            format!("{name}: read {} bytes, size {}", data.len(), a.size)
                        })?;
                    }
                }
                Ok(())
            },
        )
        .await;

        if self.caps == Capabilities::empty() {
            self.record(
                "changes are refused as read-only",
                none,
                async |s: &Suite| {
                    let (root, g) = (s.root, &s.gateway);
                    expect_err(
                        "create",
                        g.create(&ROOT, root, "new", 0o644, false).await,
                        Error::ReadOnly,
                    )?;
                    expect_err(
                        "mkdir",
                        g.mkdir(&ROOT, root, "dir", 0o755).await,
                        Error::ReadOnly,
                    )
                },
            )
            .await;
        }

        let create = Capabilities::CREATE | Capabilities::WRITE;
        self.record("create, write and read back", create, async |s: &Suite| {
            let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
            let id = s.put(s.root, "written.bin", &data).await?;
            let got = s.content(id).await?;
            ensure(got == data, || {
                format!(
                    "read back {} bytes that differ from the {} written",
                    got.len(),
                    data.len()
                )
            })?;
            let a = ok("getattr", s.gateway.getattr(id).await)?;
            ensure(
                a.size == data.len() as u64 && a.kind == FileKind::Regular,
                || format!("size {} kind {:?}", a.size, a.kind),
            )
        })
        .await;
        self.record(
            "writes past the end leave a zero-filled hole",
            create,
            async |s: &Suite| {
                let id = s.put(s.root, "holes.bin", b"head").await?;
                ok(
                    "write",
                    s.gateway
                        .write(&ROOT, id, 10, Bytes::from_static(b"tail"))
                        .await,
                )?;
                let got = s.content(id).await?;
                ensure(got == b"head\0\0\0\0\0\0tail", || format!("got {got:?}"))
            },
        )
        .await;
        self.record(
            "a read past the end is empty and at eof",
            create,
            async |s: &Suite| {
                let id = s.put(s.root, "short.txt", b"abc").await?;
                let (data, eof) = ok(
                    "read",
                    s.gateway
                        .read(&ROOT, id, 100, 10, &BufferPool::new(0))
                        .await,
                )?;
                ensure(data.is_empty() && eof, || {
                    format!("{} bytes, eof {eof}", data.len())
                })
            },
        )
        .await;
        self.record(
            "exclusive create of an existing name is exists",
            Capabilities::CREATE,
            async |s: &Suite| {
                ok(
                    "create",
                    s.gateway.create(&ROOT, s.root, "once", 0o600, true).await,
                )?;
                expect_err(
                    "second exclusive create",
                    s.gateway.create(&ROOT, s.root, "once", 0o600, true).await,
                    Error::Exists,
                )
            },
        )
        .await;
        self.record(
            "a large directory lists every entry exactly once",
            Capabilities::CREATE | Capabilities::MKDIR,
            async |s: &Suite| {
                let (dir, _) = ok("mkdir", s.gateway.mkdir(&ROOT, s.root, "many", 0o755).await)?;
                for i in 0..MANY {
                    ok(
                        "create",
                        s.gateway
                            .create(&ROOT, dir, &format!("entry-{i:05}"), 0o644, false)
                            .await,
                    )?;
                }
                let names = s.names(dir).await?;
                let unique: BTreeSet<_> = names.iter().collect();
                ensure(names.len() == MANY && unique.len() == MANY, || {
                    format!(
                        "{} entries listed, {} distinct, {MANY} made",
                        names.len(),
                        unique.len()
                    )
                })
            },
        )
        .await;
        self.record(
            "directories nest, and a non-empty one cannot be removed",
            Capabilities::MKDIR | Capabilities::CREATE | Capabilities::REMOVE,
            async |s: &Suite| {
                let (dir, a) = ok(
                    "mkdir",
                    s.gateway.mkdir(&ROOT, s.root, "outer", 0o755).await,
                )?;
                ensure(a.kind == FileKind::Directory, || {
                    format!("mkdir made a {:?}", a.kind)
                })?;
                let (inner, _) = ok(
                    "mkdir inner",
                    s.gateway.mkdir(&ROOT, dir, "inner", 0o755).await,
                )?;
                s.put(inner, "leaf", b"leaf").await?;
                expect_err(
                    "rmdir of a non-empty directory",
                    s.gateway.remove(&ROOT, dir, "inner", true).await,
                    Error::NotEmpty,
                )?;
                expect_err(
                    "lookup inside a file",
                    {
                        let leaf = ok("lookup leaf", s.gateway.lookup(&ROOT, inner, "leaf").await)?;
                        s.gateway.lookup(&ROOT, leaf, "x").await
                    },
                    Error::NotDir,
                )
            },
        )
        .await;
        self.record(
            "remove and rmdir",
            Capabilities::CREATE | Capabilities::MKDIR | Capabilities::REMOVE,
            async |s: &Suite| {
                s.put(s.root, "doomed", b"x").await?;
                ok(
                    "mkdir",
                    s.gateway.mkdir(&ROOT, s.root, "empty-dir", 0o755).await,
                )?;
                ok(
                    "remove",
                    s.gateway.remove(&ROOT, s.root, "doomed", false).await,
                )?;
                ok(
                    "rmdir",
                    s.gateway.remove(&ROOT, s.root, "empty-dir", true).await,
                )?;
                expect_err(
                    "lookup of a removed file",
                    s.gateway.lookup(&ROOT, s.root, "doomed").await,
                    Error::NotFound,
                )?;
                expect_err(
                    "lookup of a removed directory",
                    s.gateway.lookup(&ROOT, s.root, "empty-dir").await,
                    Error::NotFound,
                )
            },
        )
        .await;
        self.record(
            "rename of a file, also onto an existing one",
            Capabilities::CREATE | Capabilities::RENAME,
            async |s: &Suite| {
                s.put(s.root, "from.txt", b"moved").await?;
                s.put(s.root, "victim.txt", b"replaced").await?;
                ok(
                    "rename",
                    s.gateway
                        .rename(&ROOT, s.root, "from.txt", s.root, "victim.txt")
                        .await,
                )?;
                expect_err(
                    "lookup of the old name",
                    s.gateway.lookup(&ROOT, s.root, "from.txt").await,
                    Error::NotFound,
                )?;
                let id = ok(
                    "lookup of the new name",
                    s.gateway.lookup(&ROOT, s.root, "victim.txt").await,
                )?;
                let got = s.content(id).await?;
                ensure(got == b"moved", || format!("the new name holds {got:?}"))
            },
        )
        .await;
        self.record(
            "rename of a directory carries its contents",
            Capabilities::CREATE | Capabilities::MKDIR | Capabilities::RENAME,
            async |s: &Suite| {
                let (dir, _) = ok(
                    "mkdir",
                    s.gateway.mkdir(&ROOT, s.root, "before", 0o755).await,
                )?;
                let file = s.put(dir, "inside", b"carried").await?;
                ok(
                    "rename",
                    s.gateway
                        .rename(&ROOT, s.root, "before", s.root, "after")
                        .await,
                )?;
                let dir = ok("lookup", s.gateway.lookup(&ROOT, s.root, "after").await)?;
                let again = ok(
                    "lookup inside",
                    s.gateway.lookup(&ROOT, dir, "inside").await,
                )?;
                ensure(again == file, || {
                    "the file inside changed its file id".into()
                })?;
                let got = s.content(file).await?;
                ensure(got == b"carried", || format!("holds {got:?}"))
            },
        )
        .await;
        self.record(
            "symlink and readlink",
            Capabilities::SYMLINK,
            async |s: &Suite| {
                let (id, a) = ok(
                    "symlink",
                    s.gateway
                        .symlink(&ROOT, s.root, "link", "some/where/../target")
                        .await,
                )?;
                ensure(a.kind == FileKind::Symlink, || {
                    format!("made a {:?}", a.kind)
                })?;
                let target = ok("readlink", s.gateway.readlink(id).await)?;
                ensure(target == "some/where/../target", || {
                    format!("readlink gave {target:?}")
                })
            },
        )
        .await;
        self.record(
            "truncate shrinks and grows with zeros",
            Capabilities::CREATE | Capabilities::TRUNCATE,
            async |s: &Suite| {
                let id = s.put(s.root, "trunc.bin", b"0123456789").await?;
                let size = |n| SetAttrs {
                    size: Some(n),
                    ..SetAttrs::none()
                };
                ok("truncate to 4", s.gateway.setattr(&ROOT, id, size(4)).await)?;
                ok("extend to 8", s.gateway.setattr(&ROOT, id, size(8)).await)?;
                let got = s.content(id).await?;
                ensure(got == b"0123\0\0\0\0", || format!("holds {got:?}"))
            },
        )
        .await;
        self.record(
            "chmod",
            Capabilities::CREATE | Capabilities::SET_MODE,
            async |s: &Suite| {
                let id = s.put(s.root, "mode.txt", b"").await?;
                let a = ok(
                    "chmod",
                    s.gateway
                        .setattr(
                            &ROOT,
                            id,
                            SetAttrs {
                                mode: Some(0o640),
                                ..SetAttrs::none()
                            },
                        )
                        .await,
                )?;
                ensure(a.mode & 0o7777 == 0o640, || format!("mode {:o}", a.mode))
            },
        )
        .await;
        self.record(
            "set modification time",
            Capabilities::CREATE | Capabilities::SET_TIMES,
            async |s: &Suite| {
                let id = s.put(s.root, "times.txt", b"").await?;
                let at = Timestamp {
                    seconds: 1_000_000_000,
                    nanoseconds: 0,
                };
                let a = ok(
                    "setattr mtime",
                    s.gateway
                        .setattr(
                            &ROOT,
                            id,
                            SetAttrs {
                                mtime: Some(SetTime::At(at)),
                                ..SetAttrs::none()
                            },
                        )
                        .await,
                )?;
                ensure(a.mtime.seconds == at.seconds, || {
                    format!("mtime {:?}", a.mtime.seconds)
                })
            },
        )
        .await;
        self.record(
            "what was written is in the backend after a flush",
            Capabilities::CREATE | Capabilities::WRITE,
            async |s: &Suite| {
                let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
                let id = s.put(s.root, "flushed.bin", &data).await?;
                ok(
                    "write more",
                    s.gateway
                        .write(&ROOT, id, 400_000, Bytes::from_static(b"end"))
                        .await,
                )?;
                // Whole-object plugins get staged files at commit; others have nothing staged.
                let left = s.gateway.flush_all(1).await;
                ensure(left == 0, || {
                    format!("{left} file(s) still staged after a flush")
                })?;
                let got = s.content(id).await?;
                let mut want = data;
                want.resize(400_000, 0);
                want.extend_from_slice(b"end");
                ensure(got == want, || {
                    format!(
                        "read back {} bytes that differ from the {} written",
                        got.len(),
                        want.len()
                    )
                })?;
                let a = ok("getattr", s.gateway.getattr(id).await)?;
                ensure(a.size == want.len() as u64, || format!("size {}", a.size))
            },
        )
        .await;
        // Last: it changes the tree behind the gateway's back.
        self.record(
            "changes answer their directories' attributes as a stat then sees them",
            Capabilities::CREATE,
            async |s: &Suite| {
                let (b, caps) = (s.backend(), s.caps);
                // In a new directory when the plugin makes them: its parent's link count
                // tells attributes read before the change from those read after.
                let dir = if caps.contains(Capabilities::MKDIR) {
                    let made = ok("mkdir", b.mkdir("dir-attrs", 0o755).await)?;
                    s.as_stat_says("mkdir", "", made.dir).await?;
                    "dir-attrs"
                } else {
                    ""
                };
                let file = format!(
                    "{dir}{}dir-attrs.txt",
                    if dir.is_empty() { "" } else { "/" }
                );
                let made = ok("create", b.create(&file, 0o644, true).await)?;
                s.as_stat_says("create", dir, made.dir).await?;
                // A rename moves it to the root: the file is then in `file_dir`.
                let (file, file_dir) = if caps.contains(Capabilities::RENAME) {
                    let renamed = ok("rename", b.rename(&file, "dir-attrs-moved.txt").await)?;
                    s.as_stat_says("rename (source)", dir, renamed.source_dir)
                        .await?;
                    s.as_stat_says("rename (destination)", "", renamed.destination_dir)
                        .await?;
                    ("dir-attrs-moved.txt".to_string(), "")
                } else {
                    (file, dir)
                };
                if caps.contains(Capabilities::REMOVE) {
                    let after = ok("remove", b.remove(&file).await)?;
                    s.as_stat_says("remove", file_dir, after).await?;
                    if !dir.is_empty() {
                        s.as_stat_says("rmdir", "", ok("rmdir", b.rmdir(dir).await)?)
                            .await?;
                    }
                }
                Ok(())
            },
        )
        .await;
    }
}
