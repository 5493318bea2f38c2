//! The crate's layering, checked from its source: each top-level module of `host/src` may
//! import (`crate::<module>`) only modules of lower layers, so imports point down, from the
//! NFS front to the gateway core to the backend seam to the plugin runtime to the native
//! object-store client to the capabilities and plain data, and
//! no two modules import each other. A new module must be given a layer here.

use std::collections::BTreeMap;
use std::path::Path;

/// The layers, lowest first. A module may import only modules of an earlier line.
const LAYERS: &[&[&str]] = &[
    // plain data and leaf utilities
    &[
        "stable_hash",
        "blocking",
        "buffer_pool",
        "memory",
        "heap_meter",
        "metrics",
        "wit_types",
        "client_quota",
        "positioned_io",
    ],
    &["copy_file", "config", "locks", "shares"],
    &["connections"],
    // the native object-store client, which the core uses directly and plugins through a
    // capability
    &["objstore"],
    // ONC RPC framing, call and reply headers, for every program served
    &["rpc"],
    // the plugin runtime and the capabilities it gives plugins
    &["plugin"],
    // the typed seam between the core and what serves a mount: the WebAssembly adapter and
    // the in-memory backend
    &["backend"],
    // the gateway core
    &["gateway"],
    // the NFS front
    &["nfs"],
    // what the command line wires together
    &["portmap", "admin", "conformance", "demo", "mount_cmd"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` has no layer in host/tests/layers.rs"))
}

/// Every `crate::<name>` named in `text`, outside `#[cfg(test)]` modules at the end of a file.
fn imports(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let name: String = code[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

/// (importing module, imported module) -> the first file where it happens.
fn module_imports(src: &Path) -> BTreeMap<(String, String), String> {
    let mut edges = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let first = relative.components().next().unwrap();
            let module = first.as_os_str().to_str().unwrap().trim_end_matches(".rs");
            if module == "lib" || module == "main" {
                continue;
            }
            for imported in imports(&std::fs::read_to_string(&path).unwrap()) {
                if imported != module {
                    edges
                        .entry((module.to_string(), imported))
                        .or_insert_with(|| relative.display().to_string());
                }
            }
        }
    }
    edges
}

#[test]
fn imports_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = module_imports(&src);
    assert!(
        edges
            .keys()
            .any(|(from, to)| from == "nfs" && to == "gateway"),
        "the scan found no import of the gateway by the NFS front: it reads nothing"
    );
    let upward: Vec<String> = edges
        .iter()
        .filter(|((from, to), _)| layer_of(to) >= layer_of(from))
        .map(|((from, to), file)| format!("{file}: `{from}` imports `{to}`"))
        .collect();
    assert!(
        upward.is_empty(),
        "imports that do not point down:\n{}",
        upward.join("\n")
    );
}

#[test]
fn every_module_has_a_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"));
    for line in lib.unwrap().lines() {
        if let Some(module) = line.trim().strip_prefix("pub mod ") {
            layer_of(module.trim_end_matches(';'));
        }
    }
}
