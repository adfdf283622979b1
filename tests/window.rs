//! `window://` for real (feature `window`: embedded-graphics-simulator + SDL2): `c3n-edge run`
//! processes the real clip `assets/clips/bbb-bird` with the shipped model and
//! `--output 'window://?linger=600' --output file://…/%05d.png` on a headless X server (Debian
//! `xvfb`), while this test grabs the X screen from Xvfb's memory-mapped XWD framebuffer
//! (`-fbdir`, no extra tool). Checks: every steady picture of the window (centred by SDL) is
//! exactly the picture the renderer wrote for one of the frames (the status line excepted: live
//! outputs get run-state updates that files do not), that picture is the real frame with mask
//! pixels tinted in the colours of the run's objects, the window ends on the final frame (the
//! newest frame wins), and a stop signal ends its linger with a clean exit.
//!
//! Nothing here waits for a fixed time: the test waits for conditions (a log line, a picture on
//! the screen, the process's end), each with a generous deadline, so a busy machine only makes it
//! slower. The late case stops the X server (SIGSTOP) right after c3n-edge starts and lets it go
//! on (SIGCONT) only once the whole input has been processed: the window opens after the last
//! frame was put and must still show it.
//!
//! Xvfb missing: loud SKIP, or FAIL when `CI=true` (tests/setup.sh installs it).
#![cfg(feature = "window")]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use c3n_edge::render::{blend, object_colour, PENDING_COLOUR};
use image::RgbImage;

const BIN: &str = env!("CARGO_BIN_EXE_c3n-edge");
const ALPHA: f32 = 0.59;
/// Xvfb screen size, pixels.
const SCREEN: (u32, u32) = (640, 480);
/// Frames of the run: two model windows of the demo clip.
const FRAMES: u64 = 10;
/// Deadline of each condition the test waits for (a slow, busy machine takes a few minutes).
const PATIENCE: Duration = Duration::from_secs(900);

/// Kills (by pid, it is our own child) and reaps the process when dropped.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn xvfb() -> Option<PathBuf> {
    let found = ["/usr/bin/Xvfb", "/usr/local/bin/Xvfb"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    common::require(
        "window_under_xvfb",
        found.is_some(),
        "Xvfb is not installed (apt-get install xvfb; tests/setup.sh installs it)",
    );
    found
}

/// Starts Xvfb on a free display (`-displayfd`), its screen memory-mapped to `fbdir/Xvfb_screen0`.
fn start_xvfb(bin: &Path, fbdir: &Path) -> (Killed, String) {
    let mut child = Command::new(bin)
        .args(["-displayfd", "1", "-nolisten", "tcp", "-screen", "0"])
        .arg(format!("{}x{}x24", SCREEN.0, SCREEN.1))
        .arg("-fbdir")
        .arg(fbdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start Xvfb");
    let out = child.stdout.take().expect("Xvfb stdout");
    let x = Killed(child);
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("Xvfb display number");
    let n = line.trim();
    assert!(
        !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()),
        "Xvfb did not report a display: {line:?}"
    );
    (x, format!(":{n}"))
}

/// The X screen from an XWD file (X11 XWDFile.h: 100-byte big-endian header of 25 CARD32s, the
/// window name up to `header_size`, `ncolors` 12-byte colour entries, then ZPixmap lines).
/// Only 32 bits per pixel, LSB-first truecolour (what Xvfb `-screen 0 WxHx24` writes).
fn read_xwd(path: &Path) -> Option<RgbImage> {
    let d = std::fs::read(path).ok()?;
    let f = |i: usize| -> Option<u32> {
        Some(u32::from_be_bytes(
            d.get(i * 4..i * 4 + 4)?.try_into().ok()?,
        ))
    };
    let (header, format, w, h) = (f(0)? as usize, f(2)?, f(4)?, f(5)?);
    let (byte_order, bpp, stride) = (f(7)?, f(11)?, f(12)? as usize);
    let (rmask, gmask, bmask, ncolors) = (f(14)?, f(15)?, f(16)?, f(19)? as usize);
    assert!(
        format == 2 && bpp == 32 && byte_order == 0,
        "unexpected XWD layout (format {format}, {bpp} bpp, byte order {byte_order})"
    );
    let data = d.get(header + ncolors * 12..)?;
    if data.len() < stride * h as usize {
        return None;
    }
    let ch = |v: u32, m: u32| ((v & m) >> m.trailing_zeros()) as u8;
    Some(RgbImage::from_fn(w, h, |x, y| {
        let at = y as usize * stride + x as usize * 4;
        let v = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        image::Rgb([ch(v, rmask), ch(v, gmask), ch(v, bmask)])
    }))
}

