//! Access control and limits of the `http://` preview server (src/sink/display/http/), in
//! process over real sockets: 401 and no picture bytes without a credential, 200 with HTTP Basic
//! (Argon2id hash) or a bearer token, `auth=none`, the refusal to start without a credential,
//! the security headers, the viewer limit (503), and stalled clients freed by the timeout.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use c3n_edge::render::Renderer;
use c3n_edge::sink::display::http::auth::hash_password;
use c3n_edge::sink::display::http::{
    Access, Preview, PreviewAuth, PreviewConfig, PreviewServer, ServeOptions,
};
use c3n_edge::sink::display::{DisplaySink, OutputUri};
use image::RgbImage;

const TOKEN: &str = "t0ken-0123456789abcdef";

/// A noisy picture (compresses badly: big JPEGs fill socket buffers fast).
fn noise(w: u32, h: u32, seed: u32) -> RgbImage {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    RgbImage::from_fn(w, h, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        image::Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8])
    })
}

fn credentials() -> Arc<PreviewAuth> {
    let dir = common::tmp_dir("preview-access");
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token file");
    let cfg = PreviewConfig {
        user: Some("viewer".into()),
        password_hash: Some(hash_password("correct horse").expect("hash")),
        token_file: Some(token),
        ..PreviewConfig::default()
    };
    Arc::new(
        PreviewAuth::from_config(&cfg)
            .expect("config")
            .expect("credentials"),
    )
}

fn start(access: Access, max_viewers: usize, timeout_s: u64) -> (PreviewServer, Arc<Preview>) {
    let preview = Arc::new(Preview::default());
    preview
        .publish_frame(&noise(64, 48, 1))
        .expect("first frame");
    let opts = ServeOptions {
        access,
        max_viewers,
        timeout: Duration::from_secs(timeout_s),
    };
    let server = PreviewServer::start("127.0.0.1:0", preview.clone(), opts).expect("start");
    (server, preview)
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

/// A response: status, head (lower-cased), body.
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn parse(buf: &[u8]) -> Resp {
        let at = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(buf.len());
        let head = String::from_utf8_lossy(&buf[..at]).to_ascii_lowercase();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Resp {
            status,
            head,
            body: buf.get(at + 4..).unwrap_or_default().to_vec(),
        }
    }
    fn has(&self, header_line: &str) -> bool {
        self.head.contains(&header_line.to_ascii_lowercase())
    }
}

fn send(addr: &str, path: &str, auth: Option<&str>) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n").expect("send");
    s
}

/// GET of a finite response (the server closes the connection).
fn get(addr: &str, path: &str, auth: Option<&str>) -> Resp {
    let mut s = send(addr, path, auth);
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    Resp::parse(&buf)
}

/// Opens the MJPEG stream: the head and what came with it, at least `min_body` bytes if 200.
fn open_stream(addr: &str, auth: Option<&str>, min_body: usize) -> (Resp, TcpStream) {
    let mut s = send(addr, "/stream.mjpg", auth);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).expect("read stream");
        buf.extend_from_slice(&chunk[..n]);
        let r = Resp::parse(&buf);
        let done = n == 0 || (r.status != 0 && (r.status != 200 || r.body.len() >= min_body));
        if done && buf.windows(4).any(|w| w == b"\r\n\r\n") {
            if r.status != 200 {
                // a refusal is a whole response: read it to its end
                s.read_to_end(&mut buf).expect("read the refusal");
                return (Resp::parse(&buf), s);
            }
            return (r, s);
        }
        assert!(
            n > 0,
            "stream closed early: {:?}",
            String::from_utf8_lossy(&buf)
        );
    }
}

fn has_jpeg(b: &[u8]) -> bool {
    b.windows(3).any(|w| w == [0xff, 0xd8, 0xff])
}

#[test]
fn credentials_are_required_and_checked() {
    let (server, _p) = start(Access::Credentials(credentials()), 4, 5);
    let addr = server.addr().to_string();
    for path in [
        "/",
        "/snapshot.jpg",
        "/api/state",
        "/api/events",
        "/page.js",
    ] {
        let r = get(&addr, path, None);
        assert_eq!(r.status, 401, "{path}");
        assert!(
            r.has("www-authenticate: basic realm=\"c3n-edge\""),
            "{path}: {}",
            r.head
        );
        assert!(!has_jpeg(&r.body), "{path}");
    }
    // the stream: 401 and not one byte of JPEG
    let (r, mut s) = open_stream(&addr, None, 0);
    assert_eq!(r.status, 401);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("read to the end");
    assert!(!has_jpeg(&r.body) && !has_jpeg(&rest));
    assert_eq!(server.viewers(), 0);

    for bad in [
        basic("viewer", "wrong horse"),
        basic("admin", "correct horse"),
        basic("viewer", ""),
        "Basic not-base64!".to_string(),
        "Bearer t0ken-0123456789abcdeX".to_string(),
        format!("Bearer {TOKEN}x"),
        format!("Token {TOKEN}"),
    ] {
        let r = get(&addr, "/snapshot.jpg", Some(&bad));
        assert_eq!(r.status, 401, "{bad}");
        assert!(!has_jpeg(&r.body));
    }
    for good in [
        basic("viewer", "correct horse"),
        basic("viewer", "correct horse"), // the cached check
        format!("Bearer {TOKEN}"),
    ] {
        let r = get(&addr, "/snapshot.jpg", Some(&good));
        assert_eq!(r.status, 200, "{good}");
        assert!(r.body.starts_with(&[0xff, 0xd8]), "a JPEG");
        assert!(r.has("cache-control: no-store") && r.has("x-content-type-options: nosniff"));
        let (r, _s) = open_stream(&addr, Some(&good), 3);
        assert_eq!(r.status, 200);
        assert!(r.has("content-type: multipart/x-mixed-replace; boundary=frame"));
        assert!(r.has("cache-control: no-store"));
    }
}

