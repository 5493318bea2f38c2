//! The plugins built with nfsgw and embedded in its binary, found by name.
//!
//! `build.rs` compiles `plugins/*` to components and generates their table from each plugin's
//! manifest (`[package.metadata.nfsgw]` in its Cargo.toml, read by `build/plugin_manifest.rs`):
//! what a mount of the plugin needs from the host. This module names no plugin itself.

/// A plugin shipped inside the nfsgw binary.
pub struct Bundled {
    pub name: &'static str,
    pub wasm: &'static [u8],
    /// The `[mount.config]` key naming a host directory to grant, if the plugin serves one.
    pub dir_key: Option<&'static str>,
    /// The plugin serves an object store: its mount must grant one (`[mount.s3]`).
    pub needs_store: bool,
    /// The hosts its mount may reach when the config sets no `allow_hosts`.
    pub default_hosts: &'static [&'static str],
}

include!(concat!(env!("OUT_DIR"), "/bundled_plugins.rs"));

/// Where a granted directory appears inside the sandbox.
pub const EXPORT_GUEST_PATH: &str = "/export";

pub fn find(name: &str) -> Option<&'static Bundled> {
    BUNDLED.iter().find(|b| b.name == name)
}

pub fn names() -> impl Iterator<Item = &'static str> {
    BUNDLED.iter().map(|b| b.name)
}

#[cfg(test)]
#[path = "../../build/plugin_manifest.rs"]
mod plugin_manifest;

#[cfg(test)]
mod tests {
    use super::*;

    /// What the bundled plugins' manifests say reaches the table the host uses.
    #[test]
    fn the_table_carries_each_plugins_manifest() {
        let local = find("local").expect("local is bundled");
        assert_eq!(local.dir_key, Some("root"));
        assert!(!local.needs_store && local.default_hosts.is_empty());
        let s3 = find("s3").expect("s3 is bundled");
        assert!(s3.needs_store && s3.dir_key.is_none());
        let hub = find("hub").expect("hub is bundled");
        assert!(hub.default_hosts.contains(&"huggingface.co"));
        assert!(!hub.needs_store && hub.dir_key.is_none());
        assert!(find("sdk").is_none(), "the SDK is a library, not a plugin");
        assert!(names().all(|n| !n.is_empty() && find(n).is_some_and(|b| !b.wasm.is_empty())));
    }
}
