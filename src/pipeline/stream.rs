//! The engine side of the streaming mode (issue 25): each analysed frame's per-frame state is
//! kept for the frames that take it as context, and each frame gets its outputs from the T − 1
//! kept frames nearest to one, two, … clip slots before it ([`crate::sync::context_targets`]).
//! A frame's per-frame part runs once; states older than the longest context are dropped.
//!
//! **A sound's context starts at its onset.** TPAVI averages its attention over the T frames;
//! AVSBench clips sound throughout, so a window never mixes silence before a sound with the
//! sound. A causal context right after an onset would: four silent frames out of five damp the
//! sounding object (measured: with a 2-s silent lead-in before the demo clip, the bird was never
//! found). A kept frame that the silence gate calls silent (audio below `[events] silence_dbfs`
//! or its top AudioSet class in `silence_classes`, as `crate::events::Tracker::is_silent`) is
//! therefore not context: the current frame takes its place, as a window at a stream's start pads
//! with a repeated frame. With sound throughout, the context is the frames 1 … T − 1 s back.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::time::{Duration, Instant};

use super::{Analysed, PipelineError, RunOptions};
use crate::control::RunControl;
use crate::engine::stream::StreamWorkers;
use crate::engine::{Engine, EngineError, FrameState, Inference};
use crate::events::{dbfs, EventConfig};
use crate::sync::{
    context_targets, nearest, FrameSlotter, SlotFrame, StreamBuilder, Window, WindowBuilder,
};
use crate::util::queue::QueueRx;

/// The kept per-frame states of a stream, by anchor (ascending).
pub(super) struct StreamContext {
    /// Model frames per window (T).
    t: usize,
    /// Clip slot in ms.
    clip_ms: f64,
    anchors: Vec<f64>,
    states: Vec<FrameState>,
    /// Whether each kept frame is silent (known once its own outputs are).
    silent: Vec<bool>,
    /// The silence gate's level, dBFS.
    silence_dbfs: Option<f32>,
    /// The silence gate's classes, as indices of the model's AudioSet labels.
    silence_classes: Vec<usize>,
}

