//! DRM/KMS display test (tests/vm/run-drm.sh), one binary for both sides:
//!
//! * `drm_vmtest guest` runs as the payload of a qemu guest whose kernel has the `bochs` or the
//!   `virtio-gpu` DRM driver loaded with fbdev emulation off (so there is no `/dev/fb0`), against
//!   `/dev/dri/card0`. Statically linked (tests/vm/build-drm-initramfs.sh). It shows four
//!   pictures, one after the other; after each it prints `C3N_DRM_SHOWN <phase> <W>x<H>` and
//!   waits for a line on the console (the host takes a `screendump` meanwhile):
//!   1. `prior`: a solid [`PRIOR`] screen at 1024x768 set up with raw KMS calls by another open
//!      file of the card, which then drops DRM master (the state a `display://` must give
//!      back, like a console or a compositor's);
//!   2. `auto`: [`scene_a`] through `display://0` (no `/dev/fb0`: the DRM backend is chosen),
//!      the connector's preferred mode; while it is up a second `display://0?backend=drm` must
//!      fail with a "DRM master" error naming the card;
//!   3. `restored`: the first output dropped, the CRTC must show the `prior` framebuffer again
//!      (checked here with GETCRTC and on the host in the screendump);
//!   4. `mode`: [`scene_b`] through `display://0?backend=drm&device=/dev/dri/card0&mode=800x600`.
//!
//!   Ends with `C3N_VM_PASS` or `C3N_VM_FAIL: <reason>`.
//! * `drm_vmtest check <phase> <screendump.ppm> [diff-dir]` runs on the host: the screendump
//!   (PPM, qemu's monitor) must have the phase's size and show the phase's picture, which this
//!   side renders with the same [`Renderer`]: every channel within [`TOLERANCE`]. Independent
//!   of the renderer it also checks the letterbox bars, a mask pixel (frame colour blended with
//!   the object colour) and a frame pixel outside the masks.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;

use c3n_edge::post::{Region, RegionLabel};
use c3n_edge::render::{blend, object_colour, ImageCanvas, Renderer, Scene, SceneObject};
use c3n_edge::sink::display::{OutputUri, ScreenOutput};
use drm::buffer::DrmFourcc;
use drm::control::{connector, crtc, framebuffer, ClipRect, Device as ControlDevice};
use drm::Device;
use image::{Rgb, RgbImage};

/// Colour of the `prior` screen (R, G, B).
const PRIOR: [u8; 3] = [30, 60, 90];
/// Size of the `prior` screen, pixels.
const PRIOR_SIZE: (u32, u32) = (1024, 768);
/// Preferred mode of the VM's monitor (qemu `-device bochs-display,xres=1280,yres=720`: the
/// EDID's preferred timing).
const PREFERRED: (u32, u32) = (1280, 720);
/// Mode asked for in phase `mode`.
const ASKED: (u32, u32) = (800, 600);
/// Largest per-channel difference allowed between the screendump and the expected picture
/// (XRGB8888 scanout → 24-bit PPM is exact; 2 leaves room for a display device that dithers).
const TOLERANCE: u8 = 2;
/// Event id of the announced object in both scenes.
const ID: &str = "3.000-kmstst";

fn fail(msg: String) -> ! {
    println!("C3N_VM_FAIL: {msg}");
    std::process::exit(1);
}

// the display tests' synthetic objects (tests/common)
#[path = "../tests/common/mod.rs"]
mod common;
use common::ellipse_mask as ellipse;

/// The object of an ellipse (model pixels) on a `w×h` frame: mask, box, 8-point outline.
fn object(w: u32, h: u32, e: (f32, f32, f32, f32), id: Option<&str>) -> SceneObject {
    let (sx, sy) = (w as f32 / 224.0, h as f32 / 224.0);
    let (cx, cy, rx, ry) = e;
    let mask = ellipse(cx, cy, rx, ry);
    SceneObject {
        id: id.map(str::to_string),
        region: Region {
            bbox: [
                ((cx - rx) * sx).floor() as u32,
                ((cy - ry) * sy).floor() as u32,
                ((cx + rx) * sx).ceil() as u32,
                ((cy + ry) * sy).ceil() as u32,
            ],
            area_fraction: mask.count() as f32 / (224.0 * 224.0),
            score: 0.91,
            outline: (0..8)
                .map(|i| {
                    let a = i as f32 * std::f32::consts::PI / 4.0;
                    [(cx + rx * a.cos()) * sx, (cy + ry * a.sin()) * sy]
                })
                .collect(),
            mask,
            label: RegionLabel::default(),
        },
        visual_label: "bird".into(),
        audio_label: "Bird vocalization".into(),
    }
}

fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            96 + ((x + y) % 32) as u8,
        ])
    })
}

