//! A/V windowing: turns timestamped frames and audio into model windows of `T` frame slots.
//!
//! **Slots.** The source timeline is cut into slots of `1 / clip_rate_hz` seconds (1 s for
//! C3N), starting at the first frame's timestamp `t0`: slot `k` covers
//! `[t0 + k·D, t0 + (k+1)·D)`. Like AVSBench's frame extraction (docs/avsbench.md §3:
//! frame `int(l·fps + 15/16·fps)` of second `l`), each slot keeps the frame whose timestamp is
//! nearest to `slot start + 15/16·D`, i.e. near the end of the slot; a 1 fps image sequence
//! therefore keeps every frame, a 25 fps video the 24th frame of each second. A slot without a
//! frame (source slower than the clip rate) repeats the previous slot's frame.
//!
//! **Windows.** `T` consecutive slots form one window (windows do not overlap). Its audio is
//! the mono waveform from the window's start; [`crate::frontend::LogMel::clip_input`] cuts one
//! 0.975 s patch per slot starting at the slot start. At the end of the stream an incomplete
//! window is padded by repeating its last frame; [`Window::valid`] says how many slots are real.
//!
//! [`FrameSlotter`], [`AudioBuffer`] and [`WindowBuilder`] are plain state machines (tested
//! without threads); `crate::pipeline` drives them on a thread between bounded channels.

mod stream;

pub use self::stream::{context_targets, nearest, StreamBuilder};

use std::time::{Duration, Instant};

use ndarray::{s, Array4};

use crate::engine::{ModelContract, ModelInput};
use crate::frontend::{FrontendParamsError, ImageNorm, LogMel};
use crate::source::VideoFrame;

/// Where in its slot the kept frame should be, as a fraction of the slot (AVSBench: 15/16).
pub const SLOT_TARGET_FRACTION: f64 = 15.0 / 16.0;

/// A frame chosen for one slot.
#[derive(Debug, Clone)]
pub struct SlotFrame {
    /// Slot index from the start of the stream.
    pub slot: u64,
    /// Slot start in ms on the source timeline.
    pub slot_start_ms: i64,
    /// The chosen frame (its own `pts_ms` is kept for the events).
    pub frame: VideoFrame,
}

/// Picks one frame per slot from frames arriving in timestamp order.
#[derive(Debug)]
pub struct FrameSlotter {
    slot_ms: f64,
    t0: Option<i64>,
    current: u64,
    best: Option<VideoFrame>,
    last: Option<VideoFrame>,
}

impl FrameSlotter {
    /// Slots of `slot_ms` ms (> 0).
    pub fn new(slot_ms: f64) -> Self {
        Self {
            slot_ms,
            t0: None,
            current: 0,
            best: None,
            last: None,
        }
    }

    fn slot_start(&self, k: u64) -> i64 {
        self.t0.unwrap_or(0) + (k as f64 * self.slot_ms).round() as i64
    }

    fn target(&self, k: u64) -> f64 {
        self.slot_start(k) as f64 + SLOT_TARGET_FRACTION * self.slot_ms
    }

    /// Offers the next frame; returns the slots completed by it (usually 0 or 1), lazily: a
    /// frame far ahead of the current slot (a slow image sequence, a timestamp jump) completes
    /// many slots that repeat the last frame, and they are produced one at a time as the
    /// iterator is advanced, so memory stays bounded and the caller can stop in between. The
    /// frame itself is placed once the iterator is exhausted (a frame whose iterator is
    /// dropped early is not placed). Frames with a timestamp before the current slot are
    /// ignored.
    pub fn push(&mut self, frame: VideoFrame) -> SlotsDone<'_> {
        let t0 = *self.t0.get_or_insert(frame.pts_ms);
        let rel = (frame.pts_ms - t0) as f64;
        let k = if rel < 0.0 {
            None
        } else {
            Some((rel / self.slot_ms).floor() as u64)
        };
        SlotsDone {
            slotter: self,
            frame: k.map(|k| (k, frame)),
        }
    }

    /// Places `frame` into slot `k` (the current one) if it is nearer to the slot's target.
    fn place(&mut self, k: u64, frame: VideoFrame) {
        if k != self.current {
            return;
        }
        let target = self.target(k);
        let better = self.best.as_ref().is_none_or(|b| {
            (frame.pts_ms as f64 - target).abs() < (b.pts_ms as f64 - target).abs()
        });
        if better {
            self.best = Some(frame);
        }
    }

    fn close_current(&mut self) -> Option<SlotFrame> {
        let frame = self.best.take().or_else(|| self.last.clone())?;
        self.last = Some(frame.clone());
        Some(SlotFrame {
            slot: self.current,
            slot_start_ms: self.slot_start(self.current),
            frame,
        })
    }

    /// End of stream: the last, partly filled slot (if it has a frame).
    pub fn finish(&mut self) -> Option<SlotFrame> {
        let s = self.best.take().map(|frame| SlotFrame {
            slot: self.current,
            slot_start_ms: self.slot_start(self.current),
            frame,
        });
        self.current += 1;
        s
    }
}

