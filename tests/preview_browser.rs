//! The live preview page in a real browser: `c3n-edge run` processes the real clip
//! `assets/clips/bbb-bird` (one model window, the shipped model) with `--output http://…`, and
//! headless Chromium (Debian `chromium`) loads `/`, driven through the DevTools protocol over
//! `--remote-debugging-pipe` (no extra tools: the pipe is the child's stdin/stdout moved to fds
//! 3 and 4 by `sh`). Checks: the screenshot shows the overlay stream at the page's top-left with
//! each announced object's mask tinted in its colour over the real frame, and the page's event
//! list (DOM) lists the events. The preview asks for HTTP Basic credentials (`[preview]` with a
//! hash from `c3n-edge config --hash-password`); the browser sends them with every request, as
//! it does once a user has typed them in, and the page works under its Content-Security-Policy.
//!
//! Chromium missing: loud SKIP, or FAIL when `CI=true` (tests/setup.sh installs it).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use base64::Engine as _;
use c3n_edge::post::Rle;
use c3n_edge::render::{blend, object_colour};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_c3n-edge");
const ALPHA: f32 = 0.59;

/// Kills (by pid, it is our own child) and reaps the process when dropped.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium() -> Option<PathBuf> {
    let test = "preview_browser";
    let found = std::env::var_os("CHROMIUM").map(PathBuf::from).or_else(|| {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    });
    common::require(
        test,
        found.is_some(),
        "chromium is not installed (apt-get install chromium, or set CHROMIUM; \
         tests/setup.sh installs Debian's chromium)",
    );
    found
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

const USER: &str = "viewer";
const PASSWORD: &str = "pässword with spaces";

/// The `Authorization` header value of [`USER`] and [`PASSWORD`].
fn basic_auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    )
}

