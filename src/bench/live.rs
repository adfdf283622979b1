//! Live latency (`bench --paced`, `bench --onsets N`; issue 25): capture → mask and sound onset →
//! `new` event, on a recorded input released at wall-clock pace ([`crate::source::paced`]), whose
//! timestamps are `CLOCK_MONOTONIC` ms of capture like a live camera's.
//!
//! * **Capture → mask**: for each analysed frame, `monotonic_ms()` when the sinks get it (regions
//!   and events done) minus the frame's timestamp.
//! * **Onset → `new`**: [`onset_scene`] puts a random silent lead-in (the first image held, zero
//!   audio) before a clip whose sound starts at its first sample; the onset is the end of the
//!   lead-in, and the latency is the time of the first `new` event minus the onset.

use std::sync::{Arc, Mutex};

use image::imageops::{resize, FilterType};
use image::RgbImage;
use serde::Serialize;

use crate::events::{Event, EventType};
use crate::sink::{AnalysedFrame, Sink, SinkError};
use crate::source::live::monotonic_ms;
use crate::source::scene::Scene;
use crate::util::stats::percentile_ms;

/// What a [`LatencySink`] saw, shared with the caller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latencies {
    /// Capture → mask of each analysed frame, ms.
    pub capture_to_mask_ms: Vec<f64>,
    /// `CLOCK_MONOTONIC` ms of the first `new` event, if any.
    pub first_new_ms: Option<i64>,
    /// Timestamp (`CLOCK_MONOTONIC` ms) of the first analysed frame.
    pub first_pts_ms: Option<i64>,
}

/// A sink that records [`Latencies`].
#[derive(Debug, Clone, Default)]
pub struct LatencySink(pub Arc<Mutex<Latencies>>);

impl Sink for LatencySink {
    fn frame(&mut self, frame: &AnalysedFrame, events: &[Event]) -> Result<(), SinkError> {
        let now = monotonic_ms();
        let mut l = self.0.lock().unwrap_or_else(|e| e.into_inner());
        l.capture_to_mask_ms
            .push((now - frame.detections.pts_ms) as f64);
        l.first_pts_ms.get_or_insert(frame.detections.pts_ms);
        if l.first_new_ms.is_none() && events.iter().any(|e| e.kind == EventType::New) {
            l.first_new_ms = Some(now);
        }
        Ok(())
    }

    fn finish(&mut self, _events: &[Event]) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A clip with a silent lead-in of `lead_in_ms` before it: `images` are the clip's images with
/// their times (ms from the clip start), each resized to `width × height` and shown from its time
/// plus `shift_ms` until the next; during the lead-in the first image is shown and the audio is
/// zero. The "camera" runs at `fps`. `audio` is the clip's mono waveform at `sample_rate` Hz.
/// `shift_ms` places the images of a 1-fps sequence, stamped at their second's start, where
/// AVSBench took them: 15/16 into the second (docs/avsbench.md §3).
pub fn onset_scene(
    images: &[(i64, RgbImage)],
    audio: &[f64],
    sample_rate: u32,
    lead_in_ms: i64,
    shift_ms: i64,
    fps: f64,
    (width, height): (u32, u32),
) -> Scene {
    let lead = (lead_in_ms.max(0) as f64 * f64::from(sample_rate) / 1000.0).round() as usize;
    let mut wave = vec![0.0; lead];
    wave.extend_from_slice(audio);
    let clip_ms = (audio.len() as f64 * 1000.0 / f64::from(sample_rate.max(1))) as i64;
    let shots = images
        .iter()
        .enumerate()
        .map(|(i, (t, img))| {
            let from = if i == 0 { 0 } else { lead_in_ms + t + shift_ms };
            (
                from,
                Arc::new(resize(img, width, height, FilterType::Triangle)),
            )
        })
        .collect();
    Scene {
        shots,
        fps,
        length_ms: lead_in_ms + clip_ms,
        audio: Arc::new(wave),
        sample_rate,
    }
}

/// Live latency of one mode over several paced runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveReport {
    /// `window` or `stream`.
    pub mode: String,
    /// Paced runs.
    pub runs: usize,
    /// Capture → mask, median ms over every analysed frame of every run.
    pub capture_to_mask_p50_ms: f64,
    /// Capture → mask, 95th percentile ms.
    pub capture_to_mask_p95_ms: f64,
    /// Masks per second of wall time (analysed frames / run time), median over the runs.
    pub masks_per_s: f64,
    /// Sound onset → first `new` event, median ms over the runs that had one.
    pub onset_to_new_p50_ms: Option<f64>,
    /// Sound onset → first `new` event, 95th percentile ms.
    pub onset_to_new_p95_ms: Option<f64>,
    /// Runs without any `new` event.
    pub runs_without_new: usize,
}

