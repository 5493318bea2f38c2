//! The threat model as tests (docs/SECURITY.md): every case is played from a raw RPC client
//! (`nfs3_client`, or bytes on a socket) as a hostile client would, mostly with an ordinary
//! uid against a mount that squashes root, and must be refused or survived.
//!
//! `model` plays the whole model at once: seeded random sequences of NFS calls by several
//! users, each call checked against POSIX rules on the host's own view of the export. It runs
//! 30 sequences of 80 calls by default; `NFSGW_MODEL_CASES=500 NFSGW_MODEL_STEPS=200` runs a
//! longer search, and `NFSGW_MODEL_SEED` starts it elsewhere (a failure report prints the
//! variables that replay it).

mod admin;
mod front;
mod gateway;
mod host_fs;
mod journal;
mod model;
mod plugins;
mod staging;
