//! Annotated frames: the source frame with each region's mask tinted (alpha blend), its outline,
//! its box and a label (`<visual label> <score> | <audio label>`), written as
//! `DIR/<frame number, 6 digits>.<png|jpg>` — one file per analysed frame.
//!
//! Text is drawn with DejaVu Sans (`assets/fonts/DejaVuSans.ttf`, Bitstream Vera licence,
//! `assets/fonts/LICENSE-DejaVu.txt`), built into the binary.

use std::path::{Path, PathBuf};

use ab_glyph::{FontRef, PxScale};
use image::{Rgb, RgbImage};
use imageproc::drawing::{
    draw_filled_rect_mut, draw_hollow_polygon_mut, draw_hollow_rect_mut, draw_text_mut, text_size,
};
use imageproc::point::Point;
use imageproc::rect::Rect;

use super::{AnalysedFrame, Sink, SinkError};
use crate::events::Event;
use crate::post::Region;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Region colours, cycled by region rank.
const PALETTE: [[u8; 3]; 4] = [[255, 64, 32], [32, 200, 255], [255, 220, 0], [160, 255, 80]];

/// Overlay image file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayFormat {
    /// Lossless PNG.
    Png,
    /// JPEG, quality 90.
    Jpeg,
}

impl std::str::FromStr for OverlayFormat {
    type Err = SinkError;
    fn from_str(s: &str) -> Result<Self, SinkError> {
        match s.to_ascii_lowercase().as_str() {
            "png" => Ok(Self::Png),
            "jpg" | "jpeg" => Ok(Self::Jpeg),
            other => Err(SinkError::Option(format!(
                "overlay format {other:?}: expected png or jpg"
            ))),
        }
    }
}

impl OverlayFormat {
    fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
        }
    }
}

/// Writes annotated frames into a directory.
pub struct OverlaySink {
    dir: PathBuf,
    format: OverlayFormat,
    renderer: OverlayRenderer,
}

impl std::fmt::Debug for OverlaySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlaySink")
            .field("dir", &self.dir)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl OverlaySink {
    /// Creates `dir` if needed. `alpha` (0–1) is the mask tint opacity (jetson-inference's
    /// default 150/255 ≈ 0.59).
    pub fn open(dir: &Path, format: OverlayFormat, alpha: f32) -> Result<Self, SinkError> {
        std::fs::create_dir_all(dir).map_err(|source| SinkError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            format,
            renderer: OverlayRenderer::new(alpha)?,
        })
    }

    /// Draws the annotations of `frame` onto a copy of its image.
    pub fn render(&self, frame: &AnalysedFrame) -> RgbImage {
        self.renderer.render(frame)
    }
}

/// Draws the annotations (masks, outlines, boxes, labels, status line) of a frame; shared by
/// [`OverlaySink`] and the MQTT snapshots.
pub struct OverlayRenderer {
    alpha: f32,
    font: FontRef<'static>,
}

impl std::fmt::Debug for OverlayRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlayRenderer")
            .field("alpha", &self.alpha)
            .finish_non_exhaustive()
    }
}

impl OverlayRenderer {
    /// `alpha` (0–1): mask tint opacity. Errors only if the built-in font is unreadable.
    pub fn new(alpha: f32) -> Result<Self, SinkError> {
        let font = FontRef::try_from_slice(FONT)
            .map_err(|e| SinkError::Option(format!("built-in font: {e}")))?;
        Ok(Self {
            alpha: alpha.clamp(0.0, 1.0),
            font,
        })
    }

    /// Draws the annotations of `frame` onto a copy of its image.
    pub fn render(&self, frame: &AnalysedFrame) -> RgbImage {
        let mut img = (*frame.image).clone();
        let d = &frame.detections;
        for (i, r) in d.regions.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            tint(&mut img, r, c, self.alpha);
            let poly: Vec<Point<f32>> = r.outline.iter().map(|p| Point::new(p[0], p[1])).collect();
            if poly.len() >= 2 {
                draw_hollow_polygon_mut(&mut img, &poly, Rgb(c));
            }
            let [x1, y1, x2, y2] = r.bbox;
            if x2 > x1 && y2 > y1 {
                draw_hollow_rect_mut(
                    &mut img,
                    Rect::at(x1 as i32, y1 as i32).of_size(x2 - x1, y2 - y1),
                    Rgb(c),
                );
            }
            let text = format!(
                "{} {:.2} | {}",
                d.labels.visual_label, r.score, d.labels.audio_label
            );
            self.label(&mut img, &text, x1 as i32, y1 as i32, c);
        }
        let status = format!(
            "t={:.1}s  audio {:.0} dBFS",
            d.pts_ms as f64 / 1000.0,
            crate::events::dbfs(d.audio_rms)
        );
        let bottom = img.height() as i32;
        self.label(&mut img, &status, 0, bottom, [200, 200, 200]);
        img
    }

    /// Text on a dark box whose bottom-left corner is at `(x, y)` (kept inside the image).
    fn label(&self, img: &mut RgbImage, text: &str, x: i32, y: i32, colour: [u8; 3]) {
        let scale = PxScale::from((img.height() as f32 / 24.0).clamp(11.0, 28.0));
        let (tw, th) = text_size(scale, &self.font, text);
        let (w, h) = (tw + 4, th + 4);
        let x = x.clamp(0, (img.width() as i32 - w as i32).max(0));
        let y = (y - h as i32).clamp(0, (img.height() as i32 - h as i32).max(0));
        draw_filled_rect_mut(img, Rect::at(x, y).of_size(w, h), Rgb([0, 0, 0]));
        draw_text_mut(img, Rgb(colour), x + 2, y + 1, scale, &self.font, text);
    }
}

/// JPEG bytes of `img` at `quality` (1–100).
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
        .encode_image(img)?;
    Ok(out)
}

/// Alpha-blends `colour` over the pixels of region `r` (mask scaled to the image, nearest).
fn tint(img: &mut RgbImage, r: &Region, colour: [u8; 3], alpha: f32) {
    let (w, h) = img.dimensions();
    let (mw, mh) = (r.mask.width, r.mask.height);
    if mw == 0 || mh == 0 {
        return;
    }
    let [x1, y1, x2, y2] = r.bbox;
    for y in y1..y2.min(h) {
        let my = (u64::from(y) * u64::from(mh) / u64::from(h)) as u32;
        for x in x1..x2.min(w) {
            let mx = (u64::from(x) * u64::from(mw) / u64::from(w)) as u32;
            if r.mask.get(mx, my) {
                let p = img.get_pixel_mut(x, y);
                for c in 0..3 {
                    p[c] = (f32::from(p[c]) * (1.0 - alpha) + f32::from(colour[c]) * alpha).round()
                        as u8;
                }
            }
        }
    }
}

impl Sink for OverlaySink {
    fn frame(&mut self, frame: &AnalysedFrame, _events: &[Event]) -> Result<(), SinkError> {
        let img = self.render(frame);
        let path = self
            .dir
            .join(format!("{:06}.{}", frame.number, self.format.extension()));
        let res = match self.format {
            OverlayFormat::Png => img.save_with_format(&path, image::ImageFormat::Png),
            OverlayFormat::Jpeg => std::fs::File::create(&path)
                .map_err(image::ImageError::IoError)
                .and_then(|f| {
                    let mut w = std::io::BufWriter::new(f);
                    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, 90)
                        .encode_image(&img)
                }),
        };
        res.map_err(|source| SinkError::Image { path, source })
    }

    fn finish(&mut self, _events: &[Event]) -> Result<(), SinkError> {
        Ok(())
    }
}
