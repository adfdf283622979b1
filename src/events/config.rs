//! The lifecycle settings (`[events]`) and their checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Default `[events] min_in_view` (issue 26): provisional, to be tuned on validation once a
/// model with the `in_view` output is trained.
pub const DEFAULT_MIN_IN_VIEW: f32 = 0.5;

/// Lifecycle settings (`[events]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventConfig {
    /// Name of the input in the events (Frigate's `camera`).
    pub camera: String,
    /// Frames an object must be seen in before `new` is sent (≥ 1).
    pub min_frames: u32,
    /// An object not seen for this long (ms of source time) ends.
    pub end_timeout_ms: u64,
    /// Minimum box IoU to continue a track (0–1).
    pub iou_threshold: f32,
    /// Frames with audio below this level (dBFS) have no sounding object; `None` disables.
    pub silence_dbfs: Option<f32>,
    /// Frames whose top AudioSet class is one of these names (exact, as in the model's
    /// `c3n.labels.audioset` metadata) have no sounding object; empty disables.
    pub silence_classes: Vec<String>,
    /// Frames whose `in_view` score (a model with the `in_view` output, issue 26: the probability
    /// that the source of the sound is visible) is below this have no sounding object (0–1; 0
    /// disables). The default 0.5 is provisional, to be tuned on validation once a model with the
    /// output is trained.
    pub min_in_view: f32,
    /// Categories to track (Frigate's `objects.track`); empty = all. Names from the model's
    /// vocabulary (`c3n-edge model-info`), checked at start ([`EventConfig::check_labels`]).
    pub labels: Vec<String>,
    /// Minimum region score (mean mask probability, 0–1) per category; regions below it are
    /// dropped before tracking (Frigate's `filters.<label>.min_score`).
    pub min_score: BTreeMap<String, f32>,
    /// `update` throttle, box: an object seen again is sent when the box IoU of its current box
    /// with the box last sent is below this (0–1; 0 never, 1 on any change of the box).
    pub update_iou: f32,
    /// `update` throttle, score: … or when its region score differs from the one last sent by
    /// more than this (≥ 0; ≥ 1 never).
    pub update_score_delta: f32,
    /// `update` throttle, time: … or when this many seconds of source time have passed since the
    /// message last sent (≥ 0; 0 sends an `update` for every frame the object is seen in).
    pub update_interval_s: f64,
}

/// An `[events]` setting that cannot be used ([`EventConfig::validate`],
/// [`EventConfig::check_labels`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventConfigError {
    /// `min_frames` = 0.
    #[error("events.min_frames must be >= 1")]
    MinFrames,
    /// `iou_threshold` outside 0–1.
    #[error("events.iou_threshold = {0}: expected 0..=1")]
    IouThreshold(f32),
    /// The camera name is not `[A-Za-z0-9_-]+`.
    #[error("camera name {0:?}: expected letters, digits, '_' or '-' ([A-Za-z0-9_-]+)")]
    Camera(String),
    /// A `min_score` outside 0–1.
    #[error("events.min_score.{label} = {value}: expected 0..=1")]
    MinScore {
        /// The category.
        label: String,
        /// Its minimum score.
        value: f32,
    },
    /// `min_in_view` outside 0–1.
    #[error("events.min_in_view = {0}: expected 0..=1")]
    MinInView(f32),
    /// `update_iou` outside 0–1.
    #[error("events.update_iou = {0}: expected 0..=1")]
    UpdateIou(f32),
    /// `update_score_delta` negative or not finite.
    #[error("events.update_score_delta = {0}: expected a number >= 0")]
    UpdateScoreDelta(f32),
    /// `update_interval_s` negative or not finite.
    #[error("events.update_interval_s = {0}: expected seconds >= 0")]
    UpdateInterval(f64),
    /// A name in `labels` or `min_score` that is not one of the model's categories.
    #[error("events.{what}: unknown label {name:?}; the model's categories are: {}", known.join(", "))]
    UnknownLabel {
        /// `labels` or `min_score`.
        what: &'static str,
        /// The name.
        name: String,
        /// The model's categories.
        known: Vec<String>,
    },
}

impl Default for EventConfig {
    fn default() -> Self {
        Self {
            camera: "default".into(),
            min_frames: 2,
            end_timeout_ms: 3000,
            iou_threshold: 0.3,
            silence_dbfs: Some(-50.0),
            silence_classes: vec!["Silence".into()],
            min_in_view: DEFAULT_MIN_IN_VIEW,
            labels: Vec::new(),
            min_score: BTreeMap::new(),
            update_iou: 0.7,
            update_score_delta: 0.1,
            update_interval_s: 5.0,
        }
    }
}

impl EventConfig {
    /// Checks value ranges and the camera name.
    ///
    /// Errors: the first [`EventConfigError`] found.
    pub fn validate(&self) -> Result<(), EventConfigError> {
        if self.min_frames == 0 {
            return Err(EventConfigError::MinFrames);
        }
        if !(0.0..=1.0).contains(&self.iou_threshold) {
            return Err(EventConfigError::IouThreshold(self.iou_threshold));
        }
        if !(0.0..=1.0).contains(&self.min_in_view) {
            return Err(EventConfigError::MinInView(self.min_in_view));
        }
        if !(0.0..=1.0).contains(&self.update_iou) {
            return Err(EventConfigError::UpdateIou(self.update_iou));
        }
        if !(self.update_score_delta.is_finite() && self.update_score_delta >= 0.0) {
            return Err(EventConfigError::UpdateScoreDelta(self.update_score_delta));
        }
        if !(self.update_interval_s.is_finite() && self.update_interval_s >= 0.0) {
            return Err(EventConfigError::UpdateInterval(self.update_interval_s));
        }
        // the camera name is an MQTT topic level and part of Home Assistant ids, with or
        // without --mqtt: one rule everywhere (Frigate's)
        if self.camera.is_empty()
            || !self
                .camera
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(EventConfigError::Camera(self.camera.clone()));
        }
        for (label, &value) in &self.min_score {
            if !(0.0..=1.0).contains(&value) {
                return Err(EventConfigError::MinScore {
                    label: label.clone(),
                    value,
                });
            }
        }
        Ok(())
    }

    /// Checks that every name in `labels` and `min_score` is one of the model's categories
    /// (`known`).
    ///
    /// Errors: [`EventConfigError::UnknownLabel`], listing the categories.
    pub fn check_labels(&self, known: &[String]) -> Result<(), EventConfigError> {
        for (what, name) in self
            .labels
            .iter()
            .map(|l| ("labels", l))
            .chain(self.min_score.keys().map(|l| ("min_score", l)))
        {
            if !known.iter().any(|k| k == name) {
                return Err(EventConfigError::UnknownLabel {
                    what,
                    name: name.clone(),
                    known: known.to_vec(),
                });
            }
        }
        Ok(())
    }

    /// Whether a region of category `label` with region score `score` is tracked.
    pub fn keeps(&self, label: &str, score: f32) -> bool {
        (self.labels.is_empty() || self.labels.iter().any(|l| l == label))
            && self.min_score.get(label).is_none_or(|&m| score >= m)
    }

    /// The categories published per label (MQTT counts, Home Assistant sensors): `labels`, or
    /// all of `known` when `labels` is empty.
    pub fn tracked<'a>(&'a self, known: &'a [String]) -> &'a [String] {
        if self.labels.is_empty() {
            known
        } else {
            &self.labels
        }
    }
}