fn near(a: [u8; 3], b: [u8; 3], tol: u8) -> bool {
    (0..3).all(|c| a[c].abs_diff(b[c]) <= tol)
}

/// Rows of the picture above the status band (the renderer's band is its font height + 4:
/// 6x10 font below 300 lines, 7x13 below 600, else 10x20).
fn rows_above_status(h: u32) -> u32 {
    let font = if h >= 600 {
        20
    } else if h >= 300 {
        13
    } else {
        10
    };
    h - (font + 4)
}

/// Sends `sig` to our own child `child` (by its pid).
fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped yet.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// The frame number in a log line `output NAME: final frame N shown…` of output `name`.
fn final_frame(line: &str, name: &str) -> Option<u64> {
    let rest = line.split(&format!("output {name}: final frame ")).nth(1)?;
    rest.split(' ').next()?.parse().ok()
}

/// The count in the log line `output window://: N frames skipped (display behind)`, 0 without.
fn window_skipped(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| l.split("output window://: ").nth(1))
        .filter_map(|r| r.strip_suffix(" frames skipped (display behind)"))
        .filter_map(|n| n.trim().parse().ok())
        .next()
        .unwrap_or(0)
}

/// The renderer's pictures of the run (the lossless file:// output), by frame number.
fn written_frames(dir: &Path) -> Vec<(u64, RgbImage)> {
    let mut written: Vec<(u64, RgbImage)> = std::fs::read_dir(dir)
        .expect("frames written")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.path().file_stem()?.to_str()?.parse::<u64>().ok()?;
            Some((n, image::open(e.path()).ok()?.to_rgb8()))
        })
        .collect();
    written.sort_by_key(|(n, _)| *n);
    written
}

/// What one run showed.
struct Seen {
    dir: PathBuf,
    clip: PathBuf,
    /// Distinct steady pictures of the window area, in the order they appeared.
    grabs: Vec<RgbImage>,
    /// The file:// output's pictures, by frame number.
    written: Vec<(u64, RgbImage)>,
    /// The frame the window reported as its final one.
    final_n: u64,
    /// c3n-edge's log.
    log: String,
    /// Frame size, pixels.
    size: (u32, u32),
}

