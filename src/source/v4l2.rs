//! `v4l2:///dev/videoN`: a V4L2 camera as a [`VideoSource`] (cargo feature `v4l2`, crate `v4l`).
//!
//! * **Modes.** Every (pixel format, size, frame interval) the driver offers is enumerated
//!   (`VIDIOC_ENUM_FMT`, `VIDIOC_ENUM_FRAMESIZES`, `VIDIOC_ENUM_FRAMEINTERVALS`), logged, and
//!   scored as jetson-utils' `gstCamera::matchCaps` does (integration-conventions.md §1.4): the
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
//!   start is an error, or is waited for with [`LiveOptions::wait`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;
use v4l::buffer::{Flags as BufFlags, Type};
use v4l::format::FourCC;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::Device;

use super::live::{monotonic_ms, Backoff, LiveOptions};
use super::{SourceError, VideoFrame, VideoSource};
use crate::control::{DeviceStatus, RunControl};

/// Default requested size when none is given (jetson-utils' default, §1.4), pixels.
pub const DEFAULT_SIZE: (u32, u32) = (1280, 720);
/// Memory-mapped buffers requested from the driver.
pub const BUFFERS: u32 = 4;
/// No frame for this long while streaming counts as a device failure.
pub const STALL: Duration = Duration::from_secs(5);

/// A pixel format this module can convert to RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// `YUYV`: packed 4:2:2, Y0 U Y1 V per two pixels.
    Yuyv,
    /// `NV12`: Y plane, then interleaved U V plane at half resolution.
    Nv12,
    /// `MJPG`: one JPEG image per buffer.
    Mjpeg,
    /// `RGB3`: packed R G B.
    Rgb24,
}

impl PixelFormat {
    /// The format of a FourCC, `None` if unsupported.
    pub fn from_fourcc(f: &[u8; 4]) -> Option<Self> {
        match f {
            b"YUYV" => Some(Self::Yuyv),
            b"NV12" => Some(Self::Nv12),
            b"MJPG" | b"JPEG" => Some(Self::Mjpeg),
            b"RGB3" => Some(Self::Rgb24),
            _ => None,
        }
    }

    /// The format named by `--input-codec` (`yuyv`, `nv12`, `mjpeg`/`mjpg`, `rgb24`/`rgb3`,
    /// case-insensitive), `None` if unknown.
    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "yuyv" | "yuy2" => Some(Self::Yuyv),
            "nv12" => Some(Self::Nv12),
            "mjpeg" | "mjpg" | "jpeg" => Some(Self::Mjpeg),
            "rgb24" | "rgb3" | "rgb" => Some(Self::Rgb24),
            _ => None,
        }
    }

    /// Compressed formats are de-preferred on a tie (§1.4).
    pub fn compressed(self) -> bool {
        self == Self::Mjpeg
    }
}

/// One capture mode offered by a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Mode {
    /// Pixel format FourCC, e.g. `*b"YUYV"`.
    pub fourcc: [u8; 4],
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate in fps (0 when the driver lists no intervals).
    pub fps: f64,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}x{} @ {:.3} fps",
            String::from_utf8_lossy(&self.fourcc),
            self.width,
            self.height,
            self.fps
        )
    }
}

/// Picks the mode for a request (jetson-utils' `matchCaps`, §1.4): among the convertible modes
/// (restricted to `codec` if given) the smallest `|Δwidth| + |Δheight|` to the requested size
/// (default 1280 × 720); then the rate closest to `rate_hz` if given, else the highest rate;
/// then uncompressed before MJPEG. `Err` says why nothing fits.
pub fn choose_mode(modes: &[Mode], req: &LiveOptions) -> Result<Mode, String> {
    let want = match req.codec.as_deref() {
        Some(c) => Some(PixelFormat::from_name(c).ok_or_else(|| {
            format!("--input-codec {c:?} is not one of yuyv, nv12, mjpeg, rgb24")
        })?),
        None => None,
    };
    let (rw, rh) = (
        req.width.unwrap_or(DEFAULT_SIZE.0),
        req.height.unwrap_or(DEFAULT_SIZE.1),
    );
    let key = |m: &Mode| {
        let pf = PixelFormat::from_fourcc(&m.fourcc);
        let size = (i64::from(m.width) - i64::from(rw)).abs()
            + (i64::from(m.height) - i64::from(rh)).abs();
        let rate = match req.rate_hz {
            Some(r) => (m.fps - r).abs(),
            None => -m.fps,
        };
        (size, rate, pf.is_some_and(PixelFormat::compressed))
    };
    modes
        .iter()
        .filter(|m| match PixelFormat::from_fourcc(&m.fourcc) {
            Some(pf) => want.is_none_or(|w| w == pf),
            None => false,
        })
        .min_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            ka.0.cmp(&kb.0)
                .then(ka.1.total_cmp(&kb.1))
                .then(ka.2.cmp(&kb.2))
        })
        .cloned()
        .ok_or_else(|| {
            let offered: Vec<String> = modes.iter().map(Mode::to_string).collect();
            format!(
                "no usable capture mode{} (offered: {})",
                want.map(|w| format!(" with codec {w:?}"))
                    .unwrap_or_default(),
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                }
            )
        })
}

fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// BT.601 limited-range YCbCr → RGB (integer, 8-bit fixed point as in libyuv).
#[inline]
fn yuv_px(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (i32::from(y) - 16) * 298;
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    [
        clamp((c + 409 * e + 128) >> 8),
        clamp((c - 100 * d - 208 * e + 128) >> 8),
        clamp((c + 516 * d + 128) >> 8),
    ]
}

/// Converts one captured buffer to RGB8. `stride` is the bytes per line of the (first) plane
/// (`bytesperline`; 0 = tightly packed). Errors name the problem (short buffer, bad JPEG).
pub fn to_rgb(
    fmt: PixelFormat,
    data: &[u8],
    width: u32,
    height: u32,
    stride: u32,
) -> Result<RgbImage, String> {
    let (w, h) = (width as usize, height as usize);
    let short = |need: usize| {
        format!(
            "{fmt:?} {width}x{height} frame has {} bytes, needs {need}",
            data.len()
        )
    };
    match fmt {
        PixelFormat::Mjpeg => {
            let img = image::load_from_memory_with_format(data, image::ImageFormat::Jpeg)
                .map_err(|e| format!("MJPEG frame ({} bytes): {e}", data.len()))?;
            Ok(img.to_rgb8())
        }
        PixelFormat::Yuyv => {
            let s = if stride == 0 { w * 2 } else { stride as usize };
            let need = s * (h.saturating_sub(1)) + w * 2;
            if data.len() < need || w % 2 != 0 {
                return Err(short(need));
            }
            let mut out = vec![0u8; w * h * 3];
            for (y, row) in out.chunks_exact_mut(w * 3).enumerate() {
                let src = &data[y * s..y * s + w * 2];
                for (px, q) in row.chunks_exact_mut(6).zip(src.chunks_exact(4)) {
                    px[..3].copy_from_slice(&yuv_px(q[0], q[1], q[3]));
                    px[3..].copy_from_slice(&yuv_px(q[2], q[1], q[3]));
                }
            }
            RgbImage::from_raw(width, height, out).ok_or_else(|| short(need))
        }
        PixelFormat::Nv12 => {
            let s = if stride == 0 { w } else { stride as usize };
            let uv0 = s * h;
            let need = uv0 + s * (h.div_ceil(2).saturating_sub(1)) + w.div_ceil(2) * 2;
            if data.len() < need {
                return Err(short(need));
            }
            let mut out = vec![0u8; w * h * 3];
            for (y, row) in out.chunks_exact_mut(w * 3).enumerate() {
                let yrow = &data[y * s..y * s + w];
                let uvrow = &data[uv0 + (y / 2) * s..];
                for (x, px) in row.chunks_exact_mut(3).enumerate() {
                    let (u, v) = (uvrow[(x / 2) * 2], uvrow[(x / 2) * 2 + 1]);
                    px.copy_from_slice(&yuv_px(yrow[x], u, v));
                }
            }
            RgbImage::from_raw(width, height, out).ok_or_else(|| short(need))
        }
        PixelFormat::Rgb24 => {
            let s = if stride == 0 { w * 3 } else { stride as usize };
            let need = s * (h.saturating_sub(1)) + w * 3;
            if data.len() < need {
                return Err(short(need));
            }
            let mut out = Vec::with_capacity(w * h * 3);
            for y in 0..h {
                out.extend_from_slice(&data[y * s..y * s + w * 3]);
            }
            RgbImage::from_raw(width, height, out).ok_or_else(|| short(need))
        }
    }
}

