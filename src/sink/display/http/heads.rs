//! The preview server's I/O thread: it accepts connections and collects their request heads
//! without a thread per connection: poll(2) over the listener and up to [`MAX_PENDING`]
//! nonblocking sockets. A complete head goes, parsed, to the workers' queue; a connection whose
//! head is not complete within the timeout of its accept gets a 408 and is closed (so a client
//! that sends nothing, or a byte at a time, holds only a slot here, never a thread), one past
//! [`MAX_PENDING`] a 503 at once.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use super::wire::{respond, Request, MAX_HEAD};

/// Connections whose request head is still coming in; one more gets a 503.
pub const MAX_PENDING: usize = 256;
/// How long the thread pauses after an accept or poll error (out of file descriptors).
const PAUSE: Duration = Duration::from_millis(100);
/// How often a parsed request waiting for a free worker is offered again.
const RETRY: Duration = Duration::from_millis(5);

struct Pending {
    stream: TcpStream,
    head: Vec<u8>,
    deadline: Instant,
    ready: Option<Request>,
}

/// Reject `stream` with `status` without blocking (a short response fits a fresh socket's
/// send buffer).
fn reject(mut stream: TcpStream, status: u16, body: &str) {
    let _ = stream.set_nonblocking(true);
    let retry: &[(&str, &str)] = if status == 503 {
        &[("Retry-After", "1")]
    } else {
        &[]
    };
    respond(
        &mut stream,
        status,
        "text/plain; charset=utf-8",
        retry,
        body.as_bytes(),
        false,
    );
}

/// Runs until `stop` is set (and the listener woken): accepts, reads heads, hands requests to
/// `tx`.
pub fn run(
    listener: &TcpListener,
    tx: &SyncSender<(Request, TcpStream)>,
    timeout: Duration,
    stop: &AtomicBool,
) {
    if let Err(e) = listener.set_nonblocking(true) {
        tracing::error!("preview: listener: {e}");
        return;
    }
    let mut pending: Vec<Pending> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    loop {
        fds.clear();
        fds.push(libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        for p in &pending {
            fds.push(libc::pollfd {
                fd: p.stream.as_raw_fd(),
                events: if p.ready.is_some() { 0 } else { libc::POLLIN },
                revents: 0,
            });
        }
        let now = Instant::now();
        let wait = if pending.iter().any(|p| p.ready.is_some()) {
            RETRY
        } else {
            pending
                .iter()
                .map(|p| p.deadline.saturating_duration_since(now))
                .min()
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1))
        };
        let wait_ms = i32::try_from(wait.as_millis()).unwrap_or(1000).max(1);
        // SAFETY: `fds` is a live array of `fds.len()` pollfd structs owned here; poll writes
        // only their `revents`, and every fd in it belongs to a socket that outlives the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                tracing::warn!("preview: poll: {e}");
                std::thread::sleep(PAUSE);
            }
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let revents: Vec<i16> = fds.iter().skip(1).map(|f| f.revents).collect();
        pending = pending
            .into_iter()
            .zip(revents)
            .filter_map(|(p, ev)| step(p, ev, tx))
            .collect();
        if fds[0].revents != 0 && !accept(listener, &mut pending, timeout, stop) {
            return;
        }
    }
}

/// Accepts what is waiting; false when the server stops.
fn accept(
    listener: &TcpListener,
    pending: &mut Vec<Pending>,
    timeout: Duration,
    stop: &AtomicBool,
) -> bool {
    loop {
        match listener.accept() {
            Ok(_) if stop.load(Ordering::Relaxed) => return false,
            Ok((s, _)) => {
                if pending.len() >= MAX_PENDING {
                    reject(
                        s,
                        503,
                        "preview server busy: too many connections, retry later\n",
                    );
                    continue;
                }
                if s.set_nonblocking(true).is_err() {
                    continue;
                }
                let _ = s.set_nodelay(true);
                pending.push(Pending {
                    stream: s,
                    head: Vec::new(),
                    deadline: Instant::now() + timeout,
                    ready: None,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                // EMFILE and the like: wait, do not spin
                tracing::warn!("preview: accept: {e}");
                std::thread::sleep(PAUSE);
                return true;
            }
        }
    }
}

/// Reads what `p` has sent, hands a complete request on; `None` when the connection is done
/// here (handed on, answered or closed).
fn step(mut p: Pending, revents: i16, tx: &SyncSender<(Request, TcpStream)>) -> Option<Pending> {
    if p.ready.is_none() && revents != 0 {
        let mut buf = [0u8; 2048];
        loop {
            match p.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => {
                    let from = p.head.len().saturating_sub(3);
                    p.head.extend_from_slice(&buf[..n]);
                    if let Some(end) = p.head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
                        match Request::parse(&p.head[..from + end + 4]) {
                            Some(r) => p.ready = Some(r),
                            None => {
                                reject(p.stream, 400, "bad request\n");
                                return None;
                            }
                        }
                        break;
                    }
                    if p.head.len() >= MAX_HEAD {
                        reject(p.stream, 431, "request head too large\n");
                        return None;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }
    if let Some(req) = p.ready.take() {
        match tx.try_send((req, p.stream)) {
            Ok(()) => return None,
            Err(TrySendError::Full((req, s))) => {
                p.stream = s;
                p.ready = Some(req);
            }
            Err(TrySendError::Disconnected(_)) => return None,
        }
    }
    if Instant::now() >= p.deadline {
        if p.ready.is_some() {
            reject(p.stream, 503, "preview server busy, retry later\n");
        } else {
            reject(p.stream, 408, "request timeout\n");
        }
        return None;
    }
    Some(p)
}
