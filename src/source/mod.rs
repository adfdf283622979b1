//! Input sources: a [`VideoSource`] yields RGB frames and an [`AudioSource`] yields mono sample
//! blocks, both stamped with presentation timestamps in milliseconds on the source timeline
//! (0 = start of a file). Implementations:
//!
//! * `file://DIR/%05d.png` at `--input-rate` fps: [`frames::ImageSequence`];
//! * `file://clip.wav`: [`wav::WavSource`];
//! * `ffmpeg::ContainerVideo` / `ffmpeg::ContainerAudio`: `file://clip.mp4|mkv|webm` (cargo
//!   feature `ffmpeg`);
//! * [`synthetic`]: generated frames and tones for `bench` and tests;
//! * `v4l2::V4l2Source`: `v4l2:///dev/videoN` (cargo feature `v4l2`);
//! * `alsa::AlsaSource`: `alsa://NAME` (cargo feature `alsa`);
//! * without those features, `v4l2://` / `alsa://` give [`SourceError::LiveCaptureUnavailable`].
//!
//! Live sources stamp frames and blocks in ms of `CLOCK_MONOTONIC` ([`live`]), not from 0.
//!
//! A source is pulled from one thread (`Send`); `Ok(None)` means end of stream.

#[cfg(feature = "alsa")]
pub mod alsa;
pub mod devices;
#[cfg(feature = "ffmpeg")]
pub mod ffmpeg;
pub mod frames;
pub mod live;
pub mod paced;
pub mod scene;
pub mod synthetic;
#[cfg(feature = "v4l2")]
pub mod v4l2;
pub mod wav;

use std::path::PathBuf;
use std::sync::Arc;

use image::RgbImage;

use crate::audio::AudioError;
use crate::control::RunControl;
use crate::frontend::image::ImageError;
use crate::uri::InputUri;

/// One decoded video frame.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    /// Presentation timestamp in ms on the source timeline.
    pub pts_ms: i64,
    /// RGB8 pixels at the source resolution (shared: the overlay sink draws on a copy).
    pub image: Arc<RgbImage>,
}

/// A block of mono audio samples.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioBlock {
    /// Timestamp of the first sample in ms on the source timeline.
    pub pts_ms: i64,
    /// Samples at [`AudioSource::sample_rate`], full scale ±1.
    pub samples: Vec<f64>,
}

/// A stream of video frames in presentation order.
pub trait VideoSource: Send {
    /// The next frame, `Ok(None)` at end of stream. After an error for which
    /// [`SourceError::is_bad_frame`] holds, the source is past that frame: the next call reads
    /// the frame after it.
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError>;
    /// Human-readable name of the input (its URI).
    fn name(&self) -> String;
    /// Hands a live source the run's control block, for its device status (`reconnecting`) and
    /// for stopping a reconnect loop. File sources ignore it.
    fn set_control(&mut self, _control: Arc<RunControl>) {}
}

/// A stream of mono audio blocks in time order, contiguous.
pub trait AudioSource: Send {
    /// Sample rate of the blocks in Hz (the model's rate: sources resample).
    fn sample_rate(&self) -> u32;
    /// The next block, `Ok(None)` at end of stream.
    fn next_block(&mut self) -> Result<Option<AudioBlock>, SourceError>;
    /// Hands a live source the run's control block (audio status, xrun counter, stop).
    fn set_control(&mut self, _control: Arc<RunControl>) {}
}

