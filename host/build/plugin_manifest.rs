//! The manifest of a bundled plugin: the `[package.metadata.nfsgw]` table of its Cargo.toml,
//! which says what a mount of the plugin needs from the host (a host directory named by a
//! config key, an object store, hosts it may reach by default). `build.rs` reads one for every
//! bundled plugin and writes the table `plugin::bundled` looks plugins up in; a manifest that is
//! missing or malformed fails the build with a message naming the file and the key.

/// What one bundled plugin says about itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// `dir_config_key`: the `[mount.config]` key naming a host directory to grant.
    pub dir_config_key: Option<String>,
    /// `needs_object_store`: a mount must grant an object store (`[mount.s3]`).
    pub needs_object_store: bool,
    /// `default_allow_hosts`: the hosts a mount may reach when its config sets no `allow_hosts`.
    pub default_allow_hosts: Vec<String>,
}

const KEYS: &str = "dir_config_key, needs_object_store, default_allow_hosts";

/// Reads the manifest out of the text of a Cargo.toml; `file` names it in errors.
pub fn parse(file: &str, cargo_toml: &str) -> Result<Manifest, String> {
    let doc: toml::Table = cargo_toml
        .parse()
        .map_err(|e| format!("{file}: not valid TOML: {e}"))?;
    let table = ["package", "metadata", "nfsgw"]
        .iter()
        .try_fold(&doc, |t, key| t.get(*key)?.as_table())
        .ok_or_else(|| {
            format!(
                "{file}: no [package.metadata.nfsgw] table: a bundled plugin describes there \
                 what its mount needs ({KEYS})"
            )
        })?;
    let mut manifest = Manifest::default();
    for (key, value) in table {
        let wrong = |expected: &str| {
            format!(
                "{file}: [package.metadata.nfsgw] key `{key}`: expected {expected}, found {}",
                value.type_str()
            )
        };
        match key.as_str() {
            "dir_config_key" => match value.as_str() {
                Some(name) if !name.is_empty() => manifest.dir_config_key = Some(name.to_string()),
                _ => return Err(wrong("a config key name")),
            },
            "needs_object_store" => {
                manifest.needs_object_store = value.as_bool().ok_or_else(|| wrong("a boolean"))?
            }
            "default_allow_hosts" => {
                manifest.default_allow_hosts = value
                    .as_array()
                    .and_then(|hosts| {
                        hosts
                            .iter()
                            .map(|h| h.as_str().filter(|h| !h.is_empty()).map(str::to_string))
                            .collect()
                    })
                    .ok_or_else(|| wrong("an array of host names"))?
            }
            _ => {
                return Err(format!(
                    "{file}: [package.metadata.nfsgw] has unknown key `{key}` (known: {KEYS})"
                ))
            }
        }
    }
    Ok(manifest)
}

impl Manifest {
    /// The `Bundled` value (see `plugin::bundled`) of plugin `name` whose component is at
    /// `wasm_path`, as Rust source.
    pub fn to_rust(&self, name: &str, wasm_path: &str) -> String {
        format!(
            "Bundled {{ name: {name:?}, wasm: include_bytes!({wasm_path:?}), dir_key: {:?}, \
             needs_store: {}, default_hosts: &{:?} }}",
            self.dir_config_key.as_deref(),
            self.needs_object_store,
            self.default_allow_hosts,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "plugins/x/Cargo.toml";

    fn with_table(body: &str) -> Result<Manifest, String> {
        parse(
            FILE,
            &format!("[package]\nname = \"x\"\n[package.metadata.nfsgw]\n{body}"),
        )
    }

    #[test]
    fn every_key_is_read_and_the_rest_default() {
        let full = with_table(
            "dir_config_key = \"root\"\nneeds_object_store = true\n\
             default_allow_hosts = [\"a.example\", \"*.b.example\"]",
        )
        .unwrap();
        assert_eq!(full.dir_config_key.as_deref(), Some("root"));
        assert!(full.needs_object_store);
        assert_eq!(full.default_allow_hosts, ["a.example", "*.b.example"]);
        assert_eq!(with_table("").unwrap(), Manifest::default());
    }

    #[test]
    fn malformed_manifests_name_the_file_and_the_key() {
        for (body, key) in [
            ("needs_object_store = \"yes\"", "`needs_object_store`"),
            ("dir_config_key = 3", "`dir_config_key`"),
            ("dir_config_key = \"\"", "`dir_config_key`"),
            ("default_allow_hosts = [\"a\", 1]", "`default_allow_hosts`"),
            ("default_allow_hosts = \"a\"", "`default_allow_hosts`"),
            ("needs_store = true", "`needs_store`"),
        ] {
            let err = with_table(body).unwrap_err();
            assert!(err.starts_with(FILE) && err.contains(key), "{body}: {err}");
        }
        let missing = parse(FILE, "[package]\nname = \"x\"\n").unwrap_err();
        assert!(missing.starts_with(FILE) && missing.contains("[package.metadata.nfsgw]"));
        assert!(parse(FILE, "[package").unwrap_err().starts_with(FILE));
    }

    #[test]
    fn the_generated_entry_is_a_bundled_value() {
        let manifest = Manifest {
            dir_config_key: Some("root".into()),
            needs_object_store: false,
            default_allow_hosts: vec!["h.example".into()],
        };
        assert_eq!(
            manifest.to_rust("local", "/o/local.wasm"),
            "Bundled { name: \"local\", wasm: include_bytes!(\"/o/local.wasm\"), \
             dir_key: Some(\"root\"), needs_store: false, default_hosts: &[\"h.example\"] }"
        );
    }
}