/// Phase `auto`: a 320×240 (4:3) gradient with one announced and one pending object; on the
/// 1280×720 preferred mode it is pillarboxed (960×720, 160-pixel bars).
fn scene_a() -> Scene {
    let (w, h) = (320, 240);
    Scene {
        number: 7,
        pts_ms: 7000,
        image: Arc::new(gradient(w, h)),
        objects: vec![
            object(w, h, (90.0, 120.0, 50.0, 70.0), Some(ID)),
            object(w, h, (175.0, 60.0, 25.0, 20.0), None),
        ],
        audio_dbfs: -12.0,
        state: None,
    }
}

/// Phase `mode`: a 384×216 (16:9) gradient with one announced object; on 800×600 it is
/// letterboxed (800×450, 75-pixel bars).
fn scene_b() -> Scene {
    let (w, h) = (384, 216);
    Scene {
        number: 12,
        pts_ms: 12000,
        image: Arc::new(gradient(w, h)),
        objects: vec![object(w, h, (140.0, 110.0, 40.0, 60.0), Some(ID))],
        audio_dbfs: -40.0,
        state: None,
    }
}

/// The picture a screen of `size` shows for `scene`.
fn expected(scene: &Scene, size: (u32, u32)) -> RgbImage {
    let mut c = ImageCanvas(RgbImage::new(size.0, size.1));
    Renderer::default()
        .draw(scene, &mut c)
        .unwrap_or_else(|e| match e {});
    c.0
}

/// An open DRM card for the raw KMS calls of the `prior` phase.
struct Card(File);
impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
impl Device for Card {}
impl ControlDevice for Card {}

/// Sets up the `prior` screen: a solid [`PRIOR`] 1024×768 framebuffer on the first connected
/// connector, then drops DRM master (keeping the file, hence the framebuffer, open).
fn prior_screen(path: &str) -> (Card, crtc::Handle, framebuffer::Handle) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| fail(format!("open {path}: {e}")));
    let card = Card(f);
    let driver = card
        .get_driver()
        .unwrap_or_else(|e| fail(format!("DRM_IOCTL_VERSION: {e}")));
    println!("driver: {}", driver.name().to_string_lossy());
    let res = card
        .resource_handles()
        .unwrap_or_else(|e| fail(format!("resources: {e}")));
    let conn = res
        .connectors()
        .iter()
        .filter_map(|&h| card.get_connector(h, true).ok())
        .find(|c| c.state() == connector::State::Connected)
        .unwrap_or_else(|| fail("no connected connector".into()));
    let modes: Vec<String> = conn
        .modes()
        .iter()
        .map(|m| format!("{}x{}@{}", m.size().0, m.size().1, m.vrefresh()))
        .collect();
    println!("connector modes: {}", modes.join(" "));
    let mode = *conn
        .modes()
        .iter()
        .find(|m| (u32::from(m.size().0), u32::from(m.size().1)) == PRIOR_SIZE)
        .unwrap_or_else(|| fail("no 1024x768 mode".into()));
    let enc = card
        .get_encoder(conn.encoders()[0])
        .unwrap_or_else(|e| fail(format!("encoder: {e}")));
    let crtc = *res
        .filter_crtcs(enc.possible_crtcs())
        .first()
        .unwrap_or_else(|| fail("no crtc".into()));
    let mut db = card
        .create_dumb_buffer(PRIOR_SIZE, DrmFourcc::Xrgb8888, 32)
        .unwrap_or_else(|e| fail(format!("dumb buffer: {e}")));
    let pitch = drm::buffer::Buffer::pitch(&db) as usize;
    {
        let mut map = card
            .map_dumb_buffer(&mut db)
            .unwrap_or_else(|e| fail(format!("map: {e}")));
        for y in 0..PRIOR_SIZE.1 as usize {
            for x in 0..PRIOR_SIZE.0 as usize {
                let at = y * pitch + x * 4;
                map[at..at + 4].copy_from_slice(&[PRIOR[2], PRIOR[1], PRIOR[0], 0]);
            }
        }
    }
    let fb = card
        .add_framebuffer(&db, 24, 32)
        .unwrap_or_else(|e| fail(format!("addfb: {e}")));
    card.set_crtc(crtc, Some(fb), (0, 0), &[conn.handle()], Some(mode))
        .unwrap_or_else(|e| fail(format!("setcrtc: {e}")));
    let _ = card.dirty_framebuffer(fb, &[ClipRect::new(0, 0, 1024, 768)]);
    card.release_master_lock()
        .unwrap_or_else(|e| fail(format!("drop master: {e}")));
    (card, crtc, fb)
}

