//! The Hub's own API: repo revisions and bucket info, `tree` listings (a page at a time, the
//! next one named by `Link: rel="next"`), `paths-info` of one repo path, Xet token routes,
//! `resolve` downloads of files not in Xet, and the bucket `batch` call. URL building is pure
//! and tested; the calls go through `net`.

use serde::Deserialize;
use serde_json::json;

use crate::clock::{parse_iso8601, Stamp};
use crate::config::{RepoType, Target};
use crate::net::{request, Auth, Client, Failure};
use crate::tree::{parse_page, Entry};
use crate::urls::{encode_path, encode_segment, next_link, resolve_location};
use nfsgw_plugin_sdk::paths::split_parent;

/// Where the mount's repo or bucket lives on the Hub.
pub struct Hub {
    pub endpoint: String,
    pub target: Target,
}

/// `{ep}/{prefix}{id}/resolve/{sha}/{path}` of a repo file.
pub fn resolve_url(endpoint: &str, kind: RepoType, id: &str, sha: &str, path: &str) -> String {
    format!(
        "{endpoint}/{}{id}/resolve/{sha}/{}",
        kind.web_prefix(),
        encode_path(path)
    )
}

/// A pinned repo revision.
pub struct Revision {
    pub sha: String,
    /// The revision's `lastModified`, used as every entry's time.
    pub modified: Option<Stamp>,
}

/// One operation of a bucket `batch`.
pub enum BatchOp<'a> {
    Add {
        path: &'a str,
        xet_hash: &'a str,
        mtime_ms: u64,
    },
    Delete {
        path: &'a str,
    },
}

#[derive(Deserialize)]
struct RevisionBody {
    sha: String,
    #[serde(rename = "lastModified")]
    last_modified: Option<String>,
}

#[derive(Deserialize)]
struct BatchFailure {
    #[serde(default)]
    path: String,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct BatchBody {
    #[serde(default)]
    failed: Vec<BatchFailure>,
}

fn bad_body(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Malformed(format!("{what}: {e}"))
}

impl Hub {
    /// `{ep}/api/{type}s/{id}` or `{ep}/api/buckets/{id}`.
    pub fn api_base(&self) -> String {
        match &self.target {
            Target::Repo { kind, id, .. } => {
                format!("{}/api/{}/{id}", self.endpoint, kind.api_plural())
            }
            Target::Bucket { id } => format!("{}/api/buckets/{id}", self.endpoint),
        }
    }

    /// The listing URL of directory `dir` at `sha` (repos) or now (buckets).
    pub fn tree_url(&self, sha: &str, dir: &str, recursive: bool) -> String {
        let mut url = self.api_base() + "/tree";
        if matches!(self.target, Target::Repo { .. }) {
            url = format!("{url}/{sha}");
        }
        if !dir.is_empty() {
            url = format!("{url}/{}", encode_path(dir));
        }
        match (&self.target, recursive) {
            (_, true) => url + "?recursive=true",
            (Target::Repo { .. }, false) => url + "?expand=false",
            (Target::Bucket { .. }, false) => url,
        }
    }

    /// The Xet token route: per revision for repos.
    pub fn xet_token_url(&self, sha: &str, write: bool) -> String {
        let mode = if write { "write" } else { "read" };
        match &self.target {
            Target::Repo { .. } => format!("{}/xet-{mode}-token/{sha}", self.api_base()),
            Target::Bucket { .. } => format!("{}/xet-{mode}-token", self.api_base()),
        }
    }

    /// Pins a repo's revision to its commit sha.
    pub fn revision(&self, client: &Client, revision: &str) -> Result<Revision, Failure> {
        let url = format!("{}/revision/{}", self.api_base(), encode_segment(revision));
        let r = client.get_following(&url, Vec::new())?;
        let body: RevisionBody =
            serde_json::from_slice(&r.body).map_err(|e| bad_body("revision", e))?;
        Ok(Revision {
            sha: body.sha,
            modified: body.last_modified.as_deref().and_then(parse_iso8601),
        })
    }

    /// Checks that the bucket exists and may be read.
    pub fn bucket_info(&self, client: &Client) -> Result<(), Failure> {
        let r = client.get_following(&self.api_base(), Vec::new())?;
        serde_json::from_slice::<serde_json::Value>(&r.body)
            .map(|_| ())
            .map_err(|e| bad_body("bucket info", e))
    }

    /// One page of the `tree` listing of `dir` fetched from `url`: the entries directly in
    /// `dir`, and the URL of the next page if there is one.
    pub fn tree_page(
        &self,
        client: &Client,
        url: &str,
        dir: &str,
    ) -> Result<(Vec<Entry>, Option<String>), Failure> {
        let r = client.get_following(url, Vec::new())?;
        let entries = parse_page(&r.body, dir).map_err(|e| bad_body("tree", e))?;
        let next = next_link(&r.headers).map(|n| resolve_location(url, &n));
        Ok((entries, next))
    }

    /// The `paths-info` URL of a repo at `sha`.
    pub fn paths_info_url(&self, sha: &str) -> String {
        format!("{}/paths-info/{sha}", self.api_base())
    }