impl StreamContext {
    /// For a model of `t` frames per window and clip slots of `clip_ms` ms, with the silence
    /// gate of `events` (`audioset_labels`: the model's).
    pub(super) fn new(
        t: usize,
        clip_ms: f64,
        events: &EventConfig,
        audioset_labels: &[String],
    ) -> Self {
        Self {
            t,
            clip_ms,
            anchors: Vec::new(),
            states: Vec::new(),
            silent: Vec::new(),
            silence_dbfs: events.silence_dbfs,
            silence_classes: audioset_labels
                .iter()
                .enumerate()
                .filter(|(_, l)| events.silence_classes.contains(l))
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// Runs one streamed frame (a one-frame [`Window`] from [`crate::sync::StreamBuilder`]) on
    /// one thread: its per-frame part, then [`Self::after`].
    pub(super) fn infer(
        &mut self,
        engine: &mut dyn Engine,
        w: &Window,
    ) -> Result<Inference, EngineError> {
        let state = engine.per_frame(&w.input)?;
        self.after(w, state, |c, cur| engine.after(c, cur))
    }

    /// Keeps `state` (the per-frame part of `w`) and runs `after` on it with its context. A frame
    /// before the first has the earliest kept frame (possibly itself) as context, as a window
    /// pads with a repeated frame; silent kept frames are replaced by the current one (module
    /// docs).
    pub(super) fn after(
        &mut self,
        w: &Window,
        state: FrameState,
        after: impl FnOnce(&[&FrameState], &FrameState) -> Result<Inference, EngineError>,
    ) -> Result<Inference, EngineError> {
        let anchor = w.start_ms as f64;
        // anchors only grow within a run (loop passes continue the timeline)
        self.anchors.push(anchor);
        self.states.push(state);
        self.silent.push(false);
        let horizon = anchor - self.t as f64 * self.clip_ms;
        let old = self.anchors.partition_point(|&a| a < horizon);
        self.anchors.drain(..old);
        self.states.drain(..old);
        self.silent.drain(..old);
        let current = self.states.len() - 1;
        let context: Vec<&FrameState> = context_targets(anchor, self.clip_ms, self.t)
            .map(|target| {
                let i = nearest(&self.anchors, target).unwrap_or(current);
                &self.states[if self.silent[i] { current } else { i }]
            })
            .collect();
        let inf = after(&context, &self.states[current])?;
        let level = w.audio_rms.first().copied().unwrap_or(0.0);
        let top = inf
            .audio_logits
            .row(0)
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        self.silent[current] = self.silence_dbfs.is_some_and(|l| dbfs(level) < l)
            || top.is_some_and(|c| self.silence_classes.contains(&c));
        Ok(inf)
    }
}

/// Frames → model inputs: windows of T slots, or one frame at a time ([`Mode`]).
pub(super) enum Framer {
    /// The window builder and the slotter of the current pass.
    Windows(WindowBuilder, FrameSlotter),
    Stream(StreamBuilder),
}

impl Framer {
    /// Windows of `builder`'s T slots.
    pub(super) fn windows(builder: WindowBuilder) -> Self {
        let slotter = FrameSlotter::new(builder.slot_ms());
        Framer::Windows(builder, slotter)
    }

    /// The model's audio sample rate in Hz.
    pub(super) fn sample_rate(&self) -> u32 {
        match self {
            Framer::Windows(b, _) => b.sample_rate(),
            Framer::Stream(b) => b.sample_rate(),
        }
    }

    /// A new pass over the input (`--input-loop`): the slot grid restarts at its first frame.
    pub(super) fn restart(&mut self) {
        match self {
            Framer::Windows(b, slotter) => *slotter = FrameSlotter::new(b.slot_ms()),
            Framer::Stream(b) => b.restart(),
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
        Some(r) => format!("{r} frame(s) a second"),
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

/// The engine stage of the stream mode: each window (one frame) through `ctx`, on this thread,
/// or on two when the engine has stream workers ([`Engine::stream_workers`]): this thread runs
/// the per-frame part of frame n + 1 while a second runs the second part of frame n.
pub(super) fn run(
    engine: &mut dyn Engine,
    mut ctx: StreamContext,
    control: &RunControl,
    windows: QueueRx<Window>,
    out: SyncSender<Analysed>,
) -> Result<(), PipelineError> {
    let Some(workers) = engine.stream_workers() else {
        for w in windows {
            if control.stop_requested() {
                break;
            }
            let t = Instant::now();
            let inf = control
                .detect()
                .then(|| ctx.infer(engine, &w))
                .transpose()?;
            if out.send((w, inf, t.elapsed())).is_err() {
                break;
            }
        }
        return Ok(());
    };
    let StreamWorkers {
        mut per_frame,
        mut after,
    } = workers;
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<(Window, Option<FrameState>, Duration)>(0);
        let second = s.spawn(move || -> Result<(), PipelineError> {
            for (w, state, dt) in rx {
                let t = Instant::now();
                let inf = state
                    .map(|st| ctx.after(&w, st, |c, cur| after.after(c, cur)))
                    .transpose()?;
                if out.send((w, inf, dt + t.elapsed())).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let first = (|| {
            for w in windows {
                if control.stop_requested() {
                    break;
                }
                let t = Instant::now();
                let state = control
                    .detect()
                    .then(|| per_frame.per_frame(&w.input))
                    .transpose()?;
                if tx.send((w, state, t.elapsed())).is_err() {
                    break;
                }
            }
            Ok::<(), PipelineError>(())
        })();
        drop(tx);
        let second = second
            .join()
            .map_err(|_| PipelineError::Panicked("engine"))?;
        first.and(second)
    })
}
