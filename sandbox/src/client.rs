//! A minimal HTTP/1.1 client for the webhook emitter: `http://` loopback URLs only, one
//! request per connection (`Connection: close`), the whole answer read (Content-Length,
//! chunked or until close), bounded in size and time.

use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer (head and body) read from a webhook receiver.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A parsed `http://host[:port][/path][?query]` URL whose host is a loopback address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host to connect to (brackets of an IPv6 literal removed).
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl HttpUrl {
    /// Accepts only `http://` URLs to `localhost` or a loopback IP, without user info.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let rest = match url.split_at_checked(7) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http://") => rest,
            _ => return Err("only http:// URLs are supported".into()),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at_checked(i).unwrap_or((rest, "")),
            None => (rest, ""),
        };
        let target = if target.starts_with('/') {
            target.to_owned()
        } else {
            format!("/{target}")
        };
        if target.contains(|c: char| c.is_ascii_control() || c == ' ') {
            return Err("the URL path must not contain spaces or control characters".into());
        }
        if authority.is_empty() || authority.contains('@') {
            return Err("the URL needs a host and no user info".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| "unclosed `[` in the URL host".to_owned())?;
            match after {
                "" => (h, None),
                p => (
                    h,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| "garbage after `]` in the URL host".to_owned())?,
                    ),
                ),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("`{p}` is not a valid port"))?,
        };
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(format!(
                "`{host}` is not a loopback host (localhost, 127.0.0.0/8, ::1)"
            ));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            target,
        })
    }
}

/// What a server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// POSTs `body` with `headers` (plus `Host`, `Content-Length`, `Connection: close`) and
/// reads the whole answer, all within `timeout`.
pub async fn post(
    url: &HttpUrl,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse, String> {
    match tokio::time::timeout(timeout, post_inner(url, headers, body)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no complete answer within {} ms",
            timeout.as_millis()
        )),
    }
}

async fn post_inner(
    url: &HttpUrl,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<HttpResponse, String> {
    let mut stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("connect to {}: {e}", url.authority))?;
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\n",
        url.target, url.authority
    );
    for (k, v) in headers {
        if k.contains(['\r', '\n', ':']) || v.contains(['\r', '\n']) {
            return Err(format!("header `{k}` contains a line break"));
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await
    };
    write
        .await
        .map_err(|e| format!("send to {}: {e}", url.authority))?;
    read_response(&mut stream).await
}

/// Reads one more piece into `buf`; `false` at end of stream.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<bool, String> {
    let mut chunk = [0u8; 8192];
    let n = stream
        .read(&mut chunk)
        .await
        .map_err(|e| format!("read: {e}"))?;
    if buf.len().saturating_add(n) > MAX_RESPONSE_BYTES {
        return Err(format!("answer larger than {MAX_RESPONSE_BYTES} bytes"));
    }
    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    Ok(n > 0)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Status and headers of a response head (without the blank line).
fn parse_head(head: &[u8]) -> Result<(u16, Vec<(String, String)>), String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=999).contains(s));
    let Some(status) = status.filter(|_| version.starts_with("HTTP/1.")) else {
        return Err(format!("not an HTTP/1.x status line: {status_line:?}"));
    };
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((status, headers))
}

/// Result of decoding a chunked body from what has arrived so far.
#[derive(Debug, PartialEq, Eq)]
enum Chunked {
    Done(Vec<u8>),
    Incomplete,
    Invalid(String),
}

fn decode_chunked(mut b: &[u8]) -> Chunked {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(b, b"\r\n") else {
            return Chunked::Incomplete;
        };
        let line = String::from_utf8_lossy(b.get(..eol).unwrap_or_default()).into_owned();
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            return Chunked::Invalid(format!("bad chunk size line {line:?}"));
        };
        b = b.get(eol + 2..).unwrap_or_default();
        if size == 0 {
            // Trailers (if any) end with an empty line.
            if b.starts_with(b"\r\n") || find(b, b"\r\n\r\n").is_some() {
                return Chunked::Done(out);
            }
            return Chunked::Incomplete;
        }
        let Some(end) = size.checked_add(2) else {
            return Chunked::Invalid("chunk size overflows".into());
        };
        let Some(chunk) = b.get(..end) else {
            return Chunked::Incomplete;
        };
        if !chunk.ends_with(b"\r\n") {
            return Chunked::Invalid("chunk not followed by CRLF".into());
        }
        out.extend_from_slice(chunk.get(..size).unwrap_or_default());
        b = b.get(end..).unwrap_or_default();
    }
}

