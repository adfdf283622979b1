//! A run's options ([`RunOptions`], [`Input`]) and their validation, in one place: the checks
//! of the pipeline's own entry ([`RunOptions::validate`], [`RunOptions::check_labels`]) and those
//! the command line makes before it opens any output (the value parsers [`parse_input_rate`] and
//! [`parse_alpha`], [`check_outputs`]). Every check fails with an [`OptionsError`].

use std::path::Path;

use super::faults::OnBadFrame;
use crate::events::{EventConfig, EventConfigError};
use crate::guard::{check_output_dir, check_output_file, GuardError, RunInputs};
use crate::post::{PostConfig, PostConfigError};
use crate::sink::display::OutputUri;
use crate::source::frames::{check_rate, RateOutOfRange};
use crate::source::paced::{PaceClock, PacedAudio, PacedVideo};
use crate::source::scene::Scene;
use crate::source::synthetic::{SyntheticAudio, SyntheticVideo};
use crate::source::{self, AudioSource, SourceError, VideoOptions, VideoSource};
use crate::uri::InputUri;

/// Where the frames and audio come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// URIs: the video (image sequence or container) and the audio (WAV or container; `None`
    /// = the video container's own audio track).
    Uris {
        /// Video input.
        video: InputUri,
        /// Audio input.
        audio: Option<InputUri>,
        /// Video options (image-sequence rate).
        options: VideoOptions,
    },
    /// Generated frames and a tone ([`crate::source::synthetic`]).
    Synthetic {
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
        /// Frame rate in fps.
        fps: f64,
        /// Length in seconds.
        seconds: f64,
    },
    /// Still images captured at a frame rate, with audio, from memory ([`Scene`]).
    Scene(Box<Scene>),
}

/// The opened video and audio sources of an [`Input`].
pub type OpenedSources = (Box<dyn VideoSource>, Box<dyn AudioSource>);

impl Input {
    /// Opens the video and audio sources (audio resampled to `sample_rate` Hz).
    pub fn open(&self, sample_rate: u32) -> Result<OpenedSources, SourceError> {
        match self {
            Input::Uris {
                video,
                audio,
                options,
            } => {
                let audio_uri = match (audio, video) {
                    (Some(a), _) => a,
                    (None, InputUri::Container { .. }) => video,
                    (None, v) => {
                        return Err(SourceError::Unusable {
                            uri: v.to_string(),
                            reason: "this input has no audio track; pass --audio file://clip.wav"
                                .into(),
                        })
                    }
                };
                let v = source::open_video(video, options)?;
                let a = source::open_audio_with(audio_uri, sample_rate, &options.live)?;
                Ok((v, a))
            }
            Input::Synthetic {
                width,
                height,
                fps,
                seconds,
            } => Ok((
                Box::new(SyntheticVideo::new(
                    *width,
                    *height,
                    *fps,
                    (seconds * fps).ceil() as u64,
                )),
                Box::new(SyntheticAudio::new(sample_rate, *seconds)),
            )),
            Input::Scene(scene) => scene.open(sample_rate),
        }
    }

    /// True when the video or the audio is a live device (`v4l2://`, `alsa://`).
    pub fn is_live(&self) -> bool {
        match self {
            Input::Uris { video, audio, .. } => {
                video.is_live() || audio.as_ref().is_some_and(InputUri::is_live)
            }
            Input::Synthetic { .. } | Input::Scene(_) => false,
        }
    }

    /// The audio input's name (its URI; the video's for a container's own track).
    pub fn audio_name(&self) -> String {
        match self {
            Input::Uris { video, audio, .. } => audio.as_ref().unwrap_or(video).to_string(),
            Input::Synthetic { .. } => "synthetic".into(),
            Input::Scene(_) => "scene".into(),
        }
    }

    /// (video is live, audio is live). A video file's own audio track is not live.
    pub fn live_sides(&self) -> (bool, bool) {
        match self {
            Input::Uris { video, audio, .. } => (
                video.is_live(),
                audio.as_ref().is_some_and(InputUri::is_live),
            ),
            Input::Synthetic { .. } | Input::Scene(_) => (false, false),
        }
    }
}

