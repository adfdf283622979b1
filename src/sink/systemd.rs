//! systemd readiness and watchdog notifications (`sd_notify(3)`, protocol: one Unix datagram of
//! `KEY=VALUE` lines to the socket named by `$NOTIFY_SOCKET`; sent with the `sd-notify` crate).
//!
//! Practice (docs/integration-conventions.md §5): a `Type=notify` unit is told `READY=1` only
//! after the engine is loaded **and** the first model window has been analysed, and the watchdog
//! (`WatchdogSec=`) is fed with `WATCHDOG=1` only while frames flow: after every model window
//! whose frame counter advanced. A camera that stops delivering (reconnecting, hung driver)
//! therefore starves the watchdog and systemd restarts the service (`Restart=on-failure`).
//! `STOPPING=1` is sent when the input ends ([`Sink::finish`]) and, by
//! [`crate::service::stop_on_signals`], when SIGTERM or SIGINT arrives.
//!
//! Failures to send are logged (`warn`) and never stop the run: losing the service manager must
//! not stop detection.

use super::{AnalysedFrame, Sink, SinkError};
use crate::control::RunState;
use crate::events::Event;
use sd_notify::NotifyState;

/// Environment variable naming the notification socket (set by systemd for `Type=notify`).
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// A [`Sink`] that turns the pipeline's [`RunState`] updates into sd_notify messages.
#[derive(Debug, Default)]
pub struct SystemdNotifier {
    ready: bool,
    last_frames: u64,
    warned: bool,
}

impl SystemdNotifier {
    /// A notifier when `$NOTIFY_SOCKET` is set (the process runs under a `Type=notify` unit, or a
    /// test stands in for systemd), `None` otherwise.
    pub fn from_env() -> Option<Self> {
        std::env::var_os(NOTIFY_SOCKET).map(|_| Self::default())
    }

    /// Whether `READY=1` has been sent.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    fn send(&mut self, states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(states) {
            if !self.warned {
                let socket = std::env::var(NOTIFY_SOCKET).unwrap_or_default();
                tracing::warn!("cannot notify systemd through NOTIFY_SOCKET={socket}: {e}");
                self.warned = true;
            }
        }
    }
}

/// One-line `STATUS=` text for `systemctl status`.
pub fn status_line(s: &RunState) -> String {
    format!(
        "engine {}, {:.2} fps, inference {:.0} ms/window, {} windows, {} frames, {} dropped, video {:?}, audio {:?}{}",
        s.engine,
        s.fps,
        s.inference_ms,
        s.clips,
        s.frames,
        s.dropped_frames,
        s.video,
        s.audio,
        if s.detect { "" } else { ", detection paused" }
    )
}

impl Sink for SystemdNotifier {
    fn frame(&mut self, _frame: &AnalysedFrame, _events: &[Event]) -> Result<(), SinkError> {
        Ok(())
    }

    fn finish(&mut self, _events: &[Event]) -> Result<(), SinkError> {
        self.send(&[
            NotifyState::Stopping,
            NotifyState::Status("input ended, stopping"),
        ]);
        Ok(())
    }

    fn state(&mut self, state: &RunState) -> Result<(), SinkError> {
        // The start-of-run snapshot (clips == 0) only means the engine is loaded: no window yet.
        if state.clips == 0 || state.frames <= self.last_frames {
            return Ok(());
        }
        self.last_frames = state.frames;
        let status = status_line(state);
        if !self.ready {
            self.ready = true;
            tracing::info!("first window analysed; notifying systemd READY=1");
            self.send(&[
                NotifyState::Ready,
                NotifyState::Watchdog,
                NotifyState::Status(&status),
            ]);
        } else {
            self.send(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::RunControl;

    #[test]
    fn status_line_names_engine_and_pause() {
        let c = RunControl::default();
        c.set_detect(false);
        let s = RunState::snapshot(&c, "ort-tensorrt", 2.5, 40.0, 3, 15, -20.0);
        let line = status_line(&s);
        assert!(line.starts_with("engine ort-tensorrt, 2.50 fps"), "{line}");
        assert!(line.ends_with("detection paused"), "{line}");
    }
}
