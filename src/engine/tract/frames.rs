//! A frame-split model on tract (issue 16): its segments ([`crate::engine::split`]) typed at batch 1
//! and run frame by frame, on one thread or scheduled over several.
//!
//! Data flow: each frame has a store of named tensors, first its `frames` / `audio_logmel`
//! slices [1,…]. A stage (segment) takes its inputs from the frame's store and puts its outputs
//! back. Stages run in chain order on a frame; the first stage after the clip means waits for
//! every frame to finish the stages before, then the clip means (the mean of each `frame` tensor
//! over the T frames, [`crate::engine::split::clip_mean`]) are put in every store. The contract outputs
//! are stacked from the stores at the end.
//!
//! Threads: with N > 1 threads, N workers take ready (stage, frame) jobs, lowest stage first
//! then lowest frame, each running its jobs single-threaded with one tract state per stage.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use ndarray::{s, ArrayViewD};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use super::plan::{load_err, run_err, run_timed_state, typed_plan, Plan, State};
use crate::engine::audio_tensor;
use crate::engine::model::ModelContract;
use crate::engine::split::{clip_mean, split_graph, FrameSplit, SplitGraphs};
use crate::engine::{EngineError, ModelInput};
use crate::frontend::AudioInput;

/// One frame's named tensors.
pub(super) type Store = HashMap<String, Tensor>;

/// One segment typed at batch 1.
pub(super) struct Stage {
    /// The plan (no intra-op executor).
    pub plan: Plan,
    /// Its inputs, by name, in the plan's order.
    inputs: Vec<String>,
    /// Whether each input is moved out of the store (read by no later stage and not a contract
    /// output) or cloned.
    moves: Vec<bool>,
    /// Its outputs, by name, in the plan's order.
    outputs: Vec<String>,
    /// Prefix of its node names in profiles (`per_frame.0/`, `after.1/`, …).
    pub label: String,
}

/// The stages of a frame-split model.
pub(super) struct SplitPlans {
    /// Segments before the clip means, then those after.
    pub stages: Vec<Stage>,
    /// Index of the first stage after the clip means.
    barrier: usize,
    /// `(frame, clip)` tensor names of each clip mean.
    clip_means: Vec<(String, String)>,
    /// The whole graph's input names (`frames`, `audio_logmel` or `audio_waveform`).
    inputs: [String; 2],
    /// The contract's output names, in order.
    outputs: &'static [&'static str],
    /// How the audio input is fed ([`audio_tensor`]).
    audio_input: AudioInput,
}

