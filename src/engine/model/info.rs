//! `model-info`: the contract as text ([`ModelContract`]'s `Display`).

use std::fmt;

use tract_onnx::pb::tensor_proto::DataType;

use super::ModelContract;
use crate::frontend::{AudioInput, PatchPlacement};

impl fmt::Display for ModelContract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.frontend;
        writeln!(f, "model:         {}", self.path.display())?;
        writeln!(
            f,
            "variant:       {} (schema {})",
            self.variant.as_deref().unwrap_or("-"),
            self.schema
        )?;
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
        match p.audio_input {
            AudioInput::Logmel => writeln!(
                f,
                "frontend:      {} Hz, window {} / hop {} samples, FFT {}, {} mel bands {}-{} Hz, ln(x + {}), {} frames/patch{}",
                p.sample_rate, p.window_samples, p.hop_samples, p.fft_size, p.mel_bands, p.mel_min_hz,
                p.mel_max_hz, p.log_offset, p.patch_frames,
                if p.patch_placement == PatchPlacement::Examples { ", examples back to back" } else { "" }
            )?,
            AudioInput::Waveform => writeln!(
                f,
                "frontend:      waveform, {} Hz, one 1-s window per frame slot",
                p.sample_rate
            )?,
        }
        writeln!(
            f,
            "labels:        {} ImageNet, {} AudioSet{}",
            self.imagenet_labels.len(),
            self.audioset_labels.len(),
            if self.c3im {
                ""
            } else {
                " (no C3IM outputs: regions labelled from the audio)"
            }
        )?;
        writeln!(
            f,
            "in view:       {}",
            if self.in_view {
                "yes (output in_view: frames below [events] min_in_view have no regions)"
            } else {
                "no (no in_view output: every frame's regions are kept)"
            }
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
