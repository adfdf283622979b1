//! The C3N model contract: what an exported ONNX file must look like, read from its
//! `metadata_props` and checked against its graph signature.
//!
//! Producer: `python -m c3n.export` (`models/c3n/export/exporter.py`). The protobuf is decoded
//! once with tract-onnx's own prost types (`tract_onnx::pb::ModelProto`, the same decoder tract
//! uses to load the graph), so no second
//! protobuf dependency or schema copy is needed and the decoded proto is reused to build the tract
//! model ([`load_model_proto`] → [`ModelContract::from_proto`] → `tract::TractEngine`).
//!
//! Contract, schema "2" (the shipped edge models; "1" lacked the last two outputs and the
//! `c3n.alpha` / `c3n.categories*` metadata, and is refused with a message to re-export):
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
//!
//! Schema "3" (issue 24: the official C3N / AVSBench networks) is schema 2 with:
//! * `c3n.variant` (required; e.g. `c3n/pvt_v2_b5/vggish`, `avsbench/resnet50/vggish`), shown
//!   by `model-info`; `c3n.config` may also be `c3n` or `avsbench`;
//! * `c3n.audio_input` (required): `logmel` (input `audio_logmel [T,1,96,64]`, the `c3n.frontend.*`
//!   keys as in schema 2, plus the optional `c3n.frontend.patch_placement` = `slot` | `examples`,
//!   [`crate::frontend::PatchPlacement`]) or `waveform` (input `audio_waveform [T,sample_rate]`
//!   float32, one 1-s window of 16 kHz mono audio per frame slot; only
//!   `c3n.frontend.sample_rate` is read);
//! * `audio_logits [T,N]` with N = the length of `c3n.labels.audioset`, 521 (YAMNet order) or
//!   527 (AudioSet order); the category vocabulary must cover N (`audioset_527` from version 2);
//! * the C3IM outputs optional, all or none: a model without an ImageNet head (the AVSBench
//!   baseline) has only `mask_logits` and `audio_logits` ([`C3IM_OUTPUTS`] left out; then
//!   `c3n.labels.imagenet` and `c3n.alpha` are optional), and its regions are labelled from the
//!   audio side ([`ModelContract::c3im`]).
//!
//! `c3n.frontend.patch_placement` is also read in schema 2 (absent = `slot`).
//!
//! Optional in schemas 2 and 3 (issue 26): the output `in_view` float32 `[T]`, the sigmoid
//! probability that the source of the sound is visible in the frame, after every other output,
//! with metadata `c3n.in_view` = `1` ([`IN_VIEW`], [`ModelContract::in_view`]). The key without
//! the output, or the output without the key, is refused. Files without either (the shipped
//! models) are read as before.

mod error;
mod info;
mod props;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tract_onnx::pb::{self, tensor_proto::DataType, ModelProto};
use tract_onnx::prelude::Framework;

pub use self::error::ModelError;
use self::props::{declared, Declared, Props};
use crate::categories::CategoryMap;
use crate::frontend::{AudioInput, FrontendParams, ImageNorm, PatchPlacement};

/// Metadata schema version of the shipped models (`c3n.schema`); [`SCHEMA_3`] is also read.
pub const SCHEMA: &str = "2";
/// Schema of the imported official networks (module docs).
pub const SCHEMA_3: &str = "3";
/// Number of ImageNet classes (`visual_logits` width, `c3n.labels.imagenet` length).
pub const N_IMAGENET: usize = 1000;
/// Number of AudioSet classes of YAMNet (`audio_logits` width of schema 2 models).
pub const N_AUDIOSET: usize = 521;
/// Number of AudioSet classes of the full label set (schema 3 may use it: VGGish's head, PANNs).
pub const N_AUDIOSET_527: usize = 527;
/// Largest `c3n.clip_frames` accepted (buffers are sized from it; the shipped models use 1 and 5).
pub const MAX_CLIP_FRAMES: usize = 64;
/// Largest `c3n.input_size` accepted, in pixels (the shipped models use 224).
pub const MAX_INPUT_SIZE: u32 = 4096;
/// Accepted range of `c3n.clip_rate_hz` (the frame-slot rate; C3N: 1 Hz).
pub const MIN_CLIP_RATE_HZ: f64 = 0.01;
/// See [`MIN_CLIP_RATE_HZ`].
pub const MAX_CLIP_RATE_HZ: f64 = 1000.0;
/// Input names, in contract order (log-mel models).
pub const INPUTS: [&str; 2] = ["frames", "audio_logmel"];
/// Input names of waveform models (`c3n.audio_input = waveform`, schema 3).
pub const INPUTS_WAVEFORM: [&str; 2] = ["frames", "audio_waveform"];
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
/// Output names of a model without C3IM outputs (schema 3, no ImageNet head), in contract order.
pub const OUTPUTS_AUDIO_ONLY: [&str; 2] = ["mask_logits", "audio_logits"];

