//! Streaming mode (issue 25): a one-frame model input for every analysed camera frame, instead
//! of a window of T slots every T seconds.
//!
//! **Which frames.** Without a mask rate, every frame offered (the pipeline drops the oldest
//! when the engine is behind, so the newest frame wins). With `--mask-rate R`, the timeline is
//! cut into slots of `1/R` s and each slot keeps one frame as [`super::FrameSlotter`] does for
//! windows (the frame nearest 15/16 of the slot); a slot without a frame of its own (the source
//! is slower than `R`) is not analysed again.
//!
//! **Audio.** Each frame's log-mel patch is the 0.975 s patch that starts at its *anchor*
//! (`Window::start_ms`), one clip slot `D` (1 s) before the end of the frame's own time slot:
//! for a frame stamped when it was taken (a camera, a video file), `pts − 15/16·D`, as AVSBench's
//! frame sits 15/16 into its second; for a frame stamped at its slot's start (an image sequence
//! at `r` fps: frame `k` stands for `[k/r, (k+1)/r)`), `pts + 1/r − D`. A 1-fps image sequence's
//! frame therefore gets its window patch, and at the 1-Hz slot times the two modes see the
//! same frames and patches.
//!
//! **Context.** The engine stage ([`crate::pipeline`]) gives frame `a` (anchor) the T − 1 earlier
//! analysed frames whose anchors are nearest to `a − k·D`, k = 1 … T − 1 ([`context_targets`]):
//! the frames one, two, … seconds back, as TPAVI sees them in a window. At the 1-Hz slot times
//! that is the window's frames, so the last frame of each window gets the same mask in both modes
//! (`tests/run_stream.rs`), unless a context frame is silent (`crate::pipeline`'s onset rule).

use std::time::{Duration, Instant};

use ndarray::{s, Array4};

use super::{rms, AudioBuffer, FrameSlotter, FrontTimes, SlotFrame, Window, WindowBuilderError};
use crate::engine::{ModelContract, ModelInput};
use crate::frontend::{ImageNorm, LogMel};
use crate::source::VideoFrame;

/// Where the kept frame sits in its slot (as [`super::SLOT_TARGET_FRACTION`]).
const TARGET: f64 = super::SLOT_TARGET_FRACTION;

/// Builds one-frame [`Window`]s for the streaming mode (see the module docs).
#[derive(Debug)]
pub struct StreamBuilder {
    /// Clip slot `D` in ms (1000 for C3N).
    clip_ms: f64,
    /// Mask slot `1/R` in ms, when a mask rate is set.
    mask_ms: Option<f64>,
    slotter: Option<FrameSlotter>,
    /// Slot of a frame stamped at its slot's start (image sequences), ms.
    frame_slot_ms: Option<f64>,
    /// Timestamp of the last frame chosen (a slot repeating it is not analysed again).
    last_pts: Option<i64>,
    sample_rate: u32,
    norm: ImageNorm,
    logmel: LogMel,
    next_index: u64,
}

