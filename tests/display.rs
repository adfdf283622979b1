//! Display outputs without a screen: golden images of the overlay renderer, the framebuffer output
//! against a file-backed fake fbdev (RGB565 and XRGB8888 packing), the display sink's threads.
//!
//! Golden images live in `tests/golden/`. After an intended change of the picture, regenerate
//! them with `C3N_UPDATE_GOLDEN=1 cargo test --test display golden`, look at them, and commit.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use c3n_edge::control::{DeviceStatus, RunControl, RunState};
use c3n_edge::events::FrameDetections;
use c3n_edge::post::{BitMask, FrameLabels, Region, RegionLabel};
use c3n_edge::render::{
    blend, object_colour, ImageCanvas, Renderer, Scene, SceneObject, PENDING_COLOUR,
};
use c3n_edge::sink::display::fb::{FbGeometry, FramebufferOutput};
use c3n_edge::sink::display::{DisplaySink, OutputUri, ScreenOutput};
use c3n_edge::sink::{AnalysedFrame, Sink};
use embedded_graphics::pixelcolor::Rgb888;
use image::{Rgb, RgbImage};

const ID: &str = "1.000-abcdef";

use common::ellipse_mask as ellipse;

/// Region of `mask` on a `w×h` frame: box and an 8-point outline of the ellipse.
fn region(mask: BitMask, w: u32, h: u32, ell: (f32, f32, f32, f32), score: f32) -> Region {
    let (sx, sy) = (w as f32 / 224.0, h as f32 / 224.0);
    let (cx, cy, rx, ry) = ell;
    let bbox = [
        ((cx - rx) * sx).floor() as u32,
        ((cy - ry) * sy).floor() as u32,
        ((cx + rx) * sx).ceil() as u32,
        ((cy + ry) * sy).ceil() as u32,
    ];
    let outline = (0..8)
        .map(|i| {
            let a = i as f32 * std::f32::consts::PI / 4.0;
            [(cx + rx * a.cos()) * sx, (cy + ry * a.sin()) * sy]
        })
        .collect();
    let area_fraction = mask.count() as f32 / (224.0 * 224.0);
    Region {
        bbox,
        area_fraction,
        score,
        outline,
        mask,
        label: RegionLabel::default(),
    }
}

fn state() -> RunState {
    RunState {
        engine: "tract".into(),
        fps: 2.5,
        mask_rate: 2.5,
        inference_ms: 850.0,
        clips: 3,
        frames: 15,
        dropped_frames: 3,
        frames_skipped: 0,
        audio_xruns: 0,
        frames_bad: 0,
        audio_gaps: 0,
        frames_off_screen: 0,
        detect: true,
        video: DeviceStatus::Streaming,
        audio: DeviceStatus::Streaming,
        audio_dbfs: -12.0,
    }
}