/// Errors opening or reading an input. Each names the input.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A path in the URI does not exist.
    #[error("input {uri}: {path} does not exist")]
    NotFound {
        /// The input URI.
        uri: String,
        /// The missing path.
        path: PathBuf,
    },
    /// An image of a sequence could not be decoded.
    #[error("input {uri}: {source}")]
    Image {
        /// The input URI.
        uri: String,
        /// Decoder error (names the file).
        #[source]
        source: ImageError,
    },
    /// The WAV file could not be read, has a bad header or cannot be resampled.
    #[error("audio input {uri}: {source}")]
    Audio {
        /// The input URI.
        uri: String,
        /// Reader error (names the file).
        #[source]
        source: AudioError,
    },
    /// One frame cannot be used: it does not convert, the driver flagged it, or its size differs
    /// from the input's first frame. The source can go on with the next frame.
    #[error("input {uri}: bad frame {frame}: {reason}")]
    BadFrame {
        /// The input URI.
        uri: String,
        /// The frame: its file, or its sequence number.
        frame: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A container could not be opened or decoded.
    #[error("input {uri}: cannot decode: {message}")]
    Decode {
        /// The input URI.
        uri: String,
        /// Decoder message.
        message: String,
    },
    /// A video file's packet or frame that cannot be decoded (or converted) in the middle of the
    /// stream; the decoder goes on with the next packet. Worded as [`SourceError::Decode`].
    #[error("input {uri}: cannot decode: {message}")]
    DecodeFrame {
        /// The input URI.
        uri: String,
        /// Decoder message.
        message: String,
    },
    /// The URI is valid but unusable in this role (e.g. a WAV file as the video input).
    #[error("input {uri}: {reason}")]
    Unusable {
        /// The input URI.
        uri: String,
        /// Why.
        reason: String,
    },
    /// A capture device is missing, busy, gone or cannot deliver a usable format.
    #[error("input {uri}: {reason}")]
    Device {
        /// The input URI.
        uri: String,
        /// What is wrong (names the device and the cause).
        reason: String,
    },
    /// `v4l2://` or `alsa://` in a build without the `v4l2` / `alsa` cargo features.
    #[error(
        "input {uri}: this build has no V4L2/ALSA input (rebuild with the default `live` cargo feature)"
    )]
    LiveCaptureUnavailable {
        /// The input URI.
        uri: String,
    },
    /// A container input in a build without the `ffmpeg` cargo feature.
    #[error("input {uri}: video files need the `ffmpeg` cargo feature (cargo build --features ffmpeg); use an image sequence file://DIR/%05d.png with --audio file://clip.wav instead")]
    NoFfmpeg {
        /// The input URI.
        uri: String,
    },
}

impl SourceError {
    /// Whether this error is about one frame ([`SourceError::Image`]: a file of a sequence that
    /// cannot be decoded, is truncated or too large; [`SourceError::BadFrame`];
    /// [`SourceError::DecodeFrame`]: a packet of a video file) and the source has moved past it, so that [`VideoSource::next_frame`] can be called again for the next
    /// frame (`--on-bad-frame skip`).
    pub fn is_bad_frame(&self) -> bool {
        matches!(
            self,
            Self::Image { .. } | Self::BadFrame { .. } | Self::DecodeFrame { .. }
        )
    }
}

/// Options for opening the video input.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoOptions {
    /// Frame rate of an image sequence in fps (`--input-rate`); ignored for containers.
    pub rate_hz: f64,
    /// Mode request and fault policy of live inputs (`v4l2://`, `alsa://`).
    pub live: live::LiveOptions,
    /// Largest frame of an image sequence or a video file, in pixels (`[input] max_pixels`):
    /// a larger one is refused from its header, before it is decoded.
    pub max_pixels: u64,
}

impl Default for VideoOptions {
    fn default() -> Self {
        Self {
            rate_hz: 1.0,
            live: live::LiveOptions::default(),
            max_pixels: crate::frontend::image::DEFAULT_MAX_PIXELS,
        }
    }
}

/// Opens the video input named by `uri`.
pub fn open_video(
    uri: &InputUri,
    options: &VideoOptions,
) -> Result<Box<dyn VideoSource>, SourceError> {
    match uri {
        InputUri::ImageSequence { pattern } => Ok(Box::new(
            frames::ImageSequence::open(pattern, options.rate_hz)?
                .with_max_pixels(options.max_pixels),
        )),
        InputUri::Container { path } => open_container_video(uri, path, options.max_pixels),
        InputUri::Wav { .. } => Err(SourceError::Unusable {
            uri: uri.to_string(),
            reason:
                "a WAV file is audio; give it with --audio and a video or image sequence as input"
                    .into(),
        }),
        InputUri::V4l2 { device } => open_v4l2(uri, device, &options.live),
        InputUri::Alsa { .. } => Err(SourceError::Unusable {
            uri: uri.to_string(),
            reason: "an ALSA device is audio; give it with --audio and a camera as input".into(),
        }),
    }
}

#[cfg(feature = "v4l2")]
fn open_v4l2(
    uri: &InputUri,
    device: &str,
    live: &live::LiveOptions,
) -> Result<Box<dyn VideoSource>, SourceError> {
    Ok(Box::new(v4l2::V4l2Source::open(
        &uri.to_string(),
        device,
        live,
    )?))
}

#[cfg(not(feature = "v4l2"))]
fn open_v4l2(
    uri: &InputUri,
    _device: &str,
    _live: &live::LiveOptions,
) -> Result<Box<dyn VideoSource>, SourceError> {
    Err(SourceError::LiveCaptureUnavailable {
        uri: uri.to_string(),
    })
}

