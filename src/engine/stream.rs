//! Streaming inference (issue 25): one frame's outputs from a T-frame context, reusing the
//! per-frame work of the context frames.
//!
//! C3N's only cross-frame step is TPAVI's clip mean (docs/c3n-method.md; the frame split,
//! [`super::split`]). A frame's outputs with the context `c_1 … c_{T−1}` (earlier frames, oldest
//! first) are therefore
//!
//! 1. [`Engine::per_frame`] on the frame alone — everything before the clip means, kept in a
//!    [`FrameState`] that later frames reuse as context, never recomputed;
//! 2. [`Engine::after`] on the frame with the context's states — the clip means over the T
//!    states, then the rest of the graph for this frame only.
//!
//! With the same T frames this gives exactly the window's outputs for the window's last frame
//! (`tests/engine_stream.rs`). An engine that cannot split the graph keeps each frame's input
//! in its state and runs the whole window of the context in `after` (the default methods):
//! the same outputs at the cost of a window per frame.

use std::any::Any;

use ndarray::{concatenate, s, Axis};

use super::{check_input, EngineError, Inference, ModelContract, ModelInput};

/// What [`Engine::per_frame`] kept of one frame: the input of the context window (engines that
/// run whole windows) or the tensors the graph's second part reads (engines that split it).
pub struct FrameState(pub(crate) Kept);

pub(crate) enum Kept {
    /// The frame's model input, `[1,…]` (see [`ModelInput`]).
    Input(ModelInput),
    /// Engine-specific tensors (downcast by the engine that made them).
    Parts(Box<dyn Any + Send>),
}

impl std::fmt::Debug for FrameState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kept::Input(_) => f.write_str("FrameState(input)"),
            Kept::Parts(_) => f.write_str("FrameState(parts)"),
        }
    }
}

impl FrameState {
    /// A state holding engine-specific tensors.
    pub(crate) fn parts<T: Any + Send>(parts: T) -> Self {
        Self(Kept::Parts(Box::new(parts)))
    }

    /// The engine-specific tensors, if this state holds a `T`.
    pub(crate) fn downcast<T: Any>(&self) -> Option<&T> {
        match &self.0 {
            Kept::Parts(b) => b.downcast_ref(),
            Kept::Input(_) => None,
        }
    }
}

/// Why a frame or a context does not fit the model.
fn context_err(message: String) -> EngineError {
    EngineError::Run {
        backend: "stream",
        message,
    }
}

/// Checks that `frame` is one frame of the contract's shapes (`frames [1,3,S,S]`,
/// `audio_logmel [1,1,96,64]`).
///
/// Errors: [`EngineError::InputShape`] otherwise.
pub fn check_frame(contract: &ModelContract, frame: &ModelInput) -> Result<(), EngineError> {
    let mut one = contract.clone();
    one.clip_frames = 1;
    check_input(&one, frame)
}

/// Checks that a context has `T − 1` frames.
///
/// Errors: [`EngineError::Run`] naming both numbers.
pub fn check_context(contract: &ModelContract, context: usize) -> Result<(), EngineError> {
    if context + 1 != contract.clip_frames {
        return Err(context_err(format!(
            "a streamed frame needs {} context frame(s), got {context}",
            contract.clip_frames.saturating_sub(1)
        )));
    }
    Ok(())
}

/// The default [`Engine::per_frame`]: keeps the frame's input.
pub(crate) fn keep_input(
    contract: &ModelContract,
    frame: &ModelInput,
) -> Result<FrameState, EngineError> {
    check_frame(contract, frame)?;
    Ok(FrameState(Kept::Input(frame.clone())))
}

/// The window `[context…, current]` of states that hold inputs (the default [`Engine::after`]).
///
/// Errors: [`EngineError::Run`] for a wrong context length or a state made by another engine.
pub(crate) fn context_window(
    contract: &ModelContract,
    context: &[&FrameState],
    current: &FrameState,
) -> Result<ModelInput, EngineError> {
    check_context(contract, context.len())?;
    let inputs = context
        .iter()
        .chain(std::iter::once(&current))
        .map(|st| match &st.0 {
            Kept::Input(i) => Ok(i),
            Kept::Parts(_) => Err(context_err(
                "a frame state made by another engine was passed as context".into(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let frames: Vec<_> = inputs.iter().map(|i| i.frames.view()).collect();
    let audio: Vec<_> = inputs.iter().map(|i| i.audio_logmel.view()).collect();
    let join = |v: &[ndarray::ArrayView4<f32>]| {
        concatenate(Axis(0), v).map_err(|e| context_err(format!("stacking the context: {e}")))
    };
    Ok(ModelInput {
        frames: join(&frames)?,
        audio_logmel: join(&audio)?,
    })
}

/// The default [`super::Engine::after`] for a concrete engine that cannot split the graph: the
/// window `[context…, current]` run whole, its last frame kept.
///
/// Errors: those of [`context_window`] and of the engine's `infer`.
pub(crate) fn rerun_window(
    engine: &mut dyn super::Engine,
    context: &[&FrameState],
    current: &FrameState,
) -> Result<Inference, EngineError> {
    let window = context_window(engine.contract(), context, current)?;
    let t = engine.contract().clip_frames;
    Ok(engine.infer(&window)?.frame(t - 1))
}

/// The first part of a stream on a thread of its own ([`super::Engine::stream_workers`]).
pub trait PerFrameWorker: Send {
    /// As [`super::Engine::per_frame`].
    fn per_frame(&mut self, frame: &ModelInput) -> Result<FrameState, EngineError>;
}

/// The second part of a stream on a thread of its own ([`super::Engine::stream_workers`]).
pub trait AfterWorker: Send {
    /// As [`super::Engine::after`].
    fn after(
        &mut self,
        context: &[&FrameState],
        current: &FrameState,
    ) -> Result<Inference, EngineError>;
}

/// The two parts of a stream as workers for two threads: while one runs the second part of frame
/// n, the other runs the first part of frame n + 1.
pub struct StreamWorkers<'a> {
    /// The per-frame part.
    pub per_frame: Box<dyn PerFrameWorker + 'a>,
    /// The second part.
    pub after: Box<dyn AfterWorker + 'a>,
}

impl Inference {
    /// Frame `i` of a window's outputs, as a one-frame inference (leading dimension 1).
    ///
    /// Panics if `i` is not below the window's T (a caller's bug, not outside data).
    pub fn frame(&self, i: usize) -> Inference {
        Inference {
            mask_logits: self.mask_logits.slice(s![i..=i, .., .., ..]).to_owned(),
            visual_logits: self.visual_logits.slice(s![i..=i, ..]).to_owned(),
            audio_logits: self.audio_logits.slice(s![i..=i, ..]).to_owned(),
            unified_label: vec![self.unified_label[i]],
            c3im_score: vec![self.c3im_score[i]],
            visual_logit_map: self
                .visual_logit_map
                .slice(s![i..=i, .., .., ..])
                .to_owned(),
            c3im_affinity: self.c3im_affinity.slice(s![i..=i, ..]).to_owned(),
            in_view: self.in_view.as_ref().map(|v| vec![v[i]]),
        }
    }
}

/// Frame `i` of a window's model input (`[1,…]`).
pub fn input_frame(window: &ModelInput, i: usize) -> ModelInput {
    ModelInput {
        frames: window.frames.slice(s![i..=i, .., .., ..]).to_owned(),
        audio_logmel: window.audio_logmel.slice(s![i..=i, .., .., ..]).to_owned(),
    }
}
