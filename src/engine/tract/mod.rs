//! tract backend: pure-Rust CPU inference (`tract-onnx` 0.23.9).
//!
//! The ONNX file is decoded once ([`super::model::load_model_proto`]), its contract validated,
//! then the graph is typed with concrete input shapes, optimised and turned into runnable plans
//! — all at load time.
//!
//! **Frame split** (issue 16). tract's kernels are built for batch 1: at batch T its
//! convolutions fall back to an eager im2col and move axes around every 1×1 convolution. A model
//! whose metadata has `c3n.frame_split` (every export since issue 16) is therefore cut into
//! per-frame segments ([`super::split`]) typed at batch 1 and run frame by frame, TPAVI's clip
//! means taken by the engine in between (`frames`). Same maths as the whole graph (tested
//! against PyTorch in `tests/engine_tract.rs`). A model without the key, a T = 1 model, or a
//! split that does not type at batch 1 (logged as a warning) runs whole.
//!
//! **Threads** (`--threads N`). With the frame split, N workers take the window's (segment,
//! frame) jobs, each job single-threaded. A whole graph uses tract's intra-op pool of N threads
//! instead (rayon, tract-linalg `multithread-mm`: matrix products, depthwise convolutions, some
//! element-wise ops). Measured on 2 cores (t5): the intra-op pool for frames beside the workers
//! was slower than one thread per job (its per-node fan-out costs more than it gains at batch 1,
//! and its idle workers spin). N = 1: one thread.

use std::path::Path;
use std::time::Duration;

use ndarray::{Ix1, Ix2, Ix4};
use tract_linalg::multithread::Executor;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

mod frames;
mod plan;

use self::frames::{SplitPlans, States, Store};
use self::plan::{run_err, run_timed_state, typed_plan, Plan, NAME};
use super::model::{load_model_proto, ModelContract};
use super::split::FrameSplit;
use super::stream::{
    self, check_context, check_frame, AfterWorker, FrameState, PerFrameWorker, StreamWorkers,
};
use super::{
    audio_tensor, check_input, check_output, Engine, EngineError, EngineOptions, Inference,
    ModelInput,
};
use crate::util::threads::check_threads;

enum Plans {
    Whole(Plan),
    Split(SplitPlans),
}

/// A C3N model loaded, typed and optimised by tract.
pub struct TractEngine {
    contract: ModelContract,
    plans: Plans,
    /// `--threads` (1 when unset).
    threads: usize,
    /// The split's stage states for streaming ([`Engine::per_frame`] / [`Engine::after`]),
    /// spawned on first use.
    stream_states: Option<States>,
}

impl std::fmt::Debug for TractEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractEngine")
            .field("model", &self.contract.path)
            .field("frame_split", &self.is_frame_split())
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl TractEngine {
    /// Loads, validates, types and optimises `path`, with the frame split when the model has one
    /// (see the module docs).
    ///
    /// Errors: [`EngineError::Model`] (unreadable file, not ONNX, contract violations),
    /// [`EngineError::Load`] (tract cannot translate/optimise the graph),
    /// [`EngineError::Option`] (threads = 0 or > [`crate::util::threads::MAX_THREADS`]).
    pub fn load(path: &Path, options: &EngineOptions) -> Result<Self, EngineError> {
        Self::load_with(path, options, true)
    }

    /// [`Self::load`], with `frame_split = false` running the whole graph at batch T even when
    /// the model has a frame split (for comparisons: `examples/tract_profile.rs`, tests).
    pub fn load_with(
        path: &Path,
        options: &EngineOptions,
        frame_split: bool,
    ) -> Result<Self, EngineError> {
        let proto = load_model_proto(path)?;
        Self::from_proto(path, &proto, options, frame_split)
    }

    /// [`Self::load_with`] on an already decoded model (`path` names it in errors and logs).
    pub fn from_proto(
        path: &Path,
        proto: &ModelProto,
        options: &EngineOptions,
        frame_split: bool,
    ) -> Result<Self, EngineError> {
        let threads = match options.threads {
            None => 1,
            Some(n) => check_threads(n).map_err(|e| EngineError::Option(e.to_string()))?,
        };
        // tract's intra-op pool, for a whole graph only (see the module docs)
        let executor = || (threads > 1).then(|| Executor::multithread(threads));
        let contract = ModelContract::from_proto(path, proto)?;
        let split = match FrameSplit::from_proto(proto) {
            Ok(s) if frame_split && contract.clip_frames > 1 => s,
            Ok(_) => None,
            Err(e) => {
                tracing::warn!("{}: {e}; running the whole graph", path.display());
                None
            }
        };
        let plans = match split.map(|s| SplitPlans::build(path, proto, &contract, &s)) {
            Some(Ok(p)) => {
                tracing::debug!(
                    "{}: tract runs each window frame by frame ({} segments, {} worker(s))",
                    path.display(),
                    p.stages.len(),
                    threads.min(contract.clip_frames)
                );
                Plans::Split(p)
            }
            Some(Err(e)) => {
                tracing::warn!(
                    "{}: frame split not usable ({e}); running the whole graph",
                    path.display()
                );
                Plans::Whole(whole_plan(path, proto, &contract, executor())?)
            }
            None => Plans::Whole(whole_plan(path, proto, &contract, executor())?),
        };
        Ok(Self {
            contract,
            plans,
            threads,
            stream_states: None,
        })
    }

    /// Whether windows run frame by frame through the split graphs.
    pub fn is_frame_split(&self) -> bool {
        matches!(self.plans, Plans::Split(_))
    }
}