/// Options of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// Input.
    pub input: Input,
    /// Extra passes over a file input: 0 = play once, N = N more times, −1 = forever.
    pub input_loop: i64,
    /// Stop after this many model windows (clips).
    pub max_clips: Option<u64>,
    /// Post-processing settings.
    pub post: PostConfig,
    /// Event lifecycle settings.
    pub events: EventConfig,
    /// Capacity of each inter-stage channel (≥ 1).
    pub queue: usize,
    /// What a bad frame or an audio fault does (`--on-bad-frame`); `None`:
    /// [`OnBadFrame::default_for`] the input ([`RunOptions::bad_frame_policy`]).
    pub on_bad_frame: Option<OnBadFrame>,
    /// Windows or one mask per frame (`--mode`); `None`: [`RunOptions::mode`] picks by input.
    pub mode: Option<Mode>,
    /// Streaming mode: masks per second (`--mask-rate`); `None`: every frame the source
    /// delivers, the newest first when the engine is behind.
    pub mask_rate: Option<f64>,
    /// Release a recorded input at wall-clock pace, as a live one (`--paced`,
    /// [`crate::source::paced`]).
    pub paced: bool,
}

/// How frames are grouped for the model (issue 25).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// AVSBench windows of T one-second slots, one model call per window (eval, recorded files).
    Window,
    /// A mask for every analysed frame with the T-frame context ending at it
    /// ([`crate::sync::StreamBuilder`]; live inputs).
    Stream,
}

impl std::str::FromStr for Mode {
    type Err = OptionsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "window" => Ok(Mode::Window),
            "stream" => Ok(Mode::Stream),
            other => Err(OptionsError::Mode(other.to_string())),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Window => "window",
            Mode::Stream => "stream",
        })
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            input: Input::Synthetic {
                width: 320,
                height: 240,
                fps: 1.0,
                seconds: 5.0,
            },
            input_loop: 0,
            max_clips: None,
            post: PostConfig::default(),
            events: EventConfig::default(),
            queue: 2,
            on_bad_frame: None,
            mode: None,
            mask_rate: None,
            paced: false,
        }
    }
}

impl RunOptions {
    /// The run's mode: [`RunOptions::mode`], else streaming for a live or paced input or when a
    /// mask rate is set, and windows for a recorded one.
    pub fn mode(&self) -> Mode {
        self.mode
            .unwrap_or(if self.is_live() || self.mask_rate.is_some() {
                Mode::Stream
            } else {
                Mode::Window
            })
    }

    /// The slot of each frame in ms when the input stamps frames at their slot's *start*, not at
    /// the time they were taken: an image sequence (`1000 / --input-rate`), whose frame `k` stands
    /// for second `k` as AVSBench's frames do. The streaming mode gives such a frame the audio
    /// patch ending at its slot's end (as a window does); `None`: frames stamped when taken.
    pub fn frame_slot_ms(&self) -> Option<f64> {
        match &self.input {
            Input::Uris {
                video: InputUri::ImageSequence { .. },
                options,
                ..
            } => Some(1000.0 / options.rate_hz),
            _ => None,
        }
    }

    /// Whether the input arrives in real time (a live device, or `--paced`): queues then drop
    /// their oldest item rather than wait.
    pub fn is_live(&self) -> bool {
        self.paced || self.input.is_live()
    }

    /// Opens the input's sources, paced when [`RunOptions::paced`] (one clock per call: a pass).
    pub fn open_input(&self, sample_rate: u32) -> Result<OpenedSources, SourceError> {
        let (v, a) = self.input.open(sample_rate)?;
        if !self.paced {
            return Ok((v, a));
        }
        let clock = PaceClock::default();
        Ok((
            Box::new(PacedVideo::new(v, clock.clone())),
            Box::new(PacedAudio::new(a, clock)),
        ))
    }

    /// The fault policy of this run: [`RunOptions::on_bad_frame`], else `skip` for a live or
    /// looped input and `stop` for a single pass over a file.
    pub fn bad_frame_policy(&self) -> OnBadFrame {
        self.on_bad_frame
            .unwrap_or_else(|| OnBadFrame::default_for(self.input.is_live(), self.input_loop))
    }
}

