//! Where a mount's S3 credentials come from: the environment variables its grant names, or a
//! profile of an AWS credentials file, or none (anonymous). They are read by the host only; the
//! plugin never receives them.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::config::{S3Grant, Source};

/// Credentials for signing a mount's requests.
#[derive(Clone)]
pub enum Credentials {
    Keys {
        key_id: String,
        secret: String,
        token: Option<String>,
    },
    Anonymous,
}

impl Credentials {
    /// Resolves a grant's credential references; `env` reads an environment variable.
    pub fn resolve(
        grant: &S3Grant,
        source: &Source,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Credentials> {
        if grant.anonymous {
            return Ok(Credentials::Anonymous);
        }
        if let Some(profile) = &grant.profile {
            let at = source.at(profile);
            let file = match &grant.credentials_file {
                Some(f) => PathBuf::from(f.get_ref()),
                None => PathBuf::from(env("HOME").unwrap_or_default()).join(".aws/credentials"),
            };
            let text = std::fs::read_to_string(&file).with_context(|| {
                format!("{at}: key `s3.profile`: cannot read {}", file.display())
            })?;
            return from_profile(&text, profile.get_ref())
                .with_context(|| format!("{at}: key `s3.profile`: in {}", file.display()));
        }
        let read = |var: &str, key: &str| {
            env(var).filter(|v| !v.is_empty()).with_context(|| {
                format!(
                    "{}: mount's `s3` table: the environment variable {var} (key `s3.{key}`) is not set; \
                     set it, name another variable, or use `s3.profile` or `s3.anonymous = true`",
                    source.at(&grant.bucket)
                )
            })
        };
        Ok(Credentials::Keys {
            key_id: read(&grant.access_key_id_env, "access_key_id_env")?,
            secret: read(&grant.secret_access_key_env, "secret_access_key_env")?,
            token: env(&grant.session_token_env).filter(|v| !v.is_empty()),
        })
    }
}

/// The keys of `[profile]` in an AWS credentials file (INI: sections, `key = value`, `#` and
/// `;` comments).
fn from_profile(text: &str, profile: &str) -> Result<Credentials> {
    let mut in_section = false;
    let (mut key_id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = section.trim() == profile;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = Some(value.trim().to_string());
            match key.trim() {
                "aws_access_key_id" => key_id = value,
                "aws_secret_access_key" => secret = value,
                "aws_session_token" => token = value,
                _ => {}
            }
        }
    }
    match (key_id, secret) {
        (Some(key_id), Some(secret)) => Ok(Credentials::Keys {
            key_id,
            secret,
            token,
        }),
        _ => bail!("profile [{profile}] has no aws_access_key_id and aws_secret_access_key"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_read_by_section() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n\
                    # test\n[other]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token = T\n";
        let Credentials::Keys {
            key_id,
            secret,
            token,
        } = from_profile(text, "other").unwrap()
        else {
            panic!("expected keys");
        };
        assert_eq!(
            (key_id.as_str(), secret.as_str(), token.as_deref()),
            ("C", "D", Some("T"))
        );
        let Credentials::Keys { key_id, token, .. } = from_profile(text, "default").unwrap() else {
            panic!("expected keys");
        };
        assert_eq!((key_id.as_str(), token), ("A", None));
        let missing = from_profile(text, "nope").err().unwrap().to_string();
        assert!(missing.contains("[nope]"), "{missing}");
    }
}
