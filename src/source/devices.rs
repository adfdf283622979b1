//! `c3n-edge devices` (the capture devices this machine has) and `c3n-edge bench-capture`
//! (capture-to-model-input latency and CPU use of one source, measured, never asserted).

use std::fmt::{self, Write as _};
use std::time::Instant;

use serde::Serialize;

use super::live::monotonic_ms;
use super::{SourceError, VideoOptions};
use crate::frontend::ImageNorm;
use crate::uri::InputUri;

/// Text listing of the V4L2 cameras (format, size, frame rates) and ALSA capture PCMs; says so
/// when there are none, or when the build lacks the `v4l2` / `alsa` feature.
pub fn report() -> String {
    let mut s = String::new();
    write_v4l2(&mut s);
    s.push('\n');
    write_alsa(&mut s);
    s
}

#[cfg(feature = "v4l2")]
fn write_v4l2(s: &mut String) {
    let devs = super::v4l2::list_devices();
    let _ = writeln!(s, "V4L2 cameras (use as v4l2:///dev/videoN):");
    if devs.is_empty() {
        let _ = writeln!(s, "  none (no /dev/video* device nodes)");
    }
    for d in devs {
        let _ = writeln!(s, "  {}  {} [{}]", d.path.display(), d.card, d.driver);
        if let Some(e) = &d.error {
            let _ = writeln!(s, "    cannot query: {e}");
        } else if d.modes.is_empty() {
            let _ = writeln!(s, "    no capture formats (metadata or output node)");
        }
        // group rates per (format, size)
        let mut i = 0;
        while i < d.modes.len() {
            let m = &d.modes[i];
            let mut rates = vec![];
            while i < d.modes.len()
                && d.modes[i].fourcc == m.fourcc
                && (d.modes[i].width, d.modes[i].height) == (m.width, m.height)
            {
                rates.push(
                    format!("{:.4}", d.modes[i].fps)
                        .trim_end_matches('0')
                        .trim_end_matches('.')
                        .to_string(),
                );
                i += 1;
            }
            let _ = writeln!(
                s,
                "    {} {}x{} @ {} fps",
                String::from_utf8_lossy(&m.fourcc),
                m.width,
                m.height,
                rates.join(", ")
            );
        }
    }
}

#[cfg(not(feature = "v4l2"))]
fn write_v4l2(s: &mut String) {
    let _ = writeln!(
        s,
        "V4L2 cameras: this build has no V4L2 support (cargo feature `v4l2`)"
    );
}

#[cfg(feature = "alsa")]
fn write_alsa(s: &mut String) {
    let _ = writeln!(s, "ALSA capture PCMs (use as alsa://NAME):");
    match super::alsa::list_capture_pcms() {
        Ok(p) if p.is_empty() => {
            let _ = writeln!(
                s,
                "  none (no sound card with a capture device, no capture PCM configured)"
            );
        }
        Ok(p) => {
            for pcm in p {
                let _ = writeln!(s, "  {:<28} {}", pcm.name, pcm.description);
            }
        }
        Err(e) => {
            let _ = writeln!(s, "  cannot list PCMs: {e}");
        }
    }
}

#[cfg(not(feature = "alsa"))]
fn write_alsa(s: &mut String) {
    let _ = writeln!(
        s,
        "ALSA capture PCMs: this build has no ALSA support (cargo feature `alsa`)"
    );
}

/// Result of [`bench_capture`].
#[derive(Debug, Clone, Serialize)]
pub struct CaptureBench {
    /// The input URI.
    pub input: String,
    /// Frames (video) or blocks (audio) received.
    pub items: u64,
    /// Items per second of wall time.
    pub rate_hz: f64,
    /// Capture-to-model-input latency, ms: for video from the frame's kernel timestamp to its
    /// normalised 224×224 CHW tensor; for audio from the block's last sample to its delivery at
    /// 16 kHz mono. Median.
    pub latency_p50_ms: f64,
    /// 95th percentile of the same, ms.
    pub latency_p95_ms: f64,
    /// Maximum of the same, ms.
    pub latency_max_ms: f64,
    /// Process CPU time (user + system) over wall time, percent of one core.
    pub cpu_percent: f64,
}

impl fmt::Display for CaptureBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} items, {:.2}/s, capture->model-input latency p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms, CPU {:.1} %",
            self.input,
            self.items,
            self.rate_hz,
            self.latency_p50_ms,
            self.latency_p95_ms,
            self.latency_max_ms,
            self.cpu_percent
        )
    }
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Captures from `uri` (video: a camera or file; audio: `alsa://`) for `seconds` and measures
/// latency and CPU use (see [`CaptureBench`]). Latency is only meaningful for live sources
/// (file timestamps start at 0).
pub fn bench_capture(
    uri: &InputUri,
    options: &VideoOptions,
    seconds: f64,
) -> Result<CaptureBench, SourceError> {
    let norm = ImageNorm::default();
    let mut lat = Vec::new();
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let done = || t0.elapsed().as_secs_f64() >= seconds;
    if let InputUri::Alsa { .. } = uri {
        let mut a = super::open_audio_with(uri, 16_000, &options.live)?;
        while !done() {
            let Some(b) = a.next_block()? else { break };
            let end = b.pts_ms as f64 + b.samples.len() as f64 * 1000.0 / 16_000.0;
            lat.push(monotonic_ms() as f64 - end);
        }
    } else {
        let mut v = super::open_video(uri, options)?;
        while !done() {
            let f = match v.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) if e.is_bad_frame() => continue, // as the pipeline's default for cameras
                Err(e) => return Err(e),
            };
            let _chw = norm.to_chw(&f.image);
            lat.push((monotonic_ms() - f.pts_ms) as f64);
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if lat.is_empty() {
            f64::NAN
        } else {
            lat[((lat.len() - 1) as f64 * p).round() as usize]
        }
    };
    Ok(CaptureBench {
        input: uri.to_string(),
        items: lat.len() as u64,
        rate_hz: lat.len() as f64 / wall.max(1e-9),
        latency_p50_ms: pct(0.5),
        latency_p95_ms: pct(0.95),
        latency_max_ms: pct(1.0),
        cpu_percent: 100.0 * cpu / wall.max(1e-9),
    })
}
