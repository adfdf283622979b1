//! The C3N model contract: what an exported ONNX file must look like, read from its
//! `metadata_props` and checked against its graph signature.
//!
//! Producer: `python -m c3n.export` (`models/c3n/export/exporter.py`). The protobuf is decoded
//! once with tract-onnx's own prost types (`tract_onnx::pb::ModelProto`, the same decoder tract
//! uses to load the graph), so no second
//! protobuf dependency or schema copy is needed and the decoded proto is reused to build the tract
//! model ([`load_model_proto`] → [`ModelContract::from_proto`] → `tract::TractEngine`).
//!
//! Contract (schema "2"; "1" lacked the last two outputs and the `c3n.alpha` / `c3n.categories*`
//! metadata, and is refused with a message to re-export):
//!
//! | tensor | dtype | shape |
//! |---|---|---|
//! | input `frames` | float32 | `[T,3,S,S]` RGB, normalised with `c3n.mean` / `c3n.std` |
//! | input `audio_logmel` | float32 | `[T,1,patch_frames,mel_bands]` (`[T,1,96,64]`) |
//! | output `mask_logits` | float32 | `[T,1,S,S]` |
//! | output `visual_logits` | float32 | `[T,1000]` (ImageNet) |
//! | output `audio_logits` | float32 | `[T,521]` (AudioSet) |
//! | output `unified_label` | int64 | `[T]` ImageNet index chosen by C3IM |
//! | output `c3im_score` | float32 | `[T]` `max_{j,i} v[j]·S[j,i]·a[i]` |
//! | output `visual_logit_map` | float32 | `[T,1000,⌈S/32⌉,⌈S/32⌉]` ImageNet logits per stage-4 cell |
//! | output `c3im_affinity` | float32 | `[T,1000]` `max_i S[j,i]·a[i]` |
//!
//! with `T = c3n.clip_frames` (static, 5 or 1) and `S = c3n.input_size` (224). Metadata besides
//! the front end and labels: `c3n.alpha` (C3IM's exponent, 0.1) and `c3n.categories` (the category
//! vocabulary, [`crate::categories`]; `c3n.categories.sha256` / `.version` name the asset).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use tract_onnx::pb::{self, tensor_proto::DataType, type_proto, ModelProto};
use tract_onnx::prelude::Framework;

use crate::categories::CategoryMap;
use crate::frontend::{FrontendParams, ImageNorm};

/// Metadata schema version this runtime understands (`c3n.schema`).
pub const SCHEMA: &str = "2";
/// Number of ImageNet classes (`visual_logits` width, `c3n.labels.imagenet` length).
pub const N_IMAGENET: usize = 1000;
/// Number of AudioSet classes (`audio_logits` width, `c3n.labels.audioset` length).
pub const N_AUDIOSET: usize = 521;
/// Largest `c3n.clip_frames` accepted (buffers are sized from it; the shipped models use 1 and 5).
pub const MAX_CLIP_FRAMES: usize = 64;
/// Largest `c3n.input_size` accepted, in pixels (the shipped models use 224).
pub const MAX_INPUT_SIZE: u32 = 4096;
/// Accepted range of `c3n.clip_rate_hz` (the frame-slot rate; C3N: 1 Hz).
pub const MIN_CLIP_RATE_HZ: f64 = 0.01;
/// See [`MIN_CLIP_RATE_HZ`].
pub const MAX_CLIP_RATE_HZ: f64 = 1000.0;
/// Input names, in contract order.
pub const INPUTS: [&str; 2] = ["frames", "audio_logmel"];
/// Output names, in contract order.
pub const OUTPUTS: [&str; 7] = [
    "mask_logits",
    "visual_logits",
    "audio_logits",
    "unified_label",
    "c3im_score",
    "visual_logit_map",
    "c3im_affinity",
];

/// Side of the last backbone stage's map (`visual_logit_map`) for input size `s`: `⌈s/32⌉`.
pub fn map_size(s: usize) -> usize {
    s.div_ceil(32)
}