impl SplitPlans {
    /// Cuts `proto` at `split` and types every segment at batch 1, in chain order (each
    /// segment's input facts are the earlier segments' output facts).
    ///
    /// Errors: [`EngineError::Load`] when the split does not cut the graph, a segment does not
    /// type at batch 1.
    pub fn build(
        path: &Path,
        proto: &ModelProto,
        contract: &ModelContract,
        split: &FrameSplit,
    ) -> Result<Self, EngineError> {
        // every contract output is among the graph's outputs (`ModelContract` checked the
        // signature), so among `before_outputs` or `after_outputs`
        let SplitGraphs {
            per_frame, after, ..
        } = split_graph(proto, split).map_err(|e| load_err(path, e.to_string()))?;
        let [(in0, s0), (in1, s1)] = contract.input_shapes();
        let mut facts: HashMap<String, (DatumType, Vec<usize>)> = HashMap::new();
        for (name, mut shape) in [(in0, s0), (in1, s1)] {
            shape[0] = 1;
            facts.insert(name.to_string(), (f32::datum_type(), shape));
        }
        let barrier = per_frame.len();
        let mut stages = Vec::new();
        for (k, seg) in per_frame.into_iter().chain(after).enumerate() {
            if k == barrier {
                for c in &split.clip_means {
                    let fact = facts.get(&c.frame).cloned().ok_or_else(|| {
                        load_err(path, format!("frame split: `{}` is not computed", c.frame))
                    })?;
                    facts.insert(c.clip.clone(), fact);
                }
            }
            let input_facts = seg
                .inputs
                .iter()
                .map(|n| {
                    facts.get(n).cloned().ok_or_else(|| {
                        load_err(
                            path,
                            format!("frame split: `{n}` is read before it is computed"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let plan = typed_plan(path, &seg.model, &input_facts, None)?;
            for (i, name) in seg.outputs.iter().enumerate() {
                let fact = plan
                    .model()
                    .output_fact(i)
                    .map_err(|e| load_err(path, format!("output fact: {e:#}")))?;
                let shape = fact.shape.as_concrete().ok_or_else(|| {
                    load_err(path, format!("`{name}` has no concrete shape: {fact:?}"))
                })?;
                facts.insert(name.clone(), (fact.datum_type, shape.to_vec()));
            }
            let label = if k < barrier {
                format!("per_frame.{k}/")
            } else {
                format!("after.{}/", k - barrier)
            };
            stages.push(Stage {
                plan,
                inputs: seg.inputs,
                moves: Vec::new(),
                outputs: seg.outputs,
                label,
            });
        }
        // an input is moved out of the store unless a later stage or the caller reads it
        let outputs = contract.output_names();
        let finals: HashSet<&str> = outputs.iter().copied().collect();
        let read_later: Vec<HashSet<String>> = (0..stages.len())
            .map(|k| {
                stages[k + 1..]
                    .iter()
                    .flat_map(|s| s.inputs.iter().cloned())
                    .collect()
            })
            .collect();
        for (stage, later) in stages.iter_mut().zip(&read_later) {
            stage.moves = stage
                .inputs
                .iter()
                .map(|n| !finals.contains(n.as_str()) && !later.contains(n))
                .collect();
        }
        Ok(Self {
            stages,
            barrier,
            clip_means: split
                .clip_means
                .iter()
                .map(|c| (c.frame.clone(), c.clip.clone()))
                .collect(),
            inputs: [in0.to_string(), in1.to_string()],
            outputs,
            audio_input: contract.frontend.audio_input,
        })
    }

    /// The T frames' stores, each with its `frames` and `audio_logmel` slice [1,…].
    fn stores(&self, window: &ModelInput) -> Vec<Store> {
        (0..window.frames.shape()[0])
            .map(|i| {
                let mut st = Store::new();
                st.insert(
                    self.inputs[0].clone(),
                    Tensor::from(window.frames.slice(s![i..i + 1, .., .., ..]).to_owned()),
                );
                st.insert(
                    self.inputs[1].clone(),
                    Tensor::from(audio_tensor(
                        self.audio_input,
                        &window
                            .audio_logmel
                            .slice(s![i..i + 1, .., .., ..])
                            .to_owned(),
                    )),
                );
                st
            })
            .collect()
    }

    fn take_inputs(&self, store: &mut Store, k: usize) -> Result<TVec<TValue>, EngineError> {
        let stage = &self.stages[k];
        stage
            .inputs
            .iter()
            .zip(&stage.moves)
            .map(|(name, &mv)| {
                let t = if mv {
                    store.remove(name)
                } else {
                    store.get(name).cloned()
                };
                t.map(IntoTValue::into_tvalue)
                    .ok_or_else(|| run_err(format!("frame split: `{name}` missing")))
            })
            .collect()
    }

    fn put_outputs(&self, store: &mut Store, k: usize, outputs: TVec<TValue>) {
        for (name, v) in self.stages[k].outputs.iter().zip(outputs) {
            store.insert(name.clone(), v.into_tensor());
        }
    }

    /// Puts each clip mean's `clip` tensor (the mean of its `frame` tensor) in every store.
    fn clip_means(&self, stores: &mut [Store]) -> Result<(), EngineError> {
        for (frame, clip) in &self.clip_means {
            let mean = mean_of(frame, stores.iter())?;
            for st in stores.iter_mut() {
                st.insert(clip.clone(), mean.clone());
                st.remove(frame);
            }
        }
        Ok(())
    }

    /// The contract outputs in [`ModelContract::output_names`] order, each the stack of the
    /// frames' [1,…] values.
    fn collect(&self, stores: &[Store]) -> Result<TVec<TValue>, EngineError> {
        self.outputs
            .iter()
            .map(|name| {
                let frames = stores
                    .iter()
                    .map(|st| {
                        st.get(*name)
                            .ok_or_else(|| run_err(format!("output `{name}` missing")))
                    })
                    .collect::<Result<Vec<&Tensor>, _>>()?;
                Tensor::stack_tensors(0, &frames)
                    .map(IntoTValue::into_tvalue)
                    .map_err(|e| run_err(format!("stacking `{name}`: {e:#}")))
            })
            .collect()
    }

    /// One window: the outputs in [`ModelContract::output_names`] order, each [T,…]. `threads` ≤ 1 runs the stages
    /// one after another on this thread; more schedules them over that many workers.
    pub fn run(&self, window: &ModelInput, threads: usize) -> Result<TVec<TValue>, EngineError> {
        if threads <= 1 {
            let mut states = States::new(&self.stages);
            return self.run_in_order(window, &mut |k, inputs| {
                states
                    .get(k, &self.stages[k].plan)?
                    .run(inputs)
                    .map_err(|e| run_err(format!("{e:#}")))
            });
        }
        self.run_parallel(window, threads)
    }

    /// Stage by stage, every frame in turn, on this thread; `run_stage(k, inputs)` runs stage
    /// `k` on one frame's inputs (the profiler times it).
    pub fn run_in_order(
        &self,
        window: &ModelInput,
        run_stage: &mut dyn FnMut(usize, TVec<TValue>) -> Result<TVec<TValue>, EngineError>,
    ) -> Result<TVec<TValue>, EngineError> {
        let mut stores = self.stores(window);
        for k in 0..self.stages.len() {
            if k == self.barrier {
                self.clip_means(&mut stores)?;
            }
            for st in stores.iter_mut() {
                let inputs = self.take_inputs(st, k)?;
                let outputs = run_stage(k, inputs)?;
                self.put_outputs(st, k, outputs);
            }
        }
        self.collect(&stores)
    }

    fn run_parallel(
        &self,
        window: &ModelInput,
        threads: usize,
    ) -> Result<TVec<TValue>, EngineError> {
        let t = window.frames.shape()[0];
        let board = Mutex::new(Board {
            stores: self.stores(window),
            next: vec![0; t],
            busy: vec![false; t],
            clips_ready: false,
            left: t * self.stages.len(),
            error: None,
        });
        let wake = Condvar::new();
        let panicked = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads.min(t))
                .map(|_| {
                    scope.spawn(|| {
                        // a panic in tract must not leave the other workers waiting for its job
                        let _guard = PanicGuard {
                            board: &board,
                            wake: &wake,
                        };
                        self.worker(&board, &wake)
                    })
                })
                .collect();
            handles.into_iter().any(|h| h.join().is_err())
        });
        let board = board.into_inner().unwrap_or_else(|e| e.into_inner());
        if panicked {
            return Err(run_err("tract panicked in a frame worker".into()));
        }
        if let Some(e) = board.error {
            return Err(e);
        }
        self.collect(&board.stores)
    }

    /// A worker: takes the ready job with the lowest (stage, frame), runs it, until none is left.
    fn worker(&self, board: &Mutex<Board>, wake: &Condvar) {
        let mut states = States::new(&self.stages);
        let fail = |b: &mut Board, e: EngineError| {
            b.error.get_or_insert(e);
            wake.notify_all();
        };
        loop {
            let mut b = board.lock().unwrap_or_else(|e| e.into_inner());
            let (f, k, inputs) = loop {
                if b.error.is_some() || b.left == 0 {
                    return;
                }
                let ready = (0..b.next.len())
                    .filter(|&f| {
                        let k = b.next[f];
                        !b.busy[f] && k < self.stages.len() && (k != self.barrier || b.clips_ready)
                    })
                    .min_by_key(|&f| (b.next[f], f));
                match ready {
                    Some(f) => {
                        let k = b.next[f];
                        match self.take_inputs(&mut b.stores[f], k) {
                            Ok(inputs) => {
                                b.busy[f] = true;
                                break (f, k, inputs);
                            }
                            Err(e) => return fail(&mut b, e),
                        }
                    }
                    None => b = wake.wait(b).unwrap_or_else(|e| e.into_inner()),
                }
            };
            drop(b);
            let result = states
                .get(k, &self.stages[k].plan)
                .and_then(|s| s.run(inputs).map_err(|e| run_err(format!("{e:#}"))));
            let mut b = board.lock().unwrap_or_else(|e| e.into_inner());
            match result {
                Ok(outputs) => {
                    self.put_outputs(&mut b.stores[f], k, outputs);
                    b.next[f] += 1;
                    b.busy[f] = false;
                    b.left -= 1;
                    // the last frame to finish the stages before the clip means takes them
                    // (no frame goes past that point before)
                    if b.next[f] == self.barrier && b.next.iter().all(|&n| n == self.barrier) {
                        if let Err(e) = self.clip_means(&mut b.stores) {
                            return fail(&mut b, e);
                        }
                        b.clips_ready = true;
                    }
                    wake.notify_all();
                }
                Err(e) => return fail(&mut b, e),
            }
        }
    }

    /// Streaming ([`crate::engine::stream`]): the stages before the clip means on one frame
    /// (`frame`: `[1,…]` inputs). The store keeps what the later stages and the caller read,
    /// including the clip means' `frame` tensors.
    pub fn per_frame(&self, frame: &ModelInput, states: &mut States) -> Result<Store, EngineError> {
        let mut stores = self.stores(frame);
        let mut st = stores
            .pop()
            .ok_or_else(|| run_err("no frame given".into()))?;
        for k in 0..self.barrier {
            let inputs = self.take_inputs(&mut st, k)?;
            let outputs = states
                .get(k, &self.stages[k].plan)?
                .run(inputs)
                .map_err(|e| run_err(format!("{e:#}")))?;
            self.put_outputs(&mut st, k, outputs);
        }
        Ok(st)
    }

    /// Streaming: the clip means over `context` and `current` (stores of [`Self::per_frame`]),
    /// then the stages after them on `current` alone; the contract outputs in [`ModelContract::output_names`]
    /// order, each `[1,…]`. The stores are left as they were, for the next frames.
    pub fn after(
        &self,
        context: &[&Store],
        current: &Store,
        states: &mut States,
    ) -> Result<TVec<TValue>, EngineError> {
        // the second part's own store: the clip means and what its stages read
        let mut st = Store::new();
        for (frame, clip) in &self.clip_means {
            let frames = context.iter().copied().chain(std::iter::once(current));
            st.insert(clip.clone(), mean_of(frame, frames)?);
        }
        for stage in &self.stages[self.barrier..] {
            for name in &stage.inputs {
                if !st.contains_key(name) {
                    if let Some(t) = current.get(name) {
                        st.insert(name.clone(), t.clone());
                    }
                }
            }
        }
        for k in self.barrier..self.stages.len() {
            let inputs = self.take_inputs(&mut st, k)?;
            let outputs = states
                .get(k, &self.stages[k].plan)?
                .run(inputs)
                .map_err(|e| run_err(format!("{e:#}")))?;
            self.put_outputs(&mut st, k, outputs);
        }
        self.outputs
            .iter()
            .map(|name| {
                st.get(*name)
                    .or_else(|| current.get(*name))
                    .map(|t| t.clone().into_tvalue())
                    .ok_or_else(|| run_err(format!("output `{name}` missing")))
            })
            .collect()
    }

    /// For the profiler: runs the window in order with a timer around every node, adding each
    /// node's time to `times[stage][node]`.
    pub fn run_timed(
        &self,
        window: &ModelInput,
        times: &mut [Vec<Duration>],
    ) -> Result<TVec<TValue>, EngineError> {
        let mut states = States::new(&self.stages);
        self.run_in_order(window, &mut |k, inputs| {
            run_timed_state(states.get(k, &self.stages[k].plan)?, inputs, &mut times[k])
        })
    }
}

/// The clip mean ([`clip_mean`]) of the tensor `frame` over `stores`, the frames of one clip.
fn mean_of<'a>(
    frame: &str,
    stores: impl Iterator<Item = &'a Store>,
) -> Result<Tensor, EngineError> {
    let views = stores
        .map(|st| {
            st.get(frame)
                .ok_or_else(|| run_err(format!("frame split: `{frame}` missing")))?
                .to_plain_array_view::<f32>()
                .map_err(|e| run_err(format!("`{frame}`: {e:#}")))
        })
        .collect::<Result<Vec<ArrayViewD<f32>>, _>>()?;
    Ok(Tensor::from(
        clip_mean(&views).map_err(|e| run_err(e.to_string()))?,
    ))
}

/// The scheduler's shared state.
struct Board {
    /// Each frame's named tensors.
    stores: Vec<Store>,
    /// Each frame's next stage.
    next: Vec<usize>,
    /// Whether a worker is running a job of this frame.
    busy: Vec<bool>,
    /// The clip means are in the stores.
    clips_ready: bool,
    /// Jobs not yet done.
    left: usize,
    /// The first error; stops every worker.
    error: Option<EngineError>,
}

/// Stops the other workers when a worker thread unwinds.
struct PanicGuard<'a> {
    board: &'a Mutex<Board>,
    wake: &'a Condvar,
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut b = self.board.lock().unwrap_or_else(|e| e.into_inner());
            b.error
                .get_or_insert_with(|| run_err("tract panicked in a frame worker".into()));
            self.wake.notify_all();
        }
    }
}

/// One tract state per stage, spawned when the stage first runs and reused for the next frames.
pub(super) struct States(Vec<Option<State>>);

impl States {
    pub(super) fn new(stages: &[Stage]) -> Self {
        Self(stages.iter().map(|_| None).collect())
    }

    fn get(&mut self, k: usize, plan: &Plan) -> Result<&mut State, EngineError> {
        match &mut self.0[k] {
            Some(s) => Ok(s),
            slot => Ok(slot.insert(plan.spawn().map_err(|e| run_err(format!("{e:#}")))?)),
        }
    }
}