fn whole_plan(
    path: &Path,
    proto: &ModelProto,
    contract: &ModelContract,
    executor: Option<Executor>,
) -> Result<Plan, EngineError> {
    let facts: Vec<(DatumType, Vec<usize>)> = contract
        .input_shapes()
        .into_iter()
        .map(|(_, s)| (f32::datum_type(), s))
        .collect();
    typed_plan(path, proto, &facts, executor)
}

/// Time one kind of tract operator took in [`TractEngine::profile`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpTime {
    /// tract's operator name after optimisation (e.g. `Conv`, `DepthWise`, `OptMatMul`,
    /// `DeconvSum`); one optimised node may stand for several ONNX nodes (fusions).
    pub op: String,
    /// Nodes of the optimised plan with this operator.
    pub nodes: usize,
    /// Median over the profiled calls of the time in these nodes, ms per model call.
    pub ms_per_call: f64,
}

/// One node of the optimised plan in a [`Profile`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeTime {
    /// Node name (the ONNX node it comes from, with tract's suffixes).
    pub name: String,
    /// tract's operator name.
    pub op: String,
    /// Median time per model call, ms.
    pub ms_per_call: f64,
}

/// What [`TractEngine::profile`] measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Profile {
    /// Operators, slowest first.
    pub ops: Vec<OpTime>,
    /// Nodes, slowest first.
    pub nodes: Vec<NodeTime>,
    /// Median total node time per model call, ms.
    pub total_ms: f64,
}