/// The slots completed by one [`FrameSlotter::push`], produced one at a time.
#[derive(Debug)]
pub struct SlotsDone<'a> {
    slotter: &'a mut FrameSlotter,
    /// The frame's slot index and the frame, until it is placed.
    frame: Option<(u64, VideoFrame)>,
}

impl Iterator for SlotsDone<'_> {
    type Item = SlotFrame;

    fn next(&mut self) -> Option<SlotFrame> {
        loop {
            let k = self.frame.as_ref()?.0;
            if k <= self.slotter.current {
                if let Some((k, frame)) = self.frame.take() {
                    self.slotter.place(k, frame);
                }
                return None;
            }
            let done = self.slotter.close_current();
            self.slotter.current += 1;
            if done.is_some() {
                return done;
            }
        }
    }
}

/// Timestamp discontinuity (ms) above which [`AudioBuffer::push`] treats a block as not
/// contiguous with the buffered audio (file sources round block times to 1 ms; live sources
/// re-anchor their sample clock only on jumps above 40 ms).
pub const AUDIO_GAP_MS: f64 = 20.0;

/// Contiguous mono audio keyed by source time; old samples are dropped as windows complete.
#[derive(Debug)]
pub struct AudioBuffer {
    sample_rate: u32,
    /// Timestamp of `samples[0]`.
    start_ms: Option<f64>,
    samples: Vec<f64>,
    /// The source has ended.
    pub ended: bool,
}

impl AudioBuffer {
    /// An empty buffer for audio at `sample_rate` Hz.
    pub fn new(sample_rate: u32) -> Self {
        Self {
            sample_rate,
            start_ms: None,
            samples: Vec::new(),
            ended: false,
        }
    }

    /// Appends a block. The first block sets the buffer's start time; later blocks are taken as
    /// contiguous unless their timestamp is more than [`AUDIO_GAP_MS`] away from the buffer's
    /// end (live audio after an overrun or a reconnect): a gap is filled with silence, an
    /// overlap drops the block's samples that precede the end, and a block that ends before the
    /// buffer's end is dropped.
    pub fn push(&mut self, pts_ms: i64, samples: &[f64]) {
        let Some(end) = self.end_ms() else {
            self.start_ms = Some(pts_ms as f64);
            self.samples.extend_from_slice(samples);
            return;
        };
        let sr = f64::from(self.sample_rate);
        let delta = pts_ms as f64 - end;
        if delta > AUDIO_GAP_MS {
            let pad = (delta * sr / 1000.0).round() as usize;
            self.samples.resize(self.samples.len() + pad, 0.0);
            self.samples.extend_from_slice(samples);
        } else if delta < -AUDIO_GAP_MS {
            let skip = (-delta * sr / 1000.0).round() as usize;
            if let Some(rest) = samples.get(skip..) {
                self.samples.extend_from_slice(rest);
            }
        } else {
            self.samples.extend_from_slice(samples);
        }
    }

    /// Timestamp (ms) just after the last buffered sample; `None` before any audio.
    pub fn end_ms(&self) -> Option<f64> {
        self.start_ms
            .map(|s| s + self.samples.len() as f64 * 1000.0 / f64::from(self.sample_rate))
    }