/// Every (format, size, rate) `dev` offers for video capture. Stepwise sizes contribute their
/// maximum, their minimum and the requested size (clamped to the steps); stepwise intervals
/// their fastest rate and the requested one when inside the range.
pub fn enumerate_modes(dev: &Device, req: &LiveOptions) -> std::io::Result<Vec<Mode>> {
    let mut modes = Vec::new();
    for f in dev.enum_formats()? {
        let sizes = match dev.enum_framesizes(f.fourcc) {
            Ok(s) => s,
            Err(_) => continue,
        };
        let mut discrete = Vec::new();
        for s in sizes {
            match s.size {
                FrameSizeEnum::Discrete(d) => discrete.push((d.width, d.height)),
                FrameSizeEnum::Stepwise(st) => {
                    let snap = |v: u32, min: u32, max: u32, step: u32| {
                        let v = v.clamp(min, max);
                        min + (v - min) / step.max(1) * step.max(1)
                    };
                    discrete.push((st.max_width, st.max_height));
                    discrete.push((st.min_width, st.min_height));
                    let (rw, rh) = (
                        req.width.unwrap_or(DEFAULT_SIZE.0),
                        req.height.unwrap_or(DEFAULT_SIZE.1),
                    );
                    discrete.push((
                        snap(rw, st.min_width, st.max_width, st.step_width),
                        snap(rh, st.min_height, st.max_height, st.step_height),
                    ));
                }
            }
        }
        discrete.dedup();
        for (w, h) in discrete {
            let mut rates = Vec::new();
            for iv in dev.enum_frameintervals(f.fourcc, w, h).unwrap_or_default() {
                match iv.interval {
                    FrameIntervalEnum::Discrete(fr) if fr.numerator > 0 => {
                        rates.push(f64::from(fr.denominator) / f64::from(fr.numerator))
                    }
                    FrameIntervalEnum::Stepwise(st) if st.min.numerator > 0 => {
                        let fastest = f64::from(st.min.denominator) / f64::from(st.min.numerator);
                        let slowest = if st.max.denominator > 0 && st.max.numerator > 0 {
                            f64::from(st.max.denominator) / f64::from(st.max.numerator)
                        } else {
                            0.0
                        };
                        rates.push(fastest);
                        if let Some(r) = req.rate_hz.filter(|r| *r >= slowest && *r <= fastest) {
                            rates.push(r);
                        }
                    }
                    _ => {}
                }
            }
            if rates.is_empty() {
                rates.push(0.0);
            }
            for fps in rates {
                modes.push(Mode {
                    fourcc: f.fourcc.repr,
                    width: w,
                    height: h,
                    fps,
                });
            }
        }
    }
    Ok(modes)
}

/// A V4L2 device as listed by `c3n-edge devices`.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// Device node, e.g. `/dev/video0`.
    pub path: PathBuf,
    /// Card name (`VIDIOC_QUERYCAP`).
    pub card: String,
    /// Driver name.
    pub driver: String,
    /// Capture modes (empty for metadata/output nodes).
    pub modes: Vec<Mode>,
    /// Why the device could not be queried, if it could not.
    pub error: Option<String>,
}

