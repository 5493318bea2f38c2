//! The plugins built with nfsgw and embedded in its binary, found by name.
//!
//! `build.rs` compiles `plugins/*` to components; this module says what each one needs from
//! its mount (which config key names the host directory it serves).

include!(concat!(env!("OUT_DIR"), "/bundled_plugins.rs"));

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

/// Where the public Hugging Face Hub and its Xet storage answer.
const PUBLIC_HUB_HOSTS: &[&str] = &["huggingface.co", "*.huggingface.co", "*.hf.co"];

/// Where a granted directory appears inside the sandbox.
pub const EXPORT_GUEST_PATH: &str = "/export";

pub fn find(name: &str) -> Option<Bundled> {
    let &(name, wasm) = BUNDLED_WASM.iter().find(|(n, _)| *n == name)?;
    let dir_key = (name == "local").then_some("root");
    Some(Bundled {
        name,
        wasm,
        dir_key,
        needs_store: name == "s3",
        default_hosts: if name == "hub" { PUBLIC_HUB_HOSTS } else { &[] },
    })
}

pub fn names() -> impl Iterator<Item = &'static str> {
    BUNDLED_WASM.iter().map(|(n, _)| *n)
}
