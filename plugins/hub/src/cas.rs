//! The Xet CAS client: token cache, reads through reconstructions, and uploads of xorbs and
//! shards.
//!
//! Tokens come from the Hub's `xet-read-token` / `xet-write-token` route (called with the Hub
//! token), are kept per instance, replaced 60 s before they expire and once more when the CAS
//! answers 401. A read asks `/v2/reconstructions/{hash}` for the byte range (falling back to
//! `/v1/` when the v2 route answers 404, and remembering which one works), fetches each needed
//! xorb range from its presigned URL without credentials, and assembles the bytes (reading ahead
//! when reads are sequential). A reconstruction that covers a whole file is verified: the Xet
//! file hash recomputed over the chunks must equal the file's Xet hash.

use nfsgw_xet::hash::{file_hash, MerkleHash};
use nfsgw_xet::reconstruction::{parse_v1, parse_v2, Fetch, Plan};
use nfsgw_xet::xorb::Xorb;

use crate::clock::now;
use crate::net::{fail, log, request, set_bearer, Auth, Client, Failure};
use crate::readahead::ReadAhead;
use crate::token::XetToken;
use nfsgw_plugin_sdk::http::Response;
use nfsgw_plugin_sdk::log::Level;
use nfsgw_plugin_sdk::Error;

/// Which reconstruction route the CAS serves, once known.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Unknown,
    V2,
    V1,
}

pub struct Cas {
    read_route: String,
    write_route: String,
    read: Option<XetToken>,
    write: Option<XetToken>,
    route: Route,
    ahead: ReadAhead,
}

/// A failed CAS call: the URL (for the log line) and why.
type CasFailure = (String, Failure);

fn io(what: &str, detail: impl std::fmt::Display) -> Error {
    log(Level::Warn, &format!("{what}: {detail}"));
    Error::Io
}

impl Cas {
    /// `read_route` and `write_route` are the Hub's token URLs for this repo or bucket.
    pub fn new(read_route: String, write_route: String) -> Cas {
        Cas {
            read_route,
            write_route,
            read: None,
            write: None,
            route: Route::Unknown,
            ahead: ReadAhead::default(),
        }
    }

    /// Replaces the cached tokens' values with ones the CAS does not know (tests of renewal).
    #[cfg(test)]
    pub fn spoil_tokens(&mut self) {
        for t in [&mut self.read, &mut self.write].into_iter().flatten() {
            t.access = "spoiled".to_string();
        }
    }

    fn token(&mut self, client: &Client, write: bool) -> Result<XetToken, CasFailure> {
        let (slot, route) = if write {
            (&mut self.write, &self.write_route)
        } else {
            (&mut self.read, &self.read_route)
        };
        if let Some(t) = slot.as_ref().filter(|t| t.fresh(now().0)) {
            return Ok(t.clone());
        }
        let r = client
            .get_following(route, Vec::new())
            .map_err(|f| (route.clone(), f))?;
        let t = XetToken::parse(&r.body, &r.headers, now().0)
            .map_err(|e| (route.clone(), Failure::Malformed(format!("Xet token: {e}"))))?;
        *slot = Some(t.clone());
        Ok(t)
    }