/// Runs c3n-edge on the demo clip with a lingering window on a fresh Xvfb; with `late`, the X
/// server is stopped from right after the start until the input has been processed. Returns
/// once the window has shown its final frame (then ended by SIGTERM, which must end the run
/// cleanly); `None` when Xvfb is missing (skipped).
fn run_window(name: &str, late: bool) -> Option<Seen> {
    let xvfb = xvfb()?;
    let dir = common::tmp_dir(name);
    let fbdir = dir.join("xvfb");
    std::fs::create_dir_all(&fbdir).expect("fbdir");
    let (x, display) = start_xvfb(&xvfb, &fbdir);
    let screen_file = fbdir.join("Xvfb_screen0");
    let clip = root().join("assets/clips/bbb-bird");
    let frames_out = dir.join("frames");
    let file_uri = format!("file://{}/%05d.png", frames_out.display());
    // two model windows (frames 0-4, then 5-9); min-frames 1 announces objects at once
    // (colours by event id); the window stays up on its final frame until the SIGTERM below
    let mut child = Command::new(BIN)
        .current_dir(root())
        .args(common::demo_clip_run_args(2))
        .args([
            "--min-frames",
            "1",
            "--events",
            dir.join("events.jsonl").to_str().unwrap_or_default(),
            "--output",
            "window://?linger=600",
            "--output",
            &file_uri,
            "--log",
            "info",
        ])
        .env("DISPLAY", &display)
        .env_remove("WAYLAND_DISPLAY")
        .env("SDL_VIDEODRIVER", "x11")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start c3n-edge");
    if late {
        // the display answers late: its server is stopped before c3n-edge can reach it
        signal(&x.0, libc::SIGSTOP);
    }
    let stderr = child.stderr.take().expect("stderr");
    let mut run = Killed(child);
    let lines = log_lines(stderr, dir.join("run.log"));
    let mut log = String::new();

    // grab the window area (centred on the screen) every 50 ms; keep a picture once two reads
    // in a row agree (not torn by a redraw)
    let (fw, fh) = image::open(clip.join("frames/00001.png"))
        .expect("frame 1")
        .to_rgb8()
        .dimensions();
    let (wx, wy) = ((SCREEN.0 - fw) / 2, (SCREEN.1 - fh) / 2);
    let rows = rows_above_status(fh);
    let mut grabs: Vec<RgbImage> = Vec::new();
    let mut previous: Option<RgbImage> = None;
    let (mut stopped, mut file_final, mut window_final) = (late, None, None);
    let mut final_picture: Option<RgbImage> = None;
    let deadline = Instant::now() + PATIENCE;
    loop {
        while let Ok(line) = lines.try_recv() {
            file_final = file_final.or(final_frame(&line, &file_uri));
            window_final = window_final.or(final_frame(&line, "window://"));
            log.push_str(&line);
            log.push('\n');
        }
        if let Some(s) = run.0.try_wait().expect("wait c3n-edge") {
            panic!("c3n-edge ended ({s}) before the window showed its final frame:\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "no final frame on the window after {PATIENCE:?} (late: {late}):\n{log}"
        );
        if stopped && file_final.is_some() {
            // every frame was put (the file output, after the window, got the last one)
            signal(&x.0, libc::SIGCONT);
            stopped = false;
        }
        if let (None, Some(n)) = (&final_picture, file_final) {
            let path = frames_out.join(format!("{n:05}.png"));
            final_picture = Some(image::open(&path).expect("final picture").to_rgb8());
        }
        if let Some(screen) = read_xwd(&screen_file) {
            let crop = image::imageops::crop_imm(&screen, wx, wy, fw, fh).to_image();
            let stable = previous.as_ref() == Some(&crop);
            if stable && grabs.last() != Some(&crop) && crop.pixels().any(|p| p.0 != [0, 0, 0]) {
                grabs.push(crop.clone());
            }
            previous = Some(crop);
        }
        // done: the window said it shows its final frame, and the screen shows that picture
        let on_screen = |want: &RgbImage| {
            grabs
                .last()
                .is_some_and(|g| same_picture(g, want, rows) && previous.as_ref() == Some(g))
        };
        if window_final.is_some() && final_picture.as_ref().is_some_and(on_screen) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // a stop signal ends the linger, and the run ends cleanly
    signal(&run.0, libc::SIGTERM);
    let status = wait_exit(&mut run.0, &lines, &mut log);
    assert!(status.success(), "c3n-edge run failed ({status}):\n{log}");
    drop(x);
    let _ = std::fs::remove_dir_all(&fbdir); // the X screen file (1.2 MB)
    let written = written_frames(&frames_out);
    assert_eq!(written.len() as u64, FRAMES, "file:// output is lossless");
    assert_eq!(file_final, Some(FRAMES - 1), "file:// output's final frame");
    Some(Seen {
        dir,
        clip,
        grabs,
        written,
        final_n: window_final.expect("window's final frame"),
        log,
        size: (fw, fh),
    })
}

/// c3n-edge's stderr, line by line (also written to `path` for a look afterwards).
fn log_lines(stderr: std::process::ChildStderr, path: PathBuf) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut file = std::fs::File::create(path).expect("run.log");
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(file, "{line}");
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for c3n-edge to end, collecting the rest of its log.
fn wait_exit(child: &mut Child, lines: &Receiver<String>, log: &mut String) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        while let Ok(line) = lines.try_recv() {
            log.push_str(&line);
            log.push('\n');
        }
        if let Some(s) = child.try_wait().expect("wait c3n-edge") {
            // the log up to its end
            while let Ok(line) = lines.recv_timeout(Duration::from_secs(10)) {
                log.push_str(&line);
                log.push('\n');
            }
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "c3n-edge did not end after SIGTERM:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The rows above the status band of `a` and `b` agree (±2 per channel).
fn same_picture(a: &RgbImage, b: &RgbImage, rows: u32) -> bool {
    a.dimensions() == b.dimensions()
        && (0..rows)
            .all(|y| (0..a.width()).all(|x| near(a.get_pixel(x, y).0, b.get_pixel(x, y).0, 2)))
}

/// Every grab is a picture the renderer wrote; returns the frames they show.
fn matched_frames(seen: &Seen) -> BTreeSet<u64> {
    let rows = rows_above_status(seen.size.1);
    let mut matched = BTreeSet::new();
    let mut unmatched = Vec::new();
    for (i, g) in seen.grabs.iter().enumerate() {
        g.save(seen.dir.join(format!("grab-{i:03}.png"))).ok();
        match seen.written.iter().find(|(_, w)| same_picture(g, w, rows)) {
            Some((n, _)) => {
                matched.insert(*n);
            }
            None => unmatched.push(i),
        }
    }
    eprintln!(
        "{} distinct window pictures grabbed, frames matched: {matched:?} (grabs in {})",
        seen.grabs.len(),
        seen.dir.display()
    );
    assert!(
        unmatched.is_empty(),
        "window pictures {unmatched:?} equal no picture the renderer wrote (grabs and frames in \
         {})",
        seen.dir.display()
    );
    matched
}

/// [`run_window`], then checks that the window's final frame was the clip's last and that it was
/// on the screen; returns the run and the frames the window showed.
fn final_frame_shown(name: &str, late: bool) -> Option<(Seen, BTreeSet<u64>)> {
    let seen = run_window(name, late)?;
    let matched = matched_frames(&seen);
    assert_eq!(seen.final_n, FRAMES - 1, "the window's final frame");
    assert!(
        matched.contains(&(FRAMES - 1)),
        "the final frame was on the screen"
    );
    Some((seen, matched))
}

#[test]
fn window_under_xvfb_shows_the_rendered_overlay() {
    let started = Instant::now();
    let Some((seen, matched)) = final_frame_shown("window", false) else {
        return;
    };

    // the matched pictures show the frame, with mask pixels tinted in an object's colour
    let events = std::fs::read_to_string(seen.dir.join("events.jsonl")).expect("events");
    let mut colours: Vec<[u8; 3]> = vec![PENDING_COLOUR];
    for line in events.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("event JSON");
        if let Some(id) = v["after"]["id"].as_str() {
            colours.push(object_colour(id));
        }
    }
    assert!(colours.len() > 1, "the run announced no object:\n{events}");
    let (fw, fh) = seen.size;
    let rows = rows_above_status(fh);
    let mut best_tinted = 0;
    for n in &matched {
        let raw = image::open(seen.clip.join(format!("frames/{:05}.png", n + 1)))
            .expect("input frame")
            .to_rgb8();
        let shown = &seen.written[*n as usize].1;
        let (mut same, mut tinted, mut total) = (0u32, 0u32, 0u32);
        for y in 0..rows {
            for x in 0..fw {
                let (got, base) = (shown.get_pixel(x, y).0, raw.get_pixel(x, y).0);
                total += 1;
                if near(got, base, 2) {
                    same += 1;
                } else if colours.iter().any(|c| near(got, blend(base, *c, ALPHA), 2)) {
                    tinted += 1;
                }
            }
        }
        eprintln!("frame {n}: {same}/{total} pixels the frame itself, {tinted} tinted");
        assert!(
            same * 100 >= total * 40,
            "frame {n}: the window does not show the frame ({same}/{total})"
        );
        best_tinted = best_tinted.max(tinted);
    }
    assert!(
        best_tinted >= 200,
        "no window picture shows a tinted mask (best: {best_tinted} pixels)"
    );
    eprintln!("window test: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn window_whose_display_answers_late_shows_the_final_frame() {
    let started = Instant::now();
    let Some((seen, matched)) = final_frame_shown("window-late", true) else {
        return;
    };
    // the window opened after the input ended: it drew at most the frame it had taken before
    // it waited for the server and the final one; every frame in between was replaced
    let skipped = window_skipped(&seen.log);
    assert!(
        skipped >= FRAMES - 2,
        "{skipped} frames skipped; expected at least {}:\n{}",
        FRAMES - 2,
        seen.log
    );
    assert!(
        matched.len() <= 2,
        "the late window showed frames {matched:?}: at most the one it took first and the final one"
    );
    eprintln!(
        "late window test: {:.1} s, {skipped} frames skipped",
        started.elapsed().as_secs_f64()
    );
}
