//! Running as a service: a SIGTERM/SIGINT handler that stops the run cleanly and tells systemd
//! `STOPPING=1` (sd_notify(3)); see [`crate::sink::systemd`] for READY / WATCHDOG and
//! `systemd/c3n-edge.service` for the unit (integration-conventions.md §5).

use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::control::RunControl;

/// Errors installing the signal handler.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// `sigaction` or the signal pipe could not be set up.
    #[error("cannot install the SIGTERM/SIGINT handler: {0}")]
    Signal(#[source] std::io::Error),
    /// The handler thread could not be started.
    #[error("cannot start the signal thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Installs a SIGTERM/SIGINT handler (a background thread, `signal-hook`). The first signal
/// sends `STOPPING=1` to `$NOTIFY_SOCKET` (when set) and calls [`RunControl::request_stop`]: the
/// pipeline stops feeding the engine, finishes the window in progress, emits the final `end`
/// events, and the sinks finish cleanly (MQTT publishes its final state and `offline`). A second
/// signal exits at once with status 128 + signal. systemd kills the process anyway after
/// `TimeoutStopSec=`.
///
/// Errors: [`ServiceError`] when the handler or its thread cannot be set up.
pub fn stop_on_signals(control: Arc<RunControl>) -> Result<(), ServiceError> {
    let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(ServiceError::Signal)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut n = 0;
            for sig in signals.forever() {
                n += 1;
                if n > 1 {
                    eprintln!("c3n-edge: second signal {sig}, exiting now");
                    std::process::exit(128 + sig);
                }
                tracing::warn!("signal {sig}: stopping after the current window");
                if let Err(e) = sd_notify::notify(&[
                    sd_notify::NotifyState::Stopping,
                    sd_notify::NotifyState::Status("stopping on a signal"),
                ]) {
                    tracing::warn!("cannot notify systemd STOPPING=1: {e}");
                }
                control.request_stop();
            }
        })
        .map_err(ServiceError::Thread)?;
    Ok(())
}
