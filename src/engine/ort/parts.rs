//! Streaming on ONNX Runtime (issue 25, [`crate::engine::stream`]): the two parts of the frame
//! split ([`crate::engine::split`]) as two sessions at batch 1.
//!
//! * **per frame**: `frames [1,3,S,S]`, `audio_logmel [1,1,96,64]` → the contract outputs
//!   computed before the clip means, every clip mean's `frame` tensor and every `carry` tensor,
//!   all kept in the frame's state ([`Kept`]), which later frames read as context;
//! * **after**: the clip means over the context's and the frame's `frame` tensors
//!   ([`clip_mean`]) and the frame's carries → the remaining contract outputs (`mask_logits`).
//!
//! Each part is one graph: the split's segment cuts are for tract's scheduler, and ONNX Runtime
//! spreads one frame's nodes over its own intra-op threads. Both graphs get static input shapes,
//! so that TensorRT builds each engine once, when its session is created, and the engine-cache
//! entry ([`Part`]) holds it: the per-frame part's from the contract, the after part's from the
//! first frame's per-frame outputs. Hence both sessions are built on the first streamed frame.

use std::collections::HashMap;

use ndarray::{ArrayD, Dimension, Ix1, Ix2, Ix4};
use ort::session::{Session, SessionOutputs};
use ort::value::{DynValue, TensorElementType, TensorRef};
use prost::Message;
use tract_onnx::pb::{tensor_shape_proto, type_proto, ModelProto, TensorShapeProto, TypeProto};

use super::runtime::{run_err, session, SessionSpec};
use crate::engine::cache::{CacheEntry, Part};
use crate::engine::model::{load_model_proto, ModelContract, IN_VIEW};
use crate::engine::split::{clip_mean, split_graph, FrameSplit, Segment, Segments};
use crate::engine::{
    audio_tensor, check_output, EngineError, EngineSettings, Inference, ModelInput,
};
use crate::frontend::AudioInput;

/// Whether and how an [`super::OrtEngine`] streams by parts.
pub(super) enum Streaming {
    /// No usable split (T = 1, or no or invalid `c3n.frame_split`): whole windows.
    Whole,
    /// A split whose sessions the first streamed frame builds.
    Pending(FrameSplit),
    /// The part sessions.
    Ready(Box<Parts>),
    /// Building them failed (logged): whole windows.
    Failed,
}

impl std::fmt::Debug for Streaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Streaming::Whole => "whole windows",
            Streaming::Pending(_) => "by parts, not built yet",
            Streaming::Ready(_) => "by parts",
            Streaming::Failed => "whole windows (the parts failed to build)",
        })
    }
}

/// One frame's per-frame outputs, by tensor name (each `[1,…]`): the float tensors, and the
/// integer ones (`unified_label`).
#[derive(Debug, Default)]
pub(super) struct Kept {
    f32: HashMap<String, ArrayD<f32>>,
    i64: HashMap<String, ArrayD<i64>>,
}

/// One part's session and its tensor names, in graph order.
struct Graph {
    session: Session,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

/// The two part sessions of a frame-split model.
pub(super) struct Parts {
    per_frame: Graph,
    after: Graph,
    /// `(frame, clip)` tensor names of each clip mean.
    clip_means: Vec<(String, String)>,
    /// The graph's input names (`frames`, `audio_logmel`).
    model_inputs: [String; 2],
    /// The contract with T = 1: the shapes of a streamed frame's outputs.
    one: ModelContract,
    /// TensorRT engine-cache entries (per frame, after).
    caches: [Option<CacheEntry>; 2],
}

/// The one segment of a part cut without segment cuts; `err` makes the error.
fn single(
    part: &str,
    mut segments: Vec<Segment>,
    err: impl Fn(String) -> EngineError,
) -> Result<Segment, EngineError> {
    match (segments.pop(), segments.is_empty()) {
        (Some(s), true) => Ok(s),
        _ => Err(err(format!("the {part} part is not one graph"))),
    }
}

/// Gives every input of `model` the static float shape `shape(name)`; `err` makes the error
/// for an input without one.
fn set_input_shapes(
    model: &mut ModelProto,
    shape: impl Fn(&str) -> Option<Vec<usize>>,
    err: impl Fn(String) -> EngineError,
) -> Result<(), EngineError> {
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| err("a part has no graph".into()))?;
    for input in &mut graph.input {
        let dims =
            shape(&input.name).ok_or_else(|| err(format!("no shape for `{}`", input.name)))?;
        let dim = dims
            .iter()
            .map(|&d| tensor_shape_proto::Dimension {
                value: Some(tensor_shape_proto::dimension::Value::DimValue(d as i64)),
                ..Default::default()
            })
            .collect();
        input.r#type = Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: tract_onnx::pb::tensor_proto::DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        });
    }
    Ok(())
}