async fn read_response(stream: &mut TcpStream) -> Result<HttpResponse, String> {
    let mut buf = Vec::new();
    // Skip interim 1xx answers.
    let (status, headers, body_start) = loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            if !fill(stream, &mut buf).await? {
                return Err("connection closed before a complete response head".into());
            }
        };
        let (status, headers) = parse_head(buf.get(..head_end).unwrap_or_default())?;
        if (100..200).contains(&status) {
            buf.drain(..(head_end + 4).min(buf.len()));
            continue;
        }
        break (status, headers, head_end + 4);
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let chunked =
        header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = header("content-length").map(str::parse::<usize>);
    let body = if status == 204 || status == 304 {
        Vec::new()
    } else if chunked {
        loop {
            match decode_chunked(buf.get(body_start..).unwrap_or_default()) {
                Chunked::Done(b) => break b,
                Chunked::Invalid(e) => return Err(format!("chunked body: {e}")),
                Chunked::Incomplete => {
                    if !fill(stream, &mut buf).await? {
                        return Err("connection closed inside a chunked body".into());
                    }
                }
            }
        }
    } else if let Some(length) = length {
        let length = length.map_err(|_| "invalid Content-Length".to_owned())?;
        let want = body_start.saturating_add(length);
        while buf.len() < want {
            if !fill(stream, &mut buf).await? {
                return Err(format!(
                    "connection closed after {} of {length} body bytes",
                    buf.len().saturating_sub(body_start)
                ));
            }
        }
        buf.get(body_start..want).unwrap_or_default().to_vec()
    } else {
        while fill(stream, &mut buf).await? {}
        buf.get(body_start..).unwrap_or_default().to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://127.0.0.1:8787/webhooks/podium?x=1#frag").unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.authority.as_str(),
                u.target.as_str()
            ),
            ("127.0.0.1", 8787, "127.0.0.1:8787", "/webhooks/podium?x=1")
        );
        let u = HttpUrl::parse("HTTP://localhost").unwrap();
        assert_eq!((u.port, u.target.as_str()), (80, "/"));
        let u = HttpUrl::parse("http://[::1]:9/p").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        let u = HttpUrl::parse("http://127.1.2.3?q").unwrap();
        assert_eq!(u.target, "/?q");
        for bad in [
            "https://127.0.0.1/",
            "ftp://x",
            "http://example.com/",
            "http://10.0.0.1/",
            "http://user@127.0.0.1/",
            "http://127.0.0.1:0/",
            "http://127.0.0.1:99999/",
            "http://[::1/",
            "http://[::1]x/",
            "http:///x",
            "http://127.0.0.1/a b",
            "",
            "http://",
            "h",
            "http://é",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn heads_and_chunks() {
        let (s, h) =
            parse_head(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nX: y").unwrap();
        assert_eq!(s, 401);
        assert_eq!(h[0], ("content-type".into(), "text/plain".into()));
        assert!(parse_head(b"SSH-2.0-x").is_err());
        assert!(parse_head(b"HTTP/1.1 abc").is_err());
        assert!(parse_head(b"").is_err());

        assert_eq!(
            decode_chunked(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"),
            Chunked::Done(b"hello world".to_vec())
        );
        assert_eq!(
            decode_chunked(b"0\r\nX-T: 1\r\n\r\n"),
            Chunked::Done(Vec::new())
        );
        assert_eq!(decode_chunked(b"5\r\nhel"), Chunked::Incomplete);
        assert_eq!(decode_chunked(b"5\r\nhello\r\n0\r\n"), Chunked::Incomplete);
        assert!(matches!(decode_chunked(b"zz\r\n"), Chunked::Invalid(_)));
        assert!(matches!(
            decode_chunked(b"2\r\nhello\r\n"),
            Chunked::Invalid(_)
        ));
        assert!(matches!(
            decode_chunked(b"ffffffffffffffffff\r\n"),
            Chunked::Invalid(_)
        ));
        assert!(matches!(
            decode_chunked(b"ffffffffffffffff\r\n"),
            Chunked::Invalid(_) | Chunked::Incomplete
        ));
    }
}
