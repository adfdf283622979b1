//! The one overlay renderer: every output (framebuffer, window, files, the preview server, the
//! `--overlay` directory) draws the same picture with it, into an embedded-graphics
//! [`DrawTarget`] with [`Rgb888`] colour.
//!
//! Picture (after jetson-inference segNet's `overlay` visualisation,
//! docs/integration-conventions.md §1.5): the frame, scaled to fit the target (aspect kept,
//! centred, black bars, nearest neighbour); each region's mask alpha-blended with its object's
//! colour; its outline polygon; its box; a label `<visual label> <score> | <audio label>` on black
//! above the box; a status line at the bottom (fps, inference ms, engine, dropped frames, source
//! time) with a microphone level meter (−60…0 dBFS; green, yellow above −20 dBFS, red above
//! −6 dBFS).
//!
//! Colours are stable per object: [`object_colour`] hashes the event id (FNV-1a) to a hue.
//! Regions not (yet) belonging to an announced event are drawn in [`PENDING_COLOUR`].
//! Text uses embedded-graphics' built-in ASCII mono fonts (6×10, 7×13 or 10×20 pixels, by
//! picture height); other characters show as `?`. Pictures as images and JPEG: [`ImageCanvas`],
//! [`encode_jpeg`].

mod canvas;
mod colour;

use std::sync::Arc;

use embedded_graphics::mono_font::ascii::{FONT_10X20, FONT_6X10, FONT_7X13};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyleBuilder};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Polyline, PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};
use image::RgbImage;

use crate::control::RunState;
use crate::post::Region;

pub use canvas::{encode_jpeg, ImageCanvas};
pub use colour::{blend, object_colour, PENDING_COLOUR};

/// One region to draw, with the event id it belongs to (if any) and its labels.
#[derive(Debug, Clone)]
pub struct SceneObject {
    /// Event id (`<start_time>-<6 chars>`), `None` while the object is not announced.
    pub id: Option<String>,
    /// The region: box/outline in source-frame pixels, mask at the model resolution.
    pub region: Region,
    /// Visual label: `<category> (<ImageNet class>)` of the region, or the frame's ImageNet
    /// label for a region without labels.
    pub visual_label: String,
    /// Audio (AudioSet) label.
    pub audio_label: String,
}

/// Everything one picture shows.
#[derive(Debug, Clone)]
pub struct Scene {
    /// Frame number of the run (0-based).
    pub number: u64,
    /// Frame time on the source timeline, ms.
    pub pts_ms: i64,
    /// The source frame.
    pub image: Arc<RgbImage>,
    /// Regions to draw (drawn in order, later ones on top).
    pub objects: Vec<SceneObject>,
    /// Audio level of the frame's audio span, dBFS (−200 = silence).
    pub audio_dbfs: f32,
    /// Run status for the status line; `None`: status line without run figures.
    pub state: Option<RunState>,
}

/// Renderer settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Renderer {
    /// Mask tint opacity, 0–1 (jetson-inference's default 150/255 ≈ 0.59).
    pub alpha: f32,
    /// Draw the status line and level meter.
    pub status: bool,
}

impl Default for Renderer {
    fn default() -> Self {
        Self {
            alpha: 0.59,
            status: true,
        }
    }
}

/// Colour of a scene object ([`object_colour`] of its id, or [`PENDING_COLOUR`]).
pub fn colour_of(o: &SceneObject) -> [u8; 3] {
    o.id.as_deref().map_or(PENDING_COLOUR, object_colour)
}

fn rgb(c: [u8; 3]) -> Rgb888 {
    Rgb888::new(c[0], c[1], c[2])
}

/// Where the frame lands on the target: offset and size in target pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Viewport {
    x: i32,
    y: i32,
    w: u32,
    h: u32,
}

impl Viewport {
    fn fit(frame: (u32, u32), target: Size) -> Self {
        let (fw, fh) = (frame.0.max(1) as u64, frame.1.max(1) as u64);
        let (tw, th) = (u64::from(target.width), u64::from(target.height));
        // largest w×h with w/h = fw/fh inside tw×th (integer arithmetic, exact at scale 1)
        let (w, h) = if tw * fh <= th * fw {
            (tw, tw * fh / fw)
        } else {
            (th * fw / fh, th)
        };
        Viewport {
            x: ((tw - w) / 2) as i32,
            y: ((th - h) / 2) as i32,
            w: w as u32,
            h: h as u32,
        }
    }
    /// Source-frame x to target x.
    fn tx(&self, x: f32, fw: u32) -> i32 {
        self.x + (x * self.w as f32 / fw.max(1) as f32).round() as i32
    }
    fn ty(&self, y: f32, fh: u32) -> i32 {
        self.y + (y * self.h as f32 / fh.max(1) as f32).round() as i32
    }
}