/// The session of one part: `model` serialised and committed with `whole`'s provider and threads.
fn part_session(
    whole: &SessionSpec<'_>,
    part: Part,
    model: &ModelProto,
    contract: &ModelContract,
    settings: &EngineSettings,
) -> Result<(Session, Option<CacheEntry>), EngineError> {
    let bytes = model.encode_to_vec();
    let spec = SessionSpec {
        bytes: Some(&bytes),
        part,
        ..*whole
    };
    session(&spec, contract, settings)
}

/// Each output of a run, kept by name and element type.
///
/// Errors: [`EngineError::Run`] for a missing output or one neither f32 nor i64.
fn keep(
    outputs: &SessionOutputs<'_>,
    names: &[String],
    backend: &'static str,
) -> Result<Kept, EngineError> {
    let mut kept = Kept::default();
    for name in names {
        let err = |m: String| run_err(backend, format!("streamed output `{name}`: {m}"));
        let v: &DynValue = outputs.get(name).ok_or_else(|| err("missing".into()))?;
        match v.dtype().tensor_type() {
            Some(TensorElementType::Float32) => {
                let a = v
                    .try_extract_array::<f32>()
                    .map_err(|e| err(e.to_string()))?;
                kept.f32.insert(name.clone(), a.to_owned());
            }
            Some(TensorElementType::Int64) => {
                let a = v
                    .try_extract_array::<i64>()
                    .map_err(|e| err(e.to_string()))?;
                kept.i64.insert(name.clone(), a.to_owned());
            }
            _ => return Err(err(format!("unexpected type {}", v.dtype()))),
        }
    }
    Ok(kept)
}

