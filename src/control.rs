//! Run-time control and live status shared between the pipeline, the live sources and the
//! outputs (MQTT `detect/set`, the `state` topic, the display's status line).
//!
//! One [`RunControl`] is made per run and shared (`Arc`) with whoever needs it: sources report
//! their device status and dropped frames into it, the MQTT command topic pauses and resumes
//! detection through it, and the pipeline reads it once per model window and hands every sink a
//! [`RunState`] snapshot ([`crate::sink::Sink::state`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use serde::Serialize;

/// State of one input device (or file) as reported by its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Not opened yet.
    #[default]
    Starting,
    /// Delivering data.
    Streaming,
    /// Lost (unplugged, read error); the source is retrying with backoff.
    Reconnecting,
    /// End of a file input (or the source gave up).
    Ended,
}

impl DeviceStatus {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Streaming,
            2 => Self::Reconnecting,
            3 => Self::Ended,
            _ => Self::Starting,
        }
    }
    fn to_u8(self) -> u8 {
        match self {
            Self::Starting => 0,
            Self::Streaming => 1,
            Self::Reconnecting => 2,
            Self::Ended => 3,
        }
    }
}

/// Shared, lock-free control block of one run.
#[derive(Debug)]
pub struct RunControl {
    detect: AtomicBool,
    stop: AtomicBool,
    video: AtomicU8,
    audio: AtomicU8,
    dropped_frames: AtomicU64,
    audio_xruns: AtomicU64,
    frames_bad: AtomicU64,
    audio_gaps: AtomicU64,
    frames_skipped: AtomicU64,
    frames_off_screen: AtomicU64,
}

impl Default for RunControl {
    fn default() -> Self {
        Self {
            detect: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            video: AtomicU8::new(0),
            audio: AtomicU8::new(0),
            dropped_frames: AtomicU64::new(0),
            audio_xruns: AtomicU64::new(0),
            frames_bad: AtomicU64::new(0),
            audio_gaps: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            frames_off_screen: AtomicU64::new(0),
        }
    }
}

impl RunControl {
    /// Detection on (the default) or paused. While paused, windows are read and dropped without
    /// inference, and sinks still get [`RunState`] updates.
    pub fn set_detect(&self, on: bool) {
        self.detect.store(on, Ordering::Relaxed);
    }
    /// Whether detection is on.
    pub fn detect(&self) -> bool {
        self.detect.load(Ordering::Relaxed)
    }
    /// Asks the run to stop at the next window boundary (e.g. on SIGTERM).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
    /// Whether a stop was requested.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    /// Sets the video input's status.
    pub fn set_video_status(&self, s: DeviceStatus) {
        self.video.store(s.to_u8(), Ordering::Relaxed);
    }
    /// Sets the audio input's status.
    pub fn set_audio_status(&self, s: DeviceStatus) {
        self.audio.store(s.to_u8(), Ordering::Relaxed);
    }
    /// The video input's status.
    pub fn video_status(&self) -> DeviceStatus {
        DeviceStatus::from_u8(self.video.load(Ordering::Relaxed))
    }
    /// The audio input's status.
    pub fn audio_status(&self) -> DeviceStatus {
        DeviceStatus::from_u8(self.audio.load(Ordering::Relaxed))
    }
    /// Counts `n` video frames dropped because inference was behind (live inputs).
    pub fn add_dropped_frames(&self, n: u64) {
        self.dropped_frames.fetch_add(n, Ordering::Relaxed);
    }
    /// Frames dropped so far.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames.load(Ordering::Relaxed)
    }
    /// Counts one audio overrun (ALSA xrun) recovered from.
    pub fn add_audio_xrun(&self) {
        self.audio_xruns.fetch_add(1, Ordering::Relaxed);
    }
    /// Audio overruns so far.
    pub fn audio_xruns(&self) -> u64 {
        self.audio_xruns.load(Ordering::Relaxed)
    }
    /// Counts one video frame skipped because it could not be used (`--on-bad-frame skip`).
    pub fn add_bad_frame(&self) {
        self.frames_bad.fetch_add(1, Ordering::Relaxed);
    }
    /// Bad frames skipped so far.
    pub fn frames_bad(&self) -> u64 {
        self.frames_bad.load(Ordering::Relaxed)
    }
    /// Counts one gap in the audio: a burst of read errors skipped, its span filled with silence
    /// (`--on-bad-frame skip`).
    pub fn add_audio_gap(&self) {
        self.audio_gaps.fetch_add(1, Ordering::Relaxed);
    }
    /// Audio gaps so far.
    pub fn audio_gaps(&self) -> u64 {
        self.audio_gaps.load(Ordering::Relaxed)
    }
    /// Counts `n` frames the streaming engine skipped because it was behind: when it is ready
    /// for the next frame, the newest one waiting wins and the older ones are skipped (issue 25).
    pub fn add_skipped_frames(&self, n: u64) {
        self.frames_skipped.fetch_add(n, Ordering::Relaxed);
    }
    /// Frames skipped so far.
    pub fn frames_skipped(&self) -> u64 {
        self.frames_skipped.load(Ordering::Relaxed)
    }
    /// Counts one analysed frame whose `in_view` score was below `[events] min_in_view`: its
    /// regions were dropped (the sound's source is off screen, issue 26).
    pub fn add_off_screen_frame(&self) {
        self.frames_off_screen.fetch_add(1, Ordering::Relaxed);
    }
    /// Off-screen frames so far.
    pub fn frames_off_screen(&self) -> u64 {
        self.frames_off_screen.load(Ordering::Relaxed)
    }
}

