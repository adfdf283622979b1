//! Container input (`file://clip.mp4|mkv|webm|…`) through the system FFmpeg libraries
//! (`ffmpeg-next`, cargo feature `ffmpeg`).
//!
//! Video: the best video stream is decoded frame by frame and converted to RGB24 by swscale;
//! timestamps are the frames' best-effort timestamps relative to the stream start, in ms. A
//! packet or frame that fails in the middle of the stream (a corrupt or truncated stretch of the
//! file) is a [`SourceError::DecodeFrame`]: the reader has moved past it, and
//! `--on-bad-frame skip` goes on with the next decodable frame.
//! Audio: the best audio stream is decoded and resampled (swresample) to mono f32 at the model
//! rate when the source is opened (recorded files only), then handed out in 100 ms blocks; if the
//! audio stream starts later than the video, the gap is filled with silence.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ff::format::{context::Input, Pixel, Sample};
use ff::software::{resampling, scaling};
use ffmpeg_next as ff;
use image::RgbImage;

use super::{block_at, AudioBlock, AudioSource, SourceError, VideoFrame, VideoSource};
use crate::frontend::image::check_pixels;

fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn decode_err(path: &Path, what: &str, e: ff::Error) -> SourceError {
    SourceError::Decode {
        uri: uri(path),
        message: format!("{what}: {e}"),
    }
}

/// Opens `path` and finds its best stream of `kind`; returns (input, stream index, time base in
/// seconds per tick, stream start in ticks, codec parameters).
fn open_stream(
    path: &Path,
    kind: ff::media::Type,
) -> Result<(Input, usize, f64, i64, ff::codec::Parameters), SourceError> {
    if !path.exists() {
        return Err(SourceError::NotFound {
            uri: uri(path),
            path: path.to_path_buf(),
        });
    }
    ff::init().map_err(|e| decode_err(path, "initialising FFmpeg", e))?;
    let input = ff::format::input(&path).map_err(|e| decode_err(path, "opening container", e))?;
    let stream = input
        .streams()
        .best(kind)
        .ok_or_else(|| SourceError::Unusable {
            uri: uri(path),
            reason: format!("no {kind:?} stream in the file"),
        })?;
    let tb = stream.time_base();
    let tb = if tb.denominator() != 0 {
        f64::from(tb.numerator()) / f64::from(tb.denominator())
    } else {
        0.0
    };
    let start = stream.start_time();
    let start = if start == i64::MIN { 0 } else { start };
    let (index, params) = (stream.index(), stream.parameters());
    Ok((input, index, tb, start, params))
}

/// For a frame of `width × height` over `max_pixels`: the message, naming the file and its size.
fn over_size(path: &Path, width: u32, height: u32, max_pixels: u64) -> Option<String> {
    check_pixels(width, height, max_pixels)
        .err()
        .map(|e| format!("{}: {e}", path.display()))
}

/// One packet or frame in the middle of the stream that failed.
fn frame_err(path: &Path, message: String) -> SourceError {
    SourceError::DecodeFrame {
        uri: uri(path),
        message,
    }
}

/// Decode errors in a row (no frame between them) after which a video file is given up as
/// unreadable even under `--on-bad-frame skip`: a guard against a decoder that fails the same
/// way forever. A damaged stretch of a file costs at most a few hundred frames (up to the next
/// key frame), each counted.
pub const MAX_DECODE_ERRORS_IN_A_ROW: u32 = 1000;

/// swscale context that may move to another thread.
///
/// `ffmpeg-next` leaves `scaling::Context` `!Send` because it holds a raw `SwsContext*`. An
/// `SwsContext` has no thread affinity (FFmpeg only forbids *concurrent* use, and the context is
/// owned and used by one `ContainerVideo` at a time); the source is moved to its reader thread
/// once, before any use.
struct Scaler(scaling::Context);

// SAFETY: see the type's documentation — exclusive ownership, no thread-local state in swscale.
unsafe impl Send for Scaler {}

/// Video frames of a container.
pub struct ContainerVideo {
    path: PathBuf,
    input: Input,
    stream: usize,
    time_base: f64,
    start: i64,
    decoder: ff::decoder::Video,
    scaler: Option<Scaler>,
    eof_sent: bool,
    last_pts_ms: i64,
    max_pixels: u64,
    /// Packets or frames that failed since the last good frame.
    errors_in_a_row: u32,
}

