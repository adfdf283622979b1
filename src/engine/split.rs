//! The frame split of a C3N graph (issue 16): the two per-frame graphs that tract runs at
//! batch 1, one frame at a time, instead of the whole graph at batch T.
//!
//! C3N treats the T frames of a window as an independent batch everywhere but in one step: each
//! TPAVI block's `K = mean_t K_t` (`c3n.decoder.ClipMean`, the clip mean of the frames' shares
//! `K_t [k,k]`). The export names the tensors around it and records them in the ONNX metadata
//! key `c3n.frame_split` (JSON, `models/c3n/export/frame_split.py::mark_frame_split`):
//!
//! ```json
//! {"version": 1,
//!  "clip_means": [{"frame": "split/k_frame0", "clip": "split/k_clip0"}, …],
//!  "carry": ["split/x0", …]}
//! ```
//!
//! * `frame [T,k,k]`: a clip mean's input, one share per frame; `clip [T,k,k]`: its output, the
//!   mean repeated for every frame.
//! * `carry [T,d,H,W]`: tensors computed before the clip means and read after them.
//!
//! [`split_graph`] cuts the graph there into
//! * **per frame** (`frames`, `audio_logmel` → the contract outputs that do not depend on a clip
//!   mean, then every `frame` tensor, then every `carry` tensor), and
//! * **after** (every `clip` tensor, then every `carry` tensor → the remaining outputs, i.e.
//!   `mask_logits`).
//!
//! Running *per frame* on each frame, averaging each `frame` tensor over the T frames
//! ([`clip_mean`]) and running *after* on each frame with that mean gives the whole graph's
//! outputs: the same maths, summed in another order (tests: `models/tests/test_model.py::
//! test_frame_split_parts_equal_whole_graph` for the Python twin
//! `c3n.export.frame_split.frame_split_parts`, `tests/engine_tract.rs` for this one against
//! PyTorch).

use std::collections::{HashMap, HashSet};

use ndarray::{ArrayD, ArrayViewD};
use tract_onnx::pb::{type_proto, GraphProto, ModelProto, NodeProto, TypeProto, ValueInfoProto};

/// The metadata key written by the export.
pub const METADATA_KEY: &str = "c3n.frame_split";
/// The `version` this code reads.
pub const VERSION: u64 = 1;

/// Why a model's frame split cannot be used (the whole graph still can).
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// `c3n.frame_split` is not the JSON this code reads.
    #[error("ONNX metadata `{METADATA_KEY}` is invalid: {0}")]
    Metadata(String),
    /// The named tensors do not cut the graph into two per-frame parts.
    #[error("ONNX metadata `{METADATA_KEY}` does not cut the graph: {0}")]
    Graph(String),
    /// [`clip_mean`] of no frames.
    #[error("clip mean of no frames")]
    NoFrames,
    /// [`clip_mean`] of frame tensors of different shapes.
    #[error("clip mean of shapes {0:?} and {1:?}")]
    ClipMeanShapes(Vec<usize>, Vec<usize>),
}

/// One clip mean: its per-frame input and its output (tensor names in the graph).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ClipMean {
    /// Input [T,…]: one share per frame.
    pub frame: String,
    /// Output [T,…]: the mean over the T frames, for every frame.
    pub clip: String,
}

/// The parsed `c3n.frame_split` metadata.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct FrameSplit {
    /// Format version ([`VERSION`]).
    pub version: u64,
    /// The graph's clip means, in stage order.
    pub clip_means: Vec<ClipMean>,
    /// Tensors computed per frame before the clip means and read after them.
    pub carry: Vec<String>,
    /// Where each part is cut further into segments (optional).
    #[serde(default)]
    pub segments: Segments,
}

/// Cuts of each part into segments that run one after the other on a frame: each cut lists the
/// tensors that cross it (the next segment's inputs). Smaller jobs let T frames spread evenly
/// over the threads (with T = 5 on 2 threads, whole parts leave one thread idle for a fifth of
/// the work). Written by `c3n.export.frame_split.add_segment_cuts` at the cost midpoint of each part.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Segments {
    /// Cuts of the part before the clip means, in order.
    #[serde(default)]
    pub per_frame: Vec<Vec<String>>,
    /// Cuts of the part after the clip means, in order.
    #[serde(default)]
    pub after: Vec<Vec<String>>,
}

