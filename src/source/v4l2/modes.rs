//! The capture modes of a V4L2 device: the pixel formats this source converts
//! ([`PixelFormat`]), enumerating what a device offers ([`enumerate_modes`], [`list_devices`])
//! and choosing one for a request ([`choose_mode`]: jetson-utils' `gstCamera::matchCaps`,
//! docs/integration-conventions.md §1.4).

use std::path::PathBuf;

use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::video::Capture;
use v4l::Device;

use crate::source::live::LiveOptions;

/// Default requested size when none is given (jetson-utils' default, §1.4), pixels.
pub const DEFAULT_SIZE: (u32, u32) = (1280, 720);

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
pub fn choose_mode(modes: &[Mode], req: &LiveOptions) -> Result<Mode, ModeError> {
    let want = match req.codec.as_deref() {
        Some(c) => Some(
            PixelFormat::from_name(c).ok_or_else(|| ModeError::UnknownCodec { codec: c.into() })?,
        ),
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
        .ok_or_else(|| ModeError::NoUsableMode {
            codec: want,
            offered: modes.to_vec(),
        })
}

/// Why no capture mode fits a request ([`choose_mode`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModeError {
    /// `--input-codec` names no format this source converts.
    #[error("--input-codec {codec:?} is not one of yuyv, nv12, mjpeg, rgb24")]
    UnknownCodec {
        /// The name given.
        codec: String,
    },
    /// No offered mode is convertible (in the required codec).
    #[error(
        "no usable capture mode{} (offered: {})",
        .codec.map(|w| format!(" with codec {w:?}")).unwrap_or_default(),
        list_modes(.offered)
    )]
    NoUsableMode {
        /// The required format (`--input-codec`), if any.
        codec: Option<PixelFormat>,
        /// Every mode the device offers.
        offered: Vec<Mode>,
    },
}

/// `offered` as a comma-separated list, `none` when empty.
fn list_modes(offered: &[Mode]) -> String {
    if offered.is_empty() {
        "none".to_string()
    } else {
        let offered: Vec<String> = offered.iter().map(Mode::to_string).collect();
        offered.join(", ")
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
