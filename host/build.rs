//! Builds the bundled plugins (plugins/*) to WebAssembly components with
//! scripts/build-plugins.sh and generates the table that embeds them in the binary, with what
//! each plugin's manifest (`[package.metadata.nfsgw]` in its Cargo.toml) says its mounts need.

#[path = "build/plugin_manifest.rs"]
mod plugin_manifest;

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let repo = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    describe_build(&repo);
    // The fuzz targets (fuzz/) need no plugins, and build with a toolchain that may lack the
    // wasm target: NFSGW_NO_PLUGINS=1 embeds none.
    println!("cargo:rerun-if-env-changed=NFSGW_NO_PLUGINS");
    if std::env::var_os("NFSGW_NO_PLUGINS").is_some() {
        let empty = "pub const BUNDLED: &[Bundled] = &[];\n";
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
    let table = bundled_table(&repo, &wasm_dir).unwrap_or_else(|message| {
        eprintln!("error: {message}");
        std::process::exit(1);
    });
    std::fs::write(out.join("bundled_plugins.rs"), table).unwrap();
}

/// The Rust source of `BUNDLED`: every component in `wasm_dir` with its plugin's manifest.
fn bundled_table(repo: &Path, wasm_dir: &Path) -> Result<String, String> {
    let mut table = String::from("/// Every bundled plugin.\npub const BUNDLED: &[Bundled] = &[\n");
    let mut components: Vec<_> = std::fs::read_dir(wasm_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    components.sort();
    for wasm in components {
        let name = wasm.file_stem().unwrap().to_str().unwrap();
        let file = format!("plugins/{name}/Cargo.toml");
        let text = std::fs::read_to_string(repo.join(&file))
            .map_err(|e| format!("{file}: cannot read the plugin's manifest: {e}"))?;
        let manifest = plugin_manifest::parse(&file, &text)?;
        let entry = manifest.to_rust(name, &wasm.display().to_string());
        table.push_str(&format!("    {entry},\n"));
    }
    table.push_str("];\n");
    Ok(table)
}

/// Sets `NFSGW_GIT_COMMIT` (the commit built, "unknown" outside a git checkout) and
/// `NFSGW_WIT_PACKAGE` (the plugin interface's package line) for `nfsgw --version`.
fn describe_build(repo: &Path) {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=NFSGW_GIT_COMMIT={commit}");
    // A new commit moves HEAD or the branch it names; only existing files are watched (cargo
    // would rerun this script on every build for a missing one).
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for name in std::iter::once("HEAD").chain(branch.as_deref()) {
        let path = git(&["rev-parse", "--git-path", name]).map(|p| repo.join(p));
        if let Some(path) = path.filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let wit = repo.join("wit/backend.wit");
    let text = std::fs::read_to_string(&wit).unwrap();
    let package = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("package "))
        .and_then(|p| p.strip_suffix(';'))
        .expect("wit/backend.wit names its package");
    println!("cargo:rustc-env=NFSGW_WIT_PACKAGE={package}");
}