impl TractEngine {
    /// tract's per-operator profile: runs `window` once to warm up, then `calls` times with a
    /// timer around every node of the optimised plan(s). A whole graph runs as in
    /// [`Engine::infer`] (same intra-op pool); a frame-split model runs its frames one after
    /// another on one thread, and a node's time is summed over the T frames; node names are
    /// prefixed with their segment (`per_frame.K/`, `after.K/`). Returns the
    /// operators and the nodes, slowest first, and the median total node time per call (the small
    /// remainder of a call's wall time is tract's scheduling and, when split, the clip means).
    ///
    /// Errors: [`EngineError::Run`] when tract fails; [`EngineError::InputShape`] for a window that
    /// does not fit the contract.
    pub fn profile(&self, window: &ModelInput, calls: usize) -> Result<Profile, EngineError> {
        check_input(&self.contract, window)?;
        let parts: Vec<(&str, &Plan)> = match &self.plans {
            Plans::Whole(p) => vec![("", p)],
            Plans::Split(sp) => sp
                .stages
                .iter()
                .map(|s| (s.label.as_str(), &s.plan))
                .collect(),
        };
        // per call, per part, per node
        let mut per_call: Vec<Vec<Vec<Duration>>> = Vec::new();
        for _ in 0..calls.max(1) + 1 {
            let mut times: Vec<Vec<Duration>> = parts
                .iter()
                .map(|(_, p)| vec![Duration::ZERO; p.model().nodes.len()])
                .collect();
            match &self.plans {
                Plans::Whole(plan) => {
                    let mut state = plan.spawn().map_err(|e| run_err(format!("{e:#}")))?;
                    let inputs = tvec![
                        Tensor::from(window.frames.clone()).into_tvalue(),
                        Tensor::from(audio_tensor(
                            self.contract.frontend.audio_input,
                            &window.audio_logmel
                        ))
                        .into_tvalue(),
                    ];
                    run_timed_state(&mut state, inputs, &mut times[0])?;
                }
                Plans::Split(sp) => {
                    sp.run_timed(window, &mut times)?;
                }
            }
            per_call.push(times);
        }
        per_call.remove(0); // warm-up
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut node_times = Vec::new();
        let mut by_op: std::collections::BTreeMap<String, (usize, Vec<f64>)> = Default::default();
        for (k, (prefix, plan)) in parts.iter().enumerate() {
            for n in &plan.model().nodes {
                let op = n.op().name().to_string();
                let per: Vec<f64> = per_call.iter().map(|t| ms(t[k][n.id])).collect();
                let e = by_op
                    .entry(op.clone())
                    .or_insert_with(|| (0, vec![0.0; per_call.len()]));
                e.0 += 1;
                e.1.iter_mut().zip(&per).for_each(|(acc, v)| *acc += v);
                node_times.push(NodeTime {
                    name: format!("{prefix}{}", n.name),
                    op,
                    ms_per_call: median(per),
                });
            }
        }
        node_times.sort_by(|a, b| b.ms_per_call.total_cmp(&a.ms_per_call));
        let total = median(
            per_call
                .iter()
                .map(|t| t.iter().flatten().map(|&d| ms(d)).sum())
                .collect(),
        );
        let mut ops: Vec<OpTime> = by_op
            .into_iter()
            .map(|(op, (nodes, ms))| OpTime {
                op,
                nodes,
                ms_per_call: median(ms),
            })
            .collect();
        ops.sort_by(|a, b| b.ms_per_call.total_cmp(&a.ms_per_call));
        Ok(Profile {
            ops,
            nodes: node_times,
            total_ms: total,
        })
    }
}

fn output_view<'a, T: Datum, D: ndarray::Dimension>(
    outputs: &'a [TValue],
    names: &[&str],
    i: usize,
) -> Result<ndarray::ArrayView<'a, T, D>, EngineError> {
    let name = names.get(i).copied().unwrap_or("?");
    let t = outputs
        .get(i)
        .ok_or_else(|| run_err(format!("output `{name}` missing")))?;
    t.to_plain_array_view::<T>()
        .map_err(|e| run_err(format!("output `{name}`: {e:#}")))?
        .into_dimensionality::<D>()
        .map_err(|e| run_err(format!("output `{name}` has shape {:?}: {e}", t.shape())))
}

/// The contract outputs of a model call (in [`ModelContract::output_names`] order) as an
/// [`Inference`].
fn inference(contract: &ModelContract, outputs: &[TValue]) -> Result<Inference, EngineError> {
    let n = contract.output_names();
    let mut inf = if contract.c3im {
        Inference {
            mask_logits: output_view::<f32, Ix4>(outputs, n, 0)?.to_owned(),
            visual_logits: output_view::<f32, Ix2>(outputs, n, 1)?.to_owned(),
            audio_logits: output_view::<f32, Ix2>(outputs, n, 2)?.to_owned(),
            unified_label: output_view::<i64, Ix1>(outputs, n, 3)?.to_vec(),
            c3im_score: output_view::<f32, Ix1>(outputs, n, 4)?.to_vec(),
            visual_logit_map: output_view::<f32, Ix4>(outputs, n, 5)?.to_owned(),
            c3im_affinity: output_view::<f32, Ix2>(outputs, n, 6)?.to_owned(),
            in_view: None,
        }
    } else {
        Inference::without_c3im(
            output_view::<f32, Ix4>(outputs, n, 0)?.to_owned(),
            output_view::<f32, Ix2>(outputs, n, 1)?.to_owned(),
        )
    };
    if contract.in_view {
        // the last output (issue 26)
        inf.in_view = Some(output_view::<f32, Ix1>(outputs, n, n.len() - 1)?.to_vec());
    }
    check_output(contract, &inf).map_err(|e| run_err(e.to_string()))?;
    Ok(inf)
}

