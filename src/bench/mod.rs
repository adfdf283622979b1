//! `c3n-edge bench`: per-stage latency of the `run` pipeline (median and p95 per model window),
//! throughput (clips/s, frames/s over the run's wall time) and peak RSS (`VmHWM` of
//! `/proc/self/status`). Stages as in [`crate::pipeline::StageTimes`]; events go to a discarding
//! JSON-lines sink so the output stage is measured without disk I/O.

pub mod live;

use std::time::Duration;

use serde::Serialize;

use crate::pipeline::{RunSummary, StageTimes};
use crate::util::stats::percentile_ms;

/// Latency statistics of one stage, in milliseconds per window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageStat {
    /// Stage name.
    pub stage: &'static str,
    /// Median (ms).
    pub median_ms: f64,
    /// 95th percentile, nearest rank (ms).
    pub p95_ms: f64,
}

/// A benchmark report (`bench --json` prints it as one JSON object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Model file.
    pub model: String,
    /// Input description.
    pub input: String,
    /// Frames per model call (T).
    pub clip_frames: usize,
    /// Inference threads.
    pub threads: usize,
    /// Model windows processed.
    pub clips: u64,
    /// Frames analysed.
    pub frames: u64,
    /// Per-stage latency.
    pub stages: Vec<StageStat>,
    /// Windows per second of wall time.
    pub clips_per_s: f64,
    /// Frames per second of wall time.
    pub frames_per_s: f64,
    /// Peak resident set size in MiB (`VmHWM`), if readable.
    pub peak_rss_mib: Option<f64>,
}

/// Reads one stage's duration out of a [`StageTimes`].
type StageField = fn(&StageTimes) -> Duration;

/// Stage statistics of a run.
pub fn stage_stats(times: &[StageTimes]) -> Vec<StageStat> {
    let stages: [(&'static str, StageField); 6] = [
        ("decode", |t| t.decode),
        ("frontend", |t| t.frontend),
        ("preprocess", |t| t.preprocess),
        ("inference", |t| t.inference),
        ("postprocess", |t| t.postprocess),
        ("output", |t| t.output),
    ];
    stages
        .iter()
        .map(|(name, get)| {
            let v: Vec<Duration> = times.iter().map(get).collect();
            StageStat {
                stage: name,
                median_ms: percentile_ms(&v, 0.5),
                p95_ms: percentile_ms(&v, 0.95),
            }
        })
        .collect()
}

/// Peak RSS in MiB from `/proc/self/status` (`VmHWM: N kB`); `None` where unavailable.
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Builds the report of a finished run.
pub fn report(
    model: &str,
    input: &str,
    clip_frames: usize,
    threads: usize,
    run: &RunSummary,
) -> BenchReport {
    let wall = run.wall.as_secs_f64().max(1e-9);
    BenchReport {
        model: model.to_string(),
        input: input.to_string(),
        clip_frames,
        threads,
        clips: run.clips,
        frames: run.frames,
        stages: stage_stats(&run.times),
        clips_per_s: run.clips as f64 / wall,
        frames_per_s: run.frames as f64 / wall,
        peak_rss_mib: peak_rss_mib(),
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "model  {}  (T={}, {} thread(s))",
            self.model, self.clip_frames, self.threads
        )?;
        writeln!(f, "input  {}", self.input)?;
        writeln!(f, "{:<12} {:>12} {:>12}", "stage", "median ms", "p95 ms")?;
        for s in &self.stages {
            writeln!(
                f,
                "{:<12} {:>12.2} {:>12.2}",
                s.stage, s.median_ms, s.p95_ms
            )?;
        }
        writeln!(
            f,
            "{} clips, {} frames: {:.3} clips/s, {:.3} frames/s",
            self.clips, self.frames, self.clips_per_s, self.frames_per_s
        )?;
        match self.peak_rss_mib {
            Some(m) => write!(f, "peak RSS {m:.1} MiB"),
            None => write!(f, "peak RSS n/a"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_read() {
        assert!(peak_rss_mib().is_some_and(|m| m > 0.0));
    }
}
