//! One timeline for a live and a recorded stream ([`Rebase`]).

/// Puts one stream on the other's timeline when exactly one side is live: live sources stamp in
/// `CLOCK_MONOTONIC` ms (hours or days since boot), files start at 0 ms, so a file video with a
/// live microphone (or a camera with a WAV file) would never meet in
/// [`crate::sync::AudioBuffer`].
/// * live camera + audio file: the camera's timestamps are re-zeroed at its first frame of each
///   pass (the intervals between frames are kept);
/// * file video + live microphone: a file has no wall-clock meaning, so the microphone's audio is
///   placed by its sample count from its first block (0 ms): frame k meets the audio captured
///   k frame periods after the first block, and nothing is dropped or padded as the status
///   timestamps would for a device that delivers faster or slower than real time.
#[derive(Debug, Default)]
pub(super) struct Rebase {
    on: bool,
    first: Option<i64>,
    /// Audio: position by sample count at this rate (Hz) instead of by timestamp.
    sample_rate: Option<u32>,
    samples: u64,
}

impl Rebase {
    /// The video clock; `on`: re-zero at the first frame.
    pub(super) fn video(on: bool) -> Self {
        Self {
            on,
            ..Self::default()
        }
    }

    /// The audio clock at `sample_rate` Hz; `on`: place blocks by sample count.
    pub(super) fn audio(on: bool, sample_rate: u32) -> Self {
        Self {
            on,
            sample_rate: Some(sample_rate),
            ..Self::default()
        }
    }

    /// Start (ms) on the shared timeline of an item stamped `pts_ms` holding `n` samples.
    pub(super) fn map(&mut self, pts_ms: i64, n: usize) -> i64 {
        if !self.on {
            return pts_ms;
        }
        match self.sample_rate {
            Some(sr) => {
                let t = (self.samples as f64 * 1000.0 / f64::from(sr.max(1))).round() as i64;
                self.samples += n as u64;
                t
            }
            None => pts_ms - *self.first.get_or_insert(pts_ms),
        }
    }
}