impl std::fmt::Debug for ContainerVideo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerVideo")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ContainerVideo {
    /// Opens the best video stream of `path`; a stream whose parameters declare frames of more
    /// than `max_pixels` pixels is refused before any frame is decoded.
    pub fn open(path: &Path, max_pixels: u64) -> Result<Self, SourceError> {
        let (input, stream, time_base, start, params) = open_stream(path, ff::media::Type::Video)?;
        let decoder = ff::codec::context::Context::from_parameters(params)
            .and_then(|c| c.decoder().video())
            .map_err(|e| decode_err(path, "opening the video decoder", e))?;
        if let Some(message) = over_size(path, decoder.width(), decoder.height(), max_pixels) {
            return Err(SourceError::Decode {
                uri: uri(path),
                message,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            input,
            stream,
            time_base,
            start,
            decoder,
            scaler: None,
            eof_sent: false,
            last_pts_ms: -1,
            max_pixels,
            errors_in_a_row: 0,
        })
    }

    /// Counts a failure of one packet or frame (`e`, a [`SourceError::DecodeFrame`]); after
    /// [`MAX_DECODE_ERRORS_IN_A_ROW`] of them it becomes a [`SourceError::Decode`] that ends the
    /// input.
    fn bad(&mut self, e: SourceError) -> SourceError {
        self.errors_in_a_row += 1;
        match e {
            SourceError::DecodeFrame { uri, message }
                if self.errors_in_a_row >= MAX_DECODE_ERRORS_IN_A_ROW =>
            {
                SourceError::Decode {
                    uri,
                    message: format!(
                        "{message} ({MAX_DECODE_ERRORS_IN_A_ROW} decode errors in a row: \
                         giving up)"
                    ),
                }
            }
            e => e,
        }
    }

    /// `frame` in RGB24. Errors ([`SourceError::DecodeFrame`]): a size over `max_pixels`
    /// (checked before the RGB buffer is allocated: the stream may change size mid-way), the
    /// converter.
    fn convert_to_rgb(&mut self, frame: &ff::frame::Video) -> Result<RgbImage, SourceError> {
        let (w, h) = (frame.width(), frame.height());
        let path = self.path.as_path();
        if let Some(message) = over_size(path, w, h, self.max_pixels) {
            return Err(frame_err(path, message));
        }
        let changed = self.scaler.as_ref().is_some_and(|s| {
            let d = s.0.input();
            (d.format, d.width, d.height) != (frame.format(), w, h)
        });
        if self.scaler.is_none() || changed {
            let s = scaling::Context::get(
                frame.format(),
                w,
                h,
                Pixel::RGB24,
                w,
                h,
                scaling::Flags::BILINEAR,
            )
            .map_err(|e| frame_err(path, format!("creating the RGB converter: {e}")))?;
            self.scaler = Some(Scaler(s));
        }
        let mut rgb = ff::frame::Video::empty();
        if let Some(s) = self.scaler.as_mut() {
            s.0.run(frame, &mut rgb)
                .map_err(|e| frame_err(path, format!("converting to RGB: {e}")))?;
        }
        let stride = rgb.stride(0);
        let data = rgb.data(0);
        let row = w as usize * 3;
        let mut buf = Vec::with_capacity(row * h as usize);
        for y in 0..h as usize {
            let line = data.get(y * stride..y * stride + row).ok_or_else(|| {
                frame_err(path, "converted frame is smaller than its size".into())
            })?;
            buf.extend_from_slice(line);
        }
        RgbImage::from_raw(w, h, buf)
            .ok_or_else(|| frame_err(path, "converted frame has the wrong size".into()))
    }
}

impl VideoSource for ContainerVideo {
    /// The next frame; `Ok(None)` at the end. A packet or frame that fails is a
    /// [`SourceError::DecodeFrame`] (the next call goes on past it), with the words an error of
    /// this reader always had ("decoding video: …", "reading the container: …").
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        let mut frame = ff::frame::Video::empty();
        loop {
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    let pts_ms = match frame.timestamp() {
                        Some(ts) => {
                            ((ts - self.start) as f64 * self.time_base * 1000.0).round() as i64
                        }
                        None => self.last_pts_ms + 1,
                    };
                    let pts_ms = pts_ms.max(self.last_pts_ms + 1);
                    self.last_pts_ms = pts_ms;
                    let image = match self.convert_to_rgb(&frame) {
                        Ok(image) => image,
                        Err(e) => return Err(self.bad(e)),
                    };
                    self.errors_in_a_row = 0;
                    return Ok(Some(VideoFrame {
                        pts_ms,
                        image: Arc::new(image),
                    }));
                }
                Err(ff::Error::Eof) => return Ok(None),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {}
                Err(e) => {
                    let e = frame_err(&self.path, format!("decoding video: {e}"));
                    return Err(self.bad(e));
                }
            }
            if self.eof_sent {
                return Ok(None);
            }
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream => {
                    if let Err(e) = self.decoder.send_packet(&packet) {
                        let e = frame_err(&self.path, format!("decoding video: {e}"));
                        return Err(self.bad(e));
                    }
                }
                Ok(()) => {}
                Err(ff::Error::Eof) => {
                    self.decoder
                        .send_eof()
                        .map_err(|e| decode_err(&self.path, "flushing the video decoder", e))?;
                    self.eof_sent = true;
                }
                Err(e) => {
                    let e = frame_err(&self.path, format!("reading the container: {e}"));
                    return Err(self.bad(e));
                }
            }
        }
    }

    fn name(&self) -> String {
        uri(&self.path)
    }
}