    /// A request to `{casUrl}{path}` with a Xet token; a 401 replaces the token once.
    fn send(
        &mut self,
        client: &Client,
        write: bool,
        method: &str,
        path: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<Response, CasFailure> {
        let mut req = request(method, "", headers, body);
        let mut retried = false;
        loop {
            let token = self.token(client, write)?;
            req.url = format!("{}{path}", token.cas_url);
            set_bearer(&mut req, &token.access);
            match client.send(&req, Auth::None) {
                Err(f) if f.status() == Some(401) && !retried => {
                    log(
                        Level::Info,
                        &format!("{method} {}: 401, renewing the Xet token", req.url),
                    );
                    if write {
                        self.write = None;
                    } else {
                        self.read = None;
                    }
                    retried = true;
                }
                other => return other.map_err(|f| (req.url.clone(), f)),
            }
        }
    }

    /// The reconstruction plan of bytes `start..=last` of a file.
    fn plan(&mut self, client: &Client, hash: &str, start: u64, last: u64) -> Result<Plan, Error> {
        let range = vec![("Range".to_string(), format!("bytes={start}-{last}"))];
        if self.route != Route::V1 {
            let path = format!("/v2/reconstructions/{hash}");
            match self.send(client, false, "GET", &path, range.clone(), Vec::new()) {
                Ok(r) => {
                    self.route = Route::V2;
                    return parse_v2(&r.body).map_err(|e| io(&path, e));
                }
                Err((_, f)) if f.status() == Some(404) && self.route == Route::Unknown => {}
                Err((url, f)) => return Err(fail("GET", &url, &f)),
            }
        }
        let path = format!("/v1/reconstructions/{hash}");
        match self.send(client, false, "GET", &path, range, Vec::new()) {
            Ok(r) => {
                if self.route == Route::Unknown {
                    log(Level::Info, "the CAS has no v2 reconstructions; using v1");
                }
                self.route = Route::V1;
                parse_v1(&r.body).map_err(|e| io(&path, e))
            }
            Err((url, f)) => Err(fail("GET", &url, &f)),
        }
    }

    /// One xorb byte range from its presigned URL, without credentials.
    fn fetch(client: &Client, f: &Fetch) -> Result<Vec<u8>, Error> {
        let range = vec![(
            "Range".to_string(),
            format!("bytes={}-{}", f.byte_start, f.byte_end),
        )];
        let r = client
            .send(&request("GET", &f.url, range, Vec::new()), Auth::None)
            .map_err(|e| fail("GET", &f.url, &e))?;
        let want = (f.byte_end - f.byte_start + 1) as usize;
        let body = match r.status {
            206 => r.body,
            // A server that ignores Range sends the whole object.
            200 if r.body.len() > f.byte_end as usize => {
                r.body[f.byte_start as usize..=f.byte_end as usize].to_vec()
            }
            status => {
                return Err(io(
                    crate::urls::without_query(&f.url),
                    format!("unexpected HTTP {status} for a xorb range"),
                ))
            }
        };
        if body.len() != want {
            return Err(io(
                crate::urls::without_query(&f.url),
                format!("{} bytes for a range of {want}", body.len()),
            ));
        }
        Ok(body)
    }

    /// Bytes `offset..end` of the Xet file `hash` of `size` bytes (`offset < end <= size`),
    /// reconstructing ahead for sequential reads (see `readahead`).
    pub fn read(
        &mut self,
        client: &Client,
        hash: &str,
        size: u64,
        offset: u64,
        end: u64,
    ) -> Result<Vec<u8>, Error> {
        if let Some(bytes) = self.ahead.serve(hash, offset, end) {
            return Ok(bytes);
        }
        let (from, to) = self.ahead.span(hash, offset, end, size);
        let data = self.reconstruct(client, hash, size, from, to)?;
        let out = data[(offset - from) as usize..(end - from) as usize].to_vec();
        self.ahead.keep(hash, from, data, end);
        Ok(out)
    }

    /// Bytes `offset..end` of the Xet file `hash` of `size` bytes, verified when that is the
    /// whole file.
    fn reconstruct(
        &mut self,
        client: &Client,
        hash: &str,
        size: u64,
        offset: u64,
        end: u64,
    ) -> Result<Vec<u8>, Error> {
        let plan = self.plan(client, hash, offset, end - 1)?;
        let mut data: Vec<Option<Vec<u8>>> = vec![None; plan.fetches.len()];
        for t in 0..plan.terms.len() {
            let Some(i) = plan.fetch_for(t) else {
                return Err(io(hash, "a reconstruction term has no fetch URL"));
            };
            if data[i].is_none() {
                data[i] = Some(Self::fetch(client, &plan.fetches[i])?);
            }
        }
        let (bytes, chunks) = plan
            .assemble(&data, end - offset)
            .map_err(|e| io(&format!("reconstructing {hash}"), e))?;
        if offset == 0 && end == size {
            let expected = MerkleHash::from_hex(hash).map_err(|e| io(hash, e))?;
            let got = file_hash(&chunks);
            if got != expected {
                return Err(io(
                    &format!("verifying {hash}"),
                    format!("the data fetched hashes to {got}: refusing it"),
                ));
            }
        }
        Ok(bytes)
    }

    /// Uploads a xorb (`POST /v1/xorbs/default/{hash}`), with the write token.
    pub fn upload_xorb(&mut self, client: &Client, xorb: Xorb) -> Result<(), Error> {
        let path = format!("/v1/xorbs/default/{}", xorb.hash.to_hex());
        self.send(client, true, "POST", &path, Vec::new(), xorb.bytes)
            .map(|_| ())
            .map_err(|(url, f)| fail("POST", &url, &f))
    }

    /// Uploads a shard (`POST /v1/shards`), after every xorb it names.
    pub fn upload_shard(&mut self, client: &Client, shard: Vec<u8>) -> Result<(), Error> {
        self.send(client, true, "POST", "/v1/shards", Vec::new(), shard)
            .map(|_| ())
            .map_err(|(url, f)| fail("POST", &url, &f))
    }
}