/// Prints the marker and waits for the host's go-ahead line on the console.
fn shown(phase: &str, size: (u32, u32)) {
    println!("C3N_DRM_SHOWN {phase} {}x{}", size.0, size.1);
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(n) if n > 0 => {}
        other => fail(format!(
            "no go-ahead from the host after {phase}: {other:?}"
        )),
    }
}

fn open_screen(uri: &str) -> ScreenOutput {
    let u = OutputUri::parse(uri).unwrap_or_else(|e| fail(format!("{uri}: {e}")));
    ScreenOutput::open(&u).unwrap_or_else(|e| fail(format!("{uri}: {e}")))
}

fn guest() {
    if Path::new("/dev/fb0").exists() {
        fail("/dev/fb0 exists: fbdev emulation is on, display://0 would not use DRM".into());
    }
    let (card, crtc, prior_fb) = prior_screen("/dev/dri/card0");
    shown("prior", PRIOR_SIZE);

    let r = Renderer::default();
    let mut out = open_screen("display://0");
    let d = out.describe();
    println!("display://0 -> {d}");
    let ScreenOutput::Drm(drm_out) = &out else {
        fail(format!("display://0 did not choose DRM: {d}"));
    };
    let m = drm_out.mode().clone();
    if !m.preferred {
        fail(format!("display://0 chose {m}, not the preferred mode"));
    }
    // a second output while the first one is master
    let u = OutputUri::parse("display://0?backend=drm").unwrap_or_else(|e| fail(e.to_string()));
    match ScreenOutput::open(&u) {
        Ok(_) => fail("a second DRM output opened while the first is master".into()),
        Err(e) => {
            let e = e.to_string();
            if !(e.contains("/dev/dri/card0") && e.contains("DRM master")) {
                fail(format!("unclear not-master error: {e}"));
            }
            println!("second output refused: {e}");
        }
    }
    out.show(&r, &scene_a())
        .unwrap_or_else(|e| fail(format!("show: {e}")));
    shown("auto", (m.width, m.height));

    drop(out);
    let now = card
        .get_crtc(crtc)
        .unwrap_or_else(|e| fail(format!("getcrtc: {e}")));
    if now.framebuffer() != Some(prior_fb) {
        fail(format!(
            "CRTC not restored: framebuffer {:?}, expected {prior_fb:?}",
            now.framebuffer()
        ));
    }
    shown("restored", PRIOR_SIZE);

    let mut out = open_screen("display://0?backend=drm&device=/dev/dri/card0&mode=800x600");
    println!("mode=800x600 -> {}", out.describe());
    out.show(&r, &scene_b())
        .unwrap_or_else(|e| fail(format!("show: {e}")));
    let ScreenOutput::Drm(o) = &out else {
        fail("not DRM".into());
    };
    let size = (o.mode().width, o.mode().height);
    shown("mode", size);
    drop(out);
    let now = card
        .get_crtc(crtc)
        .unwrap_or_else(|e| fail(format!("getcrtc: {e}")));
    if now.framebuffer() != Some(prior_fb) {
        fail("CRTC not restored after the second output".into());
    }
    println!("C3N_VM_PASS");
}

