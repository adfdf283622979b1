//! `v4l2:///dev/videoN`: a V4L2 camera as a [`VideoSource`] (cargo feature `v4l2`, crate `v4l`).
//!
//! * **Modes.** Every (pixel format, size, frame interval) the driver offers is enumerated
//!   (`VIDIOC_ENUM_FMT`, `VIDIOC_ENUM_FRAMESIZES`, `VIDIOC_ENUM_FRAMEINTERVALS`), logged, and
//!   scored as jetson-utils' `gstCamera::matchCaps` does (docs/integration-conventions.md §1.4): the
//!   size closest to the request (default 1280 × 720) wins, then the frame rate (closest to
//!   `--input-rate` if given, else the highest), then an uncompressed format over MJPEG.
//!   `--input-codec` restricts the formats. See [`choose_mode`].
//! * **Formats converted to RGB8:** YUYV (4:2:2), NV12 (4:2:0) — BT.601 limited range, the
//!   UVC/vivid default — MJPEG (decoded by the `image` crate's JPEG decoder, zune-jpeg) and
//!   RGB24. See [`to_rgb`].
//! * **Streaming** with 4 memory-mapped buffers; a frame's `pts_ms` is its kernel timestamp
//!   (`CLOCK_MONOTONIC` when the buffer says `TIMESTAMP_MONOTONIC`, else the time it was
//!   dequeued), so it lines up with the ALSA source (see [`super::live`]).
//! * **Faults.** When the device fails while streaming (unplugged: `ENODEV`; I/O error; no frame
//!   for 5 s) the source logs it, sets the video status to `reconnecting`, closes the device and
//!   reopens it with jittered exponential backoff ([`Backoff`]), renegotiating the same request;
//!   the status goes back to `streaming` with the first new frame. A device missing or busy at
//!   start is an error, or is waited for with [`LiveOptions::wait`]. A buffer that does not
//!   convert or that the driver flags as corrupt is a [`SourceError::BadFrame`] (skipped and
//!   counted by the pipeline under `--on-bad-frame skip`, the default for live inputs).
//!
//! Files: `modes.rs` (formats, enumeration, the choice of a mode), `convert.rs` (buffers to
//! RGB8), this file (opening, streaming, reconnecting).

mod convert;
mod modes;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use v4l::buffer::{Flags as BufFlags, Type};
use v4l::format::FourCC;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::Device;

pub use convert::{to_rgb, ConvertError};
pub use modes::{
    choose_mode, enumerate_modes, list_devices, DeviceInfo, Mode, ModeError, PixelFormat,
    DEFAULT_SIZE,
};

use super::live::{monotonic_ms, Backoff, LiveOptions};
use super::{SourceError, VideoFrame, VideoSource};
use crate::control::{DeviceStatus, RunControl};

/// Memory-mapped buffers requested from the driver.
pub const BUFFERS: u32 = 4;
/// No frame for this long while streaming counts as a device failure.
pub const STALL: Duration = Duration::from_secs(5);

/// What the last captured buffer was (for tests and diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameMeta {
    /// Driver sequence number (restarts at 0 after a reconnect).
    pub sequence: u32,
    /// Bytes of the buffer in use.
    pub bytesused: u32,
    /// Timestamp in ms (see the module doc).
    pub pts_ms: i64,
}

/// A V4L2 camera (see the module doc).
pub struct V4l2Source {
    uri: String,
    path: PathBuf,
    req: LiveOptions,
    open: Option<OpenSlot>,
    control: Option<Arc<RunControl>>,
    backoff: Backoff,
    last: Option<FrameMeta>,
    reconnects: u64,
    last_frame_at: Instant,
}

/// `Open` in an `Option` so that it can be dropped inside `catch_unwind`.
struct OpenSlot(Option<OpenInner>);

struct OpenInner {
    stream: MmapStream<'static>,
    _device: Device,
    fmt: PixelFormat,
    width: u32,
    height: u32,
    stride: u32,
    mode: Mode,
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            // v4l's Stream/Arena panic in Drop on errors other than ENODEV (e.g. EIO from a
            // half-gone device); cleaning up a dead device must not take the pipeline down.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(inner)));
        }
    }
}

/// Why opening failed, for the retry decision.
enum OpenFailure {
    /// Missing, busy or gone: worth retrying.
    Transient(String),
    /// The device cannot satisfy the request (no usable mode, not a capture device).
    Permanent(String),
}

