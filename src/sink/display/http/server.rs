//! The preview's HTTP/1.1 transport on `std::net`, sized for untrusted clients: one I/O thread
//! that accepts connections and collects their request heads ([`super::heads`], poll(2), no
//! thread per connection), a fixed pool of [`WORKERS`] threads that answer the parsed requests,
//! and a bounded queue ([`QUEUE`]) between them. A request head must arrive within the timeout
//! of its accept (a stalled client is dropped, even one that dribbles bytes) and is at most
//! [`super::wire::MAX_HEAD`] bytes; the answer is written with the same timeout on each write.
//! Responses close the connection (no keep-alive), so a worker is free again after each one.
//! Long responses (the MJPEG stream) are handed by the router to threads of their own, which it
//! counts and bounds.
//!
//! tiny_http (used before) cannot do this: it runs each connection on a thread of an unbounded
//! pool and exposes no socket timeouts.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::heads;
use super::wire::Request;

/// Threads that read and answer requests.
pub const WORKERS: usize = 4;
/// Parsed requests waiting for a worker (more wait in the I/O thread, up to their timeout).
pub const QUEUE: usize = 32;

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
        let (tx, rx) = sync_channel::<(Request, TcpStream)>(QUEUE);
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
            .spawn(move || heads::run(&listener, &tx, timeout, &s))?;
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

fn work(rx: &Mutex<Receiver<(Request, TcpStream)>>, timeout: Duration, handler: &Handler) {
    loop {
        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((req, stream)) = next else {
            return; // the server stopped
        };
        let setup = stream
            .set_nonblocking(false)
            .and_then(|_| stream.set_read_timeout(Some(timeout)))
            .and_then(|_| stream.set_write_timeout(Some(timeout)));
        match setup {
            Ok(()) => handler(req, stream),
            Err(e) => tracing::debug!("preview: connection dropped: {e}"),
        }
    }
}
