//! Annotated frames written as `DIR/<frame number, 6 digits>.<png|jpg>` — one file per analysed
//! frame. The picture is the display's ([`crate::render`]): the frame with each region's mask
//! tinted in its object's colour, outline, box, label, status line and level meter.
//! [`save_image`] writes one picture; the display's `file://` image outputs write through it too.

use std::path::{Path, PathBuf};

use image::RgbImage;

use super::scene::SceneBuilder;
use super::{AnalysedFrame, Sink, SinkError};
use crate::control::RunState;
use crate::events::Event;
use crate::render::Renderer;

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

/// Writes `img` as PNG or JPEG (quality 90) by the extension of `path`, creating its directory.
pub fn save_image(img: &RgbImage, path: &Path) -> Result<(), SinkError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::guard::create_dir(dir).map_err(|source| SinkError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let res = if ext == "png" {
        img.save_with_format(path, image::ImageFormat::Png)
    } else {
        std::fs::File::create(path)
            .map_err(image::ImageError::IoError)
            .and_then(|f| {
                let mut w = std::io::BufWriter::new(f);
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, 90).encode_image(img)
            })
    };
    res.map_err(|source| SinkError::Image {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes annotated frames into a directory (synchronously: every frame is written).
#[derive(Debug)]
pub struct OverlaySink {
    dir: PathBuf,
    format: OverlayFormat,
    renderer: Renderer,
    scenes: SceneBuilder,
}

impl OverlaySink {
    /// Creates `dir` if needed. `alpha` (0–1) is the mask tint opacity (jetson-inference's
    /// default 150/255 ≈ 0.59).
    pub fn open(dir: &Path, format: OverlayFormat, alpha: f32) -> Result<Self, SinkError> {
        crate::guard::create_dir(dir).map_err(|source| SinkError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            format,
            renderer: Renderer {
                alpha: alpha.clamp(0.0, 1.0),
                status: true,
            },
            scenes: SceneBuilder::default(),
        })
    }

    /// Draws the annotations of `frame` (regions without event ids, no run status) onto a copy
    /// of its image.
    pub fn render(&self, frame: &AnalysedFrame) -> RgbImage {
        let scene = SceneBuilder::default().scene(frame, &[]);
        self.renderer.render_image(&scene)
    }
}

impl Sink for OverlaySink {
    fn frame(&mut self, frame: &AnalysedFrame, events: &[Event]) -> Result<(), SinkError> {
        let img = self
            .renderer
            .render_image(&self.scenes.scene(frame, events));
        let path = self
            .dir
            .join(format!("{:06}.{}", frame.number, self.format.extension()));
        save_image(&img, &path)
    }

    fn finish(&mut self, _events: &[Event]) -> Result<(), SinkError> {
        Ok(())
    }

    fn state(&mut self, state: &RunState) -> Result<(), SinkError> {
        self.scenes.set_state(state);
        Ok(())
    }
}
