//! Builds the bundled plugins (plugins/*) to WebAssembly components with
//! scripts/build-plugins.sh and generates the table that embeds them in the binary.

use std::path::PathBuf;
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

/// Sets `NFSGW_GIT_COMMIT` (the commit built, "unknown" outside a git checkout) and
/// `NFSGW_WIT_PACKAGE` (the plugin interface's package line) for `nfsgw --version`.
fn describe_build(repo: &std::path::Path) {
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