/// The fixed golden scene: a 320×240 gradient, one announced object (ellipse, id [`ID`]), one
/// pending object, status line with a −12 dBFS (yellow) meter.
fn golden_scene() -> Scene {
    let (w, h) = (320, 240);
    let img = RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            96 + ((x + y) % 32) as u8,
        ])
    });
    let e1 = (90.0, 120.0, 50.0, 70.0);
    let e2 = (175.0, 60.0, 25.0, 20.0);
    Scene {
        number: 7,
        pts_ms: 7000,
        image: Arc::new(img),
        objects: vec![
            SceneObject {
                id: Some(ID.into()),
                region: region(ellipse(e1.0, e1.1, e1.2, e1.3), w, h, e1, 0.87),
                visual_label: "violin".into(),
                audio_label: "Violin, fiddle".into(),
            },
            SceneObject {
                id: None,
                region: region(ellipse(e2.0, e2.1, e2.2, e2.3), w, h, e2, 0.55),
                visual_label: "violin".into(),
                audio_label: "Violin, fiddle".into(),
            },
        ],
        audio_dbfs: -12.0,
        state: Some(state()),
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares `img` with the golden PNG `name`: every channel within 3 of the reference, except at
/// most 0.1 % of the pixels. With `C3N_UPDATE_GOLDEN=1` writes the reference instead.
fn check_golden(name: &str, img: &RgbImage) {
    let path = golden_dir().join(name);
    if std::env::var("C3N_UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(golden_dir()).expect("golden dir");
        img.save(&path).expect("write golden");
        eprintln!("wrote {}", path.display());
        return;
    }
    let reference = image::open(&path)
        .unwrap_or_else(|e| {
            panic!(
                "golden image {} missing or unreadable ({e}); regenerate with C3N_UPDATE_GOLDEN=1",
                path.display()
            )
        })
        .to_rgb8();
    assert_eq!(reference.dimensions(), img.dimensions(), "{name}: size");
    let bad = reference
        .pixels()
        .zip(img.pixels())
        .filter(|(a, b)| (0..3).any(|c| a[c].abs_diff(b[c]) > 3))
        .count();
    let allowed = (img.width() * img.height()) as usize / 1000;
    if bad > allowed {
        let out = common::tmp_dir("golden").join(name);
        let _ = img.save(&out);
        panic!(
            "{name}: {bad} pixels differ from {} (allowed {allowed}); actual picture: {}",
            path.display(),
            out.display()
        );
    }
}

#[test]
fn golden_overlay_at_frame_resolution() {
    let scene = golden_scene();
    let r = Renderer::default();
    let img = r.render_image(&scene);
    // facts the golden image must show, checked independently of the reference file:
    // a pixel deep inside the announced object's mask is the blend of the frame and its colour
    let (x, y) = (90 * 320 / 224, 120 * 240 / 224);
    let base = scene.image.get_pixel(x, y).0;
    assert_eq!(
        img.get_pixel(x, y).0,
        blend(base, object_colour(ID), r.alpha)
    );
    // ... inside the pending object's mask it is blended with the pending colour
    let (x, y) = (175 * 320 / 224, 60 * 240 / 224);
    let base = scene.image.get_pixel(x, y).0;
    assert_eq!(img.get_pixel(x, y).0, blend(base, PENDING_COLOUR, r.alpha));
    // ... outside every mask and away from text the frame is untouched
    assert_eq!(img.get_pixel(300, 100), scene.image.get_pixel(300, 100));
    // ... the status line is a black band at the bottom
    assert_eq!(img.get_pixel(1, 239).0, [0, 0, 0]);
    check_golden("overlay-320x240.png", &img);
}

#[test]
fn golden_overlay_letterboxed_on_a_larger_screen() {
    let scene = golden_scene();
    // 480×480 target: the 4:3 frame becomes 480×360 with 60-pixel black bars
    let mut canvas = ImageCanvas(RgbImage::new(480, 480));
    Renderer::default()
        .draw(&scene, &mut canvas)
        .unwrap_or_else(|e| match e {});
    let img = canvas.0;
    assert_eq!(img.get_pixel(240, 10).0, [0, 0, 0]);
    assert_eq!(img.get_pixel(240, 470).0, [0, 0, 0]);
    check_golden("overlay-letterbox-480x480.png", &img);
}

/// A solid 64×48 frame (200,100,50) whose right half (model x ≥ 112) is one announced object.
fn solid_frame() -> AnalysedFrame {
    let img = RgbImage::from_pixel(64, 48, Rgb([200, 100, 50]));
    let mut bits = vec![false; 224 * 224];
    for y in 0..224 {
        for x in 112..224 {
            bits[y * 224 + x] = true;
        }
    }
    let mask = BitMask {
        width: 224,
        height: 224,
        bits,
    };
    AnalysedFrame {
        number: 0,
        image: Arc::new(img),
        detections: FrameDetections {
            pts_ms: 0,
            regions: vec![Region {
                bbox: [32, 0, 64, 48],
                area_fraction: 0.5,
                score: 0.9,
                outline: vec![],
                mask,
                label: RegionLabel::default(),
            }],
            labels: FrameLabels {
                visual_index: 1,
                visual_label: String::new(),
                audio_index: 0,
                audio_label: String::new(),
                audio_score: 0.5,
                c3im_score: 0.5,
            },
            audio_rms: 0.1,
            in_view: None,
        },
    }
}

fn no_status() -> Renderer {
    Renderer {
        alpha: 0.5,
        status: false,
    }
}

/// Reads pixel (x, y) of a fake framebuffer file as a little-endian integer.
fn fb_pixel(bytes: &[u8], g: &FbGeometry, x: u32, y: u32) -> u32 {
    let bpp = g.bytes_per_pixel() as usize;
    let at = y as usize * g.line_length as usize + x as usize * bpp;
    let mut v = [0u8; 4];
    v[..bpp].copy_from_slice(&bytes[at..at + bpp]);
    u32::from_le_bytes(v)
}

fn fake_fb(name: &str, g: &FbGeometry) -> PathBuf {
    let p = common::tmp_dir(name).join("fb0");
    std::fs::write(&p, vec![0xAAu8; (g.line_length * g.height) as usize]).expect("fake fb");
    p
}

#[test]
fn framebuffer_rgb565_packing_in_a_file_backed_fake_fbdev() {
    // 64×48 RGB565 with 8 padding bytes per line, as some drivers have
    let g = FbGeometry {
        line_length: 64 * 2 + 8,
        ..FbGeometry::rgb565(64, 48)
    };
    let path = fake_fb("fb565", &g);
    let mut out = FramebufferOutput::open(&path, Some(g)).expect("open fake fb");
    let frame = solid_frame();
    let scene = c3n_edge::sink::scene::SceneBuilder::default().scene(&frame, &[]);
    out.show(&no_status(), &scene).expect("show");
    let bytes = std::fs::read(&path).expect("read fake fb");
    assert_eq!(bytes.len(), (g.line_length * g.height) as usize);
    // (200,100,50) → r 200>>3 = 25, g 100>>2 = 25, b 50>>3 = 6 → 0b11001_011001_00110
    assert_eq!(fb_pixel(&bytes, &g, 5, 5), 0xCB26);
    assert_eq!(&bytes[5 * 2..5 * 2 + 2], &[0x26, 0xCB], "little-endian");
    assert_eq!(fb_pixel(&bytes, &g, 0, 47), 0xCB26);
    // right half: tinted with the pending colour (200,200,200) at alpha 0.5 → (200,150,125)
    assert_eq!(
        fb_pixel(&bytes, &g, 50, 24),
        (25 << 11) | ((150 >> 2) << 5) | (125 >> 3)
    );
    // the packing agrees with the library's
    assert_eq!(
        g.pack(Rgb888::new(200, 150, 125)),
        fb_pixel(&bytes, &g, 50, 24)
    );
}

#[test]
fn framebuffer_xrgb8888_through_the_display_sink_letterboxed() {
    // 80×48 XRGB8888 screen for a 64×48 frame: 8-pixel black bars left and right
    let g = FbGeometry::xrgb8888(80, 48);
    let path = fake_fb("fb8888", &g);
    let uri = format!("display://0?device={}&mode=80x48:32", path.display());
    let uri = OutputUri::parse(&uri).expect("uri");
    let mut sink = DisplaySink::open(&[uri], no_status()).expect("open display sink");
    sink.frame(&solid_frame(), &[]).expect("frame");
    sink.finish(&[]).expect("finish");
    drop(sink);
    let bytes = std::fs::read(&path).expect("read fake fb");
    assert_eq!(fb_pixel(&bytes, &g, 0, 0), 0, "left bar is black");
    assert_eq!(fb_pixel(&bytes, &g, 79, 47), 0, "right bar is black");
    assert_eq!(fb_pixel(&bytes, &g, 8 + 5, 5), 0x00C8_6432);
    assert_eq!(&bytes[(13 * 4)..(13 * 4 + 4)], &[0x32, 0x64, 0xC8, 0x00]);
    assert_eq!(fb_pixel(&bytes, &g, 8 + 50, 24), 0x00C8_967D);
}

#[test]
fn a_plain_file_without_mode_is_refused_with_a_clear_error() {
    let g = FbGeometry::rgb565(8, 8);
    let path = fake_fb("fbplain", &g);
    let e = FramebufferOutput::open(&path, None).expect_err("a file is not an fbdev");
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("mode="),
        "{msg}"
    );
    let e = FramebufferOutput::open(Path::new("/nonexistent/fb9"), None).expect_err("missing");
    assert!(e.to_string().contains("/nonexistent/fb9"), "{e}");
}

