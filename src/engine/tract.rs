//! tract backend: pure-Rust CPU inference (`tract-onnx` 0.23.9).
//!
//! The ONNX file is decoded once ([`super::model::load_model_proto`]), its contract validated,
//! then the graph is typed with the contract's concrete input shapes (`frames [T,3,S,S]`,
//! `audio_logmel [T,1,96,64]`), optimised and turned into a runnable plan — all at load time.
//!
//! Threads: tract's matrix products run on a private rayon pool of `threads` workers when
//! [`EngineOptions::threads`] is > 1 (tract-linalg feature `multithread-mm`); otherwise tract
//! runs single-threaded. Element-wise ops and convolutions other than the matmul kernels may
//! stay single-threaded — that is tract's choice, not configurable here.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::{Ix1, Ix2, Ix4};
use tract_linalg::multithread::Executor;
use tract_onnx::prelude::*;

use super::model::{load_model_proto, ModelContract, OUTPUTS};
use super::{check_input, check_output, Engine, EngineError, EngineOptions, Inference, ModelInput};

/// Upper bound for `--threads` (guards rayon against absurd values).
pub const MAX_THREADS: usize = 256;

const NAME: &str = "tract";

/// A C3N model loaded, typed and optimised by tract.
pub struct TractEngine {
    contract: ModelContract,
    plan: Arc<TypedRunnableModel>,
}

impl std::fmt::Debug for TractEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractEngine")
            .field("model", &self.contract.path)
            .finish_non_exhaustive()
    }
}

impl TractEngine {
    /// Loads, validates, types and optimises `path`.
    ///
    /// Errors: [`EngineError::Model`] (unreadable file, not ONNX, contract violations),
    /// [`EngineError::Load`] (tract cannot translate/optimise the graph),
    /// [`EngineError::Option`] (threads = 0 or > [`MAX_THREADS`]).
    pub fn load(path: &Path, options: &EngineOptions) -> Result<Self, EngineError> {
        let executor = match options.threads {
            None | Some(1) => None,
            Some(n @ 2..=MAX_THREADS) => Some(Executor::multithread(n)),
            Some(n) => {
                return Err(EngineError::Option(format!(
                    "threads must be 1..={MAX_THREADS}, got {n}"
                )))
            }
        };
        let proto = load_model_proto(path)?;
        let contract = ModelContract::from_proto(path, &proto)?;
        let load_err = |stage: &str, e: TractError| EngineError::Load {
            backend: NAME,
            path: path.to_path_buf(),
            message: format!("{stage}: {e:#}"),
        };
        let mut model = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .map_err(|e| load_err("parse", e))?;
        for (i, (_, shape)) in contract.input_shapes().iter().enumerate() {
            model
                .set_input_fact(i, InferenceFact::dt_shape(f32::datum_type(), shape))
                .map_err(|e| load_err("input fact", e))?;
        }
        let typed = model
            .into_optimized()
            .map_err(|e| load_err("optimise", e))?;
        let run_options = RunOptions {
            executor,
            ..Default::default()
        };
        let plan = typed
            .into_runnable_with_options(&run_options)
            .map_err(|e| load_err("plan", e))?;
        Ok(Self { contract, plan })
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
    /// timer around every node of the optimised plan (same executor and threads as
    /// [`Engine::infer`]). Returns the operators and the nodes, slowest first, and the median
    /// total node time per call (the small remainder of a call's wall time is tract's scheduling).
    ///
    /// Errors: [`EngineError::Run`] when tract fails; [`EngineError::InputShape`] for a window that
    /// does not fit the contract.
    pub fn profile(&self, window: &ModelInput, calls: usize) -> Result<Profile, EngineError> {
        check_input(&self.contract, window)?;
        let nodes = self.plan.model().nodes.len();
        let mut per_call: Vec<Vec<Duration>> = Vec::new();
        let mut state = tract_onnx::tract_core::plan::SimpleState::new(&self.plan)
            .map_err(|e| run_err(format!("{e:#}")))?;
        for _ in 0..calls.max(1) + 1 {
            let inputs: TVec<TValue> = tvec![
                Tensor::from(window.frames.clone()).into_tvalue(),
                Tensor::from(window.audio_logmel.clone()).into_tvalue(),
            ];
            let mut times = vec![Duration::ZERO; nodes];
            state
                .run_plan_with_eval(inputs, |ctx, op_state, node, input| {
                    let t = Instant::now();
                    let r = tract_onnx::tract_core::plan::eval(ctx, op_state, node, input);
                    times[node.id] += t.elapsed();
                    r
                })
                .map_err(|e| run_err(format!("{e:#}")))?;
            per_call.push(times);
        }
        per_call.remove(0); // warm-up
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let mut node_times: Vec<NodeTime> = self
            .plan
            .model()
            .nodes
            .iter()
            .map(|n| NodeTime {
                name: n.name.clone(),
                op: n.op().name().to_string(),
                ms_per_call: median(
                    per_call
                        .iter()
                        .map(|t| t[n.id].as_secs_f64() * 1e3)
                        .collect(),
                ),
            })
            .collect();
        node_times.sort_by(|a, b| b.ms_per_call.total_cmp(&a.ms_per_call));
        let mut by_op: std::collections::BTreeMap<String, (usize, Vec<f64>)> = Default::default();
        for node in &self.plan.model().nodes {
            let e = by_op
                .entry(node.op().name().to_string())
                .or_insert_with(|| (0, vec![0.0; per_call.len()]));
            e.0 += 1;
            for (acc, times) in e.1.iter_mut().zip(&per_call) {
                *acc += times[node.id].as_secs_f64() * 1e3;
            }
        }
        let total = median(
            per_call
                .iter()
                .map(|t| t.iter().map(|d| d.as_secs_f64() * 1e3).sum())
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
        let inputs: TVec<TValue> = tvec![
            Tensor::from(window.frames.clone()).into_tvalue(),
            Tensor::from(window.audio_logmel.clone()).into_tvalue(),
        ];
        let outputs = self
            .plan
            .run(inputs)
            .map_err(|e| run_err(format!("{e:#}")))?;
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
