//! The defects the reference model found, each as the shrunk sequence that showed it, played
//! on every setup: plain tests that keep the fixed ones fixed whatever the proptest seeds.

use super::driver::Setup;
use super::ops::{Op, Spot};
use super::play;

const SETUPS: [Setup; 3] = [Setup::LocalSquashed, Setup::Local, Setup::Memory];

/// The spot at `PARENTS[parent]` / `NAMES[name]`.
fn spot(parent: usize, name: usize) -> Spot {
    Spot { parent, name }
}

async fn on_every_setup(ops: &[Op]) {
    for setup in SETUPS {
        if let Err(report) = play(setup, ops).await {
            panic!("{report}");
        }
    }
}

/// RENAME of a name that does not exist onto itself answered OK; POSIX says ENOENT (the
/// gateway took equal paths for a rename with nothing to do before looking the source up).
#[tokio::test]
async fn renaming_a_missing_name_onto_itself_is_noent() {
    let d_b = spot(1, 1);
    on_every_setup(&[
        Op::Mkdir {
            user: 0,
            at: spot(0, 2),
            mode: 0,
        },
        Op::Rename {
            user: 0,
            from: d_b,
            to: d_b,
        },
    ])
    .await;
}

/// A refused LINK of a directory (PERM) into itself made the next READDIRPLUS of its parent
/// show the directory's link count from before its subdirectory was made: the refusal dropped
/// its cached attributes, and the parent's cached listing answered with its stale copy.
#[tokio::test]
async fn a_refused_link_leaves_no_stale_link_count_in_listings() {
    let (d, d_a) = (spot(0, 2), spot(1, 0));
    on_every_setup(&[
        Op::Mkdir {
            user: 1,
            at: d,
            mode: 0,
        },
        Op::Mkdir {
            user: 0,
            at: d_a,
            mode: 0,
        },
        Op::Link {
            user: 0,
            from: d,
            to: d_a,
        },
    ])
    .await;
}

/// RENAME of a file to a name under itself ("d" to "d/a") answered INVAL, which POSIX keeps
/// for a directory moved under itself; a file is no directory to hold "a": NOTDIR.
#[tokio::test]
async fn renaming_a_file_under_itself_is_notdir() {
    let d = spot(0, 2);
    on_every_setup(&[
        Op::Create {
            user: 0,
            at: d,
            mode: 0,
        },
        Op::Rename {
            user: 0,
            from: d,
            to: spot(1, 0),
        },
    ])
    .await;
}

/// READDIRPLUS cookies were file ids, so two names of one file in one directory shared a
/// cookie, and paging on after the first skipped the second; a cookie is now the entry's
/// position in its listing (host/src/gateway/cache/listings.rs).
#[tokio::test]
async fn hard_links_in_one_directory_are_all_listed() {
    let (a, b, d, a_d) = (spot(0, 0), spot(0, 1), spot(0, 2), spot(2, 2));
    on_every_setup(&[
        Op::Mkdir {
            user: 0,
            at: a,
            mode: 1,
        },
        Op::Create {
            user: 0,
            at: d,
            mode: 0,
        },
        Op::Link {
            user: 0,
            from: d,
            to: a_d,
        },
        Op::Rename {
            user: 0,
            from: a_d,
            to: b,
        },
    ])
    .await;
}

/// Fixed: the inode journal outlives the memory backend's tree, so after a restart a new
/// object at a name that an old hard-linked file had got that file's inode, whose first name
/// is another old one: READLINK of the new symlink answered NOENT. The same could happen on
/// any backend whose tree changes while nfsgw is down. A name made anew now always gets a new
/// number (`InodeTable::fresh` in host/src/gateway/inodes.rs).
#[tokio::test]
async fn a_new_object_after_a_restart_is_not_an_old_hard_link() {
    let (a, d) = (spot(0, 0), spot(0, 2));
    let ops = [
        Op::Create {
            user: 1,
            at: a,
            mode: 0,
        },
        Op::Link {
            user: 0,
            from: a,
            to: d,
        },
        Op::Restart,
        Op::Symlink {
            user: 0,
            at: d,
            target: 0,
        },
    ];
    if let Err(report) = play(Setup::Memory, &ops).await {
        panic!("{report}");
    }
}
