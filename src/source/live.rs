//! Shared machinery of the live sources (`v4l2://`, `alsa://`): the monotonic clock their
//! timestamps are on and the options of a live input. Their reconnect loops sleep the crate's
//! one jittered exponential back-off ([`Backoff`], [`Backoff::default`]: 250 ms doubling up to
//! 5 s, ±20 %).
//!
//! **Clock.** Live timestamps are milliseconds of `CLOCK_MONOTONIC` (the clock V4L2 buffers are
//! stamped with when `V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC` is set, and the clock the ALSA source
//! asks for its status timestamps), so video and audio meet on one timeline in
//! [`crate::sync`]. They do not start at 0.
//!
//! **Queues** ([`crate::util::queue`]): for files the pipeline's queues block (nothing is lost,
//! the reader waits for inference); for live inputs they drop the *oldest* item when full, so the
//! latency between capture and inference stays bounded by the queue capacity, and each drop is
//! counted (`RunControl::add_dropped_frames`).

pub use crate::util::backoff::Backoff;

/// Now on `CLOCK_MONOTONIC`, in ms (the live sources' timeline).
pub fn monotonic_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    timespec_ms(ts.tv_sec, ts.tv_nsec)
}

/// A `(seconds, nanoseconds)` timestamp in ms, rounded to the nearest ms.
pub fn timespec_ms(sec: i64, nsec: i64) -> i64 {
    sec * 1000 + (nsec + 500_000) / 1_000_000
}

/// Camera mode request and fault policy of a live input (`--input-width`, `--input-height`,
/// `--input-rate`, `--input-codec`, `--input-wait`; docs/integration-conventions.md §1.2, §1.4).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveOptions {
    /// Requested frame width in pixels (`None`: 1280, jetson-utils' default).
    pub width: Option<u32>,
    /// Requested frame height in pixels (`None`: 720).
    pub height: Option<u32>,
    /// Requested frame rate in fps (`None`: the highest the chosen size offers).
    pub rate_hz: Option<f64>,
    /// Required pixel format: `mjpeg`, `yuyv`, `nv12`, `rgb24` or a FourCC (`None`: any,
    /// uncompressed preferred on a tie).
    pub codec: Option<String>,
    /// Wait (retrying with backoff) when the device is missing or busy at start, instead of
    /// failing.
    pub wait: bool,
    /// ALSA: requested capture rate in Hz (`None`: 16000 if the device has it, else its nearest).
    pub audio_rate: Option<u32>,
    /// ALSA: requested channel count (`None`: the device's minimum, usually 1 or 2).
    pub audio_channels: Option<u32>,
    /// ALSA: required sample format `s16`, `s32` or `float` (`None`: the first of these the
    /// device offers).
    pub audio_format: Option<String>,
}
