//! `http://HOST:PORT`: the live preview server ([`server`]: a fixed pool of request threads, one
//! thread per MJPEG viewer up to `max_viewers`), behind the credentials of [`auth`].
//!
//! | path | content |
//! |---|---|
//! | `/` | the HTML page (with `/page.js` and `/page.css`, nothing else): the stream, the run status and a live list of events (polls the JSON API every 0.5 s) |
//! | `/stream.mjpg` | `multipart/x-mixed-replace; boundary=frame`: each new overlay picture as a JPEG part (parts end at the next boundary; no per-part Content-Length) |
//! | `/snapshot.jpg` | the latest overlay picture (503 before the first frame) |
//! | `/api/state` | the latest [`RunState`] as JSON, plus `preview_skipped` (frames the outputs skipped) |
//! | `/api/events?after=N` | `{"next": M, "events": [...]}`: the events with sequence number ≥ N (the last 200 are kept); poll with `after=next` |
//!
//! Every path needs a credential ([`PreviewAuth`]: 401 with `WWW-Authenticate` without one)
//! unless the server was started without ([`Access::Open`], `?auth=none`). Every response has
//! `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`, the page a
//! `Content-Security-Policy` that allows only its own origin ([`CSP`]). A stream past
//! `max_viewers` gets a 503 with `Retry-After`.

pub mod auth;
pub mod heads;
pub mod server;
pub mod wire;

use std::collections::VecDeque;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use image::RgbImage;

pub use auth::{PreviewAuth, PreviewConfig};
use server::Server;
use wire::{respond, Request};

use super::DisplayError;
use crate::control::RunState;
use crate::events::Event;
use crate::render::encode_jpeg;

/// The page served at `/`.
pub const PAGE: &str = include_str!("page.html");
/// Its script, `/page.js`.
pub const PAGE_JS: &str = include_str!("page.js");
/// Its style sheet, `/page.css`.
pub const PAGE_CSS: &str = include_str!("page.css");
/// The `Content-Security-Policy` of the page: scripts, styles, pictures and API calls from its
/// own origin only; no inline code, plugins, frames, forms or embedding in other pages.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// How long a stream with no new picture waits before it sends the latest one again (so a
/// viewer that has gone away is noticed by the write timeout).
pub const STREAM_REPEAT: Duration = Duration::from_secs(2);

/// JPEG quality of the stream and snapshot.
pub const JPEG_QUALITY: u8 = 85;

/// Events kept for `/api/events`.
pub const EVENT_HISTORY: usize = 200;

#[derive(Debug, Default)]
struct Data {
    jpeg: Option<Arc<Vec<u8>>>,
    seq: u64,
    state: Option<serde_json::Value>,
    events: VecDeque<(u64, Event)>,
    next_event: u64,
    closed: bool,
}

/// What the server shows; written by the pipeline side, read by the request threads.
#[derive(Debug, Default)]
pub struct Preview {
    data: Mutex<Data>,
    cond: Condvar,
}

impl Preview {
    fn lock(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Encodes `img` as the new latest picture and wakes the stream viewers.
    pub fn publish_frame(&self, img: &RgbImage) -> Result<(), DisplayError> {
        let buf = encode_jpeg(img, JPEG_QUALITY).map_err(|e| DisplayError::Output {
            what: "preview JPEG encoder".into(),
            reason: e.to_string(),
        })?;
        let mut d = self.lock();
        d.jpeg = Some(Arc::new(buf));
        d.seq += 1;
        self.cond.notify_all();
        Ok(())
    }

    /// Appends events to the history.
    pub fn publish_events(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let mut d = self.lock();
        for e in events {
            let n = d.next_event;
            d.events.push_back((n, e.clone()));
            d.next_event += 1;
        }
        while d.events.len() > EVENT_HISTORY {
            d.events.pop_front();
        }
    }

    /// Replaces the state.
    pub fn publish_state(&self, state: &RunState, skipped: &u64) {
        let mut v = serde_json::to_value(state).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("preview_skipped".into(), (*skipped).into());
        }
        self.lock().state = Some(v);
    }

    fn close(&self) {
        self.lock().closed = true;
        self.cond.notify_all();
    }

    /// The latest picture and its number, if any.
    fn latest(&self) -> Option<(u64, Arc<Vec<u8>>)> {
        let d = self.lock();
        d.jpeg.clone().map(|j| (d.seq, j))
    }

