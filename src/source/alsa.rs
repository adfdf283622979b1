//! `alsa://NAME`: an ALSA capture PCM (`hw:1,0`, `plughw:1`, `default`, or any PCM defined in
//! the ALSA configuration) as an [`AudioSource`] (cargo feature `alsa`, crate `alsa`).
//!
//! * **Negotiation** ([`AlsaCapture::open`]): interleaved read access; sample format the first
//!   of S16_LE, S32_LE, FLOAT_LE the PCM accepts (or the one asked for); the requested channel
//!   count (default: the PCM's minimum); the requested rate (default: 16000 Hz if offered, else
//!   the rate nearest 48000 Hz); 20 ms periods, 8 periods of buffer.
//! * **Conversion** ([`AlsaSource`]): integer samples are scaled by `2^(bits−1)` (as
//!   [`crate::audio::read_wav_mono`] does), channels averaged, and the result resampled to the
//!   model's rate with the same rubato FFT resampler as [`crate::audio::resample`]
//!   (1024-frame chunks; the start-up delay is trimmed, so block `k` of the output equals the
//!   same samples of `audio::resample` over the whole capture).
//! * **Timestamps** (ms, `CLOCK_MONOTONIC`): the PCM is asked for monotonic status timestamps;
//!   a block's first frame is stamped `htstamp − (delay + frames) / rate` from `snd_pcm_status`
//!   (the time of the last hardware pointer update minus what is still buffered). Plugins
//!   without timestamps (htstamp 0) fall back to the read time. Blocks continue on a sample
//!   clock from that anchor; it is restarted after an xrun or a reconnect (the resampler too:
//!   the data has a gap), and shifted when it drifts more than [`REANCHOR_MS`] from the
//!   measured time (the sync stage's `AudioBuffer` turns such jumps into silence or drops).
//! * **Faults.** An overrun (`EPIPE`) or suspend (`ESTRPIPE`) is recovered with
//!   `snd_pcm_recover` and counted (`RunControl::add_audio_xrun`). A PCM that fails otherwise
//!   (USB microphone unplugged: `ENODEV`, or silent for 5 s) sets the audio status to
//!   `reconnecting` and is reopened with jittered exponential backoff.

use std::ffi::CString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alsa::pcm::{Access, Format, HwParams, TstampType, PCM};
use alsa::{Direction, ValueOr};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use super::live::{monotonic_ms, timespec_ms, Backoff, LiveOptions};
use super::{AudioBlock, AudioSource, SourceError};
use crate::control::{DeviceStatus, RunControl};

