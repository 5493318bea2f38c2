//! URL plumbing: percent-encoding of path segments, `Link: <…>; rel="next"` pages, origins
//! (to decide where the Hub token may go), `Location` resolution, and the query-free form of a
//! URL that log lines use (presigned URLs carry their signature in the query).

/// A path segment with everything but the RFC 3986 unreserved characters percent-encoded.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A mount-relative path ("a/b c") encoded segment by segment ("a/b%20c").
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// The value of the first header named `name` (names are lower case in responses).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The target of a `rel="next"` link in the `link` headers, if any.
pub fn next_link(headers: &[(String, String)]) -> Option<String> {
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("link") {
            continue;
        }
        for part in value.split(',') {
            let part = part.trim();
            let Some(rest) = part.strip_prefix('<') else {
                continue;
            };
            let Some((url, params)) = rest.split_once('>') else {
                continue;
            };
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                return Some(url.to_string());
            }
        }
    }
    None
}

/// "scheme://host[:port]" of an absolute URL.
pub fn origin(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..scheme_end + end])
}

/// The URL without its query string or fragment, for log lines.
pub fn without_query(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// A `Location` header resolved against the URL that answered with it.
pub fn resolve_location(base: &str, location: &str) -> String {
    if location.contains("://") {
        location.to_string()
    } else if location.starts_with("//") {
        let scheme = base.split("://").next().unwrap_or("https");
        format!("{scheme}:{location}")
    } else if location.starts_with('/') {
        format!("{}{location}", origin(base).unwrap_or(""))
    } else {
        let dir = without_query(base);
        let dir = &dir[..dir.rfind('/').map_or(dir.len(), |i| i + 1)];
        format!("{dir}{location}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn encoding() {
        assert_eq!(encode_path("a b/ü/x+y"), "a%20b/%C3%BC/x%2By");
        assert_eq!(encode_segment("v1.0_a-b~"), "v1.0_a-b~");
        assert_eq!(encode_segment("a?b#c%"), "a%3Fb%23c%25");
    }

    #[test]
    fn links() {
        let one = h(&[(
            "link",
            "<http://h/api/x/tree/s?expand=false&cursor=MTA>; rel=\"next\"",
        )]);
        assert_eq!(
            next_link(&one).unwrap(),
            "http://h/api/x/tree/s?expand=false&cursor=MTA"
        );
        let several = h(&[
            ("content-type", "application/json"),
            ("link", "<http://a/1>; rel=\"prev\", <http://a/2>; rel=next"),
        ]);
        assert_eq!(next_link(&several).unwrap(), "http://a/2");
        assert_eq!(
            next_link(&h(&[("link", "<http://a/1>; rel=\"last\"")])),
            None
        );
        assert_eq!(next_link(&[]), None);
    }

    #[test]
    fn origins_and_locations() {
        assert_eq!(
            origin("http://127.0.0.1:9/a/b?c"),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(origin("https://hf.co"), Some("https://hf.co"));
        assert_eq!(origin("nope"), None);
        assert_eq!(without_query("http://c/x/y?sig=1&r=2"), "http://c/x/y");
        assert_eq!(resolve_location("http://a:1/x/y?q", "/z"), "http://a:1/z");
        assert_eq!(
            resolve_location("http://a/x/y", "https://b/c"),
            "https://b/c"
        );
        assert_eq!(resolve_location("https://a/x/y", "//b/c"), "https://b/c");
        assert_eq!(resolve_location("http://a/x/y?q", "z"), "http://a/x/z");
    }
}
