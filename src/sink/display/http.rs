//! `http://HOST:PORT`: the live preview server (tiny_http, one thread per MJPEG viewer).
//!
//! | path | content |
//! |---|---|
//! | `/` | one self-contained HTML page (no external resources): the stream, the run status and a live list of events (polls the JSON API every 0.5 s) |
//! | `/stream.mjpg` | `multipart/x-mixed-replace; boundary=frame`: each new overlay picture as a JPEG part (parts end at the next boundary; no per-part Content-Length) |
//! | `/snapshot.jpg` | the latest overlay picture (503 before the first frame) |
//! | `/api/state` | the latest [`RunState`] as JSON, plus `preview_skipped` (frames the outputs skipped) |
//! | `/api/events?after=N` | `{"next": M, "events": [...]}`: the events with sequence number ≥ N (the last 200 are kept); poll with `after=next` |

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use image::RgbImage;
use tiny_http::{Header, Method, Request, Response, Server};

use super::DisplayError;
use crate::control::RunState;
use crate::events::Event;
use crate::render::encode_jpeg;

/// The page served at `/`.
pub const PAGE: &str = include_str!("page.html");

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

/// The running server; stops (and unblocks its threads) when dropped.
pub struct PreviewServer {
    server: Arc<Server>,
    preview: Arc<Preview>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PreviewServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviewServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl PreviewServer {
    /// Binds `addr` (`host:port`; port 0 = any free port) and starts serving `preview`.
    pub fn start(addr: &str, preview: Arc<Preview>) -> Result<Self, DisplayError> {
        let server = Server::http(addr).map_err(|e| DisplayError::Output {
            what: format!("preview server http://{addr}"),
            reason: format!("cannot listen: {e}"),
        })?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| DisplayError::Output {
                what: format!("preview server http://{addr}"),
                reason: "not an IP socket".into(),
            })?;
        let server = Arc::new(server);
        let (s, p) = (server.clone(), preview.clone());
        let thread = std::thread::Builder::new()
            .name("preview http".into())
            .spawn(move || {
                for req in s.incoming_requests() {
                    handle(req, &p);
                }
            })
            .map_err(|source| DisplayError::Io {
                what: "cannot start the preview server thread".into(),
                source,
            })?;
        tracing::info!("preview at http://{bound}/");
        Ok(Self {
            server,
            preview,
            addr: bound,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for PreviewServer {
    fn drop(&mut self) {
        self.preview.close();
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(k: &str, v: &str) -> Header {
    // both are ASCII constants of this module
    Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap_or_else(|_| {
        Header::from_bytes(&b"X-Invalid"[..], &b"1"[..]).unwrap_or_else(|_| unreachable!())
    })
}

fn respond<R: std::io::Read>(req: Request, resp: Response<R>) {
    if let Err(e) = req.respond(resp) {
        tracing::debug!("preview: response not sent: {e}");
    }
}

fn json(req: Request, v: &serde_json::Value) {
    let body = v.to_string();
    respond(
        req,
        Response::from_string(body)
            .with_header(header("Content-Type", "application/json"))
            .with_header(header("Cache-Control", "no-store")),
    );
}

fn handle(req: Request, p: &Arc<Preview>) {
    if *req.method() != Method::Get && *req.method() != Method::Head {
        respond(
            req,
            Response::from_string("method not allowed").with_status_code(405),
        );
        return;
    }
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    match path {
        "/" | "/index.html" => respond(
            req,
            Response::from_string(PAGE)
                .with_header(header("Content-Type", "text/html; charset=utf-8")),
        ),
        "/snapshot.jpg" => {
            let jpeg = p.lock().jpeg.clone();
            match jpeg {
                Some(j) => respond(
                    req,
                    Response::from_data(j.as_slice().to_vec())
                        .with_header(header("Content-Type", "image/jpeg"))
                        .with_header(header("Cache-Control", "no-store")),
                ),
                None => respond(
                    req,
                    Response::from_string("no frame yet").with_status_code(503),
                ),
            }
        }
        "/api/state" => {
            let s = p.lock().state.clone().unwrap_or(serde_json::Value::Null);
            json(req, &s);
        }
        "/api/events" => {
            let after: u64 = query
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
            json(req, &v);
        }
        "/stream.mjpg" => {
            let p = p.clone();
            let spawned = std::thread::Builder::new()
                .name("preview mjpeg".into())
                .spawn(move || stream(req, &p));
            if let Err(e) = spawned {
                tracing::warn!("preview: cannot start a stream thread: {e}");
            }
        }
        _ => respond(
            req,
            Response::from_string("not found").with_status_code(404),
        ),
    }
}

/// Writes the multipart MJPEG stream until the client leaves or the server stops: the latest
/// picture at once, then each new one.
fn stream(req: Request, p: &Preview) {
    let mut w = req.into_writer();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\
                Cache-Control: no-store\r\nConnection: close\r\n\r\n--frame\r\nContent-Type: image/jpeg\r\n\r\n";
    if w.write_all(head.as_bytes())
        .and_then(|_| w.flush())
        .is_err()
    {
        return;
    }
    let mut seq = 0; // pictures are numbered from 1: the first call returns the latest at once
    loop {
        let Some((s, jpeg)) = p.next_frame(seq, Duration::from_millis(500)) else {
            if p.lock().closed {
                return;
            }
            continue;
        };
        seq = s;
        let ok = w
            .write_all(&jpeg)
            // The boundary and headers of the next part right away: Chromium shows a part only
            // once the next part's headers have arrived. Parts carry no Content-Length (it is
            // not known before the next picture); clients split at the boundary.
            .and_then(|_| w.write_all(b"\r\n--frame\r\nContent-Type: image/jpeg\r\n\r\n"))
            .and_then(|_| w.flush());
        if ok.is_err() {
            return; // viewer left
        }
    }
}