/// A block's measured start may drift this far (ms) from the sample clock before re-anchoring.
pub const REANCHOR_MS: f64 = 40.0;
/// No data for this long counts as a device failure.
pub const STALL: Duration = Duration::from_secs(5);

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
#[derive(Debug)]
pub enum ReadError {
    /// An overrun or suspend was recovered from; the next read starts after a gap.
    Xrun,
    /// No data within the wait (not an error by itself).
    Timeout,
    /// The PCM failed (unplugged, I/O error): close and reopen it.
    Lost(String),
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
    pub fn open(name: &str, req: &LiveOptions) -> Result<Self, String> {
        let cname = CString::new(name).map_err(|_| format!("PCM name {name:?} contains NUL"))?;
        let pcm = PCM::open(&cname, Direction::Capture, false)
            .map_err(|e| format!("cannot open PCM {name:?}: {}", describe(&e)))?;
        let step = |what: &str, e: alsa::Error| format!("PCM {name:?}: {what}: {}", describe(&e));
        let (format, rate, channels, period) = {
            let hwp = HwParams::any(&pcm).map_err(|e| step("hw params", e))?;
            hwp.set_access(Access::RWInterleaved)
                .map_err(|e| step("interleaved access", e))?;
            let candidates: Vec<SampleFormat> = match req.audio_format.as_deref() {
                Some(f) => vec![SampleFormat::parse(f)
                    .ok_or_else(|| format!("audio format {f:?} is not one of s16, s32, float"))?],
                None => vec![SampleFormat::S16, SampleFormat::S32, SampleFormat::Float],
            };
            let format = candidates
                .iter()
                .copied()
                .find(|f| hwp.test_format(f.alsa()).is_ok())
                .ok_or_else(|| {
                    format!("PCM {name:?} offers none of the sample formats {candidates:?}")
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

/// Streaming version of [`crate::audio::resample`]: the same rubato FFT resampler fed chunk by
/// chunk, start-up delay trimmed.
pub struct StreamResampler {
    rs: Option<Fft<f64>>,
    pending: Vec<f64>,
    trim: usize,
    out: Vec<f64>,
}

impl StreamResampler {
    /// From `from_hz` to `to_hz` (pass-through when equal).
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, String> {
        if from_hz == to_hz {
            return Ok(Self {
                rs: None,
                pending: vec![],
                trim: 0,
                out: vec![],
            });
        }
        let rs = Fft::<f64>::new(from_hz as usize, to_hz as usize, 1024, 1, FixedSync::Both)
            .map_err(|e| format!("resampler {from_hz} -> {to_hz} Hz: {e}"))?;
        let trim = rs.output_delay();
        let out = vec![0.0; rs.output_frames_max()];
        Ok(Self {
            rs: Some(rs),
            pending: vec![],
            trim,
            out,
        })
    }

    /// Feeds mono samples; returns the output samples completed so far.
    pub fn process(&mut self, input: &[f64]) -> Result<Vec<f64>, String> {
        let Some(rs) = self.rs.as_mut() else {
            return Ok(input.to_vec());
        };
        self.pending.extend_from_slice(input);
        let mut result = Vec::new();
        let mut used = 0;
        loop {
            let need = rs.input_frames_next();
            if self.pending.len() - used < need {
                break;
            }
            let chunk = &self.pending[used..used + need];
            let inp = InterleavedSlice::new(chunk, 1, need).map_err(|e| e.to_string())?;
            let n_out = self.out.len();
            let mut outp =
                InterleavedSlice::new_mut(&mut self.out, 1, n_out).map_err(|e| e.to_string())?;
            let (nin, nout) = rs
                .process_into_buffer(&inp, &mut outp, None)
                .map_err(|e| e.to_string())?;
            used += nin;
            let skip = self.trim.min(nout);
            self.trim -= skip;
            result.extend_from_slice(&self.out[skip..nout]);
        }
        self.pending.drain(..used);
        Ok(result)
    }
}

/// An ALSA microphone as an [`AudioSource`]: mono blocks at the model rate (module doc).
pub struct AlsaSource {
    uri: String,
    name: String,
    req: LiveOptions,
    target_hz: u32,
    cap: Option<AlsaCapture>,
    resampler: StreamResampler,
    /// Sample-clock anchor: (output samples since the anchor, anchor ms).
    anchor: Option<f64>,
    out_count: u64,
    in_count: u64,
    control: Option<Arc<RunControl>>,
    backoff: Backoff,
    last_data: Instant,
    xruns: u64,
}

impl AlsaSource {
    /// Opens PCM `name` for the input `uri`, delivering mono at `target_hz`. Errors:
    /// [`SourceError::Device`] naming the PCM and the cause; with `req.wait` a PCM that cannot be
    /// opened is retried with backoff instead.
    pub fn open(
        uri: &str,
        name: &str,
        target_hz: u32,
        req: &LiveOptions,
    ) -> Result<Self, SourceError> {
        let mut backoff = Backoff::default();
        let cap = loop {
            match AlsaCapture::open(name, req) {
                Ok(c) => break c,
                Err(reason) if req.wait => {
                    let d = backoff.next_delay();
                    tracing::warn!(
                        "input {uri}: {reason}; waiting for it (retry in {} ms)",
                        d.as_millis()
                    );
                    std::thread::sleep(d);
                }
                Err(reason) => {
                    return Err(SourceError::Device {
                        uri: uri.to_string(),
                        reason: format!("{reason} (pass --input-wait to wait for it)"),
                    })
                }
            }
        };
        let resampler =
            StreamResampler::new(cap.rate, target_hz).map_err(|reason| SourceError::Device {
                uri: uri.to_string(),
                reason,
            })?;
        Ok(Self {
            uri: uri.to_string(),
            name: name.to_string(),
            req: req.clone(),
            target_hz,
            cap: Some(cap),
            resampler,
            anchor: None,
            out_count: 0,
            in_count: 0,
            control: None,
            backoff: Backoff::default(),
            last_data: Instant::now(),
            xruns: 0,
        })
    }

    /// The negotiated capture (`None` while reconnecting).
    pub fn capture(&self) -> Option<&AlsaCapture> {
        self.cap.as_ref()
    }

    /// Overruns recovered from so far.
    pub fn xruns(&self) -> u64 {
        self.xruns
    }

    fn restart_clock(&mut self) -> Result<(), SourceError> {
        self.anchor = None;
        self.out_count = 0;
        self.in_count = 0;
        let rate = self.cap.as_ref().map_or(self.target_hz, |c| c.rate);
        self.resampler =
            StreamResampler::new(rate, self.target_hz).map_err(|reason| SourceError::Device {
                uri: self.uri.clone(),
                reason,
            })?;
        Ok(())
    }

    fn set_status(&self, s: DeviceStatus) {
        if let Some(c) = &self.control {
            c.set_audio_status(s);
        }
    }
}

impl AudioSource for AlsaSource {
    fn sample_rate(&self) -> u32 {
        self.target_hz
    }

    fn next_block(&mut self) -> Result<Option<AudioBlock>, SourceError> {
        loop {
            if self.control.as_ref().is_some_and(|c| c.stop_requested()) {
                return Ok(None);
            }
            let Some(cap) = self.cap.as_mut() else {
                std::thread::sleep(self.backoff.next_delay());
                match AlsaCapture::open(&self.name, &self.req) {
                    Ok(c) => {
                        tracing::warn!("input {}: microphone back", self.uri);
                        self.cap = Some(c);
                        self.last_data = Instant::now();
                        self.restart_clock()?;
                    }
                    Err(r) => tracing::info!("input {}: still unavailable ({r})", self.uri),
                }
                continue;
            };
            let (rate, channels) = (f64::from(cap.rate), cap.channels as usize);
            let period = cap.period();
            match cap.read(period) {
                Ok(block) if block.frames > 0 => {
                    self.last_data = Instant::now();
                    self.set_status(DeviceStatus::Streaming);
                    let inter = block.samples.to_f64();
                    let mono: Vec<f64> = if channels == 1 {
                        inter
                    } else {
                        inter
                            .chunks_exact(channels)
                            .map(|f| f.iter().sum::<f64>() / channels as f64)
                            .collect()
                    };
                    // sample clock, re-anchored when it drifts from the measured time
                    let expected = self
                        .anchor
                        .map(|a| a + self.in_count as f64 * 1000.0 / rate);
                    match expected {
                        Some(e) if (e - block.pts_ms).abs() <= REANCHOR_MS => {}
                        Some(e) => {
                            tracing::debug!(
                                "input {}: audio clock off by {:.1} ms; re-anchoring",
                                self.uri,
                                block.pts_ms - e
                            );
                            // shift the clock; the resampler keeps its state (no data lost)
                            self.anchor = Some(block.pts_ms - self.in_count as f64 * 1000.0 / rate);
                        }
                        None => self.anchor = Some(block.pts_ms),
                    }
                    self.in_count += block.frames as u64;
                    let out =
                        self.resampler
                            .process(&mono)
                            .map_err(|reason| SourceError::Device {
                                uri: self.uri.clone(),
                                reason,
                            })?;
                    if out.is_empty() {
                        continue;
                    }
                    let anchor = self.anchor.unwrap_or(block.pts_ms);
                    let pts_ms = (anchor
                        + self.out_count as f64 * 1000.0 / f64::from(self.target_hz))
                    .round() as i64;
                    self.out_count += out.len() as u64;
                    return Ok(Some(AudioBlock {
                        pts_ms,
                        samples: out,
                    }));
                }
                Ok(_) | Err(ReadError::Timeout) => {
                    if self.last_data.elapsed() > STALL {
                        tracing::warn!(
                            "input {}: no audio for {} s; reconnecting",
                            self.uri,
                            STALL.as_secs()
                        );
                        self.cap = None;
                        self.backoff.reset();
                        self.set_status(DeviceStatus::Reconnecting);
                    }
                }
                Err(ReadError::Xrun) => {
                    self.xruns += 1;
                    if let Some(c) = &self.control {
                        c.add_audio_xrun();
                    }
                    tracing::warn!(
                        "input {}: overrun (xrun #{}), recovered; audio has a gap",
                        self.uri,
                        self.xruns
                    );
                    self.restart_clock()?;
                }
                Err(ReadError::Lost(why)) => {
                    tracing::warn!(
                        "input {}: microphone lost ({why}); reconnecting with backoff",
                        self.uri
                    );
                    self.cap = None;
                    self.backoff.reset();
                    self.set_status(DeviceStatus::Reconnecting);
                }
            }
        }
    }

    fn set_control(&mut self, control: Arc<RunControl>) {
        self.control = Some(control);
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
pub fn list_capture_pcms() -> Result<Vec<PcmInfo>, String> {
    let mut out = Vec::new();
    let iface = CString::new("pcm").map_err(|e| e.to_string())?;
    let hints = alsa::device_name::HintIter::new(None, &iface).map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_resampler_matches_the_file_resampler() {
        let x: Vec<f64> = (0..48_000)
            .map(|n| (n as f64 * 0.013).sin() * 0.4 + (n as f64 * 0.0007).cos() * 0.2)
            .collect();
        let whole = crate::audio::resample(&x, 48_000, 16_000).unwrap();
        let mut s = StreamResampler::new(48_000, 16_000).unwrap();
        let mut streamed = Vec::new();
        for block in x.chunks(960) {
            streamed.extend(s.process(block).unwrap());
        }
        assert!(streamed.len() > 15_000, "{}", streamed.len());
        let max = streamed
            .iter()
            .zip(&whole)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(max < 1e-12, "max diff {max}");
        let mut same = StreamResampler::new(16_000, 16_000).unwrap();
        assert_eq!(same.process(&x[..10]).unwrap(), x[..10].to_vec());
    }

    #[test]
    fn raw_scaling_matches_the_wav_reader() {
        assert_eq!(
            RawSamples::S16(vec![-32768, 16384]).to_f64(),
            vec![-1.0, 0.5]
        );
        assert_eq!(RawSamples::S32(vec![i32::MIN]).to_f64(), vec![-1.0]);
        assert_eq!(RawSamples::Float(vec![0.25]).to_f64(), vec![0.25]);
        assert_eq!(SampleFormat::parse("S32_LE"), Some(SampleFormat::S32));
        assert_eq!(SampleFormat::parse("u8"), None);
    }
}
