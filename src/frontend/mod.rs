//! Model input front ends: audio log-mel patches ([`logmel`]) and frame normalisation ([`image`]).
//!
//! Both take their parameters from the model contract ([`crate::engine::model::ModelContract`]).

pub mod image;
pub mod limits;
pub mod logmel;

pub use self::image::ImageNorm;
pub use self::logmel::{AudioInput, FrontendParams, FrontendParamsError, LogMel, PatchPlacement};
