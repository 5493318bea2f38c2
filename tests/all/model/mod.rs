//! Reference-model tests through the real NFS front (issue #27, item 6, after mountpoint-s3's):
//! proptest generates sequences of CREATE, WRITE (FILE_SYNC and UNSTABLE, at offsets that leave
//! holes), truncating SETATTR, chmod, REMOVE, RMDIR, RENAME, LINK, SYMLINK, MKDIR, COMMIT and
//! server restarts, by uids 0, 1000 and 1001 (and 1000 in 1001's group), in a few names so
//! that they collide. Each step runs through `nfsgw` and is checked against a small POSIX model
//! (`posix.rs`): the status must be one the model allows, and after every step the whole tree,
//! walked with READDIRPLUS in small pages and READ, must match the model's kinds, sizes,
//! contents, owners, modes and link counts. Three setups run: `local` with root squashed (the
//! default), `local` and `memory` with `root_squash = false`. `memory` loses its tree on a
//! restart by design, so its model is emptied then; `local` keeps everything, unstable writes
//! included (the stop is a clean SIGTERM). Failures shrink, and their seeds are kept in
//! `regressions.txt` beside this file, replayed first on every run; each real defect found
//! also has a named test below with its shrunk sequence. Each setup runs
//! `NFSGW_REFMODEL_CASES` sequences (default 24) of up to `NFSGW_REFMODEL_STEPS` steps
//! (default 40) from `NFSGW_REFMODEL_SEED` (default fixed, so CI runs the same cases). Search
//! longer with `NFSGW_REFMODEL_CASES=500 NFSGW_REFMODEL_SEED=$RANDOM cargo test --release -p
//! nfsgw-tests --test all -- model::`.

mod compare;
mod defects;
mod driver;
mod ops;
mod posix;

use std::fmt::Write as _;
use std::time::Duration;

use proptest::test_runner::{
    Config, FileFailurePersistence, RngSeed, TestCaseError, TestError, TestRunner,
};

use crate::harness;
use driver::{Driver, Setup};
use ops::Op;
use posix::Model;

/// A step that takes longer is reported as a hang (a generous bound, not a timing check).
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the seeds of failures found so far are kept.
const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/all/model/regressions.txt");

/// Plays one sequence on a fresh server; `Err` reports the first divergence and the steps
/// before it.
async fn play(setup: Setup, ops: &[Op]) -> Result<(), String> {
    let mut model = Model::new(setup.squash());
    let mut driver = Driver::start(setup).await;
    let mut log = String::new();
    for (i, op) in ops.iter().enumerate() {
        let before = model.clone();
        let Some(expected) = model.apply(op) else {
            let _ = writeln!(log, "  {i:>3}. {op:?}: not sent");
            continue;
        };
        let status = match tokio::time::timeout(STEP_TIMEOUT, driver.play(op, &before)).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => return Err(format!("{setup:?}, step {i} {op:?}: {e}\n{log}")),
            Err(_) => return Err(format!("{setup:?}, step {i} {op:?}: no answer\n{log}")),
        };
        let shown = status.map_or("OK".to_string(), |s| format!("{s:?}"));
        let _ = writeln!(log, "  {i:>3}. {op:?}: {shown}");
        if !expected.allows(status) {
            return Err(format!(
                "{setup:?}, step {i} {op:?} answered {shown}; the model allows {}{:?}\n{log}",
                if expected.ok { "OK or " } else { "" },
                expected.errors
            ));
        }
        if status.is_some() {
            model = before;
        } else if matches!(op, Op::Restart) && setup.forgets() {
            model = Model::new(setup.squash());
        }
        let compared = tokio::time::timeout(STEP_TIMEOUT, compare::compare(&mut driver, &model));
        match compared.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("{setup:?}, after step {i} {op:?}: {e}\n{log}")),
            Err(_) => return Err(format!("{setup:?}, after step {i}: the walk got no answer")),
        }
    }
    Ok(())
}

/// Runs the property for one setup, shrinking a failure to a minimal sequence.
fn check(setup: Setup) {
    let config = Config {
        cases: harness::env_number("NFSGW_REFMODEL_CASES", 24) as u32,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        rng_seed: RngSeed::Fixed(harness::env_number("NFSGW_REFMODEL_SEED", 27_006)),
        max_shrink_iters: 512,
        ..Config::default()
    };
    let steps = harness::env_number("NFSGW_REFMODEL_STEPS", 40) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut runner = TestRunner::new(config);
    let outcome = runner.run(&ops::sequence(steps), |ops| {
        runtime
            .block_on(play(setup, &ops))
            .map_err(TestCaseError::fail)
    });
    match outcome {
        Ok(()) => {}
        Err(TestError::Fail(why, ops)) => {
            panic!("{setup:?} breaks the model; shrunk to {ops:#?}\n{why}")
        }
        Err(e) => panic!("{setup:?}: {e}"),
    }
}

#[test]
fn local_squashed_matches_the_posix_model() {
    check(Setup::LocalSquashed);
}

#[test]
fn local_matches_the_posix_model() {
    check(Setup::Local);
}

#[test]
fn memory_matches_the_posix_model() {
    check(Setup::Memory);
}