fn font_for(height: u32) -> &'static MonoFont<'static> {
    if height >= 600 {
        &FONT_10X20
    } else if height >= 300 {
        &FONT_7X13
    } else {
        &FONT_6X10
    }
}

impl Renderer {
    /// Draws `scene` onto `target` (the whole target: bars outside the frame are black).
    ///
    /// Errors: whatever the target's drawing returns.
    pub fn draw<D>(&self, scene: &Scene, target: &mut D) -> Result<(), D::Error>
    where
        D: DrawTarget<Color = Rgb888>,
    {
        let area = target.bounding_box();
        let img = &*scene.image;
        let (fw, fh) = img.dimensions();
        let vp = Viewport::fit((fw, fh), area.size);
        if vp.w == 0 || vp.h == 0 || fw == 0 || fh == 0 {
            return target.clear(Rgb888::BLACK);
        }
        if (vp.w, vp.h) != (area.size.width, area.size.height) {
            target.clear(Rgb888::BLACK)?;
        }
        let alpha = self.alpha.clamp(0.0, 1.0);
        let colours: Vec<[u8; 3]> = scene.objects.iter().map(colour_of).collect();

        // frame + mask tint, one pass over the viewport
        let (vw, vh) = (vp.w, vp.h);
        let pixels = (0..vh).flat_map(move |y| {
            let sy = (u64::from(y) * u64::from(fh) / u64::from(vh)) as u32;
            (0..vw).map(move |x| (x, sy))
        });
        let objects = &scene.objects;
        let colours_ref = &colours;
        let colours_iter = pixels.map(move |(x, sy)| {
            let sx = (u64::from(x) * u64::from(fw) / u64::from(vw)) as u32;
            let mut c = img.get_pixel(sx, sy).0;
            for (o, col) in objects.iter().zip(colours_ref) {
                let r = &o.region;
                let [x1, y1, x2, y2] = r.bbox;
                if sx < x1 || sx >= x2 || sy < y1 || sy >= y2 {
                    continue;
                }
                let (mw, mh) = (r.mask.width, r.mask.height);
                let mx = (u64::from(sx) * u64::from(mw) / u64::from(fw)) as u32;
                let my = (u64::from(sy) * u64::from(mh) / u64::from(fh)) as u32;
                if r.mask.get(mx, my) {
                    c = blend(c, *col, alpha);
                }
            }
            rgb(c)
        });
        target.fill_contiguous(
            &Rectangle::new(Point::new(vp.x, vp.y), Size::new(vw, vh)),
            colours_iter,
        )?;

        let font = font_for(vh);
        let stroke = if vh >= 480 { 2 } else { 1 };
        for (o, col) in scene.objects.iter().zip(&colours) {
            let r = &o.region;
            let c = rgb(*col);
            let mut pts: Vec<Point> = r
                .outline
                .iter()
                .map(|p| Point::new(vp.tx(p[0], fw), vp.ty(p[1], fh)))
                .collect();
            if pts.len() >= 2 {
                pts.push(pts[0]);
                Polyline::new(&pts)
                    .into_styled(PrimitiveStyle::with_stroke(c, stroke))
                    .draw(target)?;
            }
            let [x1, y1, x2, y2] = r.bbox;
            let (bx1, by1) = (vp.tx(x1 as f32, fw), vp.ty(y1 as f32, fh));
            let (bx2, by2) = (vp.tx(x2 as f32, fw), vp.ty(y2 as f32, fh));
            if bx2 > bx1 && by2 > by1 {
                Rectangle::with_corners(Point::new(bx1, by1), Point::new(bx2 - 1, by2 - 1))
                    .into_styled(PrimitiveStyle::with_stroke(c, 1))
                    .draw(target)?;
            }
            let text = format!("{} {:.2} | {}", o.visual_label, r.score, o.audio_label);
            let th = font.character_size.height as i32;
            let tw = (text.chars().count() as u32 * font.character_size.width) as i32;
            // above the box, inside the viewport
            let lx = bx1.clamp(vp.x, (vp.x + vw as i32 - tw).max(vp.x));
            let ly = (by1 - th).clamp(vp.y, (vp.y + vh as i32 - th).max(vp.y));
            let style = MonoTextStyleBuilder::new()
                .font(font)
                .text_color(c)
                .background_color(Rgb888::BLACK)
                .build();
            Text::with_baseline(&text, Point::new(lx, ly), style, Baseline::Top).draw(target)?;
        }

        if self.status {
            self.draw_status(scene, vp, font, target)?;
        }
        Ok(())
    }