impl Parts {
    /// Cuts the model file of `whole` at `split`, builds the per-frame session, runs it on
    /// `first` (one frame), then builds the after session with the shapes of what it computed.
    /// Returns the sessions and `first`'s state.
    ///
    /// Errors: [`EngineError::Model`] (the file cannot be read again), [`EngineError::Load`]
    /// (the file changed since the engine loaded it, the split does not cut the graph, ONNX
    /// Runtime rejects a part), [`EngineError::Unavailable`] (as [`super::OrtEngine::load`]),
    /// [`EngineError::Run`] (the per-frame part fails on `first`).
    pub(super) fn build(
        whole: &SessionSpec<'_>,
        contract: &ModelContract,
        split: &FrameSplit,
        settings: &EngineSettings,
        first: &ModelInput,
    ) -> Result<(Self, Kept), EngineError> {
        let backend = whole.provider.engine_name();
        let load_err = |message: String| EngineError::Load {
            backend,
            path: whole.path.to_path_buf(),
            message: format!("frame split: {message}"),
        };
        let proto = load_model_proto(whole.path)?;
        if ModelContract::from_proto(whole.path, &proto)? != *contract {
            return Err(load_err(
                "the model file changed since it was loaded".into(),
            ));
        }
        let merged = FrameSplit {
            segments: Segments::default(),
            ..split.clone()
        };
        let graphs = split_graph(&proto, &merged).map_err(|e| load_err(e.to_string()))?;
        drop(proto);
        let mut per_frame = single("per-frame", graphs.per_frame, load_err)?;
        let mut after = single("after", graphs.after, load_err)?;

        let [(in0, mut s0), (in1, mut s1)] = contract.input_shapes();
        (s0[0], s1[0]) = (1, 1);
        let batch1 = |n: &str| {
            (n == in0)
                .then(|| s0.clone())
                .or((n == in1).then(|| s1.clone()))
        };
        set_input_shapes(&mut per_frame.model, batch1, load_err)?;
        let (session0, cache0) =
            part_session(whole, Part::PerFrame, &per_frame.model, contract, settings)?;
        drop(per_frame.model);
        let mut per_frame = Graph {
            session: session0,
            inputs: per_frame.inputs,
            outputs: per_frame.outputs,
        };
        let model_inputs = [in0.to_string(), in1.to_string()];
        let kept = run_per_frame(
            &mut per_frame,
            &model_inputs,
            contract.frontend.audio_input,
            first,
            backend,
        )?;

        let clip_means: Vec<(String, String)> = split
            .clip_means
            .iter()
            .map(|c| (c.frame.clone(), c.clip.clone()))
            .collect();
        // a clip mean has its frame tensor's shape; a carry is kept as it was computed
        let computed = |n: &str| {
            let source = clip_means
                .iter()
                .find(|(_, clip)| clip == n)
                .map_or(n, |(frame, _)| frame.as_str());
            kept.f32.get(source).map(|a| a.shape().to_vec())
        };
        set_input_shapes(&mut after.model, computed, load_err)?;
        let (session1, cache1) =
            part_session(whole, Part::After, &after.model, contract, settings)?;
        let mut one = contract.clone();
        one.clip_frames = 1;
        let parts = Self {
            per_frame,
            after: Graph {
                session: session1,
                inputs: after.inputs,
                outputs: after.outputs,
            },
            clip_means,
            model_inputs,
            one,
            caches: [cache0, cache1],
        };
        Ok((parts, kept))
    }

    /// The TensorRT engine-cache entries (per frame, after).
    pub(super) fn cache_entries(&self) -> [Option<&CacheEntry>; 2] {
        [self.caches[0].as_ref(), self.caches[1].as_ref()]
    }

    /// The per-frame part on `frame` (`[1,…]` inputs, shapes checked by the caller).
    ///
    /// Errors: [`EngineError::Run`].
    pub(super) fn per_frame(
        &mut self,
        frame: &ModelInput,
        backend: &'static str,
    ) -> Result<Kept, EngineError> {
        run_per_frame(
            &mut self.per_frame,
            &self.model_inputs,
            self.one.frontend.audio_input,
            frame,
            backend,
        )
    }