/// Why a model file does not satisfy the contract. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read.
    #[error("cannot read model {path}: {source}")]
    Io {
        /// Model file.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a (complete) ONNX protobuf.
    #[error("{path} is not a valid ONNX model (truncated or another format?): {reason}")]
    NotOnnx {
        /// Model file.
        path: PathBuf,
        /// Decoder message.
        reason: String,
    },
    /// A required `metadata_props` key is absent.
    #[error("{path}: ONNX metadata key `{key}` is missing (was the model exported by `python -m c3n.export`?)")]
    MissingKey {
        /// Model file.
        path: PathBuf,
        /// Missing key.
        key: &'static str,
    },
    /// A `metadata_props` value cannot be parsed or is out of range.
    #[error("{path}: ONNX metadata `{key}` = {value:?} is invalid: {reason}")]
    BadValue {
        /// Model file.
        path: PathBuf,
        /// Offending key.
        key: &'static str,
        /// Its value (truncated to 80 characters).
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The graph's inputs or outputs differ from the contract.
    #[error("{path}: {kind} signature does not match the c3n contract: {problem}")]
    Signature {
        /// Model file.
        path: PathBuf,
        /// "input" or "output".
        kind: &'static str,
        /// Which tensor and how it differs.
        problem: String,
    },
}

/// The model contract, parsed from the ONNX `metadata_props` (all values are strings there).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelContract {
    /// File it was read from.
    pub path: PathBuf,
    /// `c3n.config`: "edge" or "paper".
    pub config: String,
    /// `c3n.model_version`.
    pub model_version: String,
    /// `c3n.trained`: false for random-weight test exports.
    pub trained: bool,
    /// `c3n.clip_frames`: T, the static number of frames per model call (5 or 1).
    pub clip_frames: usize,
    /// `c3n.clip_rate_hz`: frames per second of the source timeline between consecutive model frames.
    pub clip_rate_hz: f64,
    /// `c3n.input_size`, `c3n.mean`, `c3n.std`: frame size and normalisation.
    pub image: ImageNorm,
    /// `c3n.frontend.*`: log-mel parameters.
    pub frontend: FrontendParams,
    /// `c3n.labels.imagenet`: 1000 ImageNet class names (index = `visual_logits` column).
    pub imagenet_labels: Vec<String>,
    /// `c3n.labels.audioset`: 521 AudioSet class names (index = `audio_logits` column).
    pub audioset_labels: Vec<String>,
    /// `c3n.alpha`: C3IM's flattening exponent (0 < α ≤ 1).
    pub alpha: f32,
    /// `c3n.categories`: the category vocabulary.
    pub categories: CategoryMap,
    /// `c3n.categories.sha256`: sha256 of the vocabulary asset as exported (informational).
    pub categories_sha256: String,
}

/// Reads and decodes an ONNX file. Errors: [`ModelError::Io`], [`ModelError::NotOnnx`].
pub fn load_model_proto(path: &Path) -> Result<ModelProto, ModelError> {
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    // a FIFO or a device would be read without end
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(io(std::io::Error::other(
            "not a regular file (a directory, FIFO or device)",
        )));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let not_onnx = |reason: String| ModelError::NotOnnx {
        path: path.to_path_buf(),
        reason,
    };
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut bytes.as_slice())
        .map_err(|e| not_onnx(format!("{e:#}")))?;
    if proto.graph.is_none() {
        return Err(not_onnx("no graph in the protobuf".into()));
    }
    if proto.opset_import.is_empty() {
        return Err(not_onnx("no opset_import in the protobuf".into()));
    }
    Ok(proto)
}

/// Dtype + shape of a tensor as declared in the graph; `None` dims are symbolic.
#[derive(Debug, Clone, PartialEq)]
struct Declared {
    dtype: Option<DataType>,
    dims: Option<Vec<Option<i64>>>,
}