/// Snapshot of a run's status, handed to every sink after each model window (and once at the
/// start). Serialised as the `state` payload (MQTT) and `/api/state` (preview server).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunState {
    /// Inference backend in use (`tract`, `ort-cpu`, `tensorrt`, …).
    pub engine: String,
    /// Analysed frames per second (exponential moving average over windows, wall clock).
    pub fps: f64,
    /// Masks per second achieved (smoothed, wall clock): one mask per analysed frame; in the
    /// streaming mode it can fall below the camera's frame rate ([`RunState::with_mask_rate`]).
    pub mask_rate: f64,
    /// Model call time of the last window, ms (a window holds `clip_frames` frames).
    pub inference_ms: f64,
    /// Model windows run so far.
    pub clips: u64,
    /// Frames analysed so far.
    pub frames: u64,
    /// Frames dropped because inference was behind (live inputs).
    pub dropped_frames: u64,
    /// Frames the streaming engine skipped because it was behind (the newest frame wins).
    pub frames_skipped: u64,
    /// Audio overruns recovered from.
    pub audio_xruns: u64,
    /// Video frames skipped because they could not be used (`--on-bad-frame skip`).
    pub frames_bad: u64,
    /// Gaps in the audio (bursts of read errors skipped), analysed as silence
    /// (`--on-bad-frame skip`).
    pub audio_gaps: u64,
    /// Analysed frames whose `in_view` score was below `[events] min_in_view`, their regions
    /// dropped (issue 26; always 0 for a model without the `in_view` output).
    pub frames_off_screen: u64,
    /// Whether detection is on (`detect/set`).
    pub detect: bool,
    /// Video input status.
    pub video: DeviceStatus,
    /// Audio input status.
    pub audio: DeviceStatus,
    /// Audio level of the last analysed frame's audio span, dBFS (−200 = silence).
    pub audio_dbfs: f64,
}

impl RunState {
    /// Snapshot of `control` with the pipeline's own counters; `mask_rate` is 0 until set with
    /// [`RunState::with_mask_rate`].
    pub fn snapshot(
        control: &RunControl,
        engine: &str,
        fps: f64,
        inference_ms: f64,
        clips: u64,
        frames: u64,
        audio_dbfs: f64,
    ) -> Self {
        Self {
            engine: engine.to_string(),
            fps,
            mask_rate: 0.0,
            inference_ms,
            clips,
            frames,
            dropped_frames: control.dropped_frames(),
            frames_skipped: control.frames_skipped(),
            audio_xruns: control.audio_xruns(),
            frames_bad: control.frames_bad(),
            audio_gaps: control.audio_gaps(),
            frames_off_screen: control.frames_off_screen(),
            detect: control.detect(),
            video: control.video_status(),
            audio: control.audio_status(),
            audio_dbfs,
        }
    }

    /// The same with `mask_rate` (masks per second, ≥ 0; a negative or NaN rate is stored as 0).
    pub fn with_mask_rate(mut self, mask_rate: f64) -> Self {
        self.mask_rate = if mask_rate > 0.0 { mask_rate } else { 0.0 };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_counters_add() {
        let c = RunControl::default();
        assert!(c.detect());
        assert_eq!(c.video_status(), DeviceStatus::Starting);
        for s in [
            DeviceStatus::Streaming,
            DeviceStatus::Reconnecting,
            DeviceStatus::Ended,
        ] {
            c.set_video_status(s);
            c.set_audio_status(s);
            assert_eq!((c.video_status(), c.audio_status()), (s, s));
        }
        c.add_dropped_frames(3);
        c.add_dropped_frames(2);
        c.add_audio_xrun();
        c.add_bad_frame();
        c.add_bad_frame();
        c.add_audio_gap();
        c.add_skipped_frames(4);
        c.add_skipped_frames(3);
        c.add_off_screen_frame();
        c.set_detect(false);
        let st = RunState::snapshot(&c, "tract", 1.0, 2.0, 3, 4, -20.0);
        assert_eq!((st.mask_rate, st.frames_skipped), (0.0, 7));
        assert_eq!(st.clone().with_mask_rate(f64::NAN).mask_rate, 0.0);
        let st = st.with_mask_rate(4.5);
        assert_eq!(
            (st.dropped_frames, st.audio_xruns, st.detect),
            (5, 1, false)
        );
        assert_eq!(
            (st.frames_bad, st.audio_gaps, st.frames_off_screen),
            (2, 1, 1)
        );
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(json["video"], "ended");
        assert_eq!(
            (&json["frames_bad"], &json["audio_gaps"]),
            (&2.into(), &1.into())
        );
        assert_eq!(
            (&json["mask_rate"], &json["frames_skipped"]),
            (&4.5.into(), &7.into())
        );
    }
}
