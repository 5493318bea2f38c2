//! The plugin runtime: WebAssembly components in wasmtime, and the capabilities the host gives
//! them (`host_fs`, `log`).

pub mod bindings;
pub mod bundled;
pub mod host_fs;
mod log;
pub mod runtime;