/// The audio track of a container, decoded and resampled to mono at open time.
#[derive(Debug)]
pub struct ContainerAudio {
    samples: Vec<f64>,
    sample_rate: u32,
    pos: usize,
}

impl ContainerAudio {
    /// Decodes the best audio stream of `path` to mono f32 at `sample_rate` Hz.
    pub fn open(path: &Path, sample_rate: u32) -> Result<Self, SourceError> {
        let (mut input, stream, time_base, start, params) =
            open_stream(path, ff::media::Type::Audio)?;
        let err = |what: &str, e: ff::Error| decode_err(path, what, e);
        let mut decoder = ff::codec::context::Context::from_parameters(params)
            .and_then(|c| c.decoder().audio())
            .map_err(|e| err("opening the audio decoder", e))?;
        let mut resampler: Option<resampling::Context> = None;
        let mut samples: Vec<f64> = Vec::new();
        let mut first_pts: Option<i64> = None;
        let mut decoded = ff::frame::Audio::empty();
        let mut drain = |decoder: &mut ff::decoder::Audio,
                         resampler: &mut Option<resampling::Context>,
                         samples: &mut Vec<f64>,
                         first_pts: &mut Option<i64>|
         -> Result<(), SourceError> {
            while decoder.receive_frame(&mut decoded).is_ok() {
                if first_pts.is_none() {
                    *first_pts = decoded.timestamp();
                }
                if resampler.is_none() {
                    let layout = if decoded.channel_layout().is_empty() {
                        ff::ChannelLayout::default(i32::from(decoded.channels()))
                    } else {
                        decoded.channel_layout()
                    };
                    decoded.set_channel_layout(layout);
                    let r = resampling::Context::get(
                        decoded.format(),
                        layout,
                        decoded.rate(),
                        Sample::F32(ff::format::sample::Type::Packed),
                        ff::ChannelLayout::MONO,
                        sample_rate,
                    )
                    .map_err(|e| err("creating the resampler", e))?;
                    *resampler = Some(r);
                }
                if decoded.channel_layout().is_empty() {
                    decoded.set_channel_layout(ff::ChannelLayout::default(i32::from(
                        decoded.channels(),
                    )));
                }
                let mut out = ff::frame::Audio::empty();
                if let Some(r) = resampler.as_mut() {
                    r.run(&decoded, &mut out)
                        .map_err(|e| err("resampling audio", e))?;
                    samples.extend(
                        out.plane::<f32>(0)
                            .iter()
                            .take(out.samples())
                            .map(|&x| f64::from(x)),
                    );
                }
            }
            Ok(())
        };
        let mut packet = ff::Packet::empty();
        loop {
            match packet.read(&mut input) {
                Ok(()) if packet.stream() == stream => {
                    decoder
                        .send_packet(&packet)
                        .map_err(|e| err("decoding audio", e))?;
                    drain(&mut decoder, &mut resampler, &mut samples, &mut first_pts)?;
                }
                Ok(()) => {}
                Err(ff::Error::Eof) => break,
                Err(e) => return Err(err("reading the container", e)),
            }
        }
        decoder
            .send_eof()
            .map_err(|e| err("flushing the audio decoder", e))?;
        drain(&mut decoder, &mut resampler, &mut samples, &mut first_pts)?;
        if let Some(r) = resampler.as_mut() {
            let mut out = ff::frame::Audio::empty();
            if r.flush(&mut out).is_ok() && out.samples() > 0 {
                samples.extend(
                    out.plane::<f32>(0)
                        .iter()
                        .take(out.samples())
                        .map(|&x| f64::from(x)),
                );
            }
        }
        let lead_s = first_pts.map_or(0.0, |p| ((p - start) as f64 * time_base).max(0.0));
        let lead = (lead_s * f64::from(sample_rate)).round() as usize;
        if lead > 0 {
            samples.splice(0..0, std::iter::repeat_n(0.0, lead));
        }
        Ok(Self {
            samples,
            sample_rate,
            pos: 0,
        })
    }
}

impl AudioSource for ContainerAudio {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn next_block(&mut self) -> Result<Option<AudioBlock>, SourceError> {
        let block = (self.sample_rate / 10).max(1) as usize;
        let b = block_at(&self.samples, self.sample_rate, self.pos, block);
        self.pos += block;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_over_max_pixels_is_refused_at_open() {
        let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/clips/bbb-bird/bbb-bird.mp4");
        let mut v = ContainerVideo::open(&clip, 480 * 270).unwrap();
        assert_eq!(
            v.next_frame().unwrap().unwrap().image.dimensions(),
            (480, 270)
        );
        let e = ContainerVideo::open(&clip, 480 * 270 - 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("bbb-bird.mp4: 480×270 pixels, over [input] max_pixels 129599"),
            "{e}"
        );
    }
}