/// An invalid run option: a flag or config value out of range, a label the model does not know,
/// or an output that would overwrite an input.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// `[post]` settings (threshold, minimum area, …) out of range.
    #[error(transparent)]
    Post(#[from] PostConfigError),
    /// `[events]` settings out of range, or a camera name that is not a topic level.
    #[error(transparent)]
    Events(EventConfigError),
    /// `[events] labels` / `min_score` name a category the model does not have.
    #[error(transparent)]
    Labels(EventConfigError),
    /// [`RunOptions::queue`] is 0.
    #[error("queue must be >= 1")]
    Queue,
    /// A frame rate (`--input-rate`) out of range.
    #[error(transparent)]
    Rate(#[from] RateOutOfRange),
    /// An overlay opacity (`--alpha`) outside 0..=1 (or NaN).
    #[error("{alpha} is outside 0 to 1")]
    Alpha {
        /// The opacity asked for.
        alpha: f32,
    },
    /// `--mode` other than `window` or `stream`.
    #[error("mode must be window or stream, got `{0}`")]
    Mode(String),
    /// `--mask-rate` not a positive number of masks per second.
    #[error("mask rate {0} masks/s: it must be a positive number (at most 120)")]
    MaskRate(f64),
    /// `--mask-rate` with `--mode window` (windows are one mask per slot of the model's clip rate).
    #[error("--mask-rate sets the stream mode's rate; it cannot be used with --mode window")]
    MaskRateInWindowMode,
    /// A flag value that is not a number.
    #[error("not a number: {0}")]
    NotANumber(#[from] std::num::ParseFloatError),
    /// An output that is an input, or an output directory that cannot be created.
    #[error(transparent)]
    Output(#[from] GuardError),
}

/// `--mask-rate` / `[input] mask_rate`: masks per second, a positive number up to 120.
///
/// Errors: [`OptionsError::MaskRate`].
pub fn check_mask_rate(r: f64) -> Result<f64, OptionsError> {
    if r.is_finite() && r > 0.0 && r <= 120.0 {
        Ok(r)
    } else {
        Err(OptionsError::MaskRate(r))
    }
}

/// `--input-rate`: a frame rate in fps ([`check_rate`]).
pub fn parse_input_rate(s: &str) -> Result<f64, OptionsError> {
    Ok(check_rate(s.trim().parse::<f64>()?)?)
}

/// `--alpha`: an opacity in 0..=1 (not NaN).
pub fn parse_alpha(s: &str) -> Result<f32, OptionsError> {
    match s.trim().parse::<f32>()? {
        a if (0.0..=1.0).contains(&a) => Ok(a),
        alpha => Err(OptionsError::Alpha { alpha }),
    }
}

impl RunOptions {
    /// Checks the value ranges: post-processing, events, the queue capacity, the input's frame
    /// rates. The model-dependent check is [`Self::check_labels`].
    pub fn validate(&self) -> Result<(), OptionsError> {
        self.post.validate().map_err(OptionsError::Post)?;
        self.events.validate().map_err(OptionsError::Events)?;
        if self.queue == 0 {
            return Err(OptionsError::Queue);
        }
        if let Some(r) = self.mask_rate {
            check_mask_rate(r)?;
            if self.mode == Some(Mode::Window) {
                return Err(OptionsError::MaskRateInWindowMode);
            }
        }
        if let Input::Uris { options, .. } = &self.input {
            check_rate(options.rate_hz)?;
            if let Some(r) = options.live.rate_hz {
                check_rate(r)?;
            }
        }
        Ok(())
    }

    /// Checks that the events' `labels` and `min_score` name only categories of the model
    /// (`known`: the contract's category names).
    pub fn check_labels(&self, known: &[String]) -> Result<(), OptionsError> {
        self.events
            .check_labels(known)
            .map_err(OptionsError::Labels)
    }
}

/// The outputs of a run, as named on the command line, for [`check_outputs`].
#[derive(Debug, Clone, Copy)]
pub struct RunOutputs<'a> {
    /// `--events` file (`None`: stdout).
    pub events: Option<&'a Path>,
    /// `--overlay` directory.
    pub overlay: Option<&'a Path>,
    /// `--output` URIs.
    pub outputs: &'a [OutputUri],
}

/// Refuses outputs that are inputs ([`crate::guard`]), before any output is opened: the events
/// file, the overlay directory and the file outputs against the input files, the `model` and
/// the `config` file. Errors: [`OptionsError::Output`], naming the flag and both files.
pub fn check_outputs(
    outputs: &RunOutputs<'_>,
    input: &Input,
    model: &Path,
    config: Option<&Path>,
) -> Result<(), OptionsError> {
    let mut inputs = RunInputs::default();
    if let Input::Uris { video, audio, .. } = input {
        inputs.add_uri("video", video);
        if let Some(audio) = audio {
            inputs.add_uri("audio", audio);
        }
    }
    inputs.files.push(("model", model.to_path_buf()));
    if let Some(c) = config {
        inputs.files.push(("config", c.to_path_buf()));
    }
    if let Some(events) = outputs.events {
        check_output_file("--events", events, &inputs)?;
    }
    if let Some(dir) = outputs.overlay {
        check_output_dir("--overlay", dir, &inputs)?;
    }
    for o in outputs.outputs {
        match o {
            OutputUri::Images { pattern } => {
                let dir = Path::new(pattern)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                check_output_dir("--output", dir, &inputs)?;
            }
            OutputUri::Video { path } => check_output_file("--output", path, &inputs)?,
            _ => {}
        }
    }
    Ok(())
}