/// A config file whose `[preview]` accepts [`USER`] / [`PASSWORD`], the hash made by
/// `c3n-edge config --hash-password`.
fn preview_config(dir: &Path) -> PathBuf {
    let mut child = Command::new(BIN)
        .args(["config", "--hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start c3n-edge config --hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("hash");
    assert!(out.status.success(), "config --hash-password failed");
    let hash = String::from_utf8(out.stdout).expect("utf-8");
    let hash = hash.trim();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let path = dir.join("preview.toml");
    std::fs::write(
        &path,
        format!("[preview]\nuser = \"{USER}\"\npassword_hash = \"{hash}\"\n"),
    )
    .expect("write the config");
    path
}

/// GET `path` from `addr` (HTTP/1.0, whole body) with the credentials.
fn http_get(addr: &str, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: {}\r\n\r\n",
        basic_auth()
    )
    .expect("send request");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    let at = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    assert!(
        buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200"),
        "GET {path}: {:?}",
        String::from_utf8_lossy(&buf[..at])
    );
    buf[at + 4..].to_vec()
}

/// A DevTools-protocol connection over `--remote-debugging-pipe`.
struct Cdp {
    _child: Killed,
    tx: ChildStdin,
    rx: Receiver<Value>,
    id: u64,
    log: PathBuf,
}

impl Cdp {
    fn launch(chromium: &Path, user_data: &Path, log: &Path) -> Self {
        let log_file = std::fs::File::create(log).expect("chromium log file");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
            .arg("sh")
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", user_data.display()))
            .args([
                "--remote-debugging-pipe",
                "--window-size=800,400",
                "about:blank",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start chromium");
        let tx = child.stdin.take().expect("pipe");
        let mut out = child.stdout.take().expect("pipe");
        let (mtx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(i) = buf.iter().position(|&b| b == 0) {
                    let msg: Vec<u8> = buf.drain(..=i).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg[..i]) {
                        if mtx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Cdp {
            _child: Killed(child),
            tx,
            rx,
            id: 0,
            log: log.to_path_buf(),
        }
    }

    fn call(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.id += 1;
        let mut m = json!({"id": self.id, "method": method, "params": params});
        if let Some(s) = session {
            m["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&m).expect("json");
        bytes.push(0);
        self.tx.write_all(&bytes).expect("write to chromium");
        self.tx.flush().expect("flush");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.rx.recv_timeout(left).unwrap_or_else(|e| {
                panic!(
                    "no answer from chromium to {method}: {e}; its log: {}",
                    self.log.display()
                )
            });
            if v["id"] == json!(self.id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    fn eval(&mut self, expr: &str, session: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
            Some(session),
        );
        r["result"]["value"].clone()
    }
}

#[test]
fn preview_page_in_headless_chromium_shows_the_tinted_stream_and_the_events() {
    let Some(chromium) = chromium() else {
        return;
    };
    let started = Instant::now();
    let clip = root().join("assets/clips/bbb-bird");
    let dir = common::tmp_dir("preview");
    let config = preview_config(&dir);
    // One model window (5 frames); min-frames 1 announces every region at once, so the last frame
    // shown has event ids (and colours); linger keeps the page up after the input ends.
    let mut child = Command::new(BIN)
        .current_dir(root())
        .args(common::demo_clip_run_args(1))
        .args([
            "--min-frames",
            "1",
            "--events",
            dir.join("events.jsonl").to_str().unwrap_or_default(),
            "--config",
            config.to_str().unwrap_or_default(),
            "--output",
            "http://127.0.0.1:0?linger=600",
            "--output",
            "display://0", // dropped by --headless
            "--headless",
            "--log",
            "info",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start c3n-edge");
    let stderr = child.stderr.take().expect("stderr");
    let run = Killed(child);
    let (ltx, lrx) = channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[c3n-edge] {line}");
            if ltx.send(line).is_err() {
                return;
            }
        }
    });
    // the bound address, then the end of the input
    let mut addr = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let line = lrx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("c3n-edge ended or stalled before the input was processed");
        if let Some(rest) = line.split("preview at http://").nth(1) {
            let url = rest.split_whitespace().next().unwrap_or_default();
            addr = Some(url.trim_end_matches('/').to_string());
        }
        // the preview output has published its final frame and lingers on it
        if line.contains(": final frame") && line.contains("output http://") {
            break;
        }
    }
    let addr = addr.expect("preview address in the log");
    // without the credentials: 401 and a Basic challenge (the browser's login prompt)
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "GET /snapshot.jpg HTTP/1.0\r\n\r\n").expect("send");
    let mut denied = Vec::new();
    s.read_to_end(&mut denied).expect("read");
    let denied = String::from_utf8_lossy(&denied);
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    assert!(
        denied.contains("WWW-Authenticate: Basic realm=\"c3n-edge\""),
        "{denied}"
    );
    let run_s = started.elapsed().as_secs_f64();

    // the events of the last frame shown (frame 4, t = 4 s) with their masks
    let body = http_get(&addr, "/api/events?after=0");
    let events: Value = serde_json::from_slice(&body).expect("events JSON");
    let events = events["events"].as_array().expect("events array").clone();
    assert!(!events.is_empty(), "the clip produced no events");
    let state: Value = serde_json::from_slice(&http_get(&addr, "/api/state")).expect("state");
    assert_eq!(state["engine"], "tract");
    assert_eq!(state["frames"], 5);
    let last_t = 4.0;
    let shown: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] != "end" && e["after"]["frame_time"].as_f64() == Some(last_t))
        .collect();
    assert!(!shown.is_empty(), "no object in the last frame: {events:?}");

    // the browser
    let ud = dir.join("chromium-profile");
    std::fs::create_dir_all(&ud).expect("profile dir");
    let mut cdp = Cdp::launch(&chromium, &ud, &dir.join("chromium.log"));
    let target = cdp.call("Target.createTarget", json!({"url": "about:blank"}), None);
    let target = target["targetId"].as_str().expect("targetId").to_string();
    let sess = cdp.call(
        "Target.attachToTarget",
        json!({"targetId": target, "flatten": true}),
        None,
    );
    let sess = sess["sessionId"].as_str().expect("sessionId").to_string();
    cdp.call("Page.enable", json!({}), Some(&sess));
    cdp.call("Network.enable", json!({}), Some(&sess));
    cdp.call(
        "Network.setExtraHTTPHeaders",
        json!({"headers": {"Authorization": basic_auth()}}),
        Some(&sess),
    );
    cdp.call(
        "Page.navigate",
        json!({"url": format!("http://{addr}/")}),
        Some(&sess),
    );
    let want = events.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = cdp.eval(
            "[document.getElementById('stream') ? document.getElementById('stream').naturalWidth : 0, \
              document.querySelectorAll('#events li').length]",
            &sess,
        );
        if v[0].as_u64().unwrap_or(0) > 0 && v[1].as_u64().unwrap_or(0) >= want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "page did not show the stream and {want} events within 30 s: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // the DOM: every event is listed with its id and visual label
    let dom = cdp.eval("document.documentElement.outerHTML", &sess);
    let dom = dom.as_str().expect("outerHTML");
    std::fs::write(dir.join("dom.html"), dom).ok();
    for e in &events {
        let id = e["after"]["id"].as_str().unwrap_or_default();
        let label = e["after"]["label"].as_str().unwrap_or_default();
        assert!(
            dom.contains(&format!("data-id=\"{id}\"")),
            "event {id} not in the list"
        );
        assert!(dom.contains(label), "label {label} not in the list");
    }
    let shot = cdp.call(
        "Page.captureScreenshot",
        json!({"format": "png"}),
        Some(&sess),
    );
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().expect("data"))
        .expect("base64");
    std::fs::write(dir.join("screenshot.png"), &png).ok();
    let shot = image::load_from_memory(&png)
        .expect("screenshot PNG")
        .to_rgb8();
    eprintln!("screenshot and DOM in {}", dir.display());

    // the stream sits at the page's top-left at natural size: compare with the real frame 5
    let raw = image::open(clip.join("frames/00005.png"))
        .expect("frame 5")
        .to_rgb8();
    let (w, h) = raw.dimensions();
    let near = |a: [u8; 3], b: [u8; 3], tol: u8| (0..3).all(|c| a[c].abs_diff(b[c]) <= tol);
    let tol = 28; // JPEG (quality 85) of the stream
    let mut masks = Vec::new();
    for e in &shown {
        let rle: Rle = serde_json::from_value(e["after"]["mask"]["rle"].clone()).expect("rle");
        let id = e["after"]["id"].as_str().unwrap_or_default().to_string();
        masks.push((rle.to_mask(), object_colour(&id), id));
    }
    let in_any = |x: u32, y: u32| {
        masks
            .iter()
            .any(|(m, _, _)| m.get(x * m.width / w, y * m.height / h))
    };
    // interior pixels (5-pixel neighbourhood inside the mask): tinted
    for (m, colour, id) in &masks {
        let inside = |x: u32, y: u32| m.get(x * m.width / w, y * m.height / h);
        let (mut n, mut tinted, mut changed) = (0, 0, 0);
        for y in (6..h - 20).step_by(2) {
            for x in (6..w - 6).step_by(2) {
                if !(inside(x, y)
                    && inside(x - 5, y)
                    && inside(x + 5, y)
                    && inside(x, y - 5)
                    && inside(x, y + 5))
                {
                    continue;
                }
                // only this object's tint (overlaps with other masks are blended twice)
                if masks
                    .iter()
                    .filter(|(o, _, _)| o.get(x * o.width / w, y * o.height / h))
                    .count()
                    > 1
                {
                    continue;
                }
                n += 1;
                let base = raw.get_pixel(x, y).0;
                let expected = blend(base, *colour, ALPHA);
                let got = shot.get_pixel(x, y).0;
                tinted += usize::from(near(got, expected, tol));
                changed += usize::from(!near(got, base, 12));
            }
        }
        eprintln!("object {id}: {n} interior samples, {tinted} tinted as expected, {changed} differ from the frame");
        if n < 20 {
            continue; // too thin to judge
        }
        assert!(
            tinted * 100 >= n * 75,
            "object {id}: only {tinted}/{n} pixels tinted with its colour"
        );
        assert!(
            changed * 100 >= n * 50,
            "object {id}: the mask is not visible ({changed}/{n})"
        );
    }
    assert!(
        masks.iter().any(|(m, _, _)| m.count() > 400),
        "no mask big enough to check"
    );
    // outside every mask (rows above the status band): the frame itself (boxes, labels excepted)
    let (mut n, mut same) = (0, 0);
    for y in (0..h - 20).step_by(3) {
        for x in (0..w).step_by(3) {
            if in_any(x, y) {
                continue;
            }
            n += 1;
            same += usize::from(near(shot.get_pixel(x, y).0, raw.get_pixel(x, y).0, tol));
        }
    }
    assert!(
        same * 100 >= n * 80,
        "the stream does not show the frame: {same}/{n} background pixels match"
    );
    eprintln!(
        "preview test: run+first window {run_s:.1} s, whole test {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(cdp);
    drop(run);
}
