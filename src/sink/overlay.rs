//! Annotated frames written as `DIR/<frame number, 6 digits>.<png|jpg>` — one file per analysed
//! frame. The picture is the display's ([`crate::display::render`]): the frame with each region's
//! mask tinted in its object's colour, outline, box, label, status line and level meter.

use std::path::{Path, PathBuf};

use image::RgbImage;

use super::{AnalysedFrame, Sink, SinkError};
use crate::control::RunState;
use crate::display::render::Renderer;
use crate::display::{save_image, SceneBuilder};
use crate::events::Event;

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