/// One paced run's measurements: its latencies, wall seconds and the onset (`CLOCK_MONOTONIC` ms
/// = first frame's timestamp + lead-in).
#[derive(Debug, Clone)]
pub struct PacedRun {
    /// What the sink saw.
    pub latencies: Latencies,
    /// Wall time of the run, s.
    pub wall_s: f64,
    /// Lead-in before the sound, ms (`None`: no onset measured).
    pub lead_in_ms: Option<i64>,
}

/// Summarises paced runs of one mode.
pub fn live_report(mode: &str, runs: &[PacedRun]) -> LiveReport {
    let ms = |v: &[f64], q: f64| {
        percentile_ms(
            &v.iter()
                .map(|m| std::time::Duration::from_secs_f64(m.max(0.0) / 1e3))
                .collect::<Vec<_>>(),
            q,
        )
    };
    let all: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.latencies.capture_to_mask_ms.iter().copied())
        .collect();
    let rates: Vec<f64> = runs
        .iter()
        .map(|r| r.latencies.capture_to_mask_ms.len() as f64 / r.wall_s.max(1e-9))
        .collect();
    let onsets: Vec<f64> = runs
        .iter()
        .filter_map(|r| {
            let l = &r.latencies;
            Some((l.first_new_ms? - (l.first_pts_ms? + r.lead_in_ms?)) as f64)
        })
        .collect();
    let with_onset = runs.iter().filter(|r| r.lead_in_ms.is_some()).count();
    LiveReport {
        mode: mode.to_string(),
        runs: runs.len(),
        capture_to_mask_p50_ms: ms(&all, 0.5),
        capture_to_mask_p95_ms: ms(&all, 0.95),
        masks_per_s: ms(&rates.iter().map(|r| r * 1e3).collect::<Vec<_>>(), 0.5) / 1e3,
        onset_to_new_p50_ms: (!onsets.is_empty()).then(|| ms(&onsets, 0.5)),
        onset_to_new_p95_ms: (!onsets.is_empty()).then(|| ms(&onsets, 0.95)),
        runs_without_new: with_onset - onsets.len(),
    }
}

impl std::fmt::Display for LiveReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0}"));
        write!(
            f,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {} | {} | {} |",
            self.mode,
            self.runs,
            self.capture_to_mask_p50_ms,
            self.capture_to_mask_p95_ms,
            self.masks_per_s,
            opt(self.onset_to_new_p50_ms),
            opt(self.onset_to_new_p95_ms),
            self.runs_without_new
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lead_in_shifts_the_clip() {
        let img = |v| RgbImage::from_pixel(4, 4, image::Rgb([v, v, v]));
        let s = onset_scene(
            &[(0, img(1)), (1000, img(2))],
            &[0.5; 32_000],
            16_000,
            1500,
            0,
            10.0,
            (8, 6),
        );
        assert_eq!(s.length_ms, 3500);
        assert_eq!(s.audio.len(), 24_000 + 32_000);
        assert_eq!(s.audio[23_999], 0.0);
        assert_eq!(s.audio[24_000], 0.5);
        let times: Vec<i64> = s.shots.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, vec![0, 2500]);
        assert_eq!(s.shots[0].1.dimensions(), (8, 6));
    }

    #[test]
    fn onset_latency_is_the_new_event_after_the_lead_in() {
        let run = |first_new, lead| PacedRun {
            latencies: Latencies {
                capture_to_mask_ms: vec![100.0, 200.0, 300.0],
                first_new_ms: first_new,
                first_pts_ms: Some(10_000),
            },
            wall_s: 1.5,
            lead_in_ms: Some(lead),
        };
        let r = live_report("stream", &[run(Some(12_500), 2000), run(None, 1000)]);
        assert_eq!(r.onset_to_new_p50_ms, Some(500.0));
        assert_eq!(r.runs_without_new, 1);
        assert_eq!(r.capture_to_mask_p50_ms, 200.0);
        assert!((r.masks_per_s - 2.0).abs() < 1e-9);
    }
}
