//! 200 concurrent connections to the `http://` preview (the only test of this binary, so the
//! process's threads are the server's and the harness's): the process gains at most 16 threads
//! while they are open, every connection is answered within 10 s (a quarter of them send
//! nothing and get a 408 after the default 5 s timeout, without delaying the others), and the
//! open files come back to where they were.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use c3n_edge::sink::display::http::{
    Access, Preview, PreviewAuth, PreviewConfig, PreviewServer, ServeOptions,
};

const TOKEN: &str = "load-test-token-0123456789";
const CONNECTIONS: usize = 200;

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn threads() -> usize {
    count("/proc/self/task")
}

fn fds() -> usize {
    count("/proc/self/fd")
}

#[test]
fn two_hundred_connections_leave_threads_and_files_bounded() {
    let dir = std::env::temp_dir().join(format!("c3n-preview-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).expect("token");
    let cfg = PreviewConfig {
        token_file: Some(token_file),
        ..PreviewConfig::default()
    };
    let auth = PreviewAuth::from_config(&cfg)
        .expect("config")
        .expect("a credential");
    let preview = Arc::new(Preview::default());
    preview
        .publish_frame(&image::RgbImage::new(64, 48))
        .expect("frame");
    let server = PreviewServer::start(
        "127.0.0.1:0",
        preview,
        ServeOptions {
            access: Access::Credentials(Arc::new(auth)),
            max_viewers: cfg.max_viewers,
            timeout: Duration::from_secs(cfg.timeout_s),
        },
    )
    .expect("start");
    let addr = server.addr();
    std::thread::sleep(Duration::from_millis(200));
    let (idle_threads, idle_fds) = (threads(), fds());

    // connect all, then send: a quarter nothing, the rest a stream, an API call or a request
    // without a credential; all from this one thread (no client threads to count)
    let start = Instant::now();
    let mut conns = Vec::new();
    for i in 0..CONNECTIONS {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
        let req = match i % 4 {
            0 => None,
            1 => Some(format!(
                "GET /stream.mjpg HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
            )),
            2 => Some(format!(
                "GET /api/state HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
            )),
            _ => Some("GET /snapshot.jpg HTTP/1.1\r\n\r\n".to_string()),
        };
        if let Some(r) = req {
            // a refused (reset) connection counts as closed below
            let _ = (&s).write_all(r.as_bytes());
        }
        s.set_nonblocking(true).expect("nonblocking");
        conns.push((i, s, Vec::<u8>::new(), None::<&'static str>));
    }
    let mut peak = threads();
    let deadline = start + Duration::from_secs(10);
    loop {
        let mut open = 0;
        for (_, s, buf, done) in conns.iter_mut().filter(|c| c.3.is_none()) {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) => *done = Some("closed"),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        *done = Some("answered");
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => open += 1,
                Err(_) => *done = Some("closed"),
            }
        }
        peak = peak.max(threads());
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} connections neither answered nor closed within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = start.elapsed();
    let status = |b: &[u8]| String::from_utf8_lossy(b.get(9..12).unwrap_or_default()).to_string();
    // the silent ones hold no worker: every request is answered, only streams past the
    // viewer limit are refused
    let mut streams = 0;
    for (i, _, buf, _) in &conns {
        let st = status(buf);
        match i % 4 {
            0 => assert_eq!(st, "408", "connection {i} (silent)"),
            1 if st == "200" => streams += 1,
            1 => assert_eq!(st, "503", "connection {i} (stream)"),
            2 => assert_eq!(st, "200", "connection {i} (API)"),
            _ => assert_eq!(st, "401", "connection {i} (no credential)"),
        }
    }
    assert_eq!(streams, cfg.max_viewers, "streams served");
    eprintln!(
        "200 connections: all answered or closed in {:.2} s; threads idle {idle_threads}, \
         peak {peak} (+{}); streams served {streams}",
        elapsed.as_secs_f64(),
        peak - idle_threads
    );
    assert!(
        peak <= idle_threads + 16,
        "threads: idle {idle_threads}, peak {peak}"
    );

    // every file the connections used is closed again once the clients are gone
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds() > idle_fds || server.viewers() > 0 {
        assert!(
            Instant::now() < deadline,
            "fds idle {idle_fds}, now {}; viewers {}",
            fds(),
            server.viewers()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("fds idle {idle_fds}, after {}", fds());
    std::fs::remove_dir_all(&dir).ok();
}
