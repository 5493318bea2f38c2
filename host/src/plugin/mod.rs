//! The plugin runtime: WebAssembly components in wasmtime, and the capabilities the host gives
//! them, one module each (`host_fs`, `blobstore`, `staged_file` for the `staging` interface,
//! `http`, `secrets`, `log`), and the memory bounds of a mount's plugin (`memory`). Only the
//! runtime and these adaptors live here: `blobstore` offers plugins the native object-store
//! client of `crate::objstore`, which the gateway core also uses directly.

pub mod bindings;
pub mod blobstore;
pub mod bundled;
pub mod host_fs;
pub mod http;
mod log;
pub mod memory;
pub mod runtime;
pub mod secrets;
pub mod staged_file;