    /// The latest picture after `seq` (waits up to `timeout`); `None` on timeout or close.
    fn next_frame(&self, seq: u64, timeout: Duration) -> Option<(u64, Arc<Vec<u8>>)> {
        let g = self.lock();
        let (g, _) = self
            .cond
            .wait_timeout_while(g, timeout, |d| d.seq <= seq && !d.closed)
            .unwrap_or_else(|e| e.into_inner());
        if g.closed || g.seq <= seq {
            return None;
        }
        g.jpeg.clone().map(|j| (g.seq, j))
    }
}

/// Who may use the preview.
#[derive(Debug, Clone)]
pub enum Access {
    /// Anyone who can connect (`?auth=none`).
    Open,
    /// Only requests with one of these credentials.
    Credentials(Arc<PreviewAuth>),
}

/// Limits and access of a preview server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Who may use it.
    pub access: Access,
    /// Concurrent MJPEG streams; more get a 503.
    pub max_viewers: usize,
    /// Read and write timeout of each connection (and the time to send a request head).
    pub timeout: Duration,
}

struct Router {
    preview: Arc<Preview>,
    access: Access,
    max_viewers: usize,
    viewers: Arc<AtomicUsize>,
}

/// One viewer slot; frees it when dropped.
struct ViewerSlot(Arc<AtomicUsize>);

impl Drop for ViewerSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The running server; stops (and unblocks its threads) when dropped.
pub struct PreviewServer {
    server: Server,
    preview: Arc<Preview>,
    viewers: Arc<AtomicUsize>,
}

impl std::fmt::Debug for PreviewServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviewServer")
            .field("addr", &self.server.addr())
            .finish_non_exhaustive()
    }
}