/// Reads a binary PPM (P6, maxval 255), as qemu's `screendump` writes it.
fn read_ppm(path: &str) -> Result<RgbImage, String> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| format!("{path}: {e}"))?;
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while i < data.len() && data[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < data.len() && data[i] == b'#' {
            while i < data.len() && data[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let s = i;
        while i < data.len() && !data[i].is_ascii_whitespace() {
            i += 1;
        }
        if s == i {
            return Err(format!("{path}: truncated PPM header"));
        }
        fields.push(String::from_utf8_lossy(&data[s..i]).to_string());
    }
    i += 1;
    let num = |k: usize| {
        fields[k]
            .parse::<u32>()
            .map_err(|_| format!("{path}: bad PPM header {fields:?}"))
    };
    if fields[0] != "P6" || num(3)? != 255 {
        return Err(format!("{path}: not an 8-bit P6 PPM: {fields:?}"));
    }
    let (w, h) = (num(1)?, num(2)?);
    let body = data
        .get(i..i + (w * h * 3) as usize)
        .ok_or_else(|| format!("{path}: {w}x{h} PPM is truncated"))?;
    RgbImage::from_raw(w, h, body.to_vec()).ok_or_else(|| format!("{path}: bad PPM"))
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    (0..3).all(|c| a[c].abs_diff(b[c]) <= TOLERANCE)
}

fn check(phase: &str, shot: &str, diff_dir: Option<&str>) -> Result<String, String> {
    let img = read_ppm(shot)?;
    // the picture (None: the solid prior screen), the mode, pixels in the letterbox bars
    type Phase = (Option<Scene>, (u32, u32), Vec<(u32, u32)>);
    let (scene, size, bars): Phase = match phase {
        "prior" | "restored" => (None, PRIOR_SIZE, vec![]),
        // 320x240 on 1280x720: 960x720 at x = 160
        "auto" => (Some(scene_a()), PREFERRED, vec![(5, 360), (1275, 10)]),
        // 384x216 on 800x600: 800x450 at y = 75
        "mode" => (Some(scene_b()), ASKED, vec![(400, 5), (10, 590)]),
        other => return Err(format!("unknown phase {other}")),
    };
    if img.dimensions() != size {
        return Err(format!(
            "{phase}: screen is {:?}, expected mode {}x{}",
            img.dimensions(),
            size.0,
            size.1
        ));
    }
    let want = match &scene {
        None => RgbImage::from_pixel(size.0, size.1, Rgb(PRIOR)),
        Some(s) => expected(s, size),
    };
    let res = compare(phase, &img, &want, scene.as_ref(), &bars);
    if res.is_err() {
        if let Some(d) = diff_dir {
            let _ = img.save(format!("{d}/{phase}-actual.png"));
            let _ = want.save(format!("{d}/{phase}-expected.png"));
        }
    }
    res
}

/// Compares the screen `img` with the expected picture `want` of `scene` (`None`: the prior
/// screen); `bars` are pixels that must be black (letterbox).
fn compare(
    phase: &str,
    img: &RgbImage,
    want: &RgbImage,
    scene: Option<&Scene>,
    bars: &[(u32, u32)],
) -> Result<String, String> {
    let size = want.dimensions();
    // facts independent of the renderer
    for &(x, y) in bars {
        if !near(img.get_pixel(x, y).0, [0, 0, 0]) {
            return Err(format!("{phase}: letterbox bar at ({x},{y}) is not black"));
        }
    }
    if let Some(s) = scene {
        let (fw, fh) = s.image.dimensions();
        // where the frame lands (x, y, w, h), as the module doc of render.rs says: scaled to
        // fit, centred, nearest neighbour (target pixel x samples frame pixel x * fw / w)
        let (vx, vy, vw, vh) = if phase == "auto" {
            (160, 0, 960, 720)
        } else {
            (0, 75, 800, 450)
        };
        let at = |fx: u32, fy: u32| (vx + fx * vw / fw, vy + fy * vh / fh);
        let src = |x: u32, y: u32| s.image.get_pixel((x - vx) * fw / vw, (y - vy) * fh / vh).0;
        let o = &s.objects[0].region;
        // centre of the first object's box: inside its mask, tinted with its colour
        let (x, y) = at((o.bbox[0] + o.bbox[2]) / 2, (o.bbox[1] + o.bbox[3]) / 2);
        let tint = blend(src(x, y), object_colour(ID), Renderer::default().alpha);
        if !near(img.get_pixel(x, y).0, tint) {
            return Err(format!(
                "{phase}: mask pixel ({x},{y}) is {:?}, expected the tint {tint:?}",
                img.get_pixel(x, y).0
            ));
        }
        // near the right edge of the frame, mid-height: outside every mask and label
        let (x, y) = at(fw - 2, fh / 2);
        if !near(img.get_pixel(x, y).0, src(x, y)) {
            return Err(format!(
                "{phase}: frame pixel ({x},{y}) is {:?}, expected {:?}",
                img.get_pixel(x, y).0,
                src(x, y)
            ));
        }
    }
    let bad: Vec<(u32, u32)> = img
        .enumerate_pixels()
        .filter(|(x, y, p)| !near(p.0, want.get_pixel(*x, *y).0))
        .map(|(x, y, _)| (x, y))
        .take(1_000_000)
        .collect();
    let max = img
        .pixels()
        .zip(want.pixels())
        .map(|(a, b)| (0..3).map(|c| a[c].abs_diff(b[c])).max().unwrap_or(0))
        .max()
        .unwrap_or(0);
    if !bad.is_empty() {
        return Err(format!(
            "{phase}: {} of {} pixels differ by more than {TOLERANCE} (max {max}), first at {:?}",
            bad.len(),
            size.0 * size.1,
            bad[0]
        ));
    }
    Ok(format!(
        "{phase}: {}x{} screendump matches the expected picture (max channel difference {max})",
        size.0, size.1
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("guest") => guest(),
        Some("check") if args.len() >= 4 => {
            match check(&args[2], &args[3], args.get(4).map(String::as_str)) {
                Ok(msg) => println!("{msg}"),
                Err(e) => {
                    eprintln!("DRM screendump check FAILED: {e}");
                    std::process::exit(1);
                }
            }
        }
        _ => {
            eprintln!("usage: drm_vmtest guest | drm_vmtest check PHASE SHOT.ppm [DIFF_DIR]");
            std::process::exit(2);
        }
    }
}