#[cfg(feature = "alsa")]
fn open_alsa(
    uri: &InputUri,
    device: &str,
    sample_rate: u32,
    live: &live::LiveOptions,
) -> Result<Box<dyn AudioSource>, SourceError> {
    Ok(Box::new(alsa::AlsaSource::open(
        &uri.to_string(),
        device,
        sample_rate,
        live,
    )?))
}

#[cfg(not(feature = "alsa"))]
fn open_alsa(
    uri: &InputUri,
    _device: &str,
    _sample_rate: u32,
    _live: &live::LiveOptions,
) -> Result<Box<dyn AudioSource>, SourceError> {
    Err(SourceError::LiveCaptureUnavailable {
        uri: uri.to_string(),
    })
}

/// Opens the audio input named by `uri`, resampled to `sample_rate` Hz mono.
pub fn open_audio(uri: &InputUri, sample_rate: u32) -> Result<Box<dyn AudioSource>, SourceError> {
    open_audio_with(uri, sample_rate, &live::LiveOptions::default())
}

/// [`open_audio`] with the options of a live (`alsa://`) input.
pub fn open_audio_with(
    uri: &InputUri,
    sample_rate: u32,
    live: &live::LiveOptions,
) -> Result<Box<dyn AudioSource>, SourceError> {
    match uri {
        InputUri::Wav { path } => Ok(Box::new(wav::WavSource::open(path, sample_rate)?)),
        InputUri::Container { path } => open_container_audio(uri, path, sample_rate),
        InputUri::ImageSequence { .. } => Err(SourceError::Unusable {
            uri: uri.to_string(),
            reason: "an image sequence has no audio; pass --audio file://clip.wav".into(),
        }),
        InputUri::Alsa { device } => open_alsa(uri, device, sample_rate, live),
        InputUri::V4l2 { .. } => Err(SourceError::Unusable {
            uri: uri.to_string(),
            reason: "a V4L2 camera has no audio; pass --audio alsa://… for the microphone".into(),
        }),
    }
}

#[cfg(feature = "ffmpeg")]
fn open_container_video(
    _uri: &InputUri,
    path: &std::path::Path,
    max_pixels: u64,
) -> Result<Box<dyn VideoSource>, SourceError> {
    Ok(Box::new(ffmpeg::ContainerVideo::open(path, max_pixels)?))
}

#[cfg(not(feature = "ffmpeg"))]
fn open_container_video(
    uri: &InputUri,
    path: &std::path::Path,
    _max_pixels: u64,
) -> Result<Box<dyn VideoSource>, SourceError> {
    check_exists(uri, path)?;
    Err(SourceError::NoFfmpeg {
        uri: uri.to_string(),
    })
}

#[cfg(feature = "ffmpeg")]
fn open_container_audio(
    _uri: &InputUri,
    path: &std::path::Path,
    sample_rate: u32,
) -> Result<Box<dyn AudioSource>, SourceError> {
    Ok(Box::new(ffmpeg::ContainerAudio::open(path, sample_rate)?))
}

#[cfg(not(feature = "ffmpeg"))]
fn open_container_audio(
    uri: &InputUri,
    path: &std::path::Path,
    _sample_rate: u32,
) -> Result<Box<dyn AudioSource>, SourceError> {
    check_exists(uri, path)?;
    Err(SourceError::NoFfmpeg {
        uri: uri.to_string(),
    })
}

#[cfg(not(feature = "ffmpeg"))]
/// [`SourceError::NotFound`] unless `path` exists.
pub(crate) fn check_exists(uri: &InputUri, path: &std::path::Path) -> Result<(), SourceError> {
    if path.exists() {
        Ok(())
    } else {
        Err(SourceError::NotFound {
            uri: uri.to_string(),
            path: path.to_path_buf(),
        })
    }
}

/// The block of up to `block` samples starting at sample `pos` (timestamp from sample 0 = 0 ms).
pub(crate) fn block_at(
    samples: &[f64],
    sample_rate: u32,
    pos: usize,
    block: usize,
) -> Option<AudioBlock> {
    if pos >= samples.len() {
        return None;
    }
    let end = (pos + block).min(samples.len());
    Some(AudioBlock {
        pts_ms: (pos as f64 * 1000.0 / f64::from(sample_rate)).round() as i64,
        samples: samples[pos..end].to_vec(),
    })
}
