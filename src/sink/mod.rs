//! Outputs. A [`Sink`] receives every analysed frame together with the events it caused, and a
//! final call with the events of the end of the input. Sinks: [`jsonl::JsonlSink`] (events as
//! JSON lines to stdout or a file), [`overlay::OverlaySink`] (annotated frames as PNG/JPEG),
//! [`mqtt::MqttSink`] (events, states, snapshots and Home Assistant discovery over MQTT),
//! [`display::DisplaySink`] (screen, window, image/video files, browser preview) and
//! [`systemd::SystemdNotifier`] (readiness and watchdog). The pictures are the overlay renderer's
//! ([`crate::render`]), built from the frames by [`scene::SceneBuilder`].

pub mod display;
pub mod jsonl;
pub mod mqtt;
pub mod overlay;
pub mod scene;
pub mod systemd;

use std::path::PathBuf;
use std::sync::Arc;

use image::RgbImage;

use crate::control::{RunControl, RunState};
use crate::events::{Event, FrameDetections};

/// One frame after post-processing.
#[derive(Debug, Clone)]
pub struct AnalysedFrame {
    /// Running frame number of the run (0-based, one per model frame slot).
    pub number: u64,
    /// The source frame (source resolution).
    pub image: Arc<RgbImage>,
    /// Regions, labels and audio level of the frame.
    pub detections: FrameDetections,
}

/// Errors writing an output; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// File, directory or `-` (stdout).
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// Encoding an image failed.
    #[error("cannot write image {path}: {source}")]
    Image {
        /// File.
        path: PathBuf,
        /// Encoder error.
        #[source]
        source: image::ImageError,
    },
    /// A display output failed (device, window, preview server).
    #[error("output {output}: {message}")]
    Output {
        /// The output (URI or device).
        output: String,
        /// What went wrong.
        message: String,
    },
    /// Bad sink option (e.g. unknown image format).
    #[error("invalid output option: {0}")]
    Option(String),
}

/// An output.
pub trait Sink: Send {
    /// One analysed frame and the events it caused (possibly none).
    fn frame(&mut self, frame: &AnalysedFrame, events: &[Event]) -> Result<(), SinkError>;
    /// End of input, with the final `end` events.
    fn finish(&mut self, events: &[Event]) -> Result<(), SinkError>;
    /// The run's live status: once at the start and after every model window
    /// ([`crate::control`]). Default: ignored.
    fn state(&mut self, _state: &RunState) -> Result<(), SinkError> {
        Ok(())
    }
    /// The run's control block, once before the first frame: a sink that keeps something up
    /// after the input ended (the display outputs' `?linger=S`) ends that early when a stop is
    /// requested ([`RunControl::request_stop`], SIGTERM / Ctrl-C). Default: ignored.
    fn attach_control(&mut self, _control: &Arc<RunControl>) {}
}
