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
//!
//! Files: `capture.rs` (the PCM: negotiation, raw reads, listing), `resample.rs` (the streaming
//! resampler), this file (the [`AudioSource`]: conversion, clock, reconnects).

mod capture;
mod resample;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use capture::{
    list_capture_pcms, AlsaCapture, CaptureError, PcmInfo, RawBlock, RawSamples, ReadError,
    SampleFormat,
};
pub use resample::{StreamResampleError, StreamResampler};

use super::live::{Backoff, LiveOptions};
use super::{AudioBlock, AudioSource, SourceError};
use crate::control::{DeviceStatus, RunControl};

/// A block's measured start may drift this far (ms) from the sample clock before re-anchoring.
pub const REANCHOR_MS: f64 = 40.0;
/// No data for this long counts as a device failure.
pub const STALL: Duration = Duration::from_secs(5);

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
            StreamResampler::new(cap.rate, target_hz).map_err(|e| SourceError::Device {
                uri: uri.to_string(),
                reason: e.to_string(),
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
            StreamResampler::new(rate, self.target_hz).map_err(|e| SourceError::Device {
                uri: self.uri.clone(),
                reason: e.to_string(),
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
                    let out = self
                        .resampler
                        .process(&mono)
                        .map_err(|e| SourceError::Device {
                            uri: self.uri.clone(),
                            reason: e.to_string(),
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