    /// True when audio up to `t_ms` is buffered or no more will come.
    pub fn covers(&self, t_ms: f64) -> bool {
        self.ended || self.end_ms().is_some_and(|e| e >= t_ms)
    }

    /// `n` samples starting at `t_ms`; zeros where there is no audio.
    pub fn extract(&self, t_ms: f64, n: usize) -> Vec<f64> {
        let mut out = vec![0.0; n];
        let Some(start) = self.start_ms else {
            return out;
        };
        let first = ((t_ms - start) * f64::from(self.sample_rate) / 1000.0).round() as i64;
        for (i, o) in out.iter_mut().enumerate() {
            let j = first + i as i64;
            if j >= 0 {
                if let Some(&x) = self.samples.get(j as usize) {
                    *o = x;
                }
            }
        }
        out
    }

    /// Drops samples before `t_ms`.
    pub fn discard_before(&mut self, t_ms: f64) {
        let Some(start) = self.start_ms else { return };
        let n = ((t_ms - start) * f64::from(self.sample_rate) / 1000.0).floor();
        if n > 0.0 {
            let n = (n as usize).min(self.samples.len());
            self.samples.drain(..n);
            self.start_ms = Some(start + n as f64 * 1000.0 / f64::from(self.sample_rate));
        }
    }
}

/// Per-window processing time of the front-end stages.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrontTimes {
    /// Time spent decoding the window's frames and audio (source threads).
    pub decode: Duration,
    /// Log-mel front end.
    pub frontend: Duration,
    /// Frame resize + normalisation.
    pub preprocess: Duration,
}

/// One model call's worth of input with its source-timeline bookkeeping.
#[derive(Debug, Clone)]
pub struct Window {
    /// Window number from the start of the run (0-based).
    pub index: u64,
    /// Start of the first slot in ms.
    pub start_ms: i64,
    /// Slot length in ms.
    pub slot_ms: f64,
    /// `T` slots (padded slots repeat the last real frame).
    pub slots: Vec<SlotFrame>,
    /// Number of real (non-padded) slots, `1..=T`.
    pub valid: usize,
    /// Audio RMS per slot (full scale 1.0) over the slot's span.
    pub audio_rms: Vec<f32>,
    /// Model input (`frames [T,3,224,224]`, `audio_logmel [T,1,96,64]`).
    pub input: ModelInput,
    /// Front-end timings.
    pub times: FrontTimes,
}

/// Why a [`WindowBuilder`] cannot be made from a model contract.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WindowBuilderError {
    /// The log-mel parameters are inconsistent.
    #[error(transparent)]
    Frontend(#[from] FrontendParamsError),
    /// The clip rate is not a positive number.
    #[error("clip rate {0} Hz")]
    ClipRate(f64),
    /// The streaming mode's mask rate is not a positive number.
    #[error("mask rate {0} masks/s (must be a positive number)")]
    MaskRate(f64),
}

/// Builds [`Window`]s: groups slots by `T`, computes the model input.
#[derive(Debug)]
pub struct WindowBuilder {
    t: usize,
    slot_ms: f64,
    sample_rate: u32,
    norm: ImageNorm,
    logmel: LogMel,
    pending: Vec<SlotFrame>,
    next_index: u64,
}

impl WindowBuilder {
    /// From the model contract (T, clip rate, image norm, log-mel parameters).
    ///
    /// Errors: [`WindowBuilderError`] for unusable front-end parameters or clip rate.
    pub fn new(contract: &ModelContract) -> Result<Self, WindowBuilderError> {
        let logmel = LogMel::new(contract.frontend.clone())?;
        if !(contract.clip_rate_hz.is_finite() && contract.clip_rate_hz > 0.0) {
            return Err(WindowBuilderError::ClipRate(contract.clip_rate_hz));
        }
        Ok(Self {
            t: contract.clip_frames,
            slot_ms: 1000.0 / contract.clip_rate_hz,
            sample_rate: contract.frontend.sample_rate,
            norm: contract.image.clone(),
            logmel,
            pending: Vec::new(),
            next_index: 0,
        })
    }

    /// Slot length in ms.
    pub fn slot_ms(&self) -> f64 {
        self.slot_ms
    }

