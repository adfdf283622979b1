//! tract backend: pure-Rust CPU inference (`tract-onnx` 0.23.9).
//!
//! The ONNX file is decoded once ([`super::model::load_model_proto`]), its contract validated,
//! then the graph is typed with concrete input shapes, optimised and turned into runnable plans
//! — all at load time.
//!
//! **Frame split** (issue 16). tract's kernels are built for batch 1: at batch T its
//! convolutions fall back to an eager im2col and move axes around every 1×1 convolution. A model
//! whose metadata has `c3n.frame_split` (every export since issue 16) is therefore cut into two
//! per-frame graphs ([`super::split`]) typed at batch 1: the window's T frames run through the
//! first one by one, the TPAVI clip means are taken here, and the frames run through the second.
//! Same maths as the whole graph (tested against PyTorch in `tests/engine_tract.rs`). A model
//! without the key, a T = 1 model, or a split that does not type at batch 1 (logged) runs whole.
//!
//! **Threads** (`--threads N`). With the frame split, N frames run at once on N threads, each
//! single-threaded; the frames left over (T mod N) run one after another ([`run_frames`]). A
//! whole graph uses tract's intra-op pool of N threads instead (rayon, tract-linalg
//! `multithread-mm`: matrix products, depthwise convolutions, some element-wise ops). N = 1: one
//! thread.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::{s, ArrayViewD, Ix1, Ix2, Ix4};
use tract_linalg::multithread::Executor;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use super::model::{load_model_proto, ModelContract, OUTPUTS};
use super::split::{clip_mean, split_graph, FrameSplit, SplitGraphs};
use super::{check_input, check_output, Engine, EngineError, EngineOptions, Inference, ModelInput};

/// Upper bound for `--threads` (guards rayon against absurd values).
pub const MAX_THREADS: usize = 256;

const NAME: &str = "tract";

type Plan = Arc<TypedRunnableModel>;

/// The two batch-1 plans of a frame-split model.
struct SplitPlans {
    /// `frames`, `audio_logmel` [1,…] → before-outputs, clip means' `frame` tensors, carries.
    per_frame: Plan,
    /// clip means' `clip` tensors, carries → after-outputs.
    after: Plan,
    /// For each contract output (in [`OUTPUTS`] order): `(false, i)` = output i of `per_frame`,
    /// `(true, i)` = output i of `after`.
    sources: Vec<(bool, usize)>,
    /// Before-outputs of `per_frame` (its clip-mean inputs start there).
    n_before: usize,
    /// Clip means.
    n_clip: usize,
}

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
    /// [`EngineError::Option`] (threads = 0 or > [`MAX_THREADS`]).
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
            Some(n @ 1..=MAX_THREADS) => n,
            Some(n) => {
                return Err(EngineError::Option(format!(
                    "threads must be 1..={MAX_THREADS}, got {n}"
                )))
            }
        };
        // tract's intra-op pool, for a whole graph only (see `run_frames`)
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
        let plans = match split.map(|s| split_plans(path, proto, &contract, &s)) {
            Some(Ok(p)) => Plans::Split(p),
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
        })
    }

    /// Whether windows run frame by frame through the split graphs.
    pub fn is_frame_split(&self) -> bool {
        matches!(self.plans, Plans::Split(_))
    }
}

fn load_err(path: &Path, stage: &str, e: TractError) -> EngineError {
    EngineError::Load {
        backend: NAME,
        path: path.to_path_buf(),
        message: format!("{stage}: {e:#}"),
    }
}

/// Parses `proto` with tract, sets `shapes` (f32) on its inputs, optimises it and makes a plan.
fn typed_plan(
    path: &Path,
    proto: &ModelProto,
    shapes: &[Vec<usize>],
    executor: Option<Executor>,
) -> Result<Plan, EngineError> {
    let mut model = tract_onnx::onnx()
        .model_for_proto_model(proto)
        .map_err(|e| load_err(path, "parse", e))?;
    for (i, shape) in shapes.iter().enumerate() {
        model
            .set_input_fact(i, InferenceFact::dt_shape(f32::datum_type(), shape))
            .map_err(|e| load_err(path, "input fact", e))?;
    }
    let typed = model
        .into_optimized()
        .map_err(|e| load_err(path, "optimise", e))?;
    let run_options = RunOptions {
        executor,
        ..Default::default()
    };
    typed
        .into_runnable_with_options(&run_options)
        .map_err(|e| load_err(path, "plan", e))
}

