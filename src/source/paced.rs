//! Recorded input released at wall-clock pace (`--paced`), as a camera and a microphone deliver
//! it: a frame with timestamp `p` is returned no earlier than `origin + p`, an audio block
//! covering `[p, p + n/sr)` no earlier than its end. The video and audio of one pass share the
//! origin (the wall time of the first read of either, minus that item's timestamp), so they stay
//! in step as live devices do. Like a live source's, the timestamps returned are on
//! `CLOCK_MONOTONIC` ([`crate::source::live::monotonic_ms`]): `origin + p`, the time the item
//! was "captured", so `monotonic_ms() − pts_ms` downstream is its latency. Used to measure live latency on a file (`bench --paced`) and to
//! replay a recording as if it were live; the pipeline then treats the input as live (drop-oldest
//! queues: the newest frame wins when the engine is behind).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::live::monotonic_ms;
use super::{AudioBlock, AudioSource, SourceError, VideoFrame, VideoSource};
use crate::control::RunControl;

/// The shared wall-clock origin of a pass: the `Instant` and the `CLOCK_MONOTONIC` ms of
/// source timestamp 0.
#[derive(Debug, Clone, Default)]
pub struct PaceClock(Arc<OnceLock<(Instant, i64)>>);

impl PaceClock {
    /// Sleeps until the item stamped `due_ms` (ms on the source timeline) is due; returns the
    /// `CLOCK_MONOTONIC` ms of source time `stamp_ms`. `first_ms` sets the origin on first use.
    fn wait_until(&self, due_ms: i64, first_ms: i64, stamp_ms: i64) -> i64 {
        let (origin, mono) = *self.0.get_or_init(|| {
            let now = Instant::now();
            let mono = monotonic_ms();
            // origin = now − first_ms; a negative timestamp shifts the origin forward
            let origin = if first_ms >= 0 {
                now.checked_sub(Duration::from_millis(first_ms.unsigned_abs()))
                    .unwrap_or(now)
            } else {
                now + Duration::from_millis(first_ms.unsigned_abs())
            };
            (origin, mono - first_ms)
        });
        let due = if due_ms >= 0 {
            origin + Duration::from_millis(due_ms.unsigned_abs())
        } else {
            origin
        };
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        mono.saturating_add(stamp_ms)
    }
}

/// A video source released at its timestamps' pace.
pub struct PacedVideo {
    inner: Box<dyn VideoSource>,
    clock: PaceClock,
}

impl PacedVideo {
    /// Paces `inner` on `clock` (share the clock with the audio of the same pass).
    pub fn new(inner: Box<dyn VideoSource>, clock: PaceClock) -> Self {
        Self { inner, clock }
    }
}

impl VideoSource for PacedVideo {
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        let mut f = self.inner.next_frame()?;
        if let Some(f) = &mut f {
            f.pts_ms = self.clock.wait_until(f.pts_ms, f.pts_ms, f.pts_ms);
        }
        Ok(f)
    }

    fn name(&self) -> String {
        self.inner.name()
    }

    fn set_control(&mut self, control: Arc<RunControl>) {
        self.inner.set_control(control);
    }
}

/// Length of the periods a paced audio source hands out, ms: a microphone's (ALSA periods are
/// typically 20 ms), whatever block size the file reader uses.
pub const PERIOD_MS: i64 = 20;

/// An audio source released at its timestamps' pace, in periods of [`PERIOD_MS`], each once it
/// has been "recorded".
pub struct PacedAudio {
    inner: Box<dyn AudioSource>,
    clock: PaceClock,
    /// The rest of the inner source's last block.
    pending: Option<AudioBlock>,
}

impl PacedAudio {
    /// Paces `inner` on `clock`.
    pub fn new(inner: Box<dyn AudioSource>, clock: PaceClock) -> Self {
        Self {
            inner,
            clock,
            pending: None,
        }
    }
}

impl AudioSource for PacedAudio {
    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }

    fn next_block(&mut self) -> Result<Option<AudioBlock>, SourceError> {
        let mut block = match self.pending.take() {
            Some(b) => b,
            None => match self.inner.next_block()? {
                Some(b) => b,
                None => return Ok(None),
            },
        };
        let sr = i64::from(self.inner.sample_rate().max(1));
        let period = (sr * PERIOD_MS / 1000).max(1) as usize;
        if block.samples.len() > period {
            let rest = block.samples.split_off(period);
            self.pending = Some(AudioBlock {
                pts_ms: block.pts_ms + PERIOD_MS,
                samples: rest,
            });
        }
        let len_ms = block.samples.len() as i64 * 1000 / sr;
        block.pts_ms = self.clock.wait_until(
            block.pts_ms.saturating_add(len_ms),
            block.pts_ms,
            block.pts_ms,
        );
        Ok(Some(block))
    }

    fn set_control(&mut self, control: Arc<RunControl>) {
        self.inner.set_control(control);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::synthetic::{SyntheticAudio, SyntheticVideo};

    #[test]
    fn frames_and_audio_arrive_at_their_time() {
        let clock = PaceClock::default();
        // 20 fps for 0.3 s, and its audio
        let mut v = PacedVideo::new(Box::new(SyntheticVideo::new(8, 8, 20.0, 6)), clock.clone());
        let mut a = PacedAudio::new(Box::new(SyntheticAudio::new(16_000, 0.3)), clock);
        let t0 = Instant::now();
        let mut stamps = vec![];
        while let Some(f) = v.next_frame().expect("frame") {
            stamps.push(f.pts_ms);
            // released at its time (never early; 1 ms of rounding), stamped on CLOCK_MONOTONIC
            // at that time
            let rel = f.pts_ms - stamps[0];
            assert!(
                t0.elapsed().as_millis() as i64 + 1 >= rel,
                "frame at {rel} early"
            );
            assert!(
                (monotonic_ms() - f.pts_ms).abs() <= 20,
                "stamp {rel} is not now"
            );
        }
        let steps: Vec<i64> = stamps.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(steps, vec![50; 5], "the source's 50 ms spacing is kept");
        let mut end = 0;
        while let Some(b) = a.next_block().expect("block") {
            assert_eq!(b.samples.len(), 320, "20-ms periods");
            end = b.pts_ms + b.samples.len() as i64 / 16;
            assert!(monotonic_ms() + 1 >= end, "block ending {end} early");
        }
        assert_eq!(end - stamps[0], 300, "audio and video share the origin");
    }
}
