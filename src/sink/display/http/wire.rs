//! The HTTP/1.1 wire format of the preview server: a request head parsed ([`Request`]) and a
//! whole response written ([`respond`]).

use std::io::Write;
use std::net::TcpStream;

/// Largest request head (request line and headers), bytes.
pub const MAX_HEAD: usize = 8192;

/// Most headers a request head may have (a browser sends about 10–20).
pub const MAX_HEADERS: usize = 64;

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
    /// Parses a complete request head, up to and including the blank line that ends it, with
    /// the `httparse` crate (hyper's parser); `None` if it is not a well-formed HTTP/1.0 or 1.1
    /// head, has more than [`MAX_HEADERS`] headers or an `Authorization` value that is not UTF-8.
    pub fn parse(head: &[u8]) -> Option<Self> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) | Err(_) => return None,
        }
        let (method, target) = (req.method?, req.path?);
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut authorization = None;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("authorization") {
                authorization = Some(std::str::from_utf8(h.value).ok()?.trim().to_string());
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
            b"GET /api/events?after=3 HTTP/1.1\r\nHost: x\r\nauthorization:  Bearer abc \r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/api/events");
        assert_eq!(r.query, "after=3");
        assert_eq!(r.authorization.as_deref(), Some("Bearer abc"));
        let r = Request::parse(b"HEAD /snapshot.jpg HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.query.as_str()),
            ("HEAD", "/snapshot.jpg", "")
        );
        assert_eq!(r.authorization, None);
        assert!(Request::parse(b"GET / SPDY/3\r\n\r\n").is_none());
        assert!(Request::parse(b"GET /\r\nHost: x\r\n\r\n").is_none());
        assert!(Request::parse(b"GET / HTTP/1.1\r\nno colon\r\n\r\n").is_none());
        assert!(
            Request::parse(b"GET / HTTP/1.1\r\nHost: x\r\n").is_none(),
            "no blank line"
        );
        assert!(Request::parse(&[0xff, 0xfe, b'\r', b'\n', b'\r', b'\n']).is_none());
        assert!(Request::parse(b"GET / HTTP/1.1\r\nAuthorization: \xff\r\n\r\n").is_none());
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        assert!(Request::parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).is_none());
    }
}