    fn draw_status<D>(
        &self,
        scene: &Scene,
        vp: Viewport,
        font: &MonoFont<'_>,
        target: &mut D,
    ) -> Result<(), D::Error>
    where
        D: DrawTarget<Color = Rgb888>,
    {
        let ch = font.character_size;
        let band = ch.height + 4;
        let top = vp.y + vp.h as i32 - band as i32;
        Rectangle::new(Point::new(vp.x, top), Size::new(vp.w, band))
            .into_styled(PrimitiveStyle::with_fill(Rgb888::BLACK))
            .draw(target)?;
        let text = status_text(scene);
        let style = MonoTextStyleBuilder::new()
            .font(font)
            .text_color(Rgb888::new(220, 220, 220))
            .build();
        Text::with_baseline(&text, Point::new(vp.x + 2, top + 2), style, Baseline::Top)
            .draw(target)?;
        // level meter: -60..0 dBFS, right end of the band
        let mw = (vp.w / 6).clamp(24, 160);
        let mx = vp.x + vp.w as i32 - mw as i32 - 2;
        let frame = Rectangle::new(Point::new(mx, top + 2), Size::new(mw, ch.height));
        frame
            .into_styled(PrimitiveStyle::with_stroke(Rgb888::new(160, 160, 160), 1))
            .draw(target)?;
        let db = scene.audio_dbfs.clamp(-60.0, 0.0);
        let fill = (((db + 60.0) / 60.0) * (mw.saturating_sub(2)) as f32).round() as u32;
        if fill > 0 && ch.height > 2 {
            let c = if db > -6.0 {
                Rgb888::new(255, 40, 40)
            } else if db > -20.0 {
                Rgb888::new(255, 210, 0)
            } else {
                Rgb888::new(40, 220, 60)
            };
            Rectangle::new(Point::new(mx + 1, top + 3), Size::new(fill, ch.height - 2))
                .into_styled(PrimitiveStyle::with_fill(c))
                .draw(target)?;
        }
        Ok(())
    }

    /// Renders `scene` at the frame's own resolution into a new image.
    pub fn render_image(&self, scene: &Scene) -> RgbImage {
        let (w, h) = scene.image.dimensions();
        let mut canvas = ImageCanvas(RgbImage::new(w, h));
        match self.draw(scene, &mut canvas) {
            Ok(()) => {}
            Err(never) => match never {},
        }
        canvas.0
    }
}

/// The status band's text: rate, model call time, engine, dropped frames, then the skipped
/// (stream mode behind) and bad (`--on-bad-frame skip`) counts once they are not 0, and the
/// scene time in seconds.
fn status_text(scene: &Scene) -> String {
    let t = scene.pts_ms as f64 / 1000.0;
    match &scene.state {
        Some(s) => {
            let mut extra = String::new();
            if s.frames_skipped > 0 {
                extra.push_str(&format!("  skip {}", s.frames_skipped));
            }
            if s.frames_bad > 0 {
                extra.push_str(&format!("  bad {}", s.frames_bad));
            }
            format!(
                "{:.1} fps  inf {:.0} ms  {}  drop {}{extra}  t={t:.1}s",
                s.fps, s.inference_ms, s.engine, s.dropped_frames
            )
        }
        None => format!("t={t:.1}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewport_letterboxes_and_is_exact_at_scale_one() {
        let v = Viewport::fit((320, 180), Size::new(320, 180));
        assert_eq!((v.x, v.y, v.w, v.h), (0, 0, 320, 180));
        let v = Viewport::fit((320, 180), Size::new(640, 480));
        assert_eq!((v.x, v.y, v.w, v.h), (0, 60, 640, 360));
        let v = Viewport::fit((100, 100), Size::new(300, 100));
        assert_eq!((v.x, v.y, v.w, v.h), (100, 0, 100, 100));
    }
    #[test]
    fn status_text_shows_skipped_and_bad_frames_only_once_counted() {
        let control = crate::control::RunControl::default();
        let state = RunState::snapshot(&control, "tract", 7.56, 70.4, 12, 60, -20.0);
        let mut scene = Scene {
            number: 3,
            pts_ms: 2500,
            image: Arc::new(RgbImage::new(4, 4)),
            objects: vec![],
            audio_dbfs: -20.0,
            state: Some(state),
        };
        assert_eq!(
            status_text(&scene),
            "7.6 fps  inf 70 ms  tract  drop 0  t=2.5s"
        );
        if let Some(s) = scene.state.as_mut() {
            s.frames_skipped = 4;
            s.frames_bad = 2;
        }
        assert_eq!(
            status_text(&scene),
            "7.6 fps  inf 70 ms  tract  drop 0  skip 4  bad 2  t=2.5s"
        );
        scene.state = None;
        assert_eq!(status_text(&scene), "t=2.5s");
    }
}
