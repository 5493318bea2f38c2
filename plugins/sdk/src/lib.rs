//! The SDK for nfsgw plugins written in Rust: the bindings of `wit/backend.wit`, generated once
//! here and re-exported, the [`Backend`] trait (one method per export of the interface, with
//! defaults where the interface allows one), the [`export!`] macro that makes a type the
//! plugin's implementation, and the helpers plugins would otherwise each write again: attributes
//! from a mount's owner and modes ([`attrs`]), config values ([`config`]), mount-relative paths
//! ([`paths`]), pages cut from a whole listing ([`paging`]), file-system sizes ([`fs_stats`])
//! and what a whole-object store declares ([`mount_info`]).
//!
//! A plugin is one trait impl:
//!
//! ```ignore
//! use nfsgw_plugin_sdk::{Attrs, Backend, DirPage, Error, MountInfo, ReadResult};
//!
//! struct Empty;
//!
//! impl Backend for Empty {
//!     fn init(_config: Vec<(String, String)>) -> Result<MountInfo, String> { todo!() }
//!     fn stat(path: String) -> Result<Attrs, Error> { todo!() }
//!     fn list_dir(path: String, cursor: Option<String>, limit: u32) -> Result<DirPage, Error> { todo!() }
//!     fn read(path: String, offset: u64, len: u32) -> Result<ReadResult, Error> { todo!() }
//!     fn statfs() -> Result<nfsgw_plugin_sdk::FsStats, Error> { todo!() }
//! }
//!
//! nfsgw_plugin_sdk::export!(Empty);
//! ```

wit_bindgen::generate!({
    world: "plugin",
    path: "../../wit",
    pub_export_macro: true,
    default_bindings_module: "nfsgw_plugin_sdk",
});

pub mod attrs;
mod backend;
pub mod config;
pub mod fs_stats;
pub mod mount_info;
pub mod paging;
pub mod paths;

pub use backend::Backend;
pub use nfsgw::backend::types::{
    Attrs, BlobRange, Capabilities, Data, Device, DirEntry, DirPage, Error, FileKind, FileRange,
    FsStats, Made, MountInfo, ReadResult, Renamed, SetAttrs, SetTime, Timestamp,
};
pub use nfsgw::backend::{blobstore, host_fs, http, log, secrets, staging};
