//! The engine side of the streaming mode (issue 25): each analysed frame's per-frame state is
//! kept for the frames that take it as context, and each frame gets its outputs from the T − 1
//! kept frames nearest to one, two, … clip slots before it ([`crate::sync::context_targets`]).
//! A frame's per-frame part runs once; states older than the longest context are dropped.

use super::RunOptions;
use crate::engine::{Engine, EngineError, FrameState, Inference};
use crate::sync::{context_targets, nearest, SlotFrame, StreamBuilder, Window, WindowBuilder};

/// The kept per-frame states of a stream, by anchor (ascending).
pub(super) struct StreamContext {
    /// Model frames per window (T).
    t: usize,
    /// Clip slot in ms.
    clip_ms: f64,
    anchors: Vec<f64>,
    states: Vec<FrameState>,
}

impl StreamContext {
    /// For a model of `t` frames per window and clip slots of `clip_ms` ms.
    pub(super) fn new(t: usize, clip_ms: f64) -> Self {
        Self {
            t,
            clip_ms,
            anchors: Vec::new(),
            states: Vec::new(),
        }
    }

    /// Runs one streamed frame (a one-frame [`Window`] from [`crate::sync::StreamBuilder`]): its
    /// per-frame part, then its outputs with the context. A frame before the first has the
    /// earliest kept frame (possibly itself) as context, as a window pads with a repeated frame.
    pub(super) fn infer(
        &mut self,
        engine: &mut dyn Engine,
        w: &Window,
    ) -> Result<Inference, EngineError> {
        let anchor = w.start_ms as f64;
        let state = engine.per_frame(&w.input)?;
        // anchors only grow within a run (loop passes continue the timeline); a frame that is
        // not later than the last kept one replaces nothing and is kept after it
        self.anchors.push(anchor);
        self.states.push(state);
        let horizon = anchor - self.t as f64 * self.clip_ms;
        let old = self.anchors.partition_point(|&a| a < horizon);
        self.anchors.drain(..old);
        self.states.drain(..old);
        let current = self.states.len() - 1;
        let context: Vec<&FrameState> = context_targets(anchor, self.clip_ms, self.t)
            .map(|target| {
                let i = nearest(&self.anchors, target).unwrap_or(current);
                &self.states[i]
            })
            .collect();
        engine.after(&context, &self.states[current])
    }
}

/// Frames → model inputs: windows of T slots, or one frame at a time ([`Mode`]).
pub(super) enum Framer {
    Windows(WindowBuilder),
    Stream(StreamBuilder),
}

impl Framer {
    /// The model's audio sample rate in Hz.
    pub(super) fn sample_rate(&self) -> u32 {
        match self {
            Framer::Windows(b) => b.sample_rate(),
            Framer::Stream(b) => b.sample_rate(),
        }
    }
}

/// What [`Framer`] has ready for the model: the builder's pending window, or one frame.
pub(super) enum Ready<'a> {
    Window(&'a mut WindowBuilder),
    Frame(&'a mut StreamBuilder, SlotFrame),
}

/// Says at start how the stream runs: which frames get a mask and at what cost.
pub(super) fn log_stream(engine: &dyn Engine, opts: &RunOptions, clip_ms: f64) {
    let t = engine.contract().clip_frames;
    let rate = match opts.mask_rate {
        Some(r) => format!("{r} masks/s"),
        None => "every frame (the newest first when behind)".into(),
    };
    let cost = if engine.streams_by_parts() {
        "the per-frame part runs once per frame"
    } else {
        "this engine reruns the whole context window per mask (no frame split)"
    };
    tracing::info!(
        "streaming: a mask for {rate}, each with the {} frame(s) {:.1} s apart before it; {cost}",
        t.saturating_sub(1),
        clip_ms / 1000.0
    );
}