#[test]
fn display_without_fbdev_or_drm_names_both_devices() {
    // index 97: no machine has /dev/fb97 or /dev/dri/card97
    let uri = OutputUri::parse("display://97").expect("uri");
    let e = ScreenOutput::open(&uri)
        .expect_err("no such screen")
        .to_string();
    assert!(
        e.contains("/dev/fb97") && e.contains("/dev/dri/card97"),
        "{e}"
    );
    // an explicit DRM backend names the card
    let uri = OutputUri::parse("display://97?backend=drm").expect("uri");
    let e = ScreenOutput::open(&uri).expect_err("no card").to_string();
    assert!(e.contains("no DRM card /dev/dri/card97"), "{e}");
    // a mode without bits per pixel is a KMS mode: DRM, on /dev/dri/card97
    let uri = OutputUri::parse("display://97?mode=1280x720").expect("uri");
    let e = ScreenOutput::open(&uri).expect_err("no card").to_string();
    assert!(e.contains("/dev/dri/card97"), "{e}");
    // a device under /dev/dri is driven by KMS, a plain file with a geometry by fbdev
    let uri = OutputUri::parse("display://0?device=/dev/dri/card97").expect("uri");
    let e = ScreenOutput::open(&uri).expect_err("no card").to_string();
    assert!(e.contains("no DRM card /dev/dri/card97"), "{e}");
    let g = FbGeometry::rgb565(8, 8);
    let path = fake_fb("fbauto", &g);
    let uri = OutputUri::parse(&format!(
        "display://0?device={}&mode=8x8:16",
        path.display()
    ))
    .expect("uri");
    let out = ScreenOutput::open(&uri).expect("fake fbdev");
    assert!(matches!(out, ScreenOutput::Fbdev(_)), "{out:?}");
    assert!(
        out.describe().contains("fbdev 8x8 16 bpp"),
        "{}",
        out.describe()
    );
}

