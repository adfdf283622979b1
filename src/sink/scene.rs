//! [`SceneBuilder`]: turns what a sink receives (an [`AnalysedFrame`] and its events) into the
//! [`Scene`] the overlay renderer draws, with stable object ids. Shared by the display, the
//! `--overlay` files and the MQTT snapshots, so all of them show the same picture.

use super::AnalysedFrame;
use crate::control::RunState;
use crate::events::{box_iou, Event, EventType};
use crate::render::{Scene, SceneObject};

/// Attaches event ids to a frame's regions: a region belongs to the event of the same frame with
/// the same box, else to the live event whose last box overlaps it most (IoU ≥ 0.3). A live
/// event's box follows its region frame by frame, so the id stays with an object that moves
/// between its (throttled, [`crate::events`]) `update`s.
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
        let objects: Vec<SceneObject> = d
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
        for o in &objects {
            if let Some(id) = &o.id {
                if let Some(live) = self.live.iter_mut().find(|(l, _)| l == id) {
                    live.1 = o.region.bbox;
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use image::RgbImage;

    use super::*;
    use crate::events::{EventConfig, FrameDetections, Tracker};
    use crate::post::{BitMask, FrameLabels, Region, RegionLabel};

    #[test]
    fn an_id_follows_its_object_between_updates() {
        // no `update` for the box (update_iou 0): only `new` carries a box, and the object moves
        // 4 px a frame, 80 px in all (IoU 0 with the box sent)
        let mut tracker = Tracker::new(EventConfig {
            min_frames: 1,
            update_iou: 0.0,
            ..Default::default()
        });
        let mut scenes = SceneBuilder::default();
        let image = Arc::new(RgbImage::new(8, 8));
        let mut ids = Vec::new();
        for k in 0..21u32 {
            let x = 10 + 4 * k;
            let region = Region {
                bbox: [x, 10, x + 40, 50],
                area_fraction: 0.1,
                score: 0.8,
                outline: vec![],
                mask: BitMask {
                    width: 2,
                    height: 2,
                    bits: vec![false; 4],
                },
                label: RegionLabel::default(),
            };
            let mut detections = FrameDetections::empty(i64::from(k) * 200, 0.1);
            detections.labels = FrameLabels {
                audio_label: "Bark".into(),
                ..detections.labels
            };
            detections.regions = vec![region];
            let events = tracker.update(&detections);
            assert_eq!(events.len(), usize::from(k == 0), "frame {k}");
            let frame = AnalysedFrame {
                number: u64::from(k),
                image: Arc::clone(&image),
                detections,
            };
            ids.push(scenes.scene(&frame, &events).objects[0].id.clone());
        }
        assert!(ids[0].is_some());
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    }
}
