//! One output's thread: it takes the scenes from its [`Slot`] and shows them, so a slow output
//! never holds up the pipeline (see [`super`]). When the input ends, a live output still shows
//! the newest scene put before the end (its *final frame*), says so in the log, and keeps it up
//! for its linger time; closing the slot ends the linger early.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::slot::{CloseOnDrop, Slot};
use super::DisplayError;
use crate::render::Scene;
use crate::sink::SinkError;

/// An output driven by its own thread: shows the scenes it takes from its slot.
pub(super) struct OutputThread {
    pub(super) name: String,
    pub(super) slot: Arc<Slot<Scene>>,
    pub(super) lossless: bool,
    thread: Option<JoinHandle<Result<(), DisplayError>>>,
}

/// Logs that output `name` has shown its final frame (frame `number`) and keeps it up for
/// `linger`: the line the window test waits for, and what a user sees before the output closes.
pub(super) fn final_frame_shown(name: &str, number: u64, linger: Duration) {
    if linger.is_zero() {
        tracing::info!("output {name}: final frame {number} shown");
    } else {
        tracing::info!(
            "output {name}: final frame {number} shown; kept up for {} s (a stop signal ends \
             it)",
            linger.as_secs()
        );
    }
}

impl OutputThread {
    /// Spawns `show` over the scenes of a new slot; the slot closes when the thread ends. Once
    /// the input has ended and the final scene is shown, the thread waits `linger` (or until the
    /// slot is closed) before it ends.
    pub(super) fn spawn(
        name: String,
        lossless: bool,
        linger: Duration,
        mut show: impl FnMut(Scene) -> Result<(), DisplayError> + Send + 'static,
    ) -> Self {
        let thread_name = name.clone();
        Self::spawn_with(name, lossless, move |slot| {
            let mut last = None;
            while let Some(scene) = slot.take() {
                let number = scene.number;
                show(scene)?;
                last = Some(number);
            }
            match (last, slot.is_closed()) {
                (Some(n), false) if lossless => {
                    tracing::info!("output {thread_name}: final frame {n} written");
                }
                (Some(n), false) => {
                    final_frame_shown(&thread_name, n, linger);
                    slot.wait_closed(linger);
                }
                _ => {}
            }
            Ok(())
        })
    }

    /// Spawns `run`, which takes the scenes from the slot itself.
    pub(super) fn spawn_with(
        name: String,
        lossless: bool,
        run: impl FnOnce(&Slot<Scene>) -> Result<(), DisplayError> + Send + 'static,
    ) -> Self {
        let slot = Arc::new(Slot::new());
        let rx = slot.clone();
        let thread = std::thread::Builder::new()
            .name(format!("output {name}"))
            .spawn(move || {
                let _closer = CloseOnDrop(rx.clone());
                run(&rx)
            });
        match thread {
            Ok(t) => Self {
                name,
                slot,
                lossless,
                thread: Some(t),
            },
            Err(e) => {
                tracing::error!("cannot start the thread of output {name}: {e}");
                slot.close();
                Self {
                    name,
                    slot,
                    lossless,
                    thread: None,
                }
            }
        }
    }

    /// Whether the thread has ended on its own (closed its slot and finished) and waits to be
    /// joined.
    pub(super) fn has_ended(&self) -> bool {
        self.slot.is_closed() && self.thread.as_ref().is_some_and(|t| t.is_finished())
    }

    /// Whether the thread is still running (showing, or lingering on its final frame).
    pub(super) fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Ends the thread (after it has shown what is queued and lingered) and returns its result.
    pub(super) fn join(&mut self) -> Result<(), SinkError> {
        self.slot.finish();
        let Some(t) = self.thread.take() else {
            return Ok(());
        };
        let res = t.join().map_err(|_| SinkError::Output {
            output: self.name.clone(),
            message: "the output thread panicked".into(),
        })?;
        if self.slot.skipped() > 0 {
            tracing::info!(
                "output {}: {} frames skipped (display behind)",
                self.name,
                self.slot.skipped()
            );
        }
        res.map_err(|e| SinkError::Output {
            output: self.name.clone(),
            message: e.to_string(),
        })
    }
}