    /// The entry at `path` in a repo at `sha` (none when there is none), through `paths-info`.
    pub fn path_info(
        &self,
        client: &Client,
        sha: &str,
        path: &str,
    ) -> Result<Option<Entry>, Failure> {
        let body = format!("paths={}&expand=false", encode_segment(path));
        let headers = vec![(
            "Content-Type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        )];
        let url = self.paths_info_url(sha);
        let r = client.send(
            &request("POST", &url, headers, body.into_bytes()),
            Auth::Hub,
        )?;
        let (parent, name) = split_parent(path);
        let entries = parse_page(&r.body, parent).map_err(|e| bad_body("paths-info", e))?;
        Ok(entries.into_iter().find(|e| e.name == name))
    }

    /// Every file under `dir` at any depth, as (path, Xet hash) (buckets).
    pub fn files_under(
        &self,
        client: &Client,
        dir: &str,
    ) -> Result<Vec<(String, String)>, Failure> {
        #[derive(Deserialize)]
        struct File {
            #[serde(rename = "type")]
            kind: String,
            path: String,
            #[serde(rename = "xetHash")]
            xet_hash: Option<String>,
        }
        let mut out = Vec::new();
        self.pages(client, &self.tree_url("", dir, true), |body| {
            let files: Vec<File> = serde_json::from_slice(body).map_err(|e| bad_body("tree", e))?;
            for f in files {
                let under = f.path.starts_with(dir) && f.path[dir.len()..].starts_with('/');
                if let (true, "file", Some(h)) = (under, f.kind.as_str(), f.xet_hash) {
                    out.push((f.path, h));
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Fetches `url` and each `rel="next"` page after it, handing every body to `each`.
    fn pages(
        &self,
        client: &Client,
        url: &str,
        mut each: impl FnMut(&[u8]) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let mut next = Some(url.to_string());
        let mut seen = 0usize;
        while let Some(url) = next {
            let r = client.get_following(&url, Vec::new())?;
            each(&r.body)?;
            next = next_link(&r.headers);
            seen += 1;
            if seen > 100_000 {
                return Err(bad_body("tree", "more than 100000 pages"));
            }
        }
        Ok(())
    }

    /// Applies bucket operations in one `batch`; a failed operation is an error naming it.
    pub fn batch(&self, client: &Client, ops: &[BatchOp]) -> Result<(), Failure> {
        let mut body = Vec::new();
        for op in ops {
            let line = match op {
                BatchOp::Add {
                    path,
                    xet_hash,
                    mtime_ms,
                } => json!({"type": "addFile", "path": path, "xetHash": xet_hash,
                            "mtime": mtime_ms}),
                BatchOp::Delete { path } => json!({"type": "deleteFile", "path": path}),
            };
            body.extend_from_slice(line.to_string().as_bytes());
            body.push(b'\n');
        }
        let headers = vec![(
            "Content-Type".to_string(),
            "application/x-ndjson".to_string(),
        )];
        let url = format!("{}/batch", self.api_base());
        let r = client.send(&request("POST", &url, headers, body), Auth::Hub)?;
        let answer: BatchBody =
            serde_json::from_slice(&r.body).map_err(|e| bad_body("batch", e))?;
        match answer.failed.first() {
            None => Ok(()),
            Some(f) => Err(Failure::Rejected(format!(
                "{} of {} operations failed, first {:?}: {}",
                answer.failed.len(),
                ops.len(),
                f.path,
                f.error
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(kind: RepoType) -> Hub {
        Hub {
            endpoint: "http://h:1".into(),
            target: Target::Repo {
                kind,
                id: "ns/n".into(),
                revision: "main".into(),
            },
        }
    }

    fn bucket() -> Hub {
        Hub {
            endpoint: "http://h:1".into(),
            target: Target::Bucket { id: "ns/b".into() },
        }
    }

    #[test]
    fn repo_urls() {
        let m = repo(RepoType::Model);
        assert_eq!(
            m.tree_url("abc", "", false),
            "http://h:1/api/models/ns/n/tree/abc?expand=false"
        );
        assert_eq!(
            m.tree_url("abc", "a b/c", false),
            "http://h:1/api/models/ns/n/tree/abc/a%20b/c?expand=false"
        );
        assert_eq!(
            resolve_url("http://h:1", RepoType::Model, "ns/n", "abc", "d/e#f"),
            "http://h:1/ns/n/resolve/abc/d/e%23f"
        );
        assert_eq!(
            m.xet_token_url("abc", false),
            "http://h:1/api/models/ns/n/xet-read-token/abc"
        );
        assert_eq!(
            m.paths_info_url("abc"),
            "http://h:1/api/models/ns/n/paths-info/abc"
        );
        assert_eq!(
            resolve_url("http://h:1", RepoType::Dataset, "ns/n", "s", "x"),
            "http://h:1/datasets/ns/n/resolve/s/x"
        );
        assert_eq!(
            repo(RepoType::Space).api_base(),
            "http://h:1/api/spaces/ns/n"
        );
    }

    #[test]
    fn bucket_urls() {
        let b = bucket();
        assert_eq!(
            b.tree_url("", "", false),
            "http://h:1/api/buckets/ns/b/tree"
        );
        assert_eq!(
            b.tree_url("", "d", true),
            "http://h:1/api/buckets/ns/b/tree/d?recursive=true"
        );
        assert_eq!(
            b.xet_token_url("", true),
            "http://h:1/api/buckets/ns/b/xet-write-token"
        );
    }
}