impl StreamBuilder {
    /// From the model contract (clip rate, image norm, log-mel parameters), the mask rate in
    /// masks per second (`None`: every frame offered) and, for frames stamped at their slot's
    /// start, that slot in ms (module docs).
    ///
    /// Errors: [`WindowBuilderError`] for unusable front-end parameters, a clip rate or a mask
    /// rate that is not a positive number.
    pub fn new(
        contract: &ModelContract,
        mask_rate: Option<f64>,
        frame_slot_ms: Option<f64>,
    ) -> Result<Self, WindowBuilderError> {
        let logmel = LogMel::new(contract.frontend.clone())?;
        if !(contract.clip_rate_hz.is_finite() && contract.clip_rate_hz > 0.0) {
            return Err(WindowBuilderError::ClipRate(contract.clip_rate_hz));
        }
        if let Some(r) = mask_rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(WindowBuilderError::MaskRate(r));
            }
        }
        let mask_ms = mask_rate.map(|r| 1000.0 / r);
        Ok(Self {
            clip_ms: 1000.0 / contract.clip_rate_hz,
            mask_ms,
            slotter: mask_ms.map(FrameSlotter::new),
            frame_slot_ms: frame_slot_ms.filter(|f| f.is_finite() && *f > 0.0),
            last_pts: None,
            sample_rate: contract.frontend.sample_rate,
            norm: contract.image.clone(),
            logmel,
            next_index: 0,
        })
    }

    /// Audio sample rate the builder expects (the model's), Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The clip slot `D` in ms: context frames are `k·D` back.
    pub fn clip_ms(&self) -> f64 {
        self.clip_ms
    }

    /// Offers a frame; returns the frame chosen for a mask, if any: without a mask rate, the
    /// frame itself; with one, the last slot it completes (usually none or one; a timestamp jump
    /// completes several, of which only the last is kept: the stream is live, old slots are
    /// late), unless that slot repeats the frame chosen before.
    pub fn push(&mut self, frame: VideoFrame) -> Option<SlotFrame> {
        let chosen = match &mut self.slotter {
            None => Some(SlotFrame {
                slot: self.next_index, // no slot grid: numbered by mask
                slot_start_ms: frame.pts_ms,
                frame,
            }),
            // the last completed slot with a frame of its own (a slot that only repeats the
            // frame before it stands for no new frame)
            Some(sl) => {
                let mut last: Option<SlotFrame> = None;
                for slot in sl.push(frame) {
                    if last
                        .as_ref()
                        .is_none_or(|l| l.frame.pts_ms != slot.frame.pts_ms)
                    {
                        last = Some(slot);
                    }
                }
                last
            }
        }?;
        self.choose(chosen)
    }

    /// `s` unless it repeats the frame chosen before.
    fn choose(&mut self, s: SlotFrame) -> Option<SlotFrame> {
        if self.last_pts == Some(s.frame.pts_ms) {
            return None;
        }
        self.last_pts = Some(s.frame.pts_ms);
        Some(s)
    }

    /// A new pass over the input (`--input-loop`): the slot grid restarts at its first frame.
    pub fn restart(&mut self) {
        if let Some(d) = self.mask_ms {
            self.slotter = Some(FrameSlotter::new(d));
        }
    }

    /// End of the stream: the last slot's frame, with a mask rate.
    pub fn finish(&mut self) -> Option<SlotFrame> {
        let s = self.slotter.as_mut().and_then(FrameSlotter::finish)?;
        self.choose(s)
    }

    /// The anchor (patch start) of a chosen frame in ms on the source timeline (module docs).
    pub fn anchor_ms(&self, s: &SlotFrame) -> f64 {
        let pts = s.frame.pts_ms as f64;
        match self.frame_slot_ms {
            Some(f) => pts + f - self.clip_ms,
            None => pts - TARGET * self.clip_ms,
        }
    }

    /// Source time (ms) up to which audio must be buffered for the frame `s`.
    pub fn audio_needed_until(&self, s: &SlotFrame) -> f64 {
        self.anchor_ms(s) + self.clip_ms + 20.0
    }

    /// The one-frame window of `s`: `frames [1,3,S,S]`, `audio_logmel [1,1,96,64]` from
    /// `audio` at the frame's anchor, the audio RMS over `[anchor, anchor + D)`. Audio before
    /// the anchor is discarded (anchors only grow).
    pub fn build(&mut self, s: SlotFrame, audio: &mut AudioBuffer, decode: Duration) -> Window {
        let anchor = self.anchor_ms(&s);
        let t0 = Instant::now();
        let n = self.norm.size as usize;
        let mut frames = Array4::<f32>::zeros((1, 3, n, n));
        self.norm
            .write_chw(&s.frame.image, frames.slice_mut(s![0, .., .., ..]));
        let preprocess = t0.elapsed();

        let t1 = Instant::now();
        let sr = f64::from(self.sample_rate);
        let d_s = self.clip_ms / 1000.0;
        let wave = audio.extract(anchor, ((d_s + 1.0) * sr).ceil() as usize);
        let audio_logmel = self.logmel.clip_input(&wave, 1, d_s);
        let slot_samples = (d_s * sr).round() as usize;
        let audio_rms = vec![rms(&wave[..slot_samples.min(wave.len())])];
        let frontend = t1.elapsed();
        audio.discard_before(anchor - 100.0);

        let index = self.next_index;
        self.next_index += 1;
        Window {
            index,
            start_ms: anchor.round() as i64,
            slot_ms: self.clip_ms,
            slots: vec![s],
            valid: 1,
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
        }
    }
}

/// The anchors (ms) whose nearest analysed frames are the context of the frame at `anchor_ms`:
/// `anchor − k·clip_ms` for k = T − 1 down to 1 (oldest first).
pub fn context_targets(anchor_ms: f64, clip_ms: f64, t: usize) -> impl Iterator<Item = f64> {
    (1..t).rev().map(move |k| anchor_ms - k as f64 * clip_ms)
}

/// Index of the entry of `anchors` (ascending) nearest to `target` (the earlier on a tie);
/// `None` when empty.
pub fn nearest(anchors: &[f64], target: f64) -> Option<usize> {
    let i = anchors.partition_point(|&a| a < target);
    match (i.checked_sub(1), anchors.get(i)) {
        (Some(p), Some(&n)) if n - target < target - anchors[p] => Some(i),
        (Some(p), _) => Some(p),
        (None, Some(_)) => Some(i),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_anchor() {
        let a = [0.0, 1000.0, 2000.0, 2250.0];
        assert_eq!(nearest(&a, -500.0), Some(0));
        assert_eq!(nearest(&a, 499.0), Some(0));
        assert_eq!(nearest(&a, 500.0), Some(0)); // tie: the earlier
        assert_eq!(nearest(&a, 501.0), Some(1));
        assert_eq!(nearest(&a, 2100.0), Some(2));
        assert_eq!(nearest(&a, 2200.0), Some(3));
        assert_eq!(nearest(&a, 9e9), Some(3));
        assert_eq!(nearest(&[], 0.0), None);
    }

    #[test]
    fn context_is_one_two_three_four_seconds_back() {
        let got: Vec<f64> = context_targets(5000.0, 1000.0, 5).collect();
        assert_eq!(got, vec![1000.0, 2000.0, 3000.0, 4000.0]);
        assert_eq!(context_targets(5000.0, 1000.0, 1).count(), 0);
    }
}
