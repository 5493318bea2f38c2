//! Builds the bundled plugins (plugins/*) to WebAssembly components with
//! scripts/build-plugins.sh and generates the table that embeds them in the binary.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // The fuzz targets (fuzz/) need no plugins, and build with a toolchain that may lack the
    // wasm target: NFSGW_NO_PLUGINS=1 embeds none.
    println!("cargo:rerun-if-env-changed=NFSGW_NO_PLUGINS");
    if std::env::var_os("NFSGW_NO_PLUGINS").is_some() {
        let empty = "pub const BUNDLED_WASM: &[(&str, &[u8])] = &[];\n";
        std::fs::write(out.join("bundled_plugins.rs"), empty).unwrap();
        return;
    }
    for watched in ["plugins", "wit", "scripts/build-plugins.sh"] {
        println!("cargo:rerun-if-changed={}", repo.join(watched).display());
    }
    // A persistent directory next to this build's target dir, so plugin builds are incremental.
    let target_dir = out.ancestors().nth(4).unwrap().join("wasm-plugins");
    let wasm_dir = out.join("plugins");
    let status = Command::new("bash")
        .arg(repo.join("scripts/build-plugins.sh"))
        .arg(&wasm_dir)
        .env("NFSGW_PLUGIN_TARGET_DIR", &target_dir)
        .status()
        .expect("cannot run bash for scripts/build-plugins.sh");
    if !status.success() {
        panic!("building the bundled plugins failed; run scripts/wasm-toolchain.sh to set up the wasm target");
    }
    let mut table = String::from("/// (name, component bytes) of every bundled plugin.\npub const BUNDLED_WASM: &[(&str, &[u8])] = &[\n");
    let mut names: Vec<_> = std::fs::read_dir(&wasm_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    names.sort();
    for path in names {
        let name = path.file_stem().unwrap().to_str().unwrap();
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    table.push_str("];\n");
    std::fs::write(out.join("bundled_plugins.rs"), table).unwrap();
}