impl fmt::Display for Declared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.dtype {
            Some(DataType::Float) => write!(f, "float32 ")?,
            Some(DataType::Int64) => write!(f, "int64 ")?,
            Some(d) => write!(f, "{d:?} ")?,
            None => write!(f, "<no dtype> ")?,
        }
        match &self.dims {
            None => write!(f, "<no shape>"),
            Some(d) => {
                let s: Vec<String> = d
                    .iter()
                    .map(|x| x.map_or_else(|| "?".to_string(), |v| v.to_string()))
                    .collect();
                write!(f, "[{}]", s.join(","))
            }
        }
    }
}

fn declared(v: &pb::ValueInfoProto) -> Declared {
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Declared {
            dtype: None,
            dims: None,
        };
    };
    let dims = t.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => Some(v),
                _ => None,
            })
            .collect()
    });
    Declared {
        dtype: DataType::try_from(t.elem_type).ok(),
        dims,
    }
}

impl ModelContract {
    /// Reads an ONNX file and parses + validates its contract (metadata and signature).
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let proto = load_model_proto(path)?;
        Self::from_proto(path, &proto)
    }

    /// Parses the contract from a decoded model and checks the graph signature against it.
    pub fn from_proto(path: &Path, proto: &ModelProto) -> Result<Self, ModelError> {
        let md: HashMap<&str, &str> = proto
            .metadata_props
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        let p = Props { path, md };
        let schema = p.get("c3n.schema")?;
        if schema != SCHEMA {
            return Err(p.bad(
                "c3n.schema",
                schema,
                format!(
                    "this runtime reads schema {SCHEMA} (per-region labels and categories, issue 15); \
                     re-export the model with `python -m c3n.export`"
                ),
            ));
        }
        let config = p.get("c3n.config")?;
        if config != "edge" && config != "paper" {
            return Err(p.bad(
                "c3n.config",
                config,
                "expected \"edge\" or \"paper\"".into(),
            ));
        }
        let trained = match p.get("c3n.trained")? {
            "true" => true,
            "false" => false,
            v => return Err(p.bad("c3n.trained", v, "expected \"true\" or \"false\"".into())),
        };
        let clip_frames: usize = p.parse("c3n.clip_frames")?;
        if !(1..=MAX_CLIP_FRAMES).contains(&clip_frames) {
            return Err(p.bad(
                "c3n.clip_frames",
                p.get("c3n.clip_frames")?,
                format!("must be 1 to {MAX_CLIP_FRAMES}"),
            ));
        }
        let clip_rate_hz: f64 = p.parse("c3n.clip_rate_hz")?;
        if !(MIN_CLIP_RATE_HZ..=MAX_CLIP_RATE_HZ).contains(&clip_rate_hz) {
            return Err(p.bad(
                "c3n.clip_rate_hz",
                p.get("c3n.clip_rate_hz")?,
                format!("must be {MIN_CLIP_RATE_HZ} to {MAX_CLIP_RATE_HZ} Hz"),
            ));
        }
        let size: u32 = p.parse("c3n.input_size")?;
        if !(1..=MAX_INPUT_SIZE).contains(&size) {
            return Err(p.bad(
                "c3n.input_size",
                p.get("c3n.input_size")?,
                format!("must be 1 to {MAX_INPUT_SIZE} pixels"),
            ));
        }
        let image = ImageNorm {
            size,
            mean: p.triple("c3n.mean")?,
            std: p.triple("c3n.std")?,
        };
        if image.std.iter().any(|&s| s.is_nan() || s <= 0.0) {
            return Err(p.bad("c3n.std", p.get("c3n.std")?, "every std must be > 0".into()));
        }
        let frontend = FrontendParams {
            sample_rate: p.parse("c3n.frontend.sample_rate")?,
            window_samples: p.parse("c3n.frontend.window_samples")?,
            hop_samples: p.parse("c3n.frontend.hop_samples")?,
            fft_size: p.parse("c3n.frontend.fft_size")?,
            mel_bands: p.parse("c3n.frontend.mel_bands")?,
            mel_min_hz: p.parse("c3n.frontend.mel_min_hz")?,
            mel_max_hz: p.parse("c3n.frontend.mel_max_hz")?,
            log_offset: p.parse("c3n.frontend.log_offset")?,
            patch_frames: p.parse("c3n.frontend.patch_frames")?,
        };
        if let Err(reason) = frontend.validate() {
            return Err(p.bad("c3n.frontend.*", "", reason.to_string()));
        }
        let alpha: f32 = p.parse("c3n.alpha")?;
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err(p.bad("c3n.alpha", p.get("c3n.alpha")?, "must be in (0, 1]".into()));
        }
        let cat_text = p.get("c3n.categories")?;
        let categories = CategoryMap::from_json(cat_text, N_IMAGENET, N_AUDIOSET)
            .map_err(|e| p.bad("c3n.categories", cat_text, e.to_string()))?;
        let contract = Self {
            path: path.to_path_buf(),
            config: config.to_string(),
            model_version: p.get("c3n.model_version")?.to_string(),
            trained,
            clip_frames,
            clip_rate_hz,
            image,
            frontend,
            imagenet_labels: p.labels("c3n.labels.imagenet", N_IMAGENET)?,
            audioset_labels: p.labels("c3n.labels.audioset", N_AUDIOSET)?,
            alpha,
            categories,
            categories_sha256: p.get("c3n.categories.sha256")?.to_string(),
        };
        contract.check_signature(proto)?;
        Ok(contract)
    }

    /// Expected `(name, shape)` of the (float32) inputs, in contract order.
    pub fn input_shapes(&self) -> [(&'static str, Vec<usize>); 2] {
        let (t, s, p) = (self.clip_frames, self.image.size as usize, &self.frontend);
        [
            ("frames", vec![t, 3, s, s]),
            ("audio_logmel", vec![t, 1, p.patch_frames, p.mel_bands]),
        ]
    }

    fn expected_outputs(&self) -> [(&'static str, DataType, Vec<usize>); 7] {
        let (t, s) = (self.clip_frames, self.image.size as usize);
        let m = map_size(s);
        [
            ("mask_logits", DataType::Float, vec![t, 1, s, s]),
            ("visual_logits", DataType::Float, vec![t, N_IMAGENET]),
            ("audio_logits", DataType::Float, vec![t, N_AUDIOSET]),
            ("unified_label", DataType::Int64, vec![t]),
            ("c3im_score", DataType::Float, vec![t]),
            (
                "visual_logit_map",
                DataType::Float,
                vec![t, N_IMAGENET, m, m],
            ),
            ("c3im_affinity", DataType::Float, vec![t, N_IMAGENET]),
        ]
    }

    /// Checks graph inputs/outputs (names in order, dtypes, static shapes) against the contract.
    fn check_signature(&self, proto: &ModelProto) -> Result<(), ModelError> {
        let Some(graph) = proto.graph.as_ref() else {
            return Err(ModelError::NotOnnx {
                path: self.path.clone(),
                reason: "no graph".into(),
            });
        };
        let initialisers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<&pb::ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !initialisers.contains(&i.name.as_str()))
            .collect();
        let want_in: Vec<(&str, DataType, Vec<usize>)> = self
            .input_shapes()
            .into_iter()
            .map(|(n, s)| (n, DataType::Float, s))
            .collect();
        self.check_list("input", &inputs, &want_in)?;
        let outputs: Vec<&pb::ValueInfoProto> = graph.output.iter().collect();
        self.check_list("output", &outputs, &self.expected_outputs())
    }

    fn check_list(
        &self,
        kind: &'static str,
        got: &[&pb::ValueInfoProto],
        want: &[(&str, DataType, Vec<usize>)],
    ) -> Result<(), ModelError> {
        let err = |problem: String| ModelError::Signature {
            path: self.path.clone(),
            kind,
            problem,
        };
        let got_names: Vec<&str> = got.iter().map(|v| v.name.as_str()).collect();
        let want_names: Vec<&str> = want.iter().map(|w| w.0).collect();
        if got_names != want_names {
            return Err(err(format!(
                "expected {kind}s {want_names:?}, found {got_names:?}"
            )));
        }
        for (v, (name, dtype, shape)) in got.iter().zip(want) {
            let d = declared(v);
            let want_dims: Vec<Option<i64>> = shape.iter().map(|&x| Some(x as i64)).collect();
            if d.dtype != Some(*dtype) || d.dims.as_ref() != Some(&want_dims) {
                let w = Declared {
                    dtype: Some(*dtype),
                    dims: Some(want_dims),
                };
                return Err(err(format!("`{name}`: expected {w}, found {d}")));
            }
        }
        Ok(())
    }
}

