//! The binary as a systemd `Type=notify` service: a Unix datagram socket stands in for systemd
//! (`NOTIFY_SOCKET`), `c3n-edge run` analyses the real clip `assets/clips/bbb-bird` (looping, with
//! the shipped one-frame model `models/c3n-edge-t1.onnx` so that each window is one frame), and
//! the test checks the sd_notify(3) protocol: `READY=1` only after the first analysed window,
//! `WATCHDOG=1` again for every later window (frames flow), `STOPPING=1` on SIGTERM, then a clean
//! exit (status 0, the event stream complete).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_c3n-edge");

/// Receives datagrams until one contains `want` (returns all lines seen, in order) or `limit`.
fn recv_until(sock: &UnixDatagram, want: &str, limit: Duration, seen: &mut Vec<String>) -> bool {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                eprintln!("notify datagram: {msg:?}");
                let hit = msg.lines().any(|l| l == want);
                seen.extend(msg.lines().map(str::to_string));
                if hit {
                    return true;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("recv on the notify socket: {e}"),
        }
    }
    false
}

#[test]
fn ready_watchdog_and_stopping_on_sigterm() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("models/c3n-edge-t1.onnx");
    let clip = root.join("assets/clips/bbb-bird");
    assert!(model.is_file(), "shipped model {} missing", model.display());
    assert!(
        clip.join("audio.wav").is_file(),
        "clip {} missing",
        clip.display()
    );

    let dir = common::tmp_dir("notify");
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let events = dir.join("events.jsonl");

    let mut child = Command::new(BIN)
        .args([
            "run",
            &format!("file://{}/frames/%05d.png", clip.display()),
            "--audio",
            &format!("file://{}/audio.wav", clip.display()),
            "--model",
            model.to_str().unwrap(),
            "--input-loop",
            "-1",
            "--events",
            events.to_str().unwrap(),
        ])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn c3n-edge");

    // engine load + first window: generous limit (tract on one shared core)
    let mut seen = Vec::new();
    let ready = recv_until(&sock, "READY=1", Duration::from_secs(300), &mut seen);
    if !ready {
        let _ = child.kill();
        panic!("no READY=1 within 300 s; got {seen:?}");
    }
    assert!(
        !seen
            .iter()
            .take_while(|l| *l != "READY=1")
            .any(|l| l == "WATCHDOG=1"),
        "WATCHDOG before READY: {seen:?}"
    );
    assert!(events.is_file(), "READY before the event output was opened");
    // READY came with the first window's watchdog ping; the next window must feed it again
    let before = seen.iter().filter(|l| *l == "WATCHDOG=1").count();
    assert!(before >= 1, "READY without WATCHDOG: {seen:?}");
    let fed = recv_until(&sock, "WATCHDOG=1", Duration::from_secs(300), &mut seen);
    if !fed {
        let _ = child.kill();
        panic!("watchdog not fed by a second window within 300 s; got {seen:?}");
    }
    assert!(
        seen.iter().any(|l| l.starts_with("STATUS=engine tract")),
        "no STATUS line naming the engine: {seen:?}"
    );

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let stopping = recv_until(&sock, "STOPPING=1", Duration::from_secs(30), &mut seen);
    // the run ends after the window in progress
    let end = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > end {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(stopping, "no STOPPING=1 after SIGTERM: {seen:?}");
    let status = status.expect("c3n-edge did not exit within 300 s of SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let text = std::fs::read_to_string(&events).expect("events file");
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("event line is not JSON ({e}): {line}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
