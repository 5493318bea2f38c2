//! The mount's `[mount.config]` table, checked once at `init`.
//!
//! A mount serves either a repo (model, dataset or space, pinned to a revision) or a bucket;
//! exactly one of `repo` and `bucket` must be set. Everything else has a default. Errors are
//! sentences shown to the user, naming the key at fault.

use nfsgw_plugin_sdk::attrs::Ownership;
use nfsgw_plugin_sdk::config::number;

/// The three kinds of Hub repo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoType {
    Model,
    Dataset,
    Space,
}

impl RepoType {
    /// The plural used in API paths: `/api/models/...`.
    pub fn api_plural(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        }
    }

    /// The prefix of the repo's web paths (`/resolve/...`): none for models.
    pub fn web_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
            RepoType::Space => "spaces/",
        }
    }
}

/// What the mount serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Repo {
        kind: RepoType,
        id: String,
        revision: String,
    },
    Bucket {
        id: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The Hub's base URL, without a trailing "/".
    pub endpoint: String,
    pub target: Target,
    /// The owner and modes of every entry.
    pub owner: Ownership,
    /// How long a bucket's listings may be cached (by the host and by the plugin).
    pub attr_ttl_ms: u32,
    /// How many listing entries the plugin keeps at most (per instance).
    pub listing_cache_entries: u32,
}

/// The default of `listing_cache_entries`: at well under 200 bytes each, under 20 MB.
const LISTING_CACHE_ENTRIES: u32 = 100_000;

const KEYS: &str = "endpoint, repo, repo_type, revision, bucket, uid, gid, file_mode, dir_mode, \
                    attr_ttl_ms, listing_cache_entries";

/// Checks a "namespace/name" id.
fn check_id(key: &str, value: &str) -> Result<String, String> {
    let mut parts = value.split('/');
    let ok = matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(ns), Some(name), None) if !ns.is_empty() && !name.is_empty()
            && ![ns, name].iter().any(|p| *p == "." || *p == "..")
    );
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "config key `{key}`: {value:?} is not of the form \"namespace/name\""
        ))
    }
}

pub fn parse(config: &[(String, String)]) -> Result<Config, String> {
    let mut endpoint = "https://huggingface.co".to_string();
    let (mut repo, mut bucket, mut repo_type, mut revision) = (None, None, None, None);
    let mut owner = Ownership::default();
    let mut ttl = 1000;
    let mut listing_cache_entries = LISTING_CACHE_ENTRIES;
    for (key, value) in config {
        if owner.set(key, value)? {
            continue;
        }
        match key.as_str() {
            "endpoint" => endpoint = value.trim_end_matches('/').to_string(),
            "repo" => repo = Some(check_id(key, value)?),
            "bucket" => bucket = Some(check_id(key, value)?),
            "repo_type" => {
                repo_type = Some(match value.as_str() {
                    "model" => RepoType::Model,
                    "dataset" => RepoType::Dataset,
                    "space" => RepoType::Space,
                    _ => {
                        return Err(format!(
                            "config key `repo_type`: {value:?} is not one of model, dataset, space"
                        ))
                    }
                })
            }
            "revision" => {
                if value.is_empty() {
                    return Err("config key `revision` is empty".to_string());
                }
                revision = Some(value.clone())
            }
            "attr_ttl_ms" => ttl = number(key, value, 10)?,
            "listing_cache_entries" => listing_cache_entries = number(key, value, 10)?,
            _ => {
                return Err(format!(
                    "unknown config key `{key}` (the hub plugin knows: {KEYS}; the token is \
                     granted in [mount.secrets] as `token`)"
                ))
            }
        }
    }
    if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
        return Err(format!(
            "config key `endpoint`: {endpoint:?} is not an http:// or https:// URL"
        ));
    }
    let target = match (repo, bucket) {
        (Some(id), None) => Target::Repo {
            kind: repo_type.unwrap_or(RepoType::Model),
            id,
            revision: revision.unwrap_or_else(|| "main".to_string()),
        },
        (None, Some(id)) => {
            if repo_type.is_some() || revision.is_some() {
                return Err(
                    "config keys `repo_type` and `revision` apply to a `repo`, not a `bucket`"
                        .to_string(),
                );
            }
            Target::Bucket { id }
        }
        (Some(_), Some(_)) => {
            return Err(
                "config keys `repo` and `bucket` are both set: a mount serves one of \
                        them"
                    .to_string(),
            )
        }
        (None, None) => {
            return Err(
                "the hub plugin needs config key `repo` (\"namespace/name\", with `repo_type` \
                 and `revision`) or `bucket` (\"namespace/name\")"
                    .to_string(),
            )
        }
    };
    Ok(Config {
        endpoint,
        target,
        owner,
        attr_ttl_ms: ttl,
        listing_cache_entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(&v)
    }

    #[test]
    fn repo_defaults() {
        let c = cfg(&[("repo", "ns/name")]).unwrap();
        assert_eq!(c.endpoint, "https://huggingface.co");
        assert_eq!(
            c.target,
            Target::Repo {
                kind: RepoType::Model,
                id: "ns/name".into(),
                revision: "main".into()
            }
        );
        assert_eq!(
            (c.owner.file_mode, c.owner.dir_mode, c.attr_ttl_ms),
            (0o644, 0o755, 1000)
        );
        assert_eq!(c.listing_cache_entries, 100_000);
    }

    #[test]
    fn bucket_and_options() {
        let c = cfg(&[
            ("bucket", "me/b"),
            ("endpoint", "http://127.0.0.1:8080/"),
            ("uid", "1000"),
            ("file_mode", "600"),
            ("attr_ttl_ms", "50"),
            ("listing_cache_entries", "20"),
        ])
        .unwrap();
        assert_eq!(c.listing_cache_entries, 20);
        assert_eq!(c.endpoint, "http://127.0.0.1:8080");
        assert_eq!(c.target, Target::Bucket { id: "me/b".into() });
        assert_eq!(
            (c.owner.uid, c.owner.file_mode, c.attr_ttl_ms),
            (1000, 0o600, 50)
        );
    }

    #[test]
    fn refusals_name_the_keys() {
        let both = cfg(&[("repo", "a/b"), ("bucket", "c/d")]).unwrap_err();
        assert!(
            both.contains("`repo`") && both.contains("`bucket`"),
            "{both}"
        );
        let neither = cfg(&[]).unwrap_err();
        assert!(neither.contains("`repo`") && neither.contains("`bucket`"));
        assert!(cfg(&[("repo", "abc")])
            .unwrap_err()
            .contains("namespace/name"));
        assert!(cfg(&[("repo", "a/b"), ("repo_type", "x")])
            .unwrap_err()
            .contains("repo_type"));
        assert!(cfg(&[("repo", "a/b"), ("colour", "x")])
            .unwrap_err()
            .contains("colour"));
        assert!(cfg(&[("bucket", "a/b"), ("revision", "v1")]).is_err());
        assert!(cfg(&[("repo", "a/b"), ("endpoint", "ftp://x")]).is_err());
    }
}