    /// Audio sample rate the builder expects (the model's).
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Adds a slot; returns true when `T` slots are pending (call [`WindowBuilder::audio_needed_until`]
    /// and [`WindowBuilder::build`]).
    pub fn push(&mut self, slot: SlotFrame) -> bool {
        self.pending.push(slot);
        self.pending.len() >= self.t
    }

    /// True if some slots are pending (an incomplete window at end of stream).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Source time (ms) up to which audio must be buffered for the pending window.
    pub fn audio_needed_until(&self) -> Option<f64> {
        self.pending
            .first()
            .map(|s| s.slot_start_ms as f64 + self.t as f64 * self.slot_ms + 20.0)
    }

    /// Builds the window from the pending slots (padding to `T`) and the buffered audio.
    /// Returns `None` if nothing is pending.
    pub fn build(&mut self, audio: &mut AudioBuffer, decode: Duration) -> Option<Window> {
        let first = self.pending.first()?.clone();
        let mut slots: Vec<SlotFrame> = self
            .pending
            .drain(..self.pending.len().min(self.t))
            .collect();
        let valid = slots.len();
        while slots.len() < self.t {
            let mut pad = slots[slots.len() - 1].clone();
            pad.slot += 1;
            pad.slot_start_ms =
                first.slot_start_ms + (slots.len() as f64 * self.slot_ms).round() as i64;
            slots.push(pad);
        }
        let start_ms = first.slot_start_ms;

        let t0 = Instant::now();
        let n = self.norm.size as usize;
        let mut frames = Array4::<f32>::zeros((self.t, 3, n, n));
        for (i, s) in slots.iter().enumerate() {
            self.norm
                .write_chw(&s.frame.image, frames.slice_mut(s![i, .., .., ..]));
        }
        let preprocess = t0.elapsed();

        let t1 = Instant::now();
        let sr = f64::from(self.sample_rate);
        let span_s = self.t as f64 * self.slot_ms / 1000.0 + 1.0;
        let wave = audio.extract(start_ms as f64, (span_s * sr).ceil() as usize);
        let audio_logmel = self.logmel.clip_input(&wave, self.t, self.slot_ms / 1000.0);
        let slot_samples = (self.slot_ms / 1000.0 * sr).round() as usize;
        let audio_rms = (0..self.t)
            .map(|i| {
                rms(wave
                    .get(i * slot_samples..((i + 1) * slot_samples).min(wave.len()))
                    .unwrap_or(&[]))
            })
            .collect();
        let frontend = t1.elapsed();
        audio.discard_before(start_ms as f64 + self.t as f64 * self.slot_ms - 100.0);

        let index = self.next_index;
        self.next_index += 1;
        Some(Window {
            index,
            start_ms,
            slot_ms: self.slot_ms,
            slots,
            valid,
            audio_rms,
            input: ModelInput {
                frames,
                audio_logmel,
            },
            times: FrontTimes {
                decode,
                frontend,
                preprocess,
            },
        })
    }
}

/// Root mean square of `x` (0 for an empty slice).
pub fn rms(x: &[f64]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn frame(pts_ms: i64) -> VideoFrame {
        VideoFrame {
            pts_ms,
            image: Arc::new(image::RgbImage::new(4, 4)),
        }
    }

    fn run(slotter: &mut FrameSlotter, pts: impl IntoIterator<Item = i64>) -> Vec<(u64, i64, i64)> {
        let mut out = vec![];
        for p in pts {
            out.extend(slotter.push(frame(p)));
        }
        out.extend(slotter.finish());
        out.into_iter()
            .map(|s| (s.slot, s.slot_start_ms, s.frame.pts_ms))
            .collect()
    }

    #[test]
    fn one_fps_keeps_every_frame() {
        let got = run(&mut FrameSlotter::new(1000.0), (0..5).map(|k| k * 1000));
        assert_eq!(
            got,
            vec![
                (0, 0, 0),
                (1, 1000, 1000),
                (2, 2000, 2000),
                (3, 3000, 3000),
                (4, 4000, 4000)
            ]
        );
    }

    #[test]
    fn twenty_five_fps_keeps_the_frame_near_the_slot_end() {
        // frames every 40 ms; target 937.5 ms into each second -> the frame at 920 or 960:
        // |920-937.5| = 17.5 > |960-937.5| = 22.5? no: 17.5 < 22.5, so 920.
        let got = run(&mut FrameSlotter::new(1000.0), (0..75).map(|k| k * 40));
        assert_eq!(got, vec![(0, 0, 920), (1, 1000, 1920), (2, 2000, 2920)]);
        // AVSBench picks frame int(l*25 + 15/16*25) = 23 + 25 l, at 920 + 1000 l ms.
    }

    #[test]
    fn gaps_repeat_the_previous_frame_and_offsets_are_kept() {
        let got = run(&mut FrameSlotter::new(1000.0), [500, 1500, 3600]);
        assert_eq!(
            got,
            vec![
                (0, 500, 500),
                (1, 1500, 1500),
                (2, 2500, 1500),
                (3, 3500, 3600)
            ]
        );
    }

    #[test]
    fn audio_buffer_extracts_by_time() {
        let mut a = AudioBuffer::new(1000);
        a.push(0, &(0..2000).map(f64::from).collect::<Vec<_>>());
        assert!(a.covers(2000.0) && !a.covers(2001.0));
        assert_eq!(a.extract(1000.0, 3), vec![1000.0, 1001.0, 1002.0]);
        assert_eq!(a.extract(1999.0, 3), vec![1999.0, 0.0, 0.0]);
        a.discard_before(1500.0);
        assert_eq!(a.extract(1500.0, 1), vec![1500.0]);
        assert_eq!(a.extract(1000.0, 1), vec![0.0]);
        a.ended = true;
        assert!(a.covers(1e9));
    }

    #[test]
    fn audio_gaps_and_overlaps_on_a_monotonic_timeline() {
        // live timeline: CLOCK_MONOTONIC ms, far from 0
        let t0 = 86_400_000i64;
        let mut a = AudioBuffer::new(1000);
        a.push(t0, &[1.0; 100]);
        a.push(t0 + 101, &[2.0; 100]); // 1 ms jitter: contiguous
        assert_eq!(a.end_ms(), Some(t0 as f64 + 200.0));
        a.push(t0 + 300, &[3.0; 100]); // xrun: 100 ms gap -> silence
        assert_eq!(a.end_ms(), Some(t0 as f64 + 400.0));
        assert_eq!(a.extract(t0 as f64 + 250.0, 1), vec![0.0]);
        assert_eq!(a.extract(t0 as f64 + 300.0, 1), vec![3.0]);
        a.push(t0 + 350, &[4.0; 100]); // re-anchored 50 ms back: overlap dropped
        assert_eq!(a.end_ms(), Some(t0 as f64 + 450.0));
        assert_eq!(a.extract(t0 as f64 + 399.0, 2), vec![3.0, 4.0]);
        a.push(t0, &[5.0; 10]); // entirely in the past: ignored
        assert_eq!(a.end_ms(), Some(t0 as f64 + 450.0));
    }

    #[test]
    fn live_windows_assemble_on_monotonic_time() {
        // 25 fps video and 16 kHz audio both on CLOCK_MONOTONIC (video starts 130 ms after the
        // audio): slots are cut from the first frame, audio is taken at the same instants.
        let t0 = 5_000_000i64;
        let mut slotter = FrameSlotter::new(1000.0);
        let mut slots = vec![];
        for k in 0..60 {
            slots.extend(slotter.push(frame(t0 + 130 + k * 40)));
        }
        assert_eq!(slots.len(), 2);
        assert_eq!(slots[0].slot_start_ms, t0 + 130);
        assert_eq!(slots[1].frame.pts_ms, t0 + 130 + 1000 + 920);
        let mut a = AudioBuffer::new(16_000);
        let ramp: Vec<f64> = (0..48_000).map(f64::from).collect();
        for (i, blk) in ramp.chunks(320).enumerate() {
            a.push(t0 + i as i64 * 20, blk);
        }
        assert!(a.covers((t0 + 2130) as f64) && !a.covers((t0 + 3001) as f64));
        // sample at slot start = 130 ms * 16 = 2080
        assert_eq!(a.extract(slots[0].slot_start_ms as f64, 1), vec![2080.0]);
    }
}