fn open_device(path: &Path, req: &LiveOptions) -> Result<OpenInner, OpenFailure> {
    let transient = |what: &str, e: std::io::Error| {
        OpenFailure::Transient(match e.raw_os_error() {
            Some(libc::ENOENT) => format!("{what}: no such device (not connected?)"),
            Some(libc::EBUSY) => format!("{what}: device busy (used by another program?)"),
            Some(libc::EACCES) => {
                format!("{what}: permission denied (add the user to group video)")
            }
            _ => format!("{what}: {e}"),
        })
    };
    let device =
        Device::with_path(path).map_err(|e| transient(&format!("open {}", path.display()), e))?;
    let caps = device
        .query_caps()
        .map_err(|e| transient("VIDIOC_QUERYCAP", e))?;
    if !caps
        .capabilities
        .contains(v4l::capability::Flags::VIDEO_CAPTURE)
    {
        return Err(OpenFailure::Permanent(format!(
            "{} ({}) is not a video capture device",
            caps.card, caps.driver
        )));
    }
    let modes = enumerate_modes(&device, req).map_err(|e| transient("enumerate formats", e))?;
    for m in &modes {
        tracing::debug!(device = %path.display(), "offers {m}");
    }
    let mode = choose_mode(&modes, req).map_err(|e| OpenFailure::Permanent(e.to_string()))?;
    let fmt_req = v4l::Format::new(mode.width, mode.height, FourCC::new(&mode.fourcc));
    let got = device
        .set_format(&fmt_req)
        .map_err(|e| transient("VIDIOC_S_FMT", e))?;
    let fmt = PixelFormat::from_fourcc(&got.fourcc.repr).ok_or_else(|| {
        OpenFailure::Permanent(format!(
            "driver switched to unsupported format {}",
            got.fourcc
        ))
    })?;
    if mode.fps > 0.0 {
        let num = 1000u32;
        let den = (mode.fps * f64::from(num)).round() as u32;
        let params = v4l::video::capture::Parameters::new(v4l::Fraction::new(num, den));
        if let Err(e) = device.set_params(&params) {
            tracing::warn!(device = %path.display(), "cannot set {:.3} fps: {e}", mode.fps);
        }
    }
    let mut stream = MmapStream::with_buffers(&device, Type::VideoCapture, BUFFERS)
        .map_err(|e| transient("VIDIOC_REQBUFS/mmap", e))?;
    stream.set_timeout(Duration::from_millis(1000));
    tracing::info!(
        device = %path.display(),
        card = %caps.card,
        "capturing {} {}x{} (stride {}) @ {:.3} fps",
        got.fourcc, got.width, got.height, got.stride, mode.fps
    );
    Ok(OpenInner {
        stream,
        _device: device,
        fmt,
        width: got.width,
        height: got.height,
        stride: got.stride,
        mode,
    })
}

impl V4l2Source {
    /// Opens `device` (e.g. `/dev/video0`) for the input `uri`, choosing the mode for `req`.
    /// Errors: [`SourceError::Device`] naming the device and the cause (missing, busy, no
    /// usable mode); with `req.wait` a missing or busy device is retried with backoff instead.
    pub fn open(uri: &str, device: &str, req: &LiveOptions) -> Result<Self, SourceError> {
        let path = PathBuf::from(device);
        let mut backoff = Backoff::default();
        let inner = loop {
            match open_device(&path, req) {
                Ok(o) => break o,
                Err(OpenFailure::Transient(reason)) if req.wait => {
                    let d = backoff.next_delay();
                    tracing::warn!(
                        "input {uri}: {reason}; waiting for it (retry in {} ms)",
                        d.as_millis()
                    );
                    std::thread::sleep(d);
                }
                Err(OpenFailure::Transient(reason) | OpenFailure::Permanent(reason)) => {
                    return Err(SourceError::Device {
                        uri: uri.to_string(),
                        reason: if req.wait {
                            reason
                        } else {
                            format!("{reason} (pass --input-wait to wait for it)")
                        },
                    })
                }
            }
        };
        Ok(Self {
            uri: uri.to_string(),
            path,
            req: req.clone(),
            open: Some(OpenSlot(Some(inner))),
            control: None,
            backoff: Backoff::default(),
            last: None,
            reconnects: 0,
            last_frame_at: Instant::now(),
        })
    }