#[test]
fn framebuffer_keeps_the_final_frame_up_until_a_stop_ends_its_linger() {
    // 20 frames, each one flat colour, put faster than the output may take them: whatever it
    // skipped, the screen ends on the last one and stays up (linger) until a stop request
    let g = FbGeometry::xrgb8888(64, 48);
    let path = fake_fb("fblinger", &g);
    let uri = format!(
        "display://0?device={}&mode=64x48:32&linger=600",
        path.display()
    );
    let uri = OutputUri::parse(&uri).expect("uri");
    let mut sink = DisplaySink::open(&[uri], no_status()).expect("open display sink");
    let control = Arc::new(RunControl::default());
    sink.attach_control(&control);
    let red = |n: u64| (n * 12) as u8;
    for n in 0..20u64 {
        let frame = AnalysedFrame {
            number: n,
            image: Arc::new(RgbImage::from_pixel(64, 48, Rgb([red(n), 1, 2]))),
            detections: FrameDetections::empty(n as i64 * 40, 0.0),
        };
        sink.frame(&frame, &[]).expect("frame");
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let finishing = std::thread::spawn(move || {
        let res = sink.finish(&[]);
        let _ = tx.send(());
        res
    });
    let last = u32::from_be_bytes([0, red(19), 1, 2]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while fb_pixel(&std::fs::read(&path).expect("read fake fb"), &g, 5, 5) != last {
        assert!(
            std::time::Instant::now() < deadline,
            "the final frame never came"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        rx.try_recv().is_err(),
        "finish returned while the output lingers"
    );
    control.request_stop();
    rx.recv_timeout(std::time::Duration::from_secs(600))
        .expect("a stop request ends the linger");
    finishing.join().expect("finish thread").expect("finish");
    let bytes = std::fs::read(&path).expect("read fake fb");
    assert!(
        (0..48).all(|y| (0..64).all(|x| fb_pixel(&bytes, &g, x, y) == last)),
        "the screen shows the final frame"
    );
}

#[test]
fn image_file_output_writes_every_frame_with_the_same_picture() {
    let dir = common::tmp_dir("files");
    let pattern = format!("file://{}/%05d.png", dir.display());
    let r = no_status();
    let mut sink = DisplaySink::open(&[OutputUri::parse(&pattern).expect("uri")], r).expect("open");
    let mut frame = solid_frame();
    for n in 0..20 {
        frame.number = n;
        sink.frame(&frame, &[]).expect("frame");
    }
    sink.finish(&[]).expect("finish");
    let n = std::fs::read_dir(&dir).expect("dir").count();
    assert_eq!(n, 20, "file outputs are lossless");
    let img = image::open(dir.join("00019.png")).expect("png").to_rgb8();
    let expected =
        r.render_image(&c3n_edge::sink::scene::SceneBuilder::default().scene(&frame, &[]));
    assert_eq!(img, expected);
}

/// `file://out.mp4` (feature `ffmpeg`): 20 frames at 10 fps, read back with the project's own
/// container source: frame count, timestamps, and the colours (H.264 is lossy: within 12).
#[cfg(feature = "ffmpeg")]
#[test]
fn video_file_output_round_trips_through_the_container_source() {
    use c3n_edge::source::{open_video, VideoOptions};
    use c3n_edge::uri::InputUri;
    let dir = common::tmp_dir("mp4");
    let path = dir.join("out.mp4");
    let uri = OutputUri::parse(&format!("file://{}", path.display())).expect("uri");
    let mut sink = DisplaySink::open(&[uri], no_status()).expect("open mp4 output");
    let mut frame = solid_frame();
    for n in 0..20u64 {
        frame.number = n;
        frame.detections.pts_ms = n as i64 * 100;
        sink.frame(&frame, &[]).expect("frame");
    }
    sink.finish(&[]).expect("finish");
    drop(sink);
    let mut src = open_video(
        &InputUri::Container { path: path.clone() },
        &VideoOptions::default(),
    )
    .expect("open the written mp4");
    let mut pts = Vec::new();
    while let Some(f) = src.next_frame().expect("decode") {
        let (w, h) = f.image.dimensions();
        assert_eq!((w, h), (64, 48));
        let p = f.image.get_pixel(10, 24).0;
        assert!(
            (0..3).all(|c| p[c].abs_diff([200, 100, 50][c]) <= 12),
            "{p:?}"
        );
        let p = f.image.get_pixel(54, 24).0;
        assert!(
            (0..3).all(|c| p[c].abs_diff([200, 150, 125][c]) <= 12),
            "tint {p:?}"
        );
        pts.push(f.pts_ms);
    }
    assert_eq!(pts.len(), 20, "{pts:?}");
    assert_eq!(pts[19] - pts[0], 1900, "{pts:?}");
}
