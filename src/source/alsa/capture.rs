//! ALSA capture PCMs: negotiating format, channels and rate ([`AlsaCapture::open`]), reading
//! raw interleaved samples with their measured time ([`AlsaCapture::read`]), and listing the
//! capture PCMs ([`list_capture_pcms`]).

use std::ffi::CString;

use alsa::pcm::{Access, Format, HwParams, TstampType, PCM};
use alsa::{Direction, ValueOr};

use crate::source::live::{monotonic_ms, timespec_ms, LiveOptions};

/// Sample format negotiated with the PCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// Signed 16-bit little endian.
    S16,
    /// Signed 32-bit little endian.
    S32,
    /// 32-bit float little endian, full scale ±1.
    Float,
}

impl SampleFormat {
    fn alsa(self) -> Format {
        match self {
            Self::S16 => Format::S16LE,
            Self::S32 => Format::S32LE,
            Self::Float => Format::FloatLE,
        }
    }
    /// Parses `s16`, `s32`, `float` (also `S16_LE`, `S32_LE`, `FLOAT_LE`, `f32`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "s16" | "s16_le" => Some(Self::S16),
            "s32" | "s32_le" => Some(Self::S32),
            "float" | "float_le" | "f32" => Some(Self::Float),
            _ => None,
        }
    }
}

/// Interleaved samples as read, in the negotiated format.
#[derive(Debug, Clone, PartialEq)]
pub enum RawSamples {
    /// S16_LE samples.
    S16(Vec<i16>),
    /// S32_LE samples.
    S32(Vec<i32>),
    /// FLOAT_LE samples.
    Float(Vec<f32>),
}

impl RawSamples {
    /// Interleaved samples scaled to ±1 (int ÷ `2^(bits−1)`, float as is).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            Self::S16(v) => v.iter().map(|&x| f64::from(x) / 32768.0).collect(),
            Self::S32(v) => v.iter().map(|&x| f64::from(x) / 2_147_483_648.0).collect(),
            Self::Float(v) => v.iter().map(|&x| f64::from(x)).collect(),
        }
    }
}

/// One read from the PCM.
#[derive(Debug, Clone, PartialEq)]
pub struct RawBlock {
    /// Measured time of the first frame, ms `CLOCK_MONOTONIC` (see the module doc).
    pub pts_ms: f64,
    /// Frames read.
    pub frames: usize,
    /// Interleaved samples (`frames × channels`).
    pub samples: RawSamples,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// An overrun or suspend was recovered from; the next read starts after a gap.
    #[error("overrun or suspend, recovered")]
    Xrun,
    /// No data within the wait (not an error by itself).
    #[error("no data within the wait")]
    Timeout,
    /// The PCM failed (unplugged, I/O error): close and reopen it.
    #[error("{0}")]
    Lost(String),
}

/// Why a capture PCM cannot be opened for a request ([`AlsaCapture::open`]); each names the PCM
/// and the step, with a hint for the common errors.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The name cannot be passed to ALSA.
    #[error("PCM name {name:?} contains NUL")]
    NulInName {
        /// PCM name.
        name: String,
    },
    /// `snd_pcm_open` failed (no such PCM, busy, permission).
    #[error("cannot open PCM {name:?}: {}", describe(.error))]
    Open {
        /// PCM name.
        name: String,
        /// ALSA's error.
        error: alsa::Error,
    },
    /// A step of the negotiation failed.
    #[error("PCM {name:?}: {step}: {}", describe(.error))]
    Step {
        /// PCM name.
        name: String,
        /// The step (`hw params`, `rate 16000 Hz`, …).
        step: String,
        /// ALSA's error.
        error: alsa::Error,
    },
    /// `--audio-format` names no format this source reads.
    #[error("audio format {format:?} is not one of s16, s32, float")]
    UnknownFormat {
        /// The name given.
        format: String,
    },
    /// The PCM accepts none of the candidate sample formats.
    #[error("PCM {name:?} offers none of the sample formats {candidates:?}")]
    NoFormat {
        /// PCM name.
        name: String,
        /// The formats tried.
        candidates: Vec<SampleFormat>,
    },
}

