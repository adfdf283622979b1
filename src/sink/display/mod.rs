//! Local display and live preview: the overlay picture ([`crate::render`]) on the outputs named
//! by jetson-inference-style URIs (docs/integration-conventions.md §1.1), given with `--output`
//! (repeatable):
//!
//! | URI | output |
//! |---|---|
//! | `display://0` | the screen: Linux framebuffer `/dev/fb0` ([`fb`]; RGB565, XRGB8888 and other packed RGB layouts), or DRM/KMS `/dev/dri/card0` ([`kms`]) where there is no `/dev/fb0`; see [`DisplayBackend`] for the choice |
//! | `display://0?backend=drm` | DRM/KMS on `/dev/dri/card0` even where fbdev exists; `?mode=WxH` or `WxH@HZ` picks the KMS mode (default: the monitor's preferred one) and implies `backend=drm` |
//! | `display://0?device=PATH` | that device node: `/dev/dri/…` (or any DRM device) is driven by KMS, anything else as a framebuffer; `?mode=WxH:BPP` (16 or 32) gives a framebuffer's geometry instead of asking the driver (a plain file as a fake framebuffer) |
//! | `display://0?linger=S` | keeps the final frame on the screen S seconds after the input ended (KMS gives the screen back when the output closes) |
//! | `window://` | desktop window (embedded-graphics-simulator + SDL2, cargo feature `window`); closes once it has shown the final frame, `?linger=S` keeps it open S seconds longer |
//! | `file://out/%05d.jpg` (`.png`) | one image per analysed frame, numbered by frame number |
//! | `file://out.mp4` (`.mkv`, …) | H.264 video of the pictures (cargo feature `ffmpeg`; without it: an error) |
//! | `http://:8080` | preview server ([`http`]) on 127.0.0.1 (give a host, e.g. `http://0.0.0.0:8080`, to listen elsewhere): `/`, `/stream.mjpg`, `/snapshot.jpg`, `/api/state`, `/api/events`; credentials from `[preview]` ([`http::PreviewConfig`]) unless `?auth=none`; `?viewers=N` concurrent streams (default 4), `?timeout=S` connection timeout (default 5 s), `?linger=S` keeps serving S seconds after the input ended |
//!
//! `--headless` drops `display://` and `window://`.
//!
//! The display never slows inference: [`DisplaySink`] hands each frame to every output's own
//! thread (`output`) through a one-place [`slot::Slot`] that *replaces* a frame the output has
//! not taken yet (counted as skipped). File outputs are the exception: they wait, so every frame
//! is written. At the end of the input, [`DisplaySink`]'s `finish` waits until every output has
//! shown its final frame (the newest scene put, however late the output is) and lingered on it
//! (`?linger=S`); a stop request ([`crate::control::RunControl::request_stop`]) ends the linger.
//!
//! Files: [`uri`] parses the URIs, [`screen`] opens `display://` on [`fb`] or [`kms`], [`sink`]
//! is the [`crate::sink::Sink`] that drives every output.

pub mod fb;
pub mod http;
pub mod kms;
mod output;
pub mod screen;
pub mod sink;
pub mod slot;
pub mod uri;
#[cfg(feature = "ffmpeg")]
mod video;
#[cfg(feature = "window")]
pub mod window;

pub use screen::ScreenOutput;
pub use sink::DisplaySink;
pub use uri::{DisplayBackend, OutputUri};

/// Errors of the display outputs; each names the output (URI, device or file).
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    /// The output URI is malformed or not supported.
    #[error("invalid output URI {uri:?}: {reason}")]
    Uri {
        /// The URI as given.
        uri: String,
        /// What is wrong.
        reason: String,
    },
    /// A device or file could not be opened or written.
    #[error("{what}: {source}")]
    Io {
        /// The device, file or address and what was done to it.
        what: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// Any other failure of an output (framebuffer layout, window, encoder).
    #[error("{what}: {reason}")]
    Output {
        /// The output.
        what: String,
        /// What is wrong.
        reason: String,
    },
}
