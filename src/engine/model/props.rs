//! Helpers of the contract parser: graph-declared tensor types and the metadata map.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use tract_onnx::pb::{self, tensor_proto::DataType, type_proto};

use super::error::ModelError;

/// Dtype + shape of a tensor as declared in the graph; `None` dims are symbolic.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Declared {
    pub(super) dtype: Option<DataType>,
    pub(super) dims: Option<Vec<Option<i64>>>,
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

pub(super) fn declared(v: &pb::ValueInfoProto) -> Declared {
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

/// Helper over the metadata map that produces errors naming the file and key.
pub(super) struct Props<'a> {
    pub(super) path: &'a Path,
    pub(super) md: HashMap<&'a str, &'a str>,
}

impl<'a> Props<'a> {
    pub(super) fn get(&self, key: &'static str) -> Result<&'a str, ModelError> {
        self.md
            .get(key)
            .copied()
            .ok_or_else(|| ModelError::MissingKey {
                path: self.path.to_path_buf(),
                key,
            })
    }

    pub(super) fn bad(&self, key: &'static str, value: &str, reason: String) -> ModelError {
        ModelError::BadValue {
            path: self.path.to_path_buf(),
            key,
            value: value.chars().take(80).collect(),
            reason,
        }
    }

    pub(super) fn parse<T: std::str::FromStr>(&self, key: &'static str) -> Result<T, ModelError>
    where
        T::Err: fmt::Display,
    {
        let v = self.get(key)?;
        v.trim()
            .parse::<T>()
            .map_err(|e| self.bad(key, v, e.to_string()))
    }

    pub(super) fn triple(&self, key: &'static str) -> Result<[f32; 3], ModelError> {
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

    /// The error for an absent required key.
    pub(super) fn missing(&self, key: &'static str) -> ModelError {
        ModelError::MissingKey {
            path: self.path.to_path_buf(),
            key,
        }
    }

    /// The value of an optional key.
    pub(super) fn opt(&self, key: &'static str) -> Option<&'a str> {
        self.md.get(key).copied()
    }

    /// A JSON string array whose length is one of `n`.
    pub(super) fn labels(&self, key: &'static str, n: &[usize]) -> Result<Vec<String>, ModelError> {
        let v = self.get(key)?;
        let labels: Vec<String> = serde_json::from_str(v)
            .map_err(|e| self.bad(key, v, format!("not a JSON string array: {e}")))?;
        if !n.contains(&labels.len()) {
            let want: Vec<String> = n.iter().map(ToString::to_string).collect();
            return Err(self.bad(
                key,
                v,
                format!(
                    "expected {} labels, found {}",
                    want.join(" or "),
                    labels.len()
                ),
            ));
        }
        Ok(labels)
    }
}
