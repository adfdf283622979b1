//! tract plans: typing and optimising a graph into a runnable plan, running a plan with a timer
//! around every node, and the backend's errors. Shared by the whole-graph engine
//! ([`super::TractEngine`]) and the frame-split scheduler ([`super::frames`]).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::SimpleState;

use crate::engine::EngineError;

/// The backend's name in errors and `--backend`.
pub(in crate::engine) const NAME: &str = "tract";

/// A runnable tract plan.
pub(super) type Plan = Arc<TypedRunnableModel>;
/// A plan's running state (spawned once, reused for the next runs).
pub(super) type State = SimpleState<TypedFact, Box<dyn TypedOp>>;

/// An [`EngineError::Run`] of this backend.
pub(super) fn run_err(message: String) -> EngineError {
    EngineError::Run {
        backend: NAME,
        message,
    }
}

/// An [`EngineError::Load`] of this backend for the model file `path`.
pub(super) fn load_err(path: &Path, message: String) -> EngineError {
    EngineError::Load {
        backend: NAME,
        path: path.to_path_buf(),
        message,
    }
}

/// Parses `proto` with tract, sets `facts` on its inputs, optimises it and makes a plan with
/// `executor` (`None`: single-threaded).
pub(super) fn typed_plan(
    path: &Path,
    proto: &ModelProto,
    facts: &[(DatumType, Vec<usize>)],
    executor: Option<tract_linalg::multithread::Executor>,
) -> Result<Plan, EngineError> {
    let err = |stage: &str, e: TractError| load_err(path, format!("{stage}: {e:#}"));
    let mut model = tract_onnx::onnx()
        .model_for_proto_model(proto)
        .map_err(|e| err("parse", e))?;
    for (i, (dt, shape)) in facts.iter().enumerate() {
        model
            .set_input_fact(i, InferenceFact::dt_shape(*dt, shape))
            .map_err(|e| err("input fact", e))?;
    }
    let typed = model.into_optimized().map_err(|e| err("optimise", e))?;
    let run_options = RunOptions {
        executor,
        ..Default::default()
    };
    typed
        .into_runnable_with_options(&run_options)
        .map_err(|e| err("plan", e))
}

/// Runs `state` on `inputs` with a timer around every node, adding each node's time to
/// `times[node]` (the profiler's run).
pub(super) fn run_timed_state(
    state: &mut State,
    inputs: TVec<TValue>,
    times: &mut [Duration],
) -> Result<TVec<TValue>, EngineError> {
    state
        .run_plan_with_eval(inputs, |ctx, op_state, node, input| {
            let t = Instant::now();
            let r = tract_onnx::tract_core::plan::eval(ctx, op_state, node, input);
            times[node.id] += t.elapsed();
            r
        })
        .map_err(|e| run_err(format!("{e:#}")))
}
