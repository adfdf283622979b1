//! One output's thread: it takes the scenes from its [`Slot`] and shows them, so a slow output
//! never holds up the pipeline (see [`super`]).

use std::sync::Arc;
use std::thread::JoinHandle;

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

impl OutputThread {
    /// Spawns `show` over the scenes of a new slot; the slot closes when the thread ends.
    pub(super) fn spawn(
        name: String,
        lossless: bool,
        mut show: impl FnMut(Scene) -> Result<(), DisplayError> + Send + 'static,
    ) -> Self {
        Self::spawn_with(name, lossless, move |slot| {
            while let Some(scene) = slot.take() {
                show(scene)?;
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

    /// Ends the thread (after it has shown what is queued) and returns its result.
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
