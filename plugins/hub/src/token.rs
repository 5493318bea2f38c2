//! Xet CAS access tokens: read from a `xet-read-token` / `xet-write-token` answer (the JSON
//! body `{"accessToken","exp","casUrl"}`, or the `X-Xet-*` headers the Hub also sends), and
//! judged fresh until 60 seconds before they expire (or, for a token that lives less than
//! two minutes, until half its life has passed).

use serde::Deserialize;

use crate::urls::header;

/// How long before its expiry a token is replaced, at most.
const MARGIN_SECS: i64 = 60;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XetToken {
    pub access: String,
    /// Expiry, in Unix seconds.
    pub exp: i64,
    /// The CAS base URL, without a trailing "/".
    pub cas_url: String,
    /// When it was received, in Unix seconds.
    pub received: i64,
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "accessToken")]
    access_token: Option<String>,
    exp: Option<i64>,
    #[serde(rename = "casUrl")]
    cas_url: Option<String>,
}

impl XetToken {
    /// The token in a response received at `now`: the body's fields, each falling back to
    /// its header.
    pub fn parse(body: &[u8], headers: &[(String, String)], now: i64) -> Result<XetToken, String> {
        let b: Body = serde_json::from_slice(body).unwrap_or(Body {
            access_token: None,
            exp: None,
            cas_url: None,
        });
        let access = b
            .access_token
            .or_else(|| header(headers, "x-xet-access-token").map(str::to_string))
            .filter(|t| !t.is_empty())
            .ok_or("no accessToken in the Xet token answer")?;
        let exp = b
            .exp
            .or_else(|| {
                header(headers, "x-xet-token-expiration")?
                    .trim()
                    .parse()
                    .ok()
            })
            .ok_or("no exp in the Xet token answer")?;
        let cas_url = b
            .cas_url
            .or_else(|| header(headers, "x-xet-cas-url").map(str::to_string))
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .ok_or("no casUrl (an http(s) URL) in the Xet token answer")?;
        Ok(XetToken {
            access,
            exp,
            cas_url: cas_url.trim_end_matches('/').to_string(),
            received: now,
        })
    }

    /// True while the token may still be used at `now` (Unix seconds).
    pub fn fresh(&self, now: i64) -> bool {
        let margin = MARGIN_SECS.min((self.exp - self.received) / 2);
        now + margin < self.exp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_or_headers() {
        let t = XetToken::parse(
            br#"{"accessToken":"xet_read_1","exp":1000,"casUrl":"http://h/cas/"}"#,
            &[],
            0,
        )
        .unwrap();
        assert_eq!(t.access, "xet_read_1");
        assert_eq!(t.cas_url, "http://h/cas");
        let headers = vec![
            ("x-xet-access-token".to_string(), "tok".to_string()),
            ("x-xet-token-expiration".to_string(), "2000".to_string()),
            ("x-xet-cas-url".to_string(), "https://cas".to_string()),
        ];
        let h = XetToken::parse(b"", &headers, 0).unwrap();
        assert_eq!(
            (h.access.as_str(), h.exp, h.cas_url.as_str()),
            ("tok", 2000, "https://cas")
        );
        assert!(XetToken::parse(b"{}", &[], 0).is_err());
    }

    #[test]
    fn freshness() {
        let t = XetToken {
            access: "a".into(),
            exp: 1000,
            cas_url: "http://c".into(),
            received: 0,
        };
        assert!(t.fresh(939));
        assert!(!t.fresh(940), "refreshed 60 s before exp");
        assert!(!t.fresh(2000));
        let short = XetToken {
            exp: 104,
            received: 100,
            ..t
        };
        assert!(short.fresh(101));
        assert!(!short.fresh(102), "a 4 s token is replaced after 2 s");
    }
}