    /// The mode in use (`None` while reconnecting).
    pub fn mode(&self) -> Option<Mode> {
        self.open
            .as_ref()
            .and_then(|o| o.0.as_ref())
            .map(|o| o.mode.clone())
    }

    /// Metadata of the last frame returned.
    pub fn last_meta(&self) -> Option<FrameMeta> {
        self.last
    }

    /// Successful reconnects so far.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    fn set_status(&self, s: DeviceStatus) {
        if let Some(c) = &self.control {
            c.set_video_status(s);
        }
    }

    fn stopping(&self) -> bool {
        self.control.as_ref().is_some_and(|c| c.stop_requested())
    }

    fn lost(&mut self, why: String) {
        tracing::warn!(
            "input {}: camera lost ({why}); reconnecting with backoff",
            self.uri
        );
        self.open = None;
        self.backoff.reset();
        self.set_status(DeviceStatus::Reconnecting);
    }

    /// Tries to reopen after a failure; `Ok(false)` = not yet (slept the backoff delay).
    fn try_reopen(&mut self) -> Result<bool, SourceError> {
        let d = self.backoff.next_delay();
        std::thread::sleep(d);
        match open_device(&self.path, &self.req) {
            Ok(o) => {
                tracing::warn!(
                    "input {}: camera back after {} attempt(s)",
                    self.uri,
                    self.backoff.attempts()
                );
                self.open = Some(OpenSlot(Some(o)));
                self.reconnects += 1;
                self.last_frame_at = Instant::now();
                Ok(true)
            }
            Err(OpenFailure::Transient(r)) => {
                tracing::info!(
                    "input {}: still unavailable ({r}); next try in about {} ms",
                    self.uri,
                    d.as_millis() * 2
                );
                Ok(false)
            }
            Err(OpenFailure::Permanent(reason)) => Err(SourceError::Device {
                uri: self.uri.clone(),
                reason,
            }),
        }
    }
}

impl VideoSource for V4l2Source {
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        loop {
            if self.stopping() {
                return Ok(None);
            }
            let Some(open) = self.open.as_mut().and_then(|o| o.0.as_mut()) else {
                self.try_reopen()?;
                continue;
            };
            let (fmt, w, h, stride) = (open.fmt, open.width, open.height, open.stride);
            let res = open.stream.next().map(|(buf, meta)| {
                let used = (meta.bytesused as usize).min(buf.len());
                let pts_ms = if meta.flags.contains(BufFlags::TIMESTAMP_MONOTONIC)
                    && (meta.timestamp.sec, meta.timestamp.usec) != (0, 0)
                {
                    meta.timestamp.sec * 1000 + (meta.timestamp.usec + 500) / 1000
                } else {
                    monotonic_ms()
                };
                let m = FrameMeta {
                    sequence: meta.sequence,
                    bytesused: meta.bytesused,
                    pts_ms,
                };
                let error = meta.flags.contains(BufFlags::ERROR);
                (to_rgb(fmt, &buf[..used], w, h, stride), m, error)
            });
            match res {
                Ok((Ok(image), meta, false)) => {
                    self.last = Some(meta);
                    self.last_frame_at = Instant::now();
                    self.set_status(DeviceStatus::Streaming);
                    return Ok(Some(VideoFrame {
                        pts_ms: meta.pts_ms,
                        image: Arc::new(image),
                    }));
                }
                // a bad frame: the stream goes on with the next buffer (`--on-bad-frame`); the
                // driver's flag first, whatever its bytes
                Ok((_, meta, true)) => {
                    return Err(SourceError::BadFrame {
                        uri: self.uri.clone(),
                        frame: meta.sequence.to_string(),
                        reason: "the driver flagged it as corrupt".into(),
                    });
                }
                Ok((Err(e), meta, false)) => {
                    return Err(SourceError::BadFrame {
                        uri: self.uri.clone(),
                        frame: meta.sequence.to_string(),
                        reason: e.to_string(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    if self.last_frame_at.elapsed() > STALL {
                        self.lost(format!("no frame for {} s", STALL.as_secs()));
                    }
                }
                Err(e) => self.lost(e.to_string()),
            }
        }
    }

    fn name(&self) -> String {
        self.uri.clone()
    }

    fn set_control(&mut self, control: Arc<RunControl>) {
        self.control = Some(control);
    }
}
