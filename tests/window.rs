//! `window://` for real (feature `window`: embedded-graphics-simulator + SDL2): `c3n-edge run`
//! processes the real clip `assets/clips/bbb-bird` with the shipped model and
//! `--output window:// --output file://…/%05d.png` on a headless X server (Debian `xvfb`), while
//! this test grabs the X screen from Xvfb's memory-mapped XWD framebuffer (`-fbdir`, no extra
//! tool). Checks: every steady picture of the window (centred by SDL) is exactly the picture the
//! renderer wrote for one of the frames (the status line excepted: live outputs get run-state updates that files do not),
//! that picture is the real frame with mask pixels tinted in the colours of the run's objects, and
//! the run ends cleanly when the input ends.
//!
//! Xvfb missing: loud SKIP, or FAIL when `CI=true` (tests/setup.sh installs it).
#![cfg(feature = "window")]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use c3n_edge::render::{blend, object_colour, PENDING_COLOUR};
use image::RgbImage;

const BIN: &str = env!("CARGO_BIN_EXE_c3n-edge");
const ALPHA: f32 = 0.59;
/// Xvfb screen size, pixels.
const SCREEN: (u32, u32) = (640, 480);

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

#[test]
fn window_under_xvfb_shows_the_rendered_overlay() {
    let Some(xvfb) = xvfb() else {
        return;
    };
    let started = Instant::now();
    let dir = common::tmp_dir("window");
    let fbdir = dir.join("xvfb");
    std::fs::create_dir_all(&fbdir).expect("fbdir");
    let (_x, display) = start_xvfb(&xvfb, &fbdir);
    let screen_file = fbdir.join("Xvfb_screen0");
    let clip = root().join("assets/clips/bbb-bird");
    let frames_out = dir.join("frames");
    // two model windows (frames 0-4, then 5-9): the window shows frame 4 while the second
    // window is inferred; min-frames 1 announces objects at once (colours by event id)
    let child = Command::new(BIN)
        .current_dir(root())
        .args(common::demo_clip_run_args(2))
        .args([
            "--min-frames",
            "1",
            "--events",
            dir.join("events.jsonl").to_str().unwrap_or_default(),
            "--output",
            "window://",
            "--output",
            &format!("file://{}/%05d.png", frames_out.display()),
            "--log",
            "info",
        ])
        .env("DISPLAY", &display)
        .env_remove("WAYLAND_DISPLAY")
        .env("SDL_VIDEODRIVER", "x11")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("run.log")).expect("run.log"))
        .spawn()
        .expect("start c3n-edge");
    let mut run = Killed(child);

    // grab the window area (centred on the screen) every 50 ms while the run goes on; keep a
    // picture once two reads in a row agree (not torn by a redraw)
    let (fw, fh) = image::open(clip.join("frames/00001.png"))
        .expect("frame 1")
        .to_rgb8()
        .dimensions();
    let (wx, wy) = ((SCREEN.0 - fw) / 2, (SCREEN.1 - fh) / 2);
    let mut grabs: Vec<RgbImage> = Vec::new();
    let mut previous: Option<RgbImage> = None;
    let deadline = Instant::now() + Duration::from_secs(900);
    let status = loop {
        if let Some(s) = run.0.try_wait().expect("wait c3n-edge") {
            break s;
        }
        assert!(Instant::now() < deadline, "c3n-edge did not end in 900 s");
        if let Some(screen) = read_xwd(&screen_file) {
            let crop = image::imageops::crop_imm(&screen, wx, wy, fw, fh).to_image();
            let stable = previous.as_ref() == Some(&crop);
            if stable && grabs.last() != Some(&crop) && crop.pixels().any(|p| p.0 != [0, 0, 0]) {
                grabs.push(crop.clone());
            }
            previous = Some(crop);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.join("run.log")).unwrap_or_default();
    assert!(status.success(), "c3n-edge run failed ({status}):\n{log}");
    let run_s = started.elapsed().as_secs_f64();
    assert!(
        !grabs.is_empty(),
        "the screen never showed a window:\n{log}"
    );

    // the renderer's pictures of the run (file:// output, one per frame)
    let mut written: Vec<(u64, RgbImage)> = std::fs::read_dir(&frames_out)
        .expect("frames written")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.path().file_stem()?.to_str()?.parse::<u64>().ok()?;
            Some((n, image::open(e.path()).ok()?.to_rgb8()))
        })
        .collect();
    written.sort_by_key(|(n, _)| *n);
    assert_eq!(written.len(), 10, "file:// output is lossless: 10 frames");

    // which grabs show which frame (all rows above the status band equal)
    let rows = rows_above_status(fh);
    let same_picture = |a: &RgbImage, b: &RgbImage| {
        (0..rows).all(|y| (0..fw).all(|x| near(a.get_pixel(x, y).0, b.get_pixel(x, y).0, 2)))
    };
    let mut matched = BTreeSet::new();
    let mut unmatched = Vec::new();
    for (i, g) in grabs.iter().enumerate() {
        g.save(dir.join(format!("grab-{i:03}.png"))).ok();
        match written.iter().find(|(_, w)| same_picture(g, w)) {
            Some((n, _)) => {
                matched.insert(*n);
            }
            None => unmatched.push(i),
        }
    }
    eprintln!(
        "{} distinct window pictures grabbed, frames matched: {matched:?} (grabs in {})",
        grabs.len(),
        dir.display()
    );
    assert!(
        !matched.is_empty() && unmatched.is_empty(),
        "window pictures {unmatched:?} equal no picture the renderer wrote (grabs and frames in \
         {})",
        dir.display()
    );

    // the matched pictures show the frame, with mask pixels tinted in an object's colour
    let events = std::fs::read_to_string(dir.join("events.jsonl")).expect("events");
    let mut colours: Vec<[u8; 3]> = vec![PENDING_COLOUR];
    for line in events.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("event JSON");
        if let Some(id) = v["after"]["id"].as_str() {
            colours.push(object_colour(id));
        }
    }
    assert!(colours.len() > 1, "the run announced no object:\n{events}");
    let mut best_tinted = 0;
    for n in &matched {
        let raw = image::open(clip.join(format!("frames/{:05}.png", n + 1)))
            .expect("input frame")
            .to_rgb8();
        let shown = &written[*n as usize].1;
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
    eprintln!(
        "window test: run {run_s:.1} s, whole test {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // the X screen file (1.2 MB); the grabs and frames stay for a look
    let _ = std::fs::remove_dir_all(&fbdir);
}
