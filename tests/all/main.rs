//! End-to-end tests: the real `nfsgw` binary, started per test with its own config, temporary
//! directories and ephemeral port, driven by real NFS clients (`nfs3_client` and libnfs's
//! command-line tools).
//!
//! Build the server first (`cargo build --release -p nfsgw`), then run
//! `cargo test --release -p nfsgw-tests`. The faulty test plugin is built once per test process
//! by `scripts/build-plugins.sh`.

mod backends;
mod cold_names;
mod conformance;
mod demo;
mod faults;
mod harness;
mod hostile;
mod hub;
mod libnfs;
mod listings;
mod local;
mod locks;
mod model;
mod objstore_faults;
mod open_files;
mod ops;
mod portmap;
mod posix;
mod raw_rpc;
mod s3;
mod s3_server;