/// A negotiated capture PCM (raw samples, no conversion).
pub struct AlsaCapture {
    pcm: PCM,
    name: String,
    /// Negotiated sample format.
    pub format: SampleFormat,
    /// Negotiated rate in Hz.
    pub rate: u32,
    /// Negotiated channel count.
    pub channels: u32,
    period: usize,
}

/// ALSA's error with a hint for the common causes.
fn describe(e: &alsa::Error) -> String {
    let hint = match e.errno() {
        libc::ENOENT => " (no such PCM or card: check `c3n-edge devices`)",
        libc::EBUSY => " (device busy: used by another program?)",
        libc::ENODEV => " (device gone)",
        libc::EACCES => " (permission denied: add the user to group audio)",
        _ => "",
    };
    format!("{e}{hint}")
}

impl AlsaCapture {
    /// Opens PCM `name` for capture and negotiates format, channels and rate (module doc).
    /// `Err` names the step and the ALSA error.
    pub fn open(name: &str, req: &LiveOptions) -> Result<Self, CaptureError> {
        let cname =
            CString::new(name).map_err(|_| CaptureError::NulInName { name: name.into() })?;
        let pcm =
            PCM::open(&cname, Direction::Capture, false).map_err(|error| CaptureError::Open {
                name: name.into(),
                error,
            })?;
        let step = |what: &str, error: alsa::Error| CaptureError::Step {
            name: name.into(),
            step: what.into(),
            error,
        };
        let (format, rate, channels, period) = {
            let hwp = HwParams::any(&pcm).map_err(|e| step("hw params", e))?;
            hwp.set_access(Access::RWInterleaved)
                .map_err(|e| step("interleaved access", e))?;
            let candidates: Vec<SampleFormat> = match req.audio_format.as_deref() {
                Some(f) => vec![SampleFormat::parse(f)
                    .ok_or_else(|| CaptureError::UnknownFormat { format: f.into() })?],
                None => vec![SampleFormat::S16, SampleFormat::S32, SampleFormat::Float],
            };
            let format = candidates
                .iter()
                .copied()
                .find(|f| hwp.test_format(f.alsa()).is_ok())
                .ok_or_else(|| CaptureError::NoFormat {
                    name: name.into(),
                    candidates: candidates.clone(),
                })?;
            hwp.set_format(format.alsa())
                .map_err(|e| step("sample format", e))?;
            let ch = match req.audio_channels {
                Some(c) => c,
                None => hwp.get_channels_min().unwrap_or(1).max(1),
            };
            let channels = hwp
                .set_channels_near(ch)
                .map_err(|e| step(&format!("{ch} channels"), e))?;
            let rate = match req.audio_rate {
                Some(r) => hwp
                    .set_rate_near(r, ValueOr::Nearest)
                    .map_err(|e| step(&format!("rate {r} Hz"), e))?,
                None if hwp.test_rate(16_000).is_ok() => {
                    hwp.set_rate(16_000, ValueOr::Nearest)
                        .map_err(|e| step("rate 16000 Hz", e))?;
                    16_000
                }
                None => hwp
                    .set_rate_near(48_000, ValueOr::Nearest)
                    .map_err(|e| step("rate", e))?,
            };
            let period = hwp
                .set_period_size_near(i64::from(rate / 50).max(64), ValueOr::Nearest)
                .map_err(|e| step("period size", e))?;
            hwp.set_buffer_size_near(period * 8)
                .map_err(|e| step("buffer size", e))?;
            pcm.hw_params(&hwp)
                .map_err(|e| step("apply hw params", e))?;
            (format, rate, channels, period.max(1) as usize)
        };
        // monotonic status timestamps (same clock as V4L2); not every plugin has them
        if let Ok(swp) = pcm.sw_params_current() {
            let ok = swp.set_tstamp_mode(true).is_ok()
                && swp.set_tstamp_type(TstampType::Monotonic).is_ok()
                && pcm.sw_params(&swp).is_ok();
            if !ok {
                tracing::debug!("PCM {name:?}: no monotonic status timestamps");
            }
        }
        tracing::info!(
            "PCM {name:?}: capturing {format:?} {channels} ch @ {rate} Hz, period {period} frames"
        );
        Ok(Self {
            pcm,
            name: name.to_string(),
            format,
            rate,
            channels,
            period,
        })
    }

    /// Frames per read (one period).
    pub fn period(&self) -> usize {
        self.period
    }