impl PreviewServer {
    /// Binds `addr` (`host:port`; port 0 = any free port) and starts serving `preview`.
    pub fn start(
        addr: &str,
        preview: Arc<Preview>,
        opts: ServeOptions,
    ) -> Result<Self, DisplayError> {
        let what = || format!("preview server http://{addr}");
        let listener = TcpListener::bind(addr).map_err(|source| DisplayError::Io {
            what: format!("{}: cannot listen", what()),
            source,
        })?;
        let viewers = Arc::new(AtomicUsize::new(0));
        let router = Arc::new(Router {
            preview: preview.clone(),
            access: opts.access.clone(),
            max_viewers: opts.max_viewers.max(1),
            viewers: viewers.clone(),
        });
        let server = Server::start(
            listener,
            opts.timeout,
            Arc::new(move |req, stream| router.handle(req, stream)),
        )
        .map_err(|source| DisplayError::Io {
            what: format!("{}: cannot start", what()),
            source,
        })?;
        let open = matches!(opts.access, Access::Open);
        tracing::info!(
            "preview at http://{}/ ({}; at most {} viewers, timeout {} s)",
            server.addr(),
            if open {
                "no credential asked: auth=none"
            } else {
                "credentials required"
            },
            opts.max_viewers,
            opts.timeout.as_secs()
        );
        Ok(Self {
            server,
            preview,
            viewers,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// MJPEG streams being served now.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Acquire)
    }
}

impl Drop for PreviewServer {
    fn drop(&mut self) {
        self.preview.close();
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

impl Router {
    fn handle(&self, req: Request, mut stream: TcpStream) {
        let head_only = req.method == "HEAD";
        if req.method != "GET" && !head_only {
            respond(
                &mut stream,
                405,
                TEXT,
                &[("Allow", "GET, HEAD")],
                b"method not allowed\n",
                head_only,
            );
            return;
        }
        if let Access::Credentials(auth) = &self.access {
            if !auth.check(req.authorization.as_deref()) {
                respond(
                    &mut stream,
                    401,
                    TEXT,
                    &[("WWW-Authenticate", &auth.challenge())],
                    b"credentials required (HTTP Basic or a bearer token)\n",
                    head_only,
                );
                return;
            }
        }
        let p = &self.preview;
        let ok = |s: &mut TcpStream, ct: &str, extra: &[(&str, &str)], body: &[u8]| {
            respond(s, 200, ct, extra, body, head_only)
        };
        match req.path.as_str() {
            "/" | "/index.html" => ok(
                &mut stream,
                "text/html; charset=utf-8",
                &[
                    ("Content-Security-Policy", CSP),
                    ("Referrer-Policy", "no-referrer"),
                ],
                PAGE.as_bytes(),
            ),
            "/page.js" => ok(
                &mut stream,
                "text/javascript; charset=utf-8",
                &[],
                PAGE_JS.as_bytes(),
            ),
            "/page.css" => ok(
                &mut stream,
                "text/css; charset=utf-8",
                &[],
                PAGE_CSS.as_bytes(),
            ),
            "/snapshot.jpg" => {
                let jpeg = p.lock().jpeg.clone();
                match jpeg {
                    Some(j) => ok(&mut stream, "image/jpeg", &[], &j),
                    None => respond(
                        &mut stream,
                        503,
                        TEXT,
                        &[("Retry-After", "1")],
                        b"no frame yet\n",
                        head_only,
                    ),
                }
            }
            "/api/state" => {
                let s = p.lock().state.clone().unwrap_or(serde_json::Value::Null);
                ok(
                    &mut stream,
                    "application/json",
                    &[],
                    s.to_string().as_bytes(),
                );
            }
            "/api/events" => {
                let after: u64 = req
                    .query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("after="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let d = p.lock();
                let events: Vec<&Event> = d
                    .events
                    .iter()
                    .filter(|(n, _)| *n >= after)
                    .map(|(_, e)| e)
                    .collect();
                let v = serde_json::json!({ "next": d.next_event, "events": events });
                drop(d);
                ok(
                    &mut stream,
                    "application/json",
                    &[],
                    v.to_string().as_bytes(),
                );
            }
            "/stream.mjpg" => self.start_stream(stream, head_only),
            _ => respond(&mut stream, 404, TEXT, &[], b"not found\n", head_only),
        }
    }

    fn start_stream(&self, mut stream: TcpStream, head_only: bool) {
        let busy = |s: &mut TcpStream, max: usize| {
            let body = format!(
                "too many viewers: this preview serves at most {max} streams at a time \
                 (?viewers=N or [preview] max_viewers); retry later\n"
            );
            respond(
                s,
                503,
                TEXT,
                &[("Retry-After", "5")],
                body.as_bytes(),
                head_only,
            );
        };
        let taken = self
            .viewers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_viewers).then_some(n + 1)
            });
        if taken.is_err() {
            busy(&mut stream, self.max_viewers);
            return;
        }
        let slot = ViewerSlot(self.viewers.clone());
        let p = self.preview.clone();
        let spare = stream.try_clone();
        let spawned = std::thread::Builder::new()
            .name("preview mjpeg".into())
            .spawn(move || {
                let _slot = slot;
                stream_mjpeg(stream, &p, head_only);
            });
        if let Err(e) = spawned {
            tracing::warn!("preview: cannot start a stream thread: {e}");
            if let Ok(mut s) = spare {
                busy(&mut s, self.max_viewers);
            }
        }
    }
}

/// Whether the client closed its side (a peek that sees the end of the stream).
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let closed = matches!(stream.peek(&mut [0u8; 1]), Ok(0));
    let _ = stream.set_nonblocking(false);
    closed
}

/// Writes the multipart MJPEG stream until the client leaves, stalls past the write timeout
/// or the server stops: the latest picture at once, then each new one (the latest again after
/// [`STREAM_REPEAT`] without a new one).
fn stream_mjpeg(mut w: TcpStream, p: &Preview, head_only: bool) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\
                Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n";
    if w.write_all(head.as_bytes())
        .and_then(|_| w.flush())
        .is_err()
        || head_only
    {
        return;
    }
    if w.write_all(b"--frame\r\nContent-Type: image/jpeg\r\n\r\n")
        .is_err()
    {
        return;
    }
    let mut seq = 0; // pictures are numbered from 1: the first call returns the latest at once
    let mut waited = Duration::ZERO;
    let step = Duration::from_millis(500);
    loop {
        let next = match p.next_frame(seq, step) {
            Some(f) => Some(f),
            None if p.lock().closed => return,
            None => {
                waited += step;
                if peer_closed(&w) {
                    return;
                }
                if waited < STREAM_REPEAT || seq == 0 {
                    continue;
                }
                p.latest()
            }
        };
        let Some((s, jpeg)) = next else {
            continue;
        };
        waited = Duration::ZERO;
        seq = s;
        let ok = w
            .write_all(&jpeg)
            // The boundary and headers of the next part right away: Chromium shows a part only
            // once the next part's headers have arrived. Parts carry no Content-Length (it is
            // not known before the next picture); clients split at the boundary.
            .and_then(|_| w.write_all(b"\r\n--frame\r\nContent-Type: image/jpeg\r\n\r\n"))
            .and_then(|_| w.flush());
        if ok.is_err() {
            return; // viewer left, or stalled past the write timeout
        }
    }
}