#[test]
fn security_headers_and_a_page_without_inline_code() {
    let (server, _p) = start(Access::Open, 4, 5);
    let addr = server.addr().to_string();
    let page = get(&addr, "/", None);
    assert_eq!(page.status, 200);
    let csp = page
        .head
        .lines()
        .find_map(|l| l.strip_prefix("content-security-policy: "))
        .expect("CSP header")
        .to_string();
    for d in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(d), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"));
    let html = String::from_utf8_lossy(&page.body);
    assert!(!html.contains("<script>") && !html.contains("<style") && !html.contains("style="));
    assert!(page.has("x-content-type-options: nosniff"));
    for path in [
        "/page.js",
        "/page.css",
        "/api/state",
        "/api/events?after=0",
        "/snapshot.jpg",
    ] {
        let r = get(&addr, path, None);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.has("cache-control: no-store"), "{path}");
        assert!(r.has("x-content-type-options: nosniff"), "{path}");
    }
    assert_eq!(get(&addr, "/nope", None).status, 404);
}

#[test]
fn without_a_credential_the_preview_refuses_to_start() {
    let uri = OutputUri::parse("http://127.0.0.1:0").expect("uri");
    let e = DisplaySink::open(&[uri], Renderer::default())
        .expect_err("no credential, no auth=none")
        .to_string();
    for want in [
        "auth=none",
        "[preview]",
        "password_hash",
        "token_file",
        "--hash-password",
    ] {
        assert!(e.contains(want), "{e}");
    }
    let open = OutputUri::parse("http://127.0.0.1:0?auth=none").expect("uri");
    let sink = DisplaySink::open(&[open], Renderer::default()).expect("auth=none starts");
    let addr = sink.http_addrs()[0];
    assert!(addr.ip().is_loopback());
    assert_eq!(get(&addr.to_string(), "/api/state", None).status, 200);
}

#[test]
fn viewers_past_the_limit_get_503_until_one_leaves() {
    let (server, _p) = start(Access::Open, 2, 5);
    let addr = server.addr().to_string();
    let (a, sa) = open_stream(&addr, None, 3);
    let (b, _sb) = open_stream(&addr, None, 3);
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(server.viewers(), 2);
    let (c, _) = open_stream(&addr, None, 0);
    assert_eq!(c.status, 503);
    assert!(c.has("retry-after: "));
    let body = String::from_utf8_lossy(&c.body).to_string();
    assert!(
        body.contains("too many viewers") && body.contains("at most 2"),
        "{body}"
    );
    // short requests still work while the streams run
    assert_eq!(get(&addr, "/api/state", None).status, 200);
    drop(sa);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.viewers() > 1 {
        assert!(
            Instant::now() < deadline,
            "the slot of a closed viewer was not freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (d, _sd) = open_stream(&addr, None, 3);
    assert_eq!(d.status, 200);
}

#[test]
fn a_half_sent_request_is_dropped_after_the_timeout() {
    let (server, _p) = start(Access::Credentials(credentials()), 4, 1);
    let addr = server.addr().to_string();
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(b"GET /snapshot.jpg HT")
        .expect("half a request");
    let mut buf = Vec::new();
    // the server ends the connection (our own 10 s read timeout would be an error here)
    s.read_to_end(&mut buf)
        .expect("the server closed the stalled connection");
    let r = Resp::parse(&buf);
    assert_eq!(r.status, 408, "{}", r.head);
    // one that dribbles a byte at a time does not get longer than the timeout either
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(300))).ok();
    let start = Instant::now();
    let mut got = Vec::new();
    for b in b"GET / HTTP/1.1\r\nX-Slow: ".iter().cycle() {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        let mut chunk = [0u8; 256];
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "dribbling client kept"
        );
    }
    assert!(
        got.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn a_viewer_that_reads_nothing_is_dropped_by_the_write_timeout() {
    let (server, preview) = start(Access::Open, 1, 1);
    let addr = server.addr().to_string();
    let (r, stalled) = open_stream(&addr, None, 3);
    assert_eq!(r.status, 200);
    assert_eq!(open_stream(&addr, None, 0).0.status, 503);
    // new pictures until the server gives up on the viewer that does not read them
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 2;
    while server.viewers() > 0 {
        assert!(
            Instant::now() < deadline,
            "stalled viewer still held after 60 s"
        );
        preview.publish_frame(&noise(640, 480, n)).expect("frame");
        n += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let (r, _s) = open_stream(&addr, None, 3);
    assert_eq!(r.status, 200, "the slot is free again");
    drop(stalled);
}