impl FrameSplit {
    /// Reads `c3n.frame_split` from the model's `metadata_props`; `Ok(None)` when it is absent
    /// (a model exported before issue 16).
    ///
    /// Errors: [`SplitError::Metadata`] for a value that is not version-1 JSON of this shape, or
    /// that names no clip mean.
    pub fn from_proto(proto: &ModelProto) -> Result<Option<Self>, SplitError> {
        let Some(entry) = proto.metadata_props.iter().find(|p| p.key == METADATA_KEY) else {
            return Ok(None);
        };
        let split: FrameSplit =
            serde_json::from_str(&entry.value).map_err(|e| SplitError::Metadata(e.to_string()))?;
        if split.version != VERSION {
            return Err(SplitError::Metadata(format!(
                "version {} (this build reads {VERSION})",
                split.version
            )));
        }
        if split.clip_means.is_empty() {
            return Err(SplitError::Metadata("no clip mean listed".into()));
        }
        Ok(Some(split))
    }
}

/// One segment of a part: a graph and the names of its inputs and outputs, in graph order.
#[derive(Debug, Clone)]
pub struct Segment {
    /// The segment's graph (inputs typed float32 without a shape, outputs untyped).
    pub model: ModelProto,
    /// Its inputs.
    pub inputs: Vec<String>,
    /// Its outputs.
    pub outputs: Vec<String>,
}

/// The per-frame graphs of [`split_graph`].
#[derive(Debug, Clone)]
pub struct SplitGraphs {
    /// The part before the clip means, in segments. The first reads the whole graph's inputs;
    /// together they compute [`Self::before_outputs`], every clip mean's `frame` tensor and every
    /// `carry` tensor.
    pub per_frame: Vec<Segment>,
    /// The part after the clip means, in segments. The first reads clip means' `clip` tensors
    /// and carries; together they compute [`Self::after_outputs`].
    pub after: Vec<Segment>,
    /// The whole graph's outputs computed before the clip means, in the whole graph's order.
    pub before_outputs: Vec<String>,
    /// The whole graph's outputs computed after them (those that depend on a clip mean).
    pub after_outputs: Vec<String>,
}

