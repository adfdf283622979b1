//! The HTTP/1.1 wire format of the preview server: a request head parsed ([`Request`]) and a
//! whole response written ([`respond`]).

use std::io::Write;
use std::net::TcpStream;

/// Largest request head (request line and headers), bytes.
pub const MAX_HEAD: usize = 8192;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, ….
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string after `?` (may be empty).
    pub query: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

impl Request {
    /// Parses a head (up to and without the blank line); `None` if it is not HTTP/1.x.
    pub fn parse(head: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(head).ok()?;
        let mut lines = text.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let (method, target, version) = (first.next()?, first.next()?, first.next()?);
        if first.next().is_some() || !version.starts_with("HTTP/1.") || method.is_empty() {
            return None;
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut authorization = None;
        for line in lines {
            let (k, v) = line.split_once(':')?;
            if k.trim().eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
        Some(Self {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            authorization,
        })
    }
}

/// The reason phrase of a status code used here.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Writes a whole response (`Connection: close`, `no-store`, `nosniff`, plus `headers`); the
/// body is left out for `HEAD`.
pub fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
) {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    // one write: head and body leave together
    let mut out = head.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    if let Err(e) = stream.write_all(&out).and_then(|_| stream.flush()) {
        tracing::debug!("preview: response not sent: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        let r = Request::parse(
            b"GET /api/events?after=3 HTTP/1.1\r\nHost: x\r\nauthorization:  Bearer abc ",
        )
        .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/api/events");
        assert_eq!(r.query, "after=3");
        assert_eq!(r.authorization.as_deref(), Some("Bearer abc"));
        assert!(Request::parse(b"GET / SPDY/3").is_none());
        assert!(Request::parse(b"GET /\r\nHost: x").is_none());
        assert!(Request::parse(b"GET / HTTP/1.1\r\nno colon").is_none());
        assert!(Request::parse(&[0xff, 0xfe]).is_none());
    }
}
