//! Running as a service: a SIGTERM handler that stops the run cleanly and tells systemd
//! `STOPPING=1` (sd_notify(3)); see [`crate::sink::systemd`] for READY / WATCHDOG and
//! `systemd/c3n-edge.service` for the unit (integration-conventions.md §5).

use std::sync::Arc;

use signal_hook::consts::SIGTERM;
use signal_hook::iterator::Signals;

use crate::control::RunControl;

/// Errors installing the signal handler.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// `sigaction` or the signal pipe could not be set up.
    #[error("cannot install the SIGTERM handler: {0}")]
    Signal(#[source] std::io::Error),
    /// The handler thread could not be started.
    #[error("cannot start the signal thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Installs a SIGTERM handler (a background thread, `signal-hook`) that sends `STOPPING=1` to
/// `$NOTIFY_SOCKET` (when set) and calls [`RunControl::request_stop`]: the pipeline stops feeding
/// the engine, finishes the window in progress, emits the final `end` events and returns. systemd
/// kills the process anyway after `TimeoutStopSec=`.
///
/// Errors: [`ServiceError`] when the handler or its thread cannot be set up.
pub fn stop_on_sigterm(control: Arc<RunControl>) -> Result<(), ServiceError> {
    let mut signals = Signals::new([SIGTERM]).map_err(ServiceError::Signal)?;
    std::thread::Builder::new()
        .name("sigterm".into())
        .spawn(move || {
            for _ in signals.forever() {
                tracing::info!("SIGTERM: stopping after the current window");
                if let Err(e) = sd_notify::notify(&[
                    sd_notify::NotifyState::Stopping,
                    sd_notify::NotifyState::Status("SIGTERM received, stopping"),
                ]) {
                    tracing::warn!("cannot notify systemd STOPPING=1: {e}");
                }
                control.request_stop();
            }
        })
        .map_err(ServiceError::Thread)?;
    Ok(())
}