/// Cuts `proto` at `split` (see the module docs), each part further at its `segments` cuts. The
/// segments keep the nodes' order, the opset and the initializers they read; their inputs are
/// typed float32 without a shape (the caller sets batch-1 facts), their outputs untyped, and
/// `value_info` (batch-T shapes) is dropped. A segment outputs what its cut lists beyond its own
/// inputs (the next segment's inputs are the whole cut, which includes the part's outputs
/// computed so far: the caller keeps every computed tensor by name); the last segment outputs
/// the rest of the part's outputs.
///
/// Errors: [`SplitError::Graph`] when a named tensor is not produced by a node, a `frame` or
/// `carry` tensor depends on a clip mean, or a part or segment would read a tensor that neither
/// its inputs nor its own nodes provide (the names do not cut the graph).
pub fn split_graph(proto: &ModelProto, split: &FrameSplit) -> Result<SplitGraphs, SplitError> {
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| SplitError::Graph("the model has no graph".into()))?;
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let frame: Vec<&str> = split.clip_means.iter().map(|c| c.frame.as_str()).collect();
    let clip: Vec<&str> = split.clip_means.iter().map(|c| c.clip.as_str()).collect();
    let carry: Vec<&str> = split.carry.iter().map(String::as_str).collect();
    for name in frame.iter().chain(&clip).chain(&carry) {
        if !producer.contains_key(name) {
            return Err(SplitError::Graph(format!("no node computes `{name}`")));
        }
    }
    // Tensors downstream of a clip mean (nodes are in topological order in a valid ONNX file).
    let mut after_clip: HashSet<&str> = clip.iter().copied().collect();
    for node in &graph.node {
        if node.input.iter().any(|i| after_clip.contains(i.as_str())) {
            after_clip.extend(node.output.iter().map(String::as_str));
        }
    }
    if let Some(x) = frame.iter().chain(&carry).find(|x| after_clip.contains(*x)) {
        return Err(SplitError::Graph(format!("`{x}` depends on a clip mean")));
    }
    let (after_outputs, before_outputs): (Vec<String>, Vec<String>) = graph
        .output
        .iter()
        .map(|o| o.name.clone())
        .partition(|o| after_clip.contains(o.as_str()));
    let graph_inputs: Vec<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();

    let per_frame_outputs: Vec<&str> = before_outputs
        .iter()
        .map(String::as_str)
        .chain(frame.iter().copied())
        .chain(carry.iter().copied())
        .collect();
    let segments = |inputs: &[&str], outputs: &[&str], cuts: &[Vec<String>]| {
        let mut out = Vec::new();
        let mut ins: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
        for cut in cuts {
            let i: Vec<&str> = ins.iter().map(String::as_str).collect();
            // what the cut needs and the stores do not hold yet
            let o: Vec<&str> = cut
                .iter()
                .map(String::as_str)
                .filter(|c| !i.contains(c))
                .collect();
            out.push(segment(proto, graph, &producer, &i, &o)?);
            ins = cut.clone();
        }
        let i: Vec<&str> = ins.iter().map(String::as_str).collect();
        let rest: Vec<&str> = outputs.iter().copied().filter(|o| !i.contains(o)).collect();
        out.push(segment(proto, graph, &producer, &i, &rest)?);
        Ok::<_, SplitError>(out)
    };
    let per_frame = segments(&graph_inputs, &per_frame_outputs, &split.segments.per_frame)?;
    let after_inputs: Vec<&str> = clip.iter().chain(&carry).copied().collect();
    let after_out: Vec<&str> = after_outputs.iter().map(String::as_str).collect();
    let after = segments(&after_inputs, &after_out, &split.segments.after)?;
    Ok(SplitGraphs {
        per_frame,
        after,
        before_outputs,
        after_outputs,
    })
}

fn segment(
    proto: &ModelProto,
    graph: &GraphProto,
    producer: &HashMap<&str, usize>,
    inputs: &[&str],
    outputs: &[&str],
) -> Result<Segment, SplitError> {
    Ok(Segment {
        model: part(proto, graph, producer, inputs, outputs)?,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
    })
}

/// The sub-graph computing `outputs` from `inputs`.
fn part(
    proto: &ModelProto,
    graph: &GraphProto,
    producer: &HashMap<&str, usize>,
    inputs: &[&str],
    outputs: &[&str],
) -> Result<ModelProto, SplitError> {
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let whole_inputs: HashSet<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    let mut needed = vec![false; graph.node.len()];
    let mut seen: HashSet<&str> = inputs.iter().copied().collect();
    let mut stack: Vec<&str> = outputs.to_vec();
    while let Some(x) = stack.pop() {
        if x.is_empty() || initializers.contains(x) || !seen.insert(x) {
            continue;
        }
        match producer.get(x) {
            Some(&i) => {
                needed[i] = true;
                stack.extend(graph.node[i].input.iter().map(String::as_str));
            }
            None if whole_inputs.contains(x) => {
                return Err(SplitError::Graph(format!(
                    "the part computing {outputs:?} reads the graph input `{x}`"
                )))
            }
            None => return Err(SplitError::Graph(format!("no node computes `{x}`"))),
        }
    }
    let node: Vec<NodeProto> = graph
        .node
        .iter()
        .zip(&needed)
        .filter(|(_, &n)| n)
        .map(|(n, _)| n.clone())
        .collect();
    let used: HashSet<&str> = node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    let initializer = graph
        .initializer
        .iter()
        .filter(|t| used.contains(t.name.as_str()))
        .cloned()
        .collect();
    let value = |name: &str, r#type: Option<TypeProto>| ValueInfoProto {
        name: name.to_string(),
        r#type,
        doc_string: String::new(),
    };
    let float = || TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: tract_onnx::pb::tensor_proto::DataType::Float as i32,
            shape: None,
        })),
        ..Default::default()
    };
    let part_graph = GraphProto {
        node,
        name: "c3n_frame_split_part".into(),
        initializer,
        input: inputs.iter().map(|i| value(i, Some(float()))).collect(),
        output: outputs.iter().map(|o| value(o, None)).collect(),
        ..Default::default()
    };
    // the whole model's header (IR version, opsets, producer, local functions), not its graph
    // or metadata
    Ok(ModelProto {
        ir_version: proto.ir_version,
        opset_import: proto.opset_import.clone(),
        producer_name: proto.producer_name.clone(),
        producer_version: proto.producer_version.clone(),
        domain: proto.domain.clone(),
        model_version: proto.model_version,
        functions: proto.functions.clone(),
        graph: Some(part_graph),
        ..Default::default()
    })
}

