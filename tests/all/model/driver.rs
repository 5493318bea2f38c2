//! Plays the model's operations through the real NFS front: one server per sequence (a
//! `local` export of a fresh temporary directory, or a `memory` mount), one `nfs3_client`
//! connection per caller in [`USERS`], every object found again by path from the export root
//! before each step, and RESTART as a stop and start of the server and new mounts.

use std::os::unix::fs::PermissionsExt;

use nfs3_types::nfs3::{createhow3, nfs_fh3, nfsstat3, sattr3, Nfs3Option};
use tempfile::TempDir;

use super::ops::{Op, Spot, DIR_MODES, FILE_MODES, TARGETS, USERS};
use super::posix::{Kind, Model};
use crate::harness::{self, Client, Server};

/// The mount the sequences use.
const EXPORT: &str = "/m";

/// Which backend serves the export, and whether root is squashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// The `local` plugin as nfsgw serves a stranger by default: root squashed.
    LocalSquashed,
    /// The `local` plugin with `root_squash = false`.
    Local,
    /// The `memory` backend with `root_squash = false`. (Squashed, its root directory, root's
    /// and 0755, would take no entries from anyone.) It loses its tree on restart, by design.
    Memory,
}

impl Setup {
    pub fn squash(self) -> bool {
        self == Setup::LocalSquashed
    }

    /// Whether the tree is gone after a restart.
    pub fn forgets(self) -> bool {
        self == Setup::Memory
    }
}

/// A running server for one sequence and a client per caller.
pub struct Driver {
    setup: Setup,
    clients: Vec<Client>,
    server: Option<Server>,
    /// The directory a `local` export serves (dropped last).
    _dir: Option<TempDir>,
}

impl Driver {
    /// Starts the server on an empty export whose root is root's with mode 0777.
    pub async fn start(setup: Setup) -> Driver {
        let (mount, dir) = match setup {
            Setup::Memory => (harness::memory_mount("m", ""), None),
            Setup::Local | Setup::LocalSquashed => {
                let dir = harness::tempdir("nfsgw-refmodel-");
                std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
                    .unwrap();
                let mount = if setup.squash() {
                    harness::squashed_local_mount("m", dir.path(), "")
                } else {
                    harness::local_mount("m", dir.path(), false, "")
                };
                (mount, Some(dir))
            }
        };
        let mut driver = Driver {
            setup,
            clients: Vec::new(),
            server: Some(Server::start(&mount)),
            _dir: dir,
        };
        driver.connect().await;
        driver
    }

    /// Mounts as every caller; on `memory`, opens the new root to everyone as root.
    async fn connect(&mut self) {
        let server = self.server.as_ref().expect("a running server");
        self.clients.clear();
        for (uid, gid) in USERS {
            let client = server.try_mount_as(EXPORT, Some((uid, gid))).await;
            self.clients
                .push(client.unwrap_or_else(|e| {
                    panic!("mount as {uid}:{gid}: {e:?}\n{}", server.stderr())
                }));
        }
        if self.setup == Setup::Memory {
            let root = self.clients[0].root.clone();
            self.clients[0]
                .set_mode(&root, 0o777)
                .await
                .expect("chmod the memory root");
        }
    }

    /// The client of caller `user`.
    pub fn client(&mut self, user: usize) -> &mut Client {
        &mut self.clients[user]
    }

    /// The handle of the object at `path`, looked up one name at a time, each by a caller
    /// that owns the directory searched (every directory mode keeps its owner's search bit).
    pub async fn resolve(&mut self, model: &Model, path: &str) -> Result<nfs_fh3, String> {
        let mut fh = self.clients[0].root.clone();
        let mut ino = 0;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let searcher = model.user_acting_as(model.nodes[&ino].uid);
            fh = self.clients[searcher]
                .lookup(&fh, part)
                .await
                .map_err(|e| format!("LOOKUP of {part:?} on the way to {path:?}: {e:?}"))?;
            ino = model
                .entries(ino)
                .and_then(|e| e.get(part))
                .copied()
                .ok_or_else(|| format!("the model has no {path:?}, yet the step was sent"))?;
        }
        Ok(fh)
    }

    /// The handle of a spot's parent.
    async fn parent(&mut self, model: &Model, at: Spot) -> Result<nfs_fh3, String> {
        self.resolve(model, at.parent_path()).await
    }

    /// Plays `op` (which the model, in state `model`, could send): the status it got, `None`
    /// for OK.
    pub async fn play(&mut self, op: &Op, model: &Model) -> Result<Option<nfsstat3>, String> {
        let status = match *op {
            Op::Create { user, at, mode } => {
                let dir = self.parent(model, at).await?;
                let attrs = sattr3 {
                    mode: Nfs3Option::Some(FILE_MODES[mode]),
                    ..sattr3::default()
                };
                let how = createhow3::GUARDED(attrs);
                self.client(user)
                    .create_how(&dir, at.name(), how)
                    .await
                    .err()
            }
            Op::Mkdir { user, at, mode } => {
                let dir = self.parent(model, at).await?;
                let mode = DIR_MODES[mode];
                self.client(user)
                    .mkdir_mode(&dir, at.name(), mode)
                    .await
                    .err()
            }
            Op::Symlink { user, at, target } => {
                let dir = self.parent(model, at).await?;
                let target = TARGETS[target];
                self.client(user)
                    .symlink(&dir, at.name(), target)
                    .await
                    .err()
            }
            Op::Write {
                user,
                at,
                offset,
                ref data,
                stable,
            } => {
                let fh = self.resolve(model, &at.path()).await?;
                let client = self.client(user);
                let written = if stable {
                    client.write(&fh, offset, data).await
                } else {
                    client
                        .write_unstable(&fh, offset, data)
                        .await
                        .map(|(n, _, _)| n)
                };
                match written {
                    Ok(n) if n as usize != data.len() => {
                        return Err(format!("WRITE wrote {n} of {} bytes", data.len()))
                    }
                    other => other.err(),
                }
            }
            Op::Truncate { user, at, size } => {
                let fh = self.resolve(model, &at.path()).await?;
                self.client(user).set_size(&fh, size).await.err()
            }
            Op::Chmod { user, at, mode } => {
                let fh = self.resolve(model, &at.path()).await?;
                let ino = model.lookup(&at.path()).expect("resolved");
                let mode = match model.nodes[&ino].kind {
                    Kind::Dir(_) => DIR_MODES[mode],
                    _ => FILE_MODES[mode],
                };
                self.client(user).set_mode(&fh, mode).await.err()
            }
            Op::Remove { user, at } => {
                let dir = self.parent(model, at).await?;
                self.client(user).remove(&dir, at.name()).await.err()
            }
            Op::Rmdir { user, at } => {
                let dir = self.parent(model, at).await?;
                self.client(user).rmdir(&dir, at.name()).await.err()
            }
            Op::Rename { user, from, to } => {
                let from_dir = self.parent(model, from).await?;
                let to_dir = self.parent(model, to).await?;
                let client = self.client(user);
                client
                    .rename(&from_dir, from.name(), &to_dir, to.name())
                    .await
                    .err()
            }
            Op::Link { user, from, to } => {
                let file = self.resolve(model, &from.path()).await?;
                let dir = self.parent(model, to).await?;
                self.client(user).link(&file, &dir, to.name()).await.err()
            }
            Op::Commit { user, at } => {
                let fh = self.resolve(model, &at.path()).await?;
                self.client(user).commit(&fh).await.err()
            }
            Op::Restart => {
                let server = self.server.take().expect("a running server");
                self.server = Some(server.restart());
                self.connect().await;
                None
            }
        };
        Ok(status)
    }
}
