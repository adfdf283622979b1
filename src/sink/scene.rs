//! [`SceneBuilder`]: turns what a sink receives (an [`AnalysedFrame`] and its events) into the
//! [`Scene`] the overlay renderer draws, with stable object ids. Shared by the display, the
//! `--overlay` files and the MQTT snapshots, so all of them show the same picture.

use super::AnalysedFrame;
use crate::control::RunState;
use crate::events::{box_iou, Event, EventType};
use crate::render::{Scene, SceneObject};

/// Attaches event ids to a frame's regions: a region belongs to the event of the same frame with
/// the same box, else to the live event whose last box overlaps it most (IoU ≥ 0.3).
#[derive(Debug, Default, Clone)]
pub struct SceneBuilder {
    live: Vec<(String, [u32; 4])>,
    state: Option<RunState>,
}

impl SceneBuilder {
    /// Remembers the latest run state (shown in the status line).
    pub fn set_state(&mut self, state: &RunState) {
        self.state = Some(state.clone());
    }

    /// The scene of `frame` with the `events` it caused.
    pub fn scene(&mut self, frame: &AnalysedFrame, events: &[Event]) -> Scene {
        for e in events {
            self.live.retain(|(id, _)| *id != e.after.id);
            if e.kind != EventType::End {
                self.live.push((e.after.id.clone(), e.after.bbox));
            }
        }
        let d = &frame.detections;
        let objects = d
            .regions
            .iter()
            .map(|r| {
                let exact = events
                    .iter()
                    .find(|e| e.kind != EventType::End && e.after.bbox == r.bbox)
                    .map(|e| e.after.id.clone());
                let id = exact.or_else(|| {
                    self.live
                        .iter()
                        .map(|(id, b)| (id, box_iou(*b, r.bbox)))
                        .filter(|(_, iou)| *iou >= 0.3)
                        .max_by(|a, b| a.1.total_cmp(&b.1))
                        .map(|(id, _)| id.clone())
                });
                SceneObject {
                    id,
                    region: r.clone(),
                    // the region's own labels (category and ImageNet class); the frame's unified
                    // label for a region that was not labelled
                    visual_label: if r.label.category.is_empty() {
                        d.labels.visual_label.clone()
                    } else {
                        format!("{} ({})", r.label.category, r.label.imagenet_label)
                    },
                    audio_label: d.labels.audio_label.clone(),
                }
            })
            .collect();
        Scene {
            number: frame.number,
            pts_ms: d.pts_ms,
            image: frame.image.clone(),
            objects,
            audio_dbfs: crate::events::dbfs(d.audio_rms),
            state: self.state.clone(),
        }
    }
}
