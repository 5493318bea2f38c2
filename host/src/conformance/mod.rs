//! The plugin conformance suite: the one set of checks every plugin, in every language, must
//! pass (`nfsgw plugin check <plugin>`).
//!
//! It starts a scratch mount of the plugin (the bundled `local` serves a fresh temporary
//! directory) and drives it through the gateway core as a root caller, the way NFS calls
//! would. Checks follow the capabilities the plugin declares: a plugin that declares no
//! changes must refuse them with `read-only`; one that declares `create` must keep what is
//! written, and so on. Each check passes, fails with the reason, or is skipped for a missing
//! capability. This module makes the scratch mount and the report; `checks` holds the checks.

mod checks;

use anyhow::{Context, Result};

use crate::backend::types::Capabilities;
use crate::config::{Config, Source};
use crate::gateway::mounts;
use crate::plugin::runtime::Runtime;

/// The outcome of one check.
pub enum Outcome {
    Passed,
    Failed(String),
    Skipped(&'static str),
}

pub struct Report {
    pub plugin: String,
    pub capabilities: Capabilities,
    pub checks: Vec<(&'static str, Outcome)>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.checks
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
            .count()
    }

    /// The report as printed by `nfsgw plugin check`.
    pub fn render(&self) -> String {
        let mut out = format!(
            "plugin {}\ncapabilities: {:?}\n",
            self.plugin, self.capabilities
        );
        let (mut passed, mut skipped) = (0, 0);
        for (name, outcome) in &self.checks {
            match outcome {
                Outcome::Passed => {
                    passed += 1;
                    out.push_str(&format!("ok    {name}\n"));
                }
                Outcome::Failed(why) => out.push_str(&format!("FAIL  {name}: {why}\n")),
                Outcome::Skipped(why) => {
                    skipped += 1;
                    out.push_str(&format!("skip  {name} ({why})\n"));
                }
            }
        }
        out.push_str(&format!(
            "conformance: {passed} passed, {} failed, {skipped} skipped\n",
            self.failed()
        ));
        out
    }
}

/// Runs the suite against `plugin` (a bundled plugin's name or a `.wasm` path) with these
/// `[mount.config]` settings, and a bucket granted by these `[mount.s3]` settings if any
/// (values that look like booleans are booleans).
/// What the scratch mount of `plugin check` grants besides a scratch directory.
#[derive(Default)]
pub struct ScratchGrants {
    /// `[mount.config]` settings.
    pub settings: Vec<(String, String)>,
    /// `[mount.s3]` settings.
    pub s3: Vec<(String, String)>,
    /// `allow_hosts` entries.
    pub allow_hosts: Vec<String>,
    /// `[mount.secrets]`: (name, "env:VARIABLE" or "file:PATH").
    pub secrets: Vec<(String, String)>,
}

pub async fn check(plugin: &str, grants: &ScratchGrants) -> Result<Report> {
    let (settings, s3) = (&grants.settings, &grants.s3);
    let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
    // A path is taken from the current directory, not from the scratch config's.
    let absolute = std::path::absolute(plugin)
        .ok()
        .filter(|_| plugin.ends_with(".wasm") || plugin.contains('/'));
    let plugin_ref = absolute
        .as_ref()
        .map_or(plugin.to_string(), |p| p.display().to_string());
    let mut config_table = toml::Table::new();
    for (k, v) in settings {
        config_table.insert(k.clone(), toml::Value::String(v.clone()));
    }
    if plugin == "local" && !config_table.contains_key("root") {
        let root = scratch.path().join("root");
        std::fs::create_dir(&root)?;
        config_table.insert(
            "root".into(),
            toml::Value::String(root.display().to_string()),
        );
    }
    let mut s3_table = toml::Table::new();
    for (k, v) in s3 {
        let value = match v.as_str() {
            "true" => toml::Value::Boolean(true),
            "false" => toml::Value::Boolean(false),
            _ => toml::Value::String(v.clone()),
        };
        s3_table.insert(k.clone(), value);
    }
    let hosts = toml::Value::Array(
        grants
            .allow_hosts
            .iter()
            .map(|h| toml::Value::String(h.clone()))
            .collect(),
    );
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nportmap = \"off\"\n\n[[mount]]\nname = \"check\"\nplugin = {}\n{}\n[mount.config]\n{}",
        toml::Value::String(plugin_ref),
        if grants.allow_hosts.is_empty() {
            String::new()
        } else {
            format!("allow_hosts = {hosts}\n")
        },
        toml::to_string(&config_table)?
    );
    if !grants.secrets.is_empty() {
        text.push_str("\n[mount.secrets]\n");
        for (name, from) in &grants.secrets {
            let (kind, value) = match from.split_once(':') {
                Some(("env", v)) => ("env", v),
                Some(("file", v)) => ("file", v),
                _ => anyhow::bail!("--secret {name}={from}: give env:VARIABLE or file:PATH"),
            };
            text.push_str(&format!(
                "{} = {{ {kind} = {} }}\n",
                toml::Value::String(name.clone()),
                toml::Value::String(value.to_string())
            ));
        }
    }
    if !s3_table.is_empty() {
        text.push_str(&format!("\n[mount.s3]\n{}", toml::to_string(&s3_table)?));
    }
    let config = Config::parse(&text, "plugin check")?;
    let runtime = Runtime::new()?;
    let source = Source {
        file: "plugin check",
        text: &text,
    };
    let gateway = mounts::start(
        &runtime,
        &config,
        &source,
        Some(&scratch.path().join("state")),
    )
    .await?;
    let capabilities = gateway.mounts()[0].capabilities();
    let checks = checks::run(gateway, capabilities).await?;
    Ok(Report {
        plugin: plugin.to_string(),
        capabilities,
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_count_and_print_each_outcome() {
        let report = Report {
            plugin: "x".into(),
            capabilities: Capabilities::CREATE,
            checks: vec![
                ("a", Outcome::Passed),
                ("b", Outcome::Failed("broken".into())),
                ("c", Outcome::Skipped("capability not declared")),
            ],
        };
        let text = report.render();
        assert_eq!(report.failed(), 1);
        assert!(text.contains("FAIL  b: broken") && text.contains("skip  c"));
        assert!(
            text.ends_with("conformance: 1 passed, 1 failed, 1 skipped\n"),
            "{text}"
        );
    }
}
