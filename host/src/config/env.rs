//! `${NAME}` in a config's text: replaced by the environment variable before parsing.

use anyhow::{Context, Result};

/// Replaces `${NAME}` with the environment variable NAME, escaped for a double-quoted TOML
/// string (where it belongs), so a value can't change the config's structure or its line
/// numbers. `$${` stands for a literal `${`. An unset variable is an error naming the line.
pub(super) fn substitute_env(
    text: &str,
    file: &str,
    var: impl Fn(&str) -> Option<String>,
) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let line = text[..text.len() - after.len()].matches('\n').count() + 1;
            let end = tail
                .find('}')
                .with_context(|| format!("{file}:{line}: unterminated ${{"))?;
            let name = &tail[..end];
            let value = var(name).with_context(|| {
                format!("{file}:{line}: ${{{name}}} is not set in the environment")
            })?;
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}
