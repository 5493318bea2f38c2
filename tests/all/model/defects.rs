//! The defects the reference model found, each as the shrunk sequence that showed it, played
//! on every setup: plain tests that keep the bug fixed whatever the proptest seeds.

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
