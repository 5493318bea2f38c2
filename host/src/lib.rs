//! nfsgw's modules, as a library so that the fuzz targets (`fuzz/`) reach the RPC entry
//! points in process. The `nfsgw` binary (`main.rs`) is their one real user: this is not a
//! stable API. See `docs/DESIGN.md` for what each module owns.

pub mod admin;
pub mod backend;
pub mod blocking;
pub mod buffer_pool;
pub mod client_quota;
pub mod config;
pub mod conformance;
pub mod connections;
pub mod copy_file;
pub mod demo;
pub mod gateway;
#[cfg(test)]
mod heap_meter;
pub mod locks;
pub mod memory;
pub mod metrics;
pub mod mount_cmd;
pub mod nfs;
pub mod objstore;
pub mod plugin;
pub mod portmap;
pub mod positioned_io;
pub mod rpc;
pub mod shares;
pub mod stable_hash;
pub mod wit_types;

#[cfg(test)]
#[global_allocator]
static HEAP: heap_meter::CountingAllocator = heap_meter::CountingAllocator;