/// `names` followed by [`IN_VIEW`] (`M` = `N` + 1, checked at compile time).
const fn with_in_view<const N: usize, const M: usize>(
    names: [&'static str; N],
) -> [&'static str; M] {
    assert!(M == N + 1);
    let mut out = [IN_VIEW; M];
    let mut i = 0;
    while i < N {
        out[i] = names[i];
        i += 1;
    }
    out
}
/// The outputs such a model leaves out.
pub const C3IM_OUTPUTS: [&str; 5] = [
    "visual_logits",
    "unified_label",
    "c3im_score",
    "visual_logit_map",
    "c3im_affinity",
];

/// The optional trailing output (issue 26, module docs): `in_view` float32 `[T]`.
pub const IN_VIEW: &str = "in_view";
/// Metadata key that declares [`IN_VIEW`] (value `1`).
pub const IN_VIEW_KEY: &str = "c3n.in_view";

/// Side of the last backbone stage's map (`visual_logit_map`) for input size `s`: `⌈s/32⌉`.
pub fn map_size(s: usize) -> usize {
    s.div_ceil(32)
}

/// The model contract, parsed from the ONNX `metadata_props` (all values are strings there).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelContract {
    /// File it was read from.
    pub path: PathBuf,
    /// `c3n.schema`: 2 or 3.
    pub schema: u32,
    /// `c3n.variant` (schema 3; optional in schema 2), e.g. `c3n/pvt_v2_b5/vggish`.
    pub variant: Option<String>,
    /// `c3n.config`: "edge" or "paper" (schema 3 also "c3n", "avsbench").
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
    /// `c3n.frontend.*` and `c3n.audio_input`: the audio front end.
    pub frontend: FrontendParams,
    /// True when the model has the C3IM outputs (always in schema 2; [`C3IM_OUTPUTS`]).
    pub c3im: bool,
    /// True when the model has the trailing `in_view` output (`c3n.in_view` = `1`, issue 26).
    pub in_view: bool,
    /// `c3n.labels.imagenet`: 1000 ImageNet class names (index = `visual_logits` column); empty
    /// for a model without C3IM outputs that does not carry them.
    pub imagenet_labels: Vec<String>,
    /// `c3n.labels.audioset`: 521 or 527 AudioSet class names (index = `audio_logits` column).
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
        let schema3 = match schema {
            SCHEMA => false,
            SCHEMA_3 => true,
            _ => {
                return Err(p.bad(
                    "c3n.schema",
                    schema,
                    format!(
                        "this runtime reads schemas {SCHEMA} and {SCHEMA_3} (per-region labels and \
                         categories, issue 15); re-export the model with `python -m c3n.export`"
                    ),
                ))
            }
        };
        let config = p.get("c3n.config")?;
        let configs: &[&str] = if schema3 {
            &["edge", "paper", "c3n", "avsbench"]
        } else {
            &["edge", "paper"]
        };
        if !configs.contains(&config) {
            return Err(p.bad("c3n.config", config, format!("expected one of {configs:?}")));
        }
        let variant = match (schema3, p.opt("c3n.variant")) {
            (true, None) => return Err(p.missing("c3n.variant")),
            (_, Some(v)) if v.is_empty() || v.len() > 200 || v.chars().any(char::is_control) => {
                return Err(p.bad(
                    "c3n.variant",
                    v,
                    "must be 1 to 200 printable characters".into(),
                ))
            }
            (_, v) => v.map(str::to_string),
        };
        let audio_input: AudioInput = if schema3 {
            p.parse("c3n.audio_input")?
        } else {
            AudioInput::Logmel
        };
        let in_view = match p.opt(IN_VIEW_KEY) {
            None => false,
            Some("1") => true,
            Some(v) => return Err(p.bad(IN_VIEW_KEY, v, "expected \"1\" or no key".into())),
        };
        let has_output = last_output(proto) == Some(IN_VIEW);
        if in_view != has_output {
            return Err(ModelError::Signature {
                path: path.to_path_buf(),
                kind: "output",
                problem: if in_view {
                    format!("metadata `{IN_VIEW_KEY}` = 1 but the last output is not `{IN_VIEW}`")
                } else {
                    format!("the last output is `{IN_VIEW}` but metadata `{IN_VIEW_KEY}` is not 1")
                },
            });
        }
        let c3im = has_c3im_outputs(proto, in_view);
        if !schema3 && !c3im {
            return Err(ModelError::Signature {
                path: path.to_path_buf(),
                kind: "output",
                problem: format!("schema {SCHEMA} needs the outputs {OUTPUTS:?}"),
            });
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
        let frontend = match audio_input {
            AudioInput::Logmel => FrontendParams {
                sample_rate: p.parse("c3n.frontend.sample_rate")?,
                window_samples: p.parse("c3n.frontend.window_samples")?,
                hop_samples: p.parse("c3n.frontend.hop_samples")?,
                fft_size: p.parse("c3n.frontend.fft_size")?,
                mel_bands: p.parse("c3n.frontend.mel_bands")?,
                mel_min_hz: p.parse("c3n.frontend.mel_min_hz")?,
                mel_max_hz: p.parse("c3n.frontend.mel_max_hz")?,
                log_offset: p.parse("c3n.frontend.log_offset")?,
                patch_frames: p.parse("c3n.frontend.patch_frames")?,
                patch_placement: match p.opt("c3n.frontend.patch_placement") {
                    None => PatchPlacement::Slot,
                    Some(_) => p.parse("c3n.frontend.patch_placement")?,
                },
                audio_input,
            },
            // only the rate is used; the log-mel analyser is built with the defaults
            AudioInput::Waveform => FrontendParams {
                sample_rate: p.parse("c3n.frontend.sample_rate")?,
                audio_input,
                ..FrontendParams::default()
            },
        };
        if let Err(reason) = frontend.validate() {
            return Err(p.bad("c3n.frontend.*", "", reason.to_string()));
        }
        let alpha: f32 = match (c3im, p.opt("c3n.alpha")) {
            (false, None) => 0.1,
            _ => p.parse("c3n.alpha")?,
        };
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err(p.bad("c3n.alpha", p.get("c3n.alpha")?, "must be in (0, 1]".into()));
        }
        let audio_widths: &[usize] = if schema3 {
            &[N_AUDIOSET, N_AUDIOSET_527]
        } else {
            &[N_AUDIOSET]
        };
        let audioset_labels = p.labels("c3n.labels.audioset", audio_widths)?;
        let imagenet_labels = match (c3im, p.opt("c3n.labels.imagenet")) {
            (false, None) => Vec::new(),
            _ => p.labels("c3n.labels.imagenet", &[N_IMAGENET])?,
        };
        let cat_text = p.get("c3n.categories")?;
        let categories = CategoryMap::from_json(cat_text, N_IMAGENET, audioset_labels.len())
            .map_err(|e| p.bad("c3n.categories", cat_text, e.to_string()))?;
        let contract = Self {
            path: path.to_path_buf(),
            schema: if schema3 { 3 } else { 2 },
            variant,
            config: config.to_string(),
            model_version: p.get("c3n.model_version")?.to_string(),
            trained,
            clip_frames,
            clip_rate_hz,
            image,
            frontend,
            c3im,
            in_view,
            imagenet_labels,
            audioset_labels,
            alpha,
            categories,
            categories_sha256: p.get("c3n.categories.sha256")?.to_string(),
        };
        contract.check_signature(proto)?;
        Ok(contract)
    }

    /// Expected `(name, shape)` of the (float32) graph inputs, in contract order: `frames`
    /// `[T,3,S,S]` and `audio_logmel [T,1,96,64]` or `audio_waveform [T,sample_rate]`.
    pub fn input_shapes(&self) -> [(&'static str, Vec<usize>); 2] {
        let (t, s, p) = (self.clip_frames, self.image.size as usize, &self.frontend);
        let audio = match p.audio_input {
            AudioInput::Logmel => ("audio_logmel", vec![t, 1, p.patch_frames, p.mel_bands]),
            AudioInput::Waveform => ("audio_waveform", vec![t, p.sample_rate as usize]),
        };
        [("frames", vec![t, 3, s, s]), audio]
    }

    /// Shape of [`crate::engine::ModelInput::audio_logmel`] for this model: the log-mel input's
    /// `[T,1,96,64]`, or `[T,1,1,sample_rate]` for a waveform model (the engines feed it as
    /// `audio_waveform [T,sample_rate]`, same data).
    pub fn audio_window_shape(&self) -> [usize; 4] {
        let (t, p) = (self.clip_frames, &self.frontend);
        match p.audio_input {
            AudioInput::Logmel => [t, 1, p.patch_frames, p.mel_bands],
            AudioInput::Waveform => [t, 1, 1, p.sample_rate as usize],
        }
    }

    /// Width of `audio_logits` (521 or 527): the number of AudioSet labels.
    pub fn n_audioset(&self) -> usize {
        self.audioset_labels.len()
    }

    /// Output names of the model, in contract order ([`OUTPUTS`] or [`OUTPUTS_AUDIO_ONLY`],
    /// then [`IN_VIEW`] when the model has it).
    pub fn output_names(&self) -> &'static [&'static str] {
        const OUTPUTS_IN_VIEW: [&str; 8] = with_in_view(OUTPUTS);
        const AUDIO_ONLY_IN_VIEW: [&str; 3] = with_in_view(OUTPUTS_AUDIO_ONLY);
        match (self.c3im, self.in_view) {
            (true, false) => &OUTPUTS,
            (false, false) => &OUTPUTS_AUDIO_ONLY,
            (true, true) => &OUTPUTS_IN_VIEW,
            (false, true) => &AUDIO_ONLY_IN_VIEW,
        }
    }

    /// `(name, dtype, shape)` of every output, in contract order.
    fn expected_outputs(&self) -> Vec<(&'static str, DataType, Vec<usize>)> {
        let (t, s) = (self.clip_frames, self.image.size as usize);
        let m = map_size(s);
        let all = [
            ("mask_logits", DataType::Float, vec![t, 1, s, s]),
            ("visual_logits", DataType::Float, vec![t, N_IMAGENET]),
            ("audio_logits", DataType::Float, vec![t, self.n_audioset()]),
            ("unified_label", DataType::Int64, vec![t]),
            ("c3im_score", DataType::Float, vec![t]),
            (
                "visual_logit_map",
                DataType::Float,
                vec![t, N_IMAGENET, m, m],
            ),
            ("c3im_affinity", DataType::Float, vec![t, N_IMAGENET]),
            (IN_VIEW, DataType::Float, vec![t]),
        ];
        let names = self.output_names();
        all.into_iter()
            .filter(|(n, _, _)| names.contains(n))
            .collect()
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
            let alt = if self.schema == 3 && kind == "output" {
                format!(" (or {OUTPUTS_AUDIO_ONLY:?} for a model without C3IM outputs)")
            } else {
                String::new()
            };
            return Err(err(format!(
                "expected {kind}s {want_names:?}{alt}, found {got_names:?}"
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

/// The graph's output names.
fn output_names(proto: &ModelProto) -> Vec<&str> {
    proto
        .graph
        .as_ref()
        .map(|g| g.output.iter().map(|o| o.name.as_str()).collect())
        .unwrap_or_default()
}

/// The graph's last output name.
fn last_output(proto: &ModelProto) -> Option<&str> {
    output_names(proto).last().copied()
}

/// True unless the graph's outputs are exactly [`OUTPUTS_AUDIO_ONLY`] (then `in_view` when
/// `in_view`): then the signature check holds the model to that list; anything else is checked
/// against [`OUTPUTS`].
fn has_c3im_outputs(proto: &ModelProto, in_view: bool) -> bool {
    let mut names = output_names(proto);
    if in_view {
        names.pop();
    }
    names != OUTPUTS_AUDIO_ONLY
}
