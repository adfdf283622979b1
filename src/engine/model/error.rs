//! Errors of the model contract ([`ModelError`]).

use std::path::PathBuf;

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