    /// Reads up to `frames` frames (waits at most 1 s for data).
    pub fn read(&mut self, frames: usize) -> Result<RawBlock, ReadError> {
        match self.pcm.wait(Some(1000)) {
            Ok(true) => {}
            Ok(false) => return Err(ReadError::Timeout),
            Err(e) => return Err(self.failed(e)),
        }
        let n = frames * self.channels as usize;
        let read = match self.format {
            SampleFormat::S16 => {
                let mut buf = vec![0i16; n];
                self.pcm
                    .io_i16()
                    .and_then(|io| io.readi(&mut buf))
                    .map(|k| {
                        buf.truncate(k * self.channels as usize);
                        (k, RawSamples::S16(buf))
                    })
            }
            SampleFormat::S32 => {
                let mut buf = vec![0i32; n];
                self.pcm
                    .io_i32()
                    .and_then(|io| io.readi(&mut buf))
                    .map(|k| {
                        buf.truncate(k * self.channels as usize);
                        (k, RawSamples::S32(buf))
                    })
            }
            SampleFormat::Float => {
                let mut buf = vec![0f32; n];
                self.pcm
                    .io_f32()
                    .and_then(|io| io.readi(&mut buf))
                    .map(|k| {
                        buf.truncate(k * self.channels as usize);
                        (k, RawSamples::Float(buf))
                    })
            }
        };
        let now = monotonic_ms() as f64;
        match read {
            Ok((k, samples)) => {
                let rate = f64::from(self.rate);
                let pts_ms = match self.pcm.status() {
                    Ok(st) => {
                        let ts = st.get_htstamp();
                        if ts.tv_sec == 0 && ts.tv_nsec == 0 {
                            now - k as f64 * 1000.0 / rate
                        } else {
                            timespec_ms(ts.tv_sec, ts.tv_nsec) as f64
                                - (st.get_delay().max(0) as f64 + k as f64) * 1000.0 / rate
                        }
                    }
                    Err(_) => now - k as f64 * 1000.0 / rate,
                };
                Ok(RawBlock {
                    pts_ms,
                    frames: k,
                    samples,
                })
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    fn failed(&mut self, e: alsa::Error) -> ReadError {
        match e.errno() {
            libc::EPIPE | libc::ESTRPIPE | libc::EINTR => match self.pcm.try_recover(e, true) {
                Ok(()) => ReadError::Xrun,
                Err(e2) => ReadError::Lost(format!("recovering from {e}: {}", describe(&e2))),
            },
            libc::EAGAIN => ReadError::Timeout,
            _ => ReadError::Lost(format!("PCM {:?}: {}", self.name, describe(&e))),
        }
    }
}

/// An ALSA capture PCM as listed by `c3n-edge devices`.
#[derive(Debug, Clone, PartialEq)]
pub struct PcmInfo {
    /// PCM name to put after `alsa://`.
    pub name: String,
    /// Description from the ALSA configuration.
    pub description: String,
}

/// Capture-capable PCMs from the ALSA configuration's device hints (`snd_device_name_hint`),
/// plus one `hw:CARD,DEV` per capture device of each sound card. `Err` is the ALSA error.
pub fn list_capture_pcms() -> Result<Vec<PcmInfo>, alsa::Error> {
    let mut out = Vec::new();
    let hints = alsa::device_name::HintIter::new(None, c"pcm")?;
    for h in hints {
        let Some(name) = h.name else { continue };
        if h.direction == Some(Direction::Playback) {
            continue;
        }
        out.push(PcmInfo {
            name,
            description: h.desc.unwrap_or_default().replace('\n', " — "),
        });
    }
    for card in alsa::card::Iter::new().flatten() {
        let Ok(ctl) = alsa::ctl::Ctl::from_card(&card, false) else {
            continue;
        };
        for d in alsa::ctl::DeviceIter::new(&ctl) {
            if let Ok(i) = ctl.pcm_info(d as u32, 0, Direction::Capture) {
                out.push(PcmInfo {
                    name: format!("hw:{},{}", card.get_index(), d),
                    description: format!(
                        "{} / {}",
                        card.get_name().unwrap_or_default(),
                        i.get_name().unwrap_or_default()
                    ),
                });
            }
        }
    }
    Ok(out)
}