/// Helper over the metadata map that produces errors naming the file and key.
struct Props<'a> {
    path: &'a Path,
    md: HashMap<&'a str, &'a str>,
}

impl<'a> Props<'a> {
    fn get(&self, key: &'static str) -> Result<&'a str, ModelError> {
        self.md
            .get(key)
            .copied()
            .ok_or_else(|| ModelError::MissingKey {
                path: self.path.to_path_buf(),
                key,
            })
    }

    fn bad(&self, key: &'static str, value: &str, reason: String) -> ModelError {
        ModelError::BadValue {
            path: self.path.to_path_buf(),
            key,
            value: value.chars().take(80).collect(),
            reason,
        }
    }

    fn parse<T: std::str::FromStr>(&self, key: &'static str) -> Result<T, ModelError>
    where
        T::Err: fmt::Display,
    {
        let v = self.get(key)?;
        v.trim()
            .parse::<T>()
            .map_err(|e| self.bad(key, v, e.to_string()))
    }

    fn triple(&self, key: &'static str) -> Result<[f32; 3], ModelError> {
        let v = self.get(key)?;
        let parts: Result<Vec<f32>, _> = v.split(',').map(|x| x.trim().parse::<f32>()).collect();
        match parts {
            Ok(p) if p.len() == 3 && p.iter().all(|x| x.is_finite()) => Ok([p[0], p[1], p[2]]),
            Ok(p) => Err(self.bad(
                key,
                v,
                format!("expected 3 finite comma-separated numbers, got {}", p.len()),
            )),
            Err(e) => Err(self.bad(key, v, e.to_string())),
        }
    }

    fn labels(&self, key: &'static str, n: usize) -> Result<Vec<String>, ModelError> {
        let v = self.get(key)?;
        let labels: Vec<String> = serde_json::from_str(v)
            .map_err(|e| self.bad(key, v, format!("not a JSON string array: {e}")))?;
        if labels.len() != n {
            return Err(self.bad(
                key,
                v,
                format!("expected {n} labels, found {}", labels.len()),
            ));
        }
        Ok(labels)
    }
}

impl fmt::Display for ModelContract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.frontend;
        writeln!(f, "model:         {}", self.path.display())?;
        writeln!(
            f,
            "config:        {} (version {}, trained: {})",
            self.config, self.model_version, self.trained
        )?;
        writeln!(
            f,
            "clip:          T = {} frames at {} Hz",
            self.clip_frames, self.clip_rate_hz
        )?;
        for (name, shape) in self.input_shapes() {
            writeln!(f, "input:         {name} float32 {shape:?}")?;
        }
        for (name, dt, shape) in self.expected_outputs() {
            let dt = if dt == DataType::Int64 {
                "int64"
            } else {
                "float32"
            };
            writeln!(f, "output:        {name} {dt} {shape:?}")?;
        }
        writeln!(
            f,
            "image:         {0}x{0}, mean {1:?}, std {2:?}",
            self.image.size, self.image.mean, self.image.std
        )?;
        writeln!(
            f,
            "frontend:      {} Hz, window {} / hop {} samples, FFT {}, {} mel bands {}-{} Hz, ln(x + {}), {} frames/patch",
            p.sample_rate, p.window_samples, p.hop_samples, p.fft_size, p.mel_bands, p.mel_min_hz,
            p.mel_max_hz, p.log_offset, p.patch_frames
        )?;
        writeln!(
            f,
            "labels:        {} ImageNet, {} AudioSet",
            self.imagenet_labels.len(),
            self.audioset_labels.len()
        )?;
        write!(
            f,
            "categories:    {} (v{}, sha256 {}): {}",
            self.categories.names.len(),
            self.categories.version,
            self.categories_sha256,
            self.categories.names.join(", ")
        )
    }
}
