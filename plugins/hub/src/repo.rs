//! A repo mount (model, dataset or space): the revision is pinned to its commit at `init`, so
//! the tree never changes while mounted (the host caches it forever). Files in Xet are read
//! through the CAS (`cas`); the others (small git files, plain LFS) through the Hub's
//! `resolve` route with a byte range, following a redirect to a CDN without the Hub token.

use std::collections::BTreeSet;

use crate::api::{resolve_url, Hub};
use crate::cas::Cas;
use crate::clock::now;
use crate::config::{Config, RepoType};
use crate::listings::Cache;
use crate::mount::{Mount, Source};
use crate::net::{fail, init_error, log, Client};
use nfsgw_plugin_sdk::log::Level;
use nfsgw_plugin_sdk::Error;

/// Pins the revision and builds the mount; the error is shown to the user.
pub fn open(
    cfg: Config,
    client: Client,
    kind: RepoType,
    id: String,
    revision: &str,
) -> Result<Mount, String> {
    let hub = Hub {
        endpoint: cfg.endpoint.clone(),
        target: cfg.target.clone(),
    };
    let what = format!("{} {id} at revision {revision}", kind_name(kind));
    let rev = hub
        .revision(&client, revision)
        .map_err(|f| init_error(&cfg.endpoint, &what, &f))?;
    log(
        Level::Info,
        &format!("serving {what}, pinned to commit {}", rev.sha),
    );
    let cas = Cas::new(
        hub.xet_token_url(&rev.sha, false),
        hub.xet_token_url(&rev.sha, true),
    );
    let cache_entries = cfg.listing_cache_entries as usize;
    Ok(Mount {
        time: rev.modified.unwrap_or_else(now),
        cfg,
        client,
        hub,
        cas,
        source: Source::Repo {
            kind,
            id,
            sha: rev.sha,
        },
        listings: Cache::new(None, cache_entries),
        local_dirs: BTreeSet::new(),
        empty_file_registered: false,
    })
}

fn kind_name(kind: RepoType) -> &'static str {
    match kind {
        RepoType::Model => "model",
        RepoType::Dataset => "dataset",
        RepoType::Space => "space",
    }
}

impl Mount {
    /// Bytes `offset..end` of a repo file that is not in Xet, through `resolve`.
    pub fn resolve_range(
        &self,
        kind: RepoType,
        id: &str,
        sha: &str,
        path: &str,
        offset: u64,
        end: u64,
    ) -> Result<Vec<u8>, Error> {
        let url = resolve_url(&self.hub.endpoint, kind, id, sha, path);
        let headers = vec![
            ("Range".to_string(), format!("bytes={offset}-{}", end - 1)),
            ("Accept-Encoding".to_string(), "identity".to_string()),
        ];
        let r = self
            .client
            .get_following(&url, headers)
            .map_err(|f| fail("GET", &url, &f))?;
        let want = (end - offset) as usize;
        let body = match r.status {
            206 => r.body,
            200 if r.body.len() as u64 >= end => r.body[offset as usize..end as usize].to_vec(),
            status => {
                log(
                    Level::Warn,
                    &format!("GET {url}: HTTP {status} with {} bytes", r.body.len()),
                );
                return Err(Error::Io);
            }
        };
        if body.len() != want {
            log(
                Level::Warn,
                &format!("GET {url}: {} bytes for a range of {want}", body.len()),
            );
            return Err(Error::Io);
        }
        Ok(body)
    }
}