    /// The after part on `current` with the clip means over `context` and `current` (states of
    /// [`Self::per_frame`], context oldest first, its length checked by the caller): the frame's
    /// outputs, each `[1,…]`.
    ///
    /// Errors: [`EngineError::Run`] for a state that lacks a tensor, or when ONNX Runtime fails.
    pub(super) fn after(
        &mut self,
        context: &[&Kept],
        current: &Kept,
        backend: &'static str,
    ) -> Result<Inference, EngineError> {
        let mut clips: HashMap<&str, ArrayD<f32>> = HashMap::new();
        for (frame, clip) in &self.clip_means {
            let views = context
                .iter()
                .copied()
                .chain(std::iter::once(current))
                .map(|k| {
                    k.f32
                        .get(frame)
                        .map(|a| a.view())
                        .ok_or_else(|| run_err(backend, format!("frame split: `{frame}` missing")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mean = clip_mean(&views).map_err(|e| run_err(backend, e.to_string()))?;
            clips.insert(clip.as_str(), mean);
        }
        let inputs = self
            .after
            .inputs
            .iter()
            .map(|name| {
                let a = clips
                    .get(name.as_str())
                    .or_else(|| current.f32.get(name))
                    .ok_or_else(|| run_err(backend, format!("frame split: `{name}` missing")))?;
                let t = TensorRef::from_array_view(a.view())
                    .map_err(|e| run_err(backend, format!("`{name}`: {e}")))?;
                Ok((name.as_str(), t))
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        let outputs = self
            .after
            .session
            .run(inputs)
            .map_err(|e| run_err(backend, e.to_string()))?;
        let computed = keep(&outputs, &self.after.outputs, backend)?;
        drop(outputs);
        inference(&self.one, &computed, current, backend)
    }
}

/// The per-frame part of `graph` on `frame`, its inputs named `model_inputs` (frames, audio).
fn run_per_frame(
    graph: &mut Graph,
    model_inputs: &[String; 2],
    audio_input: AudioInput,
    frame: &ModelInput,
    backend: &'static str,
) -> Result<Kept, EngineError> {
    let audio = audio_tensor(audio_input, &frame.audio_logmel);
    let inputs = graph
        .inputs
        .iter()
        .map(|name| {
            let a = if *name == model_inputs[0] {
                frame.frames.view().into_dyn()
            } else if *name == model_inputs[1] {
                audio.view()
            } else {
                return Err(run_err(
                    backend,
                    format!("frame split: the per-frame part reads `{name}`"),
                ));
            };
            let t = TensorRef::from_array_view(a)
                .map_err(|e| run_err(backend, format!("`{name}`: {e}")))?;
            Ok((name.as_str(), t))
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    let outputs = graph
        .session
        .run(inputs)
        .map_err(|e| run_err(backend, e.to_string()))?;
    keep(&outputs, &graph.outputs, backend)
}

/// Output `name` from the after part's `computed`, else the frame's own `kept`, as rank `D`.
fn pick<T: Clone, D: Dimension>(
    name: &str,
    computed: &HashMap<String, ArrayD<T>>,
    kept: &HashMap<String, ArrayD<T>>,
    backend: &'static str,
) -> Result<ndarray::Array<T, D>, EngineError> {
    let a = computed
        .get(name)
        .or_else(|| kept.get(name))
        .ok_or_else(|| run_err(backend, format!("streamed output `{name}` missing")))?;
    a.clone()
        .into_dimensionality::<D>()
        .map_err(|e| run_err(backend, format!("streamed output `{name}`: {e}")))
}

/// A streamed frame's [`Inference`] (T = 1) from the after part's outputs and the frame's state.
///
/// Errors: [`EngineError::Run`] for a missing output or one of another shape than `one`'s.
fn inference(
    one: &ModelContract,
    computed: &Kept,
    kept: &Kept,
    backend: &'static str,
) -> Result<Inference, EngineError> {
    let (c, k) = (&computed.f32, &kept.f32);
    let in_view = match one.in_view {
        true => Some(pick::<f32, Ix1>(IN_VIEW, c, k, backend)?.to_vec()),
        false => None,
    };
    if !one.c3im {
        let inf = Inference {
            in_view,
            ..Inference::without_c3im(
                pick::<f32, Ix4>("mask_logits", c, k, backend)?,
                pick::<f32, Ix2>("audio_logits", c, k, backend)?,
            )
        };
        check_output(one, &inf).map_err(|e| run_err(backend, e.to_string()))?;
        return Ok(inf);
    }
    let mask_logits = pick::<f32, Ix4>("mask_logits", c, k, backend)?;
    let visual_logits = pick::<f32, Ix2>("visual_logits", c, k, backend)?;
    let audio_logits = pick::<f32, Ix2>("audio_logits", c, k, backend)?;
    let unified_label =
        pick::<i64, Ix1>("unified_label", &computed.i64, &kept.i64, backend)?.to_vec();
    let c3im_score = pick::<f32, Ix1>("c3im_score", c, k, backend)?.to_vec();
    let visual_logit_map = pick::<f32, Ix4>("visual_logit_map", c, k, backend)?;
    let c3im_affinity = pick::<f32, Ix2>("c3im_affinity", c, k, backend)?;
    let inf = Inference {
        mask_logits,
        visual_logits,
        audio_logits,
        unified_label,
        c3im_score,
        visual_logit_map,
        c3im_affinity,
        in_view,
    };
    check_output(one, &inf).map_err(|e| run_err(backend, e.to_string()))?;
    Ok(inf)
}
