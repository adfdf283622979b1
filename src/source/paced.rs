//! Recorded input released at wall-clock pace (`--paced`), as a camera and a microphone deliver
//! it: a frame with timestamp `p` is returned no earlier than `origin + p`, an audio block
//! covering `[p, p + n/sr)` no earlier than its end. The video and audio of one pass share the
//! origin (the wall time of the first read of either, minus that item's timestamp), so they stay
//! in step as live devices do. Used to measure live latency on a file (`bench --paced`) and to
//! replay a recording as if it were live; the pipeline then treats the input as live (drop-oldest
//! queues: the newest frame wins when the engine is behind).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::{AudioBlock, AudioSource, SourceError, VideoFrame, VideoSource};
use crate::control::RunControl;

/// The shared wall-clock origin of a pass: `Instant` at timestamp 0 ms.
#[derive(Debug, Clone, Default)]
pub struct PaceClock(Arc<OnceLock<Instant>>);

impl PaceClock {
    /// Sleeps until the item stamped `due_ms` (ms on the source timeline) is due.
    fn wait_until(&self, due_ms: i64, first_ms: i64) {
        let origin = *self.0.get_or_init(|| {
            let now = Instant::now();
            // origin = now − first_ms; a negative timestamp shifts the origin forward
            if first_ms >= 0 {
                now.checked_sub(Duration::from_millis(first_ms.unsigned_abs()))
                    .unwrap_or(now)
            } else {
                now + Duration::from_millis(first_ms.unsigned_abs())
            }
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
        let f = self.inner.next_frame()?;
        if let Some(f) = &f {
            self.clock.wait_until(f.pts_ms, f.pts_ms);
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

/// An audio source released at its timestamps' pace (each block once it has been "recorded").
pub struct PacedAudio {
    inner: Box<dyn AudioSource>,
    clock: PaceClock,
}

impl PacedAudio {
    /// Paces `inner` on `clock`.
    pub fn new(inner: Box<dyn AudioSource>, clock: PaceClock) -> Self {
        Self { inner, clock }
    }
}

impl AudioSource for PacedAudio {
    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }

    fn next_block(&mut self) -> Result<Option<AudioBlock>, SourceError> {
        let b = self.inner.next_block()?;
        if let Some(b) = &b {
            let sr = i64::from(self.inner.sample_rate().max(1));
            let len_ms = b.samples.len() as i64 * 1000 / sr;
            self.clock
                .wait_until(b.pts_ms.saturating_add(len_ms), b.pts_ms);
        }
        Ok(b)
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
        let mut last = 0;
        while let Some(f) = v.next_frame().expect("frame") {
            last = f.pts_ms;
            // never early (1 ms of rounding), and the source itself is instant
            assert!(
                t0.elapsed().as_millis() as i64 + 1 >= f.pts_ms,
                "frame {} early",
                f.pts_ms
            );
        }
        assert_eq!(last, 250);
        let mut end = 0;
        while let Some(b) = a.next_block().expect("block") {
            end = b.pts_ms + b.samples.len() as i64 / 16;
            assert!(
                t0.elapsed().as_millis() as i64 + 1 >= end,
                "block ending {end} early"
            );
        }
        assert_eq!(end, 300);
    }
}