/// The clip mean of one `frame` tensor: `frames[t]` is frame t's value, shape [1,…] each; the
/// result [1,…] is their element-wise mean (sum in frame order, then divided by T, in f32 as
/// ONNX Runtime's `ReduceMean`).
///
/// Errors: [`SplitError::NoFrames`] when `frames` is empty, [`SplitError::ClipMeanShapes`] when
/// the shapes differ.
pub fn clip_mean(frames: &[ArrayViewD<'_, f32>]) -> Result<ArrayD<f32>, SplitError> {
    let first = frames.first().ok_or(SplitError::NoFrames)?;
    let mut sum = first.to_owned();
    for f in &frames[1..] {
        if f.shape() != sum.shape() {
            return Err(SplitError::ClipMeanShapes(
                sum.shape().to_vec(),
                f.shape().to_vec(),
            ));
        }
        sum += f;
    }
    let n = frames.len() as f32;
    sum.mapv_inplace(|v| v / n);
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr2;
    use tract_onnx::pb::StringStringEntryProto;

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn vi(name: &str) -> ValueInfoProto {
        ValueInfoProto {
            name: name.into(),
            ..Default::default()
        }
    }

    /// in → a → (k_frame, x); k_frame → k_clip; (k_clip, x) → mask; a → label.
    fn toy(split_json: &str) -> ModelProto {
        ModelProto {
            graph: Some(GraphProto {
                node: vec![
                    node("Relu", &["in"], &["a"]),
                    node("Neg", &["a"], &["k_frame"]),
                    node("Abs", &["a"], &["x"]),
                    node("ReduceMean", &["k_frame"], &["k_clip"]),
                    node("Add", &["k_clip", "x"], &["mask"]),
                    node("ArgMax", &["a"], &["label"]),
                ],
                input: vec![vi("in")],
                output: vec![vi("mask"), vi("label")],
                ..Default::default()
            }),
            metadata_props: vec![StringStringEntryProto {
                key: METADATA_KEY.into(),
                value: split_json.into(),
            }],
            ..Default::default()
        }
    }

    const GOOD: &str =
        r#"{"version":1,"clip_means":[{"frame":"k_frame","clip":"k_clip"}],"carry":["x"]}"#;

    fn ops(m: &ModelProto) -> Vec<String> {
        m.graph
            .as_ref()
            .unwrap()
            .node
            .iter()
            .map(|n| n.op_type.clone())
            .collect()
    }

    #[test]
    fn splits_toy_graph_into_before_and_after_parts() {
        let m = toy(GOOD);
        let split = FrameSplit::from_proto(&m).unwrap().unwrap();
        let g = split_graph(&m, &split).unwrap();
        assert_eq!(g.before_outputs, vec!["label"]);
        assert_eq!(g.after_outputs, vec!["mask"]);
        assert_eq!(g.per_frame.len(), 1);
        assert_eq!(ops(&g.per_frame[0].model), ["Relu", "Neg", "Abs", "ArgMax"]);
        assert_eq!(ops(&g.after[0].model), ["Add"]);
        let after = g.after[0].model.graph.as_ref().unwrap();
        let names: Vec<&str> = after.input.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["k_clip", "x"]);
        assert_eq!(g.after[0].inputs, ["k_clip", "x"]);
        let per = g.per_frame[0].model.graph.as_ref().unwrap();
        let outs: Vec<&str> = per.output.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(outs, ["label", "k_frame", "x"]);
    }

    #[test]
    fn segments_cut_a_part_and_pass_early_outputs_along() {
        // per_frame cut after Relu: `a` crosses; the label (computed after) is the last
        // segment's; a cut that leaves out a needed tensor is refused
        let json = r#"{"version":1,"clip_means":[{"frame":"k_frame","clip":"k_clip"}],"carry":["x"],
            "segments":{"per_frame":[["a"]]}}"#;
        let m = toy(json);
        let split = FrameSplit::from_proto(&m).unwrap().unwrap();
        let g = split_graph(&m, &split).unwrap();
        assert_eq!(g.per_frame.len(), 2);
        assert_eq!(ops(&g.per_frame[0].model), ["Relu"]);
        assert_eq!(g.per_frame[0].outputs, ["a"]);
        assert_eq!(ops(&g.per_frame[1].model), ["Neg", "Abs", "ArgMax"]);
        assert_eq!(g.per_frame[1].inputs, ["a"]);
        assert_eq!(g.per_frame[1].outputs, ["label", "k_frame", "x"]);
        // cut after Neg with only k_frame crossing: the second segment lacks `a`
        let bad = r#"{"version":1,"clip_means":[{"frame":"k_frame","clip":"k_clip"}],"carry":["x"],
            "segments":{"per_frame":[["k_frame"]]}}"#;
        let m = toy(bad);
        let split = FrameSplit::from_proto(&m).unwrap().unwrap();
        let e = split_graph(&m, &split).unwrap_err().to_string();
        assert!(e.contains("reads the graph input `in`"), "{e}");
    }

    #[test]
    fn absent_key_is_none_and_bad_metadata_is_refused() {
        let mut m = toy(GOOD);
        m.metadata_props.clear();
        assert!(FrameSplit::from_proto(&m).unwrap().is_none());
        for bad in [
            "{",
            r#"{"version":2,"clip_means":[{"frame":"k_frame","clip":"k_clip"}],"carry":[]}"#,
            r#"{"version":1,"clip_means":[],"carry":[]}"#,
        ] {
            let e = FrameSplit::from_proto(&toy(bad)).unwrap_err();
            assert!(matches!(e, SplitError::Metadata(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn names_that_do_not_cut_the_graph_are_refused() {
        // no carry: the part after the clip mean needs x, hence the graph input
        let no_carry =
            r#"{"version":1,"clip_means":[{"frame":"k_frame","clip":"k_clip"}],"carry":[]}"#;
        // a carry computed after the clip mean
        let late =
            r#"{"version":1,"clip_means":[{"frame":"k_frame","clip":"k_clip"}],"carry":["mask"]}"#;
        // a name no node computes
        let unknown =
            r#"{"version":1,"clip_means":[{"frame":"nope","clip":"k_clip"}],"carry":["x"]}"#;
        for (json, want) in [
            (no_carry, "reads the graph input `in`"),
            (late, "`mask` depends on a clip mean"),
            (unknown, "no node computes `nope`"),
        ] {
            let m = toy(json);
            let split = FrameSplit::from_proto(&m).unwrap().unwrap();
            let e = split_graph(&m, &split).unwrap_err().to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn clip_mean_is_the_elementwise_mean() {
        let a = arr2(&[[1.0f32, 2.0], [3.0, 4.0]]).into_dyn();
        let b = arr2(&[[3.0f32, 0.0], [-3.0, 8.0]]).into_dyn();
        let m = clip_mean(&[a.view(), b.view()]).unwrap();
        assert_eq!(m, arr2(&[[2.0f32, 1.0], [0.0, 6.0]]).into_dyn());
        assert!(clip_mean(&[]).is_err());
        let c = arr2(&[[1.0f32, 2.0, 3.0]]).into_dyn();
        assert!(clip_mean(&[a.view(), c.view()]).is_err());
    }
}