/// The streaming parts of a split model with their stage states: the engine's own
/// ([`Engine::per_frame`] / [`Engine::after`], states kept between calls) or one per thread
/// ([`Engine::stream_workers`]).
struct SplitWorker<'a> {
    split: &'a SplitPlans,
    contract: &'a ModelContract,
    states: States,
}

impl<'a> SplitWorker<'a> {
    /// With `states` (spawned on first use), or new ones.
    fn new(split: &'a SplitPlans, contract: &'a ModelContract, states: Option<States>) -> Self {
        Self {
            split,
            contract,
            states: states.unwrap_or_else(|| States::new(&split.stages)),
        }
    }
}

impl PerFrameWorker for SplitWorker<'_> {
    fn per_frame(&mut self, frame: &ModelInput) -> Result<FrameState, EngineError> {
        check_frame(self.contract, frame)?;
        Ok(FrameState::parts(
            self.split.per_frame(frame, &mut self.states)?,
        ))
    }
}

impl AfterWorker for SplitWorker<'_> {
    fn after(
        &mut self,
        context: &[&FrameState],
        current: &FrameState,
    ) -> Result<Inference, EngineError> {
        check_context(self.contract, context.len())?;
        let context = context
            .iter()
            .map(|st| split_store(st))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = self
            .split
            .after(&context, split_store(current)?, &mut self.states)?;
        let mut one = self.contract.clone();
        one.clip_frames = 1;
        inference(&one, &outputs)
    }
}

/// The split's store in a state made by [`TractEngine::per_frame`].
fn split_store(st: &FrameState) -> Result<&Store, EngineError> {
    st.downcast::<Store>()
        .ok_or_else(|| run_err("a frame state made by another engine was passed as context".into()))
}

impl Engine for TractEngine {
    fn infer(&mut self, window: &ModelInput) -> Result<Inference, EngineError> {
        check_input(&self.contract, window)?;
        let outputs = match &self.plans {
            Plans::Whole(plan) => plan
                .run(tvec![
                    Tensor::from(window.frames.clone()).into_tvalue(),
                    Tensor::from(audio_tensor(
                        self.contract.frontend.audio_input,
                        &window.audio_logmel
                    ))
                    .into_tvalue(),
                ])
                .map_err(|e| run_err(format!("{e:#}")))?,
            Plans::Split(split) => split.run(window, self.threads)?,
        };
        inference(&self.contract, &outputs)
    }

    fn per_frame(&mut self, frame: &ModelInput) -> Result<FrameState, EngineError> {
        let Plans::Split(split) = &self.plans else {
            return stream::keep_input(&self.contract, frame);
        };
        let mut worker = SplitWorker::new(split, &self.contract, self.stream_states.take());
        let state = worker.per_frame(frame);
        self.stream_states = Some(worker.states);
        state
    }

    fn after(
        &mut self,
        context: &[&FrameState],
        current: &FrameState,
    ) -> Result<Inference, EngineError> {
        let Plans::Split(split) = &self.plans else {
            return stream::rerun_window(self, context, current);
        };
        let mut worker = SplitWorker::new(split, &self.contract, self.stream_states.take());
        let inf = worker.after(context, current);
        self.stream_states = Some(worker.states);
        inf
    }

    fn streams_by_parts(&self) -> bool {
        self.contract.clip_frames == 1 || self.is_frame_split()
    }

    fn stream_workers(&mut self) -> Option<StreamWorkers<'_>> {
        let Plans::Split(split) = &self.plans else {
            return None;
        };
        if self.threads < 2 {
            return None;
        }
        let contract = &self.contract;
        Some(StreamWorkers {
            per_frame: Box::new(SplitWorker::new(split, contract, None)),
            after: Box::new(SplitWorker::new(split, contract, None)),
        })
    }

    fn name(&self) -> &str {
        NAME
    }

    fn contract(&self) -> &ModelContract {
        &self.contract
    }
}
