//! [`BestFrames`]: the snapshot of each active object is the frame where it scored best (Frigate's
//! best snapshot, docs/integration-conventions.md §3.3), not the latest one.
//!
//! Every frame, each region that belongs to an announced, active object (the scene's event id)
//! and scores higher than that object's best so far replaces its kept frame. The kept frame is
//! the [`Scene`] the overlay draws, sharing the source image (`Arc`), so memory is bounded by one
//! frame per active object, and objects that peak in the same frame share it. A kept frame is
//! published with the object's next message (`new`, `update`, `end`) if it changed since the last
//! one: the `update` throttle ([`crate::events`]) also bounds the JPEG encodes, whatever the frame
//! rate, and an object's `end` carries its best frame even if it peaked after its last `update`.

use std::collections::HashMap;
use std::sync::Arc;

use super::topics::label_slug;
use crate::events::{Event, EventType};
use crate::render::Scene;

/// The best frame of one active object.
#[derive(Debug)]
struct Best {
    /// The object's region score in that frame (mean mask probability, 0–1).
    score: f32,
    /// The frame as the overlay draws it.
    scene: Arc<Scene>,
    /// Whether it has been handed out by [`BestFrames::due`].
    published: bool,
}

/// The best-scoring frame of each active object (module doc).
#[derive(Debug, Default)]
pub(crate) struct BestFrames {
    by_id: HashMap<String, Best>,
}

impl BestFrames {
    /// Keeps `scene` as the best frame of each of its objects that is active (`is_active(id)`:
    /// announced and not ended) and scores higher in it than in its best frame so far.
    pub(crate) fn observe(&mut self, scene: Scene, is_active: impl Fn(&str) -> bool) {
        let improved: Vec<(String, f32)> = scene
            .objects
            .iter()
            .filter_map(|o| Some((o.id.as_ref()?, o.region.score)))
            .filter(|(id, score)| {
                is_active(id) && self.by_id.get(*id).is_none_or(|b| *score > b.score)
            })
            .map(|(id, score)| (id.clone(), score))
            .collect();
        if improved.is_empty() {
            return;
        }
        let scene = Arc::new(scene);
        for (id, score) in improved {
            let best = Best {
                score,
                scene: Arc::clone(&scene),
                published: false,
            };
            self.by_id.insert(id, best);
        }
    }

    /// The frames to publish with `events`: the best frame of each object with a message here
    /// whose best frame was not published yet, one entry per frame with the label slugs of its
    /// objects (each once). Marks them published, and forgets the objects that `end`.
    pub(crate) fn due(&mut self, events: &[Event]) -> Vec<(Arc<Scene>, Vec<String>)> {
        let mut out: Vec<(Arc<Scene>, Vec<String>)> = Vec::new();
        for e in events {
            let Some(b) = self.by_id.get_mut(&e.after.id) else {
                continue;
            };
            if !b.published {
                b.published = true;
                let slug = label_slug(&e.after.label);
                match out.iter_mut().find(|(s, _)| Arc::ptr_eq(s, &b.scene)) {
                    Some((_, slugs)) if slugs.contains(&slug) => {}
                    Some((_, slugs)) => slugs.push(slug),
                    None => out.push((Arc::clone(&b.scene), vec![slug])),
                }
            }
            if e.kind == EventType::End {
                self.by_id.remove(&e.after.id);
            }
        }
        out
    }

    /// Number of objects with a kept frame.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use image::RgbImage;

    use super::*;
    use crate::events::{EventConfig, FrameDetections, Tracker};
    use crate::post::{BitMask, FrameLabels, Region, RegionLabel};
    use crate::sink::scene::SceneBuilder;
    use crate::sink::AnalysedFrame;

    fn region(x: u32, score: f32) -> Region {
        Region {
            bbox: [x, 10, x + 40, 50],
            area_fraction: 0.1,
            score,
            outline: vec![],
            mask: BitMask {
                width: 4,
                height: 4,
                bits: vec![false; 16],
            },
            label: RegionLabel {
                category: "dog".into(),
                category_score: 0.7,
                imagenet_index: 207,
                imagenet_label: "golden retriever".into(),
                c3im_score: 0.4,
            },
        }
    }

    /// Per frame with something due: `(frame number, [(frame number of the scene, slugs)])`.
    type Published = Vec<(u64, Vec<(u64, Vec<String>)>)>;

    /// Runs frames 200 ms apart (frame `k`: the regions `regions(k)`) through the tracker (default
    /// `[events]`: min 2 frames, `update` every 5 s or on a score change over 0.1), the scene
    /// builder and [`BestFrames`], as the MQTT sink does; returns what was published and the
    /// kept count.
    fn run(n: u64, regions: impl Fn(u64) -> Vec<Region>) -> (Published, usize) {
        let mut tracker = Tracker::new(EventConfig::default());
        let mut scenes = SceneBuilder::default();
        let mut best = BestFrames::default();
        let mut active: HashSet<String> = HashSet::new();
        let mut published = Vec::new();
        let image = Arc::new(RgbImage::new(64, 64));
        let mut step = |number: u64, events: Vec<Event>, frame: Option<AnalysedFrame>| {
            for e in &events {
                match e.kind {
                    EventType::End => active.remove(&e.after.id),
                    _ => active.insert(e.after.id.clone()),
                };
            }
            if let Some(frame) = frame {
                best.observe(scenes.scene(&frame, &events), |id| active.contains(id));
            }
            let due: Vec<(u64, Vec<String>)> = best
                .due(&events)
                .into_iter()
                .map(|(s, slugs)| (s.number, slugs))
                .collect();
            if !due.is_empty() {
                published.push((number, due));
            }
        };
        for k in 0..n {
            let detections = FrameDetections {
                pts_ms: 200 * k as i64,
                regions: regions(k),
                labels: FrameLabels {
                    visual_index: 207,
                    visual_label: "golden retriever".into(),
                    audio_index: 0,
                    audio_label: "Bark".into(),
                    audio_score: 0.9,
                    c3im_score: 0.3,
                },
                audio_rms: 0.1,
                in_view: None,
            };
            let events = tracker.update(&detections);
            let frame = AnalysedFrame {
                number: k,
                image: Arc::clone(&image),
                detections,
            };
            step(k, events, Some(frame));
        }
        step(n, tracker.finish(), None);
        (published, best.len())
    }

    #[test]
    fn the_published_snapshot_is_the_best_frame_sent_with_the_next_message() {
        // `new` in frame 1 (score 0.6); frame 3 peaks at 0.68 (within 0.1: no `update`), then
        // lower scores until the end of the input: `end` carries frame 3
        let scores = [0.5, 0.6, 0.62, 0.68, 0.65, 0.6, 0.6];
        let (published, kept) = run(scores.len() as u64, |k| {
            vec![region(10, scores[k as usize])]
        });
        let dog = vec!["dog".to_string()];
        assert_eq!(
            published,
            [(1, vec![(1, dog.clone())]), (7, vec![(3, dog)])]
        );
        assert_eq!(kept, 0, "an ended object's frame is dropped");
    }

    #[test]
    fn an_unchanged_best_is_not_published_again_and_frames_are_shared() {
        // two still dogs, both best in frame 1 (their `new`): one JPEG for both; the 5-s
        // `update`s (frame 26) and the `end`s find nothing new to publish
        let (published, kept) = run(30, |k| {
            let s = if k == 1 { 0.7 } else { 0.65 };
            vec![region(10, s), region(200, s)]
        });
        assert_eq!(published, [(1, vec![(1, vec!["dog".to_string()])])]);
        assert_eq!(kept, 0);
    }
}