/// Lists `/dev/video*` capture devices with their modes (sorted by path).
pub fn list_devices() -> Vec<DeviceInfo> {
    let mut nodes: Vec<PathBuf> = v4l::context::enum_devices()
        .into_iter()
        .map(|n| n.path().to_path_buf())
        .collect();
    nodes.sort();
    nodes
        .into_iter()
        .map(|path| match Device::with_path(&path) {
            Ok(dev) => {
                let caps = dev.query_caps();
                let (card, driver) = caps
                    .as_ref()
                    .map(|c| (c.card.clone(), c.driver.clone()))
                    .unwrap_or_default();
                let (modes, error) = match enumerate_modes(&dev, &LiveOptions::default()) {
                    Ok(m) => (m, None),
                    Err(e) => (vec![], Some(e.to_string())),
                };
                DeviceInfo {
                    path,
                    card,
                    driver,
                    modes,
                    error,
                }
            }
            Err(e) => DeviceInfo {
                path,
                card: String::new(),
                driver: String::new(),
                modes: vec![],
                error: Some(e.to_string()),
            },
        })
        .collect()
}

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
    let mode = choose_mode(&modes, req).map_err(OpenFailure::Permanent)?;
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
                Ok((Err(e), meta, _)) => {
                    tracing::warn!("input {}: dropping frame {}: {e}", self.uri, meta.sequence);
                }
                Ok((_, meta, true)) => {
                    tracing::warn!(
                        "input {}: driver flagged frame {} as corrupt; dropped",
                        self.uri,
                        meta.sequence
                    );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn m(f: &[u8; 4], w: u32, h: u32, fps: f64) -> Mode {
        Mode {
            fourcc: *f,
            width: w,
            height: h,
            fps,
        }
    }

    fn webcam() -> Vec<Mode> {
        vec![
            m(b"YUYV", 640, 480, 30.0),
            m(b"YUYV", 1280, 720, 10.0),
            m(b"YUYV", 1920, 1080, 5.0),
            m(b"MJPG", 640, 480, 30.0),
            m(b"MJPG", 1280, 720, 30.0),
            m(b"MJPG", 1920, 1080, 30.0),
            m(b"H264", 1280, 720, 60.0),
        ]
    }

    #[test]
    fn mode_choice_follows_jetson_utils() {
        let d = LiveOptions::default();
        // default 1280x720: size first, then the higher rate (MJPEG 30 beats YUYV 10)
        assert_eq!(
            choose_mode(&webcam(), &d).unwrap(),
            m(b"MJPG", 1280, 720, 30.0)
        );
        // a tie on size and rate prefers the uncompressed format
        let r = LiveOptions {
            width: Some(640),
            height: Some(480),
            ..d.clone()
        };
        assert_eq!(
            choose_mode(&webcam(), &r).unwrap(),
            m(b"YUYV", 640, 480, 30.0)
        );
        // --input-codec forces the format; --input-rate picks the closest rate
        let r = LiveOptions {
            codec: Some("yuyv".into()),
            ..d.clone()
        };
        assert_eq!(
            choose_mode(&webcam(), &r).unwrap(),
            m(b"YUYV", 1280, 720, 10.0)
        );
        let modes = vec![m(b"YUYV", 640, 480, 30.0), m(b"YUYV", 640, 480, 15.0)];
        let r = LiveOptions {
            rate_hz: Some(12.0),
            ..d.clone()
        };
        assert_eq!(choose_mode(&modes, &r).unwrap().fps, 15.0);
        // unconvertible formats only / unknown codec: clear errors
        let e = choose_mode(&[m(b"H264", 640, 480, 30.0)], &d).unwrap_err();
        assert!(e.contains("H264 640x480"), "{e}");
        assert!(choose_mode(
            &webcam(),
            &LiveOptions {
                codec: Some("vp9".into()),
                ..d
            }
        )
        .unwrap_err()
        .contains("vp9"));
    }

    #[test]
    fn yuyv_nv12_rgb_conversions() {
        // 4x2 frame, BT.601 limited range: Y=16 black, Y=235 white, (81,90,240) red
        let yuyv = [
            16, 128, 235, 128, 81, 90, 81, 240, // row 0: black white | red red
            235, 128, 235, 128, 16, 128, 16, 128, // row 1
        ];
        let img = to_rgb(PixelFormat::Yuyv, &yuyv, 4, 2, 8).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(1, 0).0, [255, 255, 255]);
        let red = img.get_pixel(2, 0).0;
        assert!(red[0] > 250 && red[1] < 5 && red[2] < 5, "{red:?}");
        assert_eq!(img.get_pixel(3, 1).0, [0, 0, 0]);
        // stride larger than the row
        let mut padded = Vec::new();
        for row in yuyv.chunks(8) {
            padded.extend_from_slice(row);
            padded.extend_from_slice(&[0; 4]);
        }
        assert_eq!(to_rgb(PixelFormat::Yuyv, &padded, 4, 2, 12).unwrap(), img);
        // NV12 of the same picture's luma with neutral chroma
        let nv12 = [16, 235, 16, 235, 235, 16, 235, 16, 128, 128, 128, 128];
        let g = to_rgb(PixelFormat::Nv12, &nv12, 4, 2, 4).unwrap();
        assert_eq!(g.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(g.get_pixel(0, 1).0, [255, 255, 255]);
        let rgb: Vec<u8> = (0..24).collect();
        assert_eq!(
            to_rgb(PixelFormat::Rgb24, &rgb, 4, 2, 12)
                .unwrap()
                .into_raw(),
            rgb
        );
        // short buffers are errors, not panics
        let e = to_rgb(PixelFormat::Yuyv, &yuyv[..10], 4, 2, 8).unwrap_err();
        assert!(e.contains("needs 16"), "{e}");
        assert!(to_rgb(PixelFormat::Nv12, &nv12[..9], 4, 2, 4).is_err());
        assert!(to_rgb(PixelFormat::Mjpeg, b"not a jpeg", 4, 2, 0).is_err());
    }

    #[test]
    fn mjpeg_frames_decode() {
        let mut src = RgbImage::new(32, 16);
        for (x, _, p) in src.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 8) as u8, 100, 200]);
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(&src)
            .unwrap();
        let got = to_rgb(PixelFormat::Mjpeg, &jpeg, 32, 16, 0).unwrap();
        assert_eq!(got.dimensions(), (32, 16));
        let diff = got
            .as_raw()
            .iter()
            .zip(src.as_raw())
            .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
            .max()
            .unwrap();
        assert!(diff < 20, "max JPEG error {diff}");
    }
}