fn whole_plan(
    path: &Path,
    proto: &ModelProto,
    contract: &ModelContract,
    executor: Option<Executor>,
) -> Result<Plan, EngineError> {
    let shapes: Vec<Vec<usize>> = contract
        .input_shapes()
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    typed_plan(path, proto, &shapes, executor)
}

/// The two batch-1 plans of `split` (no executor: [`run_frames`] chooses the threads).
fn split_plans(
    path: &Path,
    proto: &ModelProto,
    contract: &ModelContract,
    split: &FrameSplit,
) -> Result<SplitPlans, EngineError> {
    let SplitGraphs {
        per_frame,
        after,
        before_outputs,
        after_outputs,
    } = split_graph(proto, split).map_err(|e| EngineError::Load {
        backend: NAME,
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let frame_shapes: Vec<Vec<usize>> = contract
        .input_shapes()
        .into_iter()
        .map(|(_, mut s)| {
            s[0] = 1;
            s
        })
        .collect();
    let per_frame = typed_plan(path, &per_frame, &frame_shapes, None)?;
    // the after part's inputs: the clip means (shaped as their frame tensors), then the carries
    let n_before = before_outputs.len();
    let n_clip = split.clip_means.len();
    let mut after_shapes = Vec::new();
    for i in n_before..n_before + n_clip + split.carry.len() {
        let fact = per_frame
            .model()
            .output_fact(i)
            .map_err(|e| load_err(path, "split output fact", e))?;
        let shape = fact.shape.as_concrete().ok_or_else(|| EngineError::Load {
            backend: NAME,
            path: path.to_path_buf(),
            message: format!("split tensor {i} has no concrete shape: {fact:?}"),
        })?;
        after_shapes.push(shape.to_vec());
    }
    let after = typed_plan(path, &after, &after_shapes, None)?;
    let sources = OUTPUTS
        .iter()
        .map(|name| {
            let pos = |v: &[String]| v.iter().position(|o| o == name);
            match (pos(&before_outputs), pos(&after_outputs)) {
                (Some(i), _) => Ok((false, i)),
                (None, Some(i)) => Ok((true, i)),
                (None, None) => Err(EngineError::Load {
                    backend: NAME,
                    path: path.to_path_buf(),
                    message: format!("frame split: no part computes output `{name}`"),
                }),
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(SplitPlans {
        per_frame,
        after,
        sources,
        n_before,
        n_clip,
    })
}

/// Runs `plan` once per entry of `inputs` (one frame each) and returns the outputs in frame
/// order. With `threads` > 1, frames run `threads` at a time on scoped threads; the T mod
/// `threads` frames left over run one after another on this thread. Every frame runs
/// single-threaded: measured on 2 cores (t5, `--threads 2`), giving the left-over frame tract's
/// intra-op pool made it slower (its per-node fan-out costs more than the matrix products gain at
/// batch 1) and slowed the parallel frames too (the pool's idle workers spin).
fn run_frames(
    plan: &Plan,
    inputs: Vec<TVec<Tensor>>,
    threads: usize,
) -> Result<Vec<TVec<Tensor>>, EngineError> {
    let run_one = |input: TVec<Tensor>| -> Result<TVec<Tensor>, EngineError> {
        let out = plan
            .run(input.into_iter().map(IntoTValue::into_tvalue).collect())
            .map_err(|e| run_err(format!("{e:#}")))?;
        Ok(out.into_iter().map(|v| v.into_tensor()).collect())
    };
    let t = inputs.len();
    let parallel = match threads {
        0 | 1 => 0,
        n if n >= t => t,
        n => t - t % n,
    };
    let workers = threads.min(parallel.max(1));
    let mut results: Vec<Option<Result<TVec<Tensor>, EngineError>>> = (0..t).map(|_| None).collect();
    let mut queues: Vec<Vec<(usize, TVec<Tensor>)>> = (0..workers).map(|_| Vec::new()).collect();
    let mut rest = Vec::new();
    for (i, input) in inputs.into_iter().enumerate() {
        if i < parallel {
            queues[i % workers].push((i, input));
        } else {
            rest.push((i, input));
        }
    }
    if parallel > 0 {
        std::thread::scope(|scope| {
            let handles: Vec<_> = queues
                .into_iter()
                .map(|queue| {
                    scope.spawn(|| {
                        queue
                            .into_iter()
                            .map(|(i, input)| (i, run_one(input)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                match h.join() {
                    Ok(done) => done.into_iter().for_each(|(i, r)| results[i] = Some(r)),
                    Err(_) => results.push(Some(Err(run_err("a frame thread panicked".into())))),
                }
            }
        });
    }
    for (i, input) in rest {
        results[i] = Some(run_one(input));
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(run_err("a frame was not run".into()))))
        .collect()
}

/// How [`SplitPlans::run_with`] runs one part on the T frames: `(is_after_part, plan, one input
/// set per frame)` → one output set per frame, in frame order.
type FrameRunner<'a> = dyn FnMut(bool, &Plan, Vec<TVec<Tensor>>) -> Result<Vec<TVec<Tensor>>, EngineError>
    + 'a;

impl SplitPlans {
    /// One window [T,…] frame by frame ([`run_frames`] with these threads): the outputs in
    /// [`OUTPUTS`] order, each [T,…].
    fn run(&self, window: &ModelInput, threads: usize) -> Result<TVec<TValue>, EngineError> {
        self.run_with(window, &mut |_, plan, inputs| run_frames(plan, inputs, threads))
    }

    /// [`Self::run`] with `runner` running each part on the frames.
    fn run_with(
        &self,
        window: &ModelInput,
        runner: &mut FrameRunner<'_>,
    ) -> Result<TVec<TValue>, EngineError> {
        let t = window.frames.shape()[0];
        let inputs = (0..t)
            .map(|i| {
                tvec![
                    Tensor::from(window.frames.slice(s![i..i + 1, .., .., ..]).to_owned()),
                    Tensor::from(window.audio_logmel.slice(s![i..i + 1, .., .., ..]).to_owned()),
                ]
            })
            .collect();
        let mut before = runner(false, &self.per_frame, inputs)?;
        let (n0, n1) = (self.n_before, self.n_before + self.n_clip);
        let mut clips = Vec::with_capacity(self.n_clip);
        for j in n0..n1 {
            let views = before
                .iter()
                .map(|o| o[j].to_plain_array_view::<f32>())
                .collect::<TractResult<Vec<ArrayViewD<f32>>>>()
                .map_err(|e| run_err(format!("clip mean input: {e:#}")))?;
            clips.push(Tensor::from(clip_mean(&views).map_err(run_err)?));
        }
        let after_inputs = before
            .iter_mut()
            .map(|o| clips.iter().cloned().chain(o.drain(n1..)).collect())
            .collect();
        let after = runner(true, &self.after, after_inputs)?;
        self.sources
            .iter()
            .map(|&(in_after, k)| {
                let part = if in_after { &after } else { &before };
                let frames: Vec<&Tensor> = part.iter().map(|o| &o[k]).collect();
                Tensor::stack_tensors(0, &frames)
                    .map(IntoTValue::into_tvalue)
                    .map_err(|e| run_err(format!("stacking frames: {e:#}")))
            })
            .collect()
    }
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
    /// another on one thread, and a node's time is summed over the T frames. Node names of the part after the clip means are prefixed `after/`. Returns the
    /// operators and the nodes, slowest first, and the median total node time per call (the small
    /// remainder of a call's wall time is tract's scheduling and, when split, the clip means).
    ///
    /// Errors: [`EngineError::Run`] when tract fails; [`EngineError::InputShape`] for a window that
    /// does not fit the contract.
    pub fn profile(&self, window: &ModelInput, calls: usize) -> Result<Profile, EngineError> {
        check_input(&self.contract, window)?;
        let parts: Vec<(&str, &Plan)> = match &self.plans {
            Plans::Whole(p) => vec![("", p)],
            Plans::Split(sp) => vec![("", &sp.per_frame), ("after/", &sp.after)],
        };
        // per call, per part, per node
        let mut per_call: Vec<Vec<Vec<Duration>>> = Vec::new();
        for _ in 0..calls.max(1) + 1 {
            let mut times: Vec<Vec<Duration>> = parts
                .iter()
                .map(|(_, p)| vec![Duration::ZERO; p.model().nodes.len()])
                .collect();
            let mut run = |part: usize,
                           plan: &Plan,
                           inputs: Vec<TVec<Tensor>>|
             -> Result<Vec<TVec<Tensor>>, EngineError> {
                let mut state = tract_onnx::tract_core::plan::SimpleState::new(plan)
                    .map_err(|e| run_err(format!("{e:#}")))?;
                let mut outs = Vec::with_capacity(inputs.len());
                for input in inputs {
                    let input: TVec<TValue> =
                        input.into_iter().map(IntoTValue::into_tvalue).collect();
                    let go = || {
                        state.run_plan_with_eval(input, |ctx, op_state, node, input| {
                            let t = Instant::now();
                            let r = tract_onnx::tract_core::plan::eval(ctx, op_state, node, input);
                            times[part][node.id] += t.elapsed();
                            r
                        })
                    };
                    let out = go().map_err(|e| run_err(format!("{e:#}")))?;
                    outs.push(out.into_iter().map(|v| v.into_tensor()).collect());
                }
                Ok(outs)
            };
            match &self.plans {
                Plans::Whole(plan) => {
                    run(0, plan, vec![tvec![
                        Tensor::from(window.frames.clone()),
                        Tensor::from(window.audio_logmel.clone()),
                    ]])?;
                }
                Plans::Split(sp) => {
                    sp.run_with(window, &mut |after, plan, inputs| {
                        run(usize::from(after), plan, inputs)
                    })?;
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

fn run_err(message: String) -> EngineError {
    EngineError::Run {
        backend: NAME,
        message,
    }
}

fn output_view<'a, T: Datum, D: ndarray::Dimension>(
    outputs: &'a [TValue],
    i: usize,
) -> Result<ndarray::ArrayView<'a, T, D>, EngineError> {
    let name = OUTPUTS[i];
    let t = outputs
        .get(i)
        .ok_or_else(|| run_err(format!("output `{name}` missing")))?;
    t.to_plain_array_view::<T>()
        .map_err(|e| run_err(format!("output `{name}`: {e:#}")))?
        .into_dimensionality::<D>()
        .map_err(|e| run_err(format!("output `{name}` has shape {:?}: {e}", t.shape())))
}

impl Engine for TractEngine {
    fn infer(&mut self, window: &ModelInput) -> Result<Inference, EngineError> {
        check_input(&self.contract, window)?;
        let outputs = match &self.plans {
            Plans::Whole(plan) => plan
                .run(tvec![
                    Tensor::from(window.frames.clone()).into_tvalue(),
                    Tensor::from(window.audio_logmel.clone()).into_tvalue(),
                ])
                .map_err(|e| run_err(format!("{e:#}")))?,
            Plans::Split(split) => split.run(window, self.threads)?,
        };
        let inf = Inference {
            mask_logits: output_view::<f32, Ix4>(&outputs, 0)?.to_owned(),
            visual_logits: output_view::<f32, Ix2>(&outputs, 1)?.to_owned(),
            audio_logits: output_view::<f32, Ix2>(&outputs, 2)?.to_owned(),
            unified_label: output_view::<i64, Ix1>(&outputs, 3)?.to_vec(),
            c3im_score: output_view::<f32, Ix1>(&outputs, 4)?.to_vec(),
            visual_logit_map: output_view::<f32, Ix4>(&outputs, 5)?.to_owned(),
            c3im_affinity: output_view::<f32, Ix2>(&outputs, 6)?.to_owned(),
        };
        check_output(&self.contract, &inf).map_err(run_err)?;
        Ok(inf)
    }

    fn name(&self) -> &str {
        NAME
    }

    fn contract(&self) -> &ModelContract {
        &self.contract
    }
}
