//! The preview's HTTP/1.1 transport on `std::net`, sized for untrusted clients: one accept
//! thread, a fixed pool of [`WORKERS`] threads that read a request head and answer it, and a
//! bounded queue of accepted connections between them (a connection that finds it full gets a
//! 503 at once). Every connection has read and write timeouts; its request head must arrive
//! within the timeout of its accept (a stalled client is dropped, even one that dribbles bytes)
//! and is at most [`MAX_HEAD`] bytes. Responses close the connection (no keep-alive), so a
//! worker is free again after each one. Long responses (the MJPEG stream) are handed by the
//! router to threads of their own, which it counts and bounds.
//!
//! tiny_http (used before) cannot do this: it runs each connection on a thread of an unbounded
//! pool and exposes no socket timeouts.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Threads that read and answer requests.
pub const WORKERS: usize = 4;
/// Accepted connections waiting for a worker; one more gets a 503.
pub const QUEUE: usize = 32;
/// Largest request head (request line and headers), bytes.
pub const MAX_HEAD: usize = 8192;
/// How long the accept thread pauses after an accept error (out of file descriptors).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

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

/// What the router does with each request; it owns the connection from then on.
pub type Handler = dyn Fn(Request, TcpStream) + Send + Sync;

/// The listening server; stops accepting when dropped (workers end when their connection does).
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `listener` with `handler`; `timeout` is the read/write timeout of each connection.
    pub fn start(
        listener: TcpListener,
        timeout: Duration,
        handler: Arc<Handler>,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (tx, rx) = sync_channel::<(TcpStream, Instant)>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..WORKERS {
            let (rx, h) = (rx.clone(), handler.clone());
            std::thread::Builder::new()
                .name(format!("preview http {i}"))
                .spawn(move || work(&rx, timeout, &*h))?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let acceptor = std::thread::Builder::new()
            .name("preview accept".into())
            .spawn(move || accept(&listener, &tx, timeout, &s))?;
        Ok(Self {
            addr,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // wake the blocking accept with a connection of our own; join only if that worked
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
            if let Some(t) = self.acceptor.take() {
                let _ = t.join();
            }
        }
    }
}

fn accept(
    listener: &TcpListener,
    tx: &SyncSender<(TcpStream, Instant)>,
    timeout: Duration,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok(_) if stop.load(Ordering::Relaxed) => return,
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and the like: wait, do not spin
                tracing::warn!("preview: accept: {e}");
                std::thread::sleep(ACCEPT_PAUSE);
                continue;
            }
        };
        let setup = stream
            .set_nonblocking(false)
            .and_then(|_| stream.set_read_timeout(Some(timeout)))
            .and_then(|_| stream.set_write_timeout(Some(timeout)))
            .and_then(|_| stream.set_nodelay(true));
        if let Err(e) = setup {
            tracing::debug!("preview: connection dropped: {e}");
            continue;
        }
        match tx.try_send((stream, Instant::now())) {
            Ok(()) => {}
            Err(TrySendError::Full((mut s, _))) => {
                // never block the accept thread on a client: a short write to a fresh socket
                // fits its send buffer
                let _ = s.set_nonblocking(true);
                respond(
                    &mut s,
                    503,
                    "text/plain; charset=utf-8",
                    &[("Retry-After", "1")],
                    b"preview server busy: too many connections, retry later\n",
                    false,
                );
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

fn work(rx: &Mutex<Receiver<(TcpStream, Instant)>>, timeout: Duration, handler: &Handler) {
    loop {
        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((mut stream, accepted)) = next else {
            return; // the server stopped
        };
        match read_head(&mut stream, accepted + timeout) {
            Ok(head) => match Request::parse(&head) {
                Some(req) => {
                    let _ = stream.set_read_timeout(Some(timeout));
                    handler(req, stream);
                }
                None => respond(&mut stream, 400, "text/plain", &[], b"bad request\n", false),
            },
            Err(HeadError::TooLarge) => respond(
                &mut stream,
                431,
                "text/plain",
                &[],
                b"request head too large\n",
                false,
            ),
            Err(HeadError::Timeout) => respond(
                &mut stream,
                408,
                "text/plain",
                &[],
                b"request timeout\n",
                false,
            ),
            Err(HeadError::Closed) => {}
        }
    }
}

enum HeadError {
    TooLarge,
    Timeout,
    Closed,
}

/// Reads up to the blank line that ends the head, until `deadline`.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // a connection that waited in the queue past its deadline may still have its whole
        // request buffered: give it one short read
        let left = left.max(Duration::from_millis(1));
        if stream.set_read_timeout(Some(left)).is_err() {
            return Err(HeadError::Closed);
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HeadError::Timeout)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Closed),
        };
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(from + end);
            return Ok(head);
        }
        if head.len() >= MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        if Instant::now() >= deadline {
            return Err(HeadError::Timeout);
        }
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
