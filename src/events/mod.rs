//! Sounding-object event lifecycle, after Frigate's `frigate/events`
//! (docs/integration-conventions.md §3.2): every tracked object produces `new` once it has been
//! seen in `min_frames` frames, then `update` for later frames it is seen in (throttled, below),
//! and `end` once it has not been seen for `end_timeout_ms` (or at the end of the input). Each
//! message carries `before` (the state last sent; on `new` equal to `after`, as in Frigate) and
//! `after` (the current state).
//!
//! Throttle (issue 25: a mask per camera frame must not mean a message per frame): a frame that
//! sees an announced object sends `update` only when the object changed significantly since the
//! message last sent for it — its box's IoU with the box last sent is below `update_iou`, its
//! `label` changed, its `sub_label` changed to a class also seen in the frame before (one odd
//! frame does not count), its `score` moved by more than `update_score_delta` — or when
//! `update_interval_s` of source time passed since that message (Frigate's rules, which this
//! follows in spirit, are in docs/integration-conventions.md §3.2). `update_interval_s` = 0
//! sends every frame. The tracking itself (matching, votes, `frames`, `top_score`, the end
//! timeout) runs on every frame, sent or not.
//!
//! Matching: each frame's regions are matched to live tracks greedily by box IoU (highest first,
//! at least `iou_threshold`); unmatched regions start new tracks.
//!
//! Silence gate: a frame whose audio is quieter than `silence_dbfs`, or whose top AudioSet class
//! (YAMNet's, in `FrameLabels::audio_label`) is one of `silence_classes` (default `["Silence"]`),
//! counts as a frame without regions — nothing sounds, so no object starts and silence ends events.
//! The level alone misses a quiet room's noise floor (the demo clip's silent seconds measure
//! −50…−55 dBFS, above a −60 dBFS limit); the class alone misses a dead microphone.
//!
//! Off-screen gate (issue 26): with a model that has the `in_view` output (the probability that
//! the source of the sound is visible), a frame whose `in_view` is below `min_in_view` also counts
//! as a frame without regions (the sound comes from outside the picture), and the frame's score
//! is in the events (`in_view`). Models without the output are not gated.
//!
//! Labels (schema 2, issue 15): `label` is the region's category from the short vocabulary
//! (`person`, `dog`, `car`, …, `other`; [`crate::categories`]) — over the object's frames, the
//! category with the largest summed category score, so one odd frame does not flip it — and
//! `sub_label` its ImageNet class (C3IM on the region's own visual logits with the frame's audio)
//! in the last frame; `c3im_score` is that region's consensus, `frame_label` the frame-level
//! unified label of before. `[events] labels` tracks only some categories and `min_score` sets a
//! minimum region score per category (Frigate's `objects.track` / `filters.<label>.min_score`):
//! other regions are dropped before tracking.
//!
//! Times are seconds on the source timeline (a file starts at 0). Ids are
//! `<start_time>-<6 chars>` like Frigate's, the suffix derived from a per-run counter (so runs are
//! reproducible). The JSON form is versioned: [`SCHEMA_VERSION`], `schema/event.schema.json`.

mod config;

pub use self::config::{EventConfig, EventConfigError, DEFAULT_MIN_IN_VIEW};

use serde::{Deserialize, Serialize};

use crate::post::{FrameLabels, Region, Rle};

/// Version of the event JSON schema (`schema/event.schema.json`, `$id` ends in it): the
/// `version` of events that carry `in_view` (2.1.0 added it, issue 26).
pub const SCHEMA_VERSION: &str = "2.1.0";
/// The `version` of events without `in_view` (a model without the output): they are 2.0.0
/// messages, byte for byte as before 2.1.0, and valid under both schemas.
pub const SCHEMA_VERSION_NO_IN_VIEW: &str = "2.0.0";

/// The `version` of an event whose current state is `after` ([`SCHEMA_VERSION`] or
/// [`SCHEMA_VERSION_NO_IN_VIEW`]).
fn version(after: &ObjectState) -> String {
    match after.in_view {
        Some(_) => SCHEMA_VERSION,
        None => SCHEMA_VERSION_NO_IN_VIEW,
    }
    .into()
}

/// Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// First message of an object.
    New,
    /// The object was seen again and changed significantly since the last message, or
    /// `update_interval_s` passed (the throttle, module doc).
    Update,
    /// The object is gone (last message).
    End,
}

/// One event message (one JSON line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub version: String,
    /// `new`, `update` or `end`.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// State last sent (on `new`: same as `after`).
    pub before: ObjectState,
    /// Current state.
    pub after: ObjectState,
}

/// Audio facts of the frame an object was last seen in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInfo {
    /// Top AudioSet class name.
    pub label: String,
    /// Its sigmoid score (0–1).
    pub score: f32,
    /// RMS of the frame slot's audio (full scale 1).
    pub rms: f32,
    /// The same in dBFS (−∞ is written as −200).
    pub dbfs: f32,
}

/// Mask of the object in its last frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskInfo {
    /// Outline polygon in source-frame pixels, `[[x, y], …]`.
    pub outline: Vec<[f32; 2]>,
    /// COCO RLE at the model resolution (`size` = `[224, 224]`).
    pub rle: Rle,
}

/// The frame-level C3IM unified label (the only label of schema 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameLabelInfo {
    /// ImageNet name of the frame's `unified_label`.
    pub label: String,
    /// Its ImageNet index.
    pub index: i64,
    /// The frame's C3IM consensus (`c3im_score` output).
    pub c3im_score: f32,
}

/// Snapshot of a tracked sounding object (Frigate's object fields, plus mask and audio).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectState {
    /// Stable id, `<start_time>-<6 chars>`.
    pub id: String,
    /// Input name.
    pub camera: String,
    /// Category (`person`, `dog`, …, `other`): the one with the largest summed `label_score`
    /// over the frames seen.
    pub label: String,
    /// Mean category score of `label` over the object's frames (0–1; a frame in which the region
    /// had another category counts 0).
    pub label_score: f32,
    /// The region's ImageNet class in the last frame (C3IM with the frame's audio).
    pub sub_label: String,
    /// Its ImageNet index.
    pub sub_label_index: i64,
    /// Region score of the last frame: mean mask probability (0–1).
    pub score: f32,
    /// Best `score` so far.
    pub top_score: f32,
    /// The region's C3IM consensus in the last frame.
    pub c3im_score: f32,
    /// The frame-level unified label of the last frame.
    pub frame_label: FrameLabelInfo,
    /// Source time of the last frame seen (s).
    pub frame_time: f64,
    /// Source time of the first frame seen (s).
    pub start_time: f64,
    /// Source time of the last frame seen, once ended (s); `null` while active.
    pub end_time: Option<f64>,
    /// `[x1, y1, x2, y2]` in source-frame pixels.
    #[serde(rename = "box")]
    pub bbox: [u32; 4],
    /// Box area in source pixels.
    pub area: u64,
    /// Mask area as a fraction of the frame (0–1).
    pub area_fraction: f32,
    /// Box width / height.
    pub ratio: f32,
    /// Number of frames the object was seen in.
    pub frames: u32,
    /// False once ended.
    pub active: bool,
    /// Mask of the last frame.
    pub mask: MaskInfo,
    /// Audio of the last frame.
    pub audio: AudioInfo,
    /// The last frame's `in_view` score (0–1): the probability that the source of the sound is
    /// visible (issue 26); absent for a model without the `in_view` output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_view: Option<f32>,
}

/// Everything the tracker needs about one analysed frame.
#[derive(Debug, Clone)]
pub struct FrameDetections {
    /// Frame timestamp (ms, source timeline).
    pub pts_ms: i64,
    /// Regions found in the frame.
    pub regions: Vec<Region>,
    /// Frame labels.
    pub labels: FrameLabels,
    /// RMS of the frame slot's audio.
    pub audio_rms: f32,
    /// The frame's `in_view` output (0–1, issue 26); `None` for a model without it.
    pub in_view: Option<f32>,
}

impl FrameDetections {
    /// A frame without detections (detection paused): no regions, empty labels (index −1).
    pub fn empty(pts_ms: i64, audio_rms: f32) -> Self {
        Self {
            pts_ms,
            regions: Vec::new(),
            labels: FrameLabels {
                visual_index: -1,
                visual_label: String::new(),
                audio_index: 0,
                audio_label: String::new(),
                audio_score: 0.0,
                c3im_score: 0.0,
            },
            audio_rms,
            in_view: None,
        }
    }
}

/// `20·log10(rms)`, floored at −200 dBFS.
pub fn dbfs(rms: f32) -> f32 {
    if rms > 0.0 {
        (20.0 * rms.log10()).max(-200.0)
    } else {
        -200.0
    }
}

#[derive(Debug)]
struct Track {
    state: ObjectState,
    last_sent: Option<ObjectState>,
    /// Frame time of the message last sent (ms); meaningless before `new`.
    sent_ms: i64,
    last_seen_ms: i64,
    /// Whether the last frame's `sub_label` is the one of the frame before it.
    sub_label_held: bool,
    /// Summed category score per category (first seen first: ties keep the earlier one).
    votes: Vec<(String, f32)>,
}

impl Track {
    /// Adds the last frame's category vote (`state.label` / `label_score` as observed) and sets
    /// `state.label` to the leading category and `label_score` to its mean score per frame.
    fn vote(&mut self) {
        let (label, score) = (&self.state.label, self.state.label_score);
        match self.votes.iter_mut().find(|(l, _)| l == label) {
            Some(v) => v.1 += score,
            None => self.votes.push((label.clone(), score)),
        }
        let mut best: Option<&(String, f32)> = None;
        for v in &self.votes {
            if best.is_none_or(|b| v.1 > b.1) {
                best = Some(v);
            }
        }
        if let Some((l, sum)) = best {
            self.state.label = l.clone();
            self.state.label_score = sum / self.state.frames.max(1) as f32;
        }
    }
}

/// The lifecycle state machine.
#[derive(Debug)]
pub struct Tracker {
    cfg: EventConfig,
    tracks: Vec<Track>,
    seq: u64,
}

/// IoU of two `[x1, y1, x2, y2]` boxes.
pub fn box_iou(a: [u32; 4], b: [u32; 4]) -> f32 {
    let iw = a[2].min(b[2]).saturating_sub(a[0].max(b[0])) as f32;
    let ih = a[3].min(b[3]).saturating_sub(a[1].max(b[1])) as f32;
    let area =
        |r: [u32; 4]| (r[2].saturating_sub(r[0]) as f32) * (r[3].saturating_sub(r[1]) as f32);
    let inter = iw * ih;
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// The throttle (module doc): whether an announced object seen again gets an `update`. `sent` is
/// the state last sent, `now` the current one, `elapsed_ms` the source time since that message
/// and `sub_label_held` whether `now.sub_label` was also the previous frame's.
fn significant(
    cfg: &EventConfig,
    sent: &ObjectState,
    now: &ObjectState,
    elapsed_ms: i64,
    sub_label_held: bool,
) -> bool {
    // in ms, so that 5 s after a frame at 0.1 s is due at 5.1 s exactly
    let interval_ms = (cfg.update_interval_s * 1000.0).round() as i64;
    elapsed_ms >= interval_ms
        || now.label != sent.label
        || (sub_label_held && now.sub_label != sent.sub_label)
        || box_iou(sent.bbox, now.bbox) < cfg.update_iou
        || (now.score - sent.score).abs() > cfg.update_score_delta
}

fn id_suffix(seq: u64) -> String {
    // splitmix64, then 6 base-36 digits
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..6)
        .map(|i| DIGITS[((z >> (i * 6)) % 36) as usize] as char)
        .collect()
}

/// Copies the facts of region `r` seen in frame `det` into `state`.
fn observe(state: &mut ObjectState, r: &Region, det: &FrameDetections) {
    let w = r.bbox[2].saturating_sub(r.bbox[0]);
    let h = r.bbox[3].saturating_sub(r.bbox[1]);
    state.label = r.label.category.clone();
    state.label_score = r.label.category_score;
    state.sub_label = r.label.imagenet_label.clone();
    state.sub_label_index = r.label.imagenet_index;
    state.score = r.score;
    state.top_score = state.top_score.max(r.score);
    state.c3im_score = r.label.c3im_score;
    state.frame_label = FrameLabelInfo {
        label: det.labels.visual_label.clone(),
        index: det.labels.visual_index,
        c3im_score: det.labels.c3im_score,
    };
    state.frame_time = det.pts_ms as f64 / 1000.0;
    state.bbox = r.bbox;
    state.area = u64::from(w) * u64::from(h);
    state.area_fraction = r.area_fraction;
    state.ratio = if h > 0 { w as f32 / h as f32 } else { 0.0 };
    state.frames += 1;
    state.mask = MaskInfo {
        outline: r.outline.clone(),
        rle: r.mask.to_rle(),
    };
    state.audio = AudioInfo {
        label: det.labels.audio_label.clone(),
        score: det.labels.audio_score,
        rms: det.audio_rms,
        dbfs: dbfs(det.audio_rms),
    };
    state.in_view = det.in_view;
}

impl Tracker {
    /// A tracker with `cfg` (assumed validated).
    pub fn new(cfg: EventConfig) -> Self {
        Self {
            cfg,
            tracks: Vec::new(),
            seq: 0,
        }
    }

    /// Number of live tracks (announced or not).
    pub fn live(&self) -> usize {
        self.tracks.len()
    }

    /// Greedy box-IoU matching: `(track, region)` pairs and which regions were used.
    fn match_regions(&self, regions: &[Region]) -> (Vec<(usize, usize)>, Vec<bool>) {
        let mut pairs: Vec<(f32, usize, usize)> = vec![];
        for (ti, t) in self.tracks.iter().enumerate() {
            for (ri, r) in regions.iter().enumerate() {
                let iou = box_iou(t.state.bbox, r.bbox);
                if iou > 0.0 && iou >= self.cfg.iou_threshold {
                    pairs.push((iou, ti, ri));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_used = vec![false; self.tracks.len()];
        let mut region_used = vec![false; regions.len()];
        let mut matched = vec![];
        for (_, ti, ri) in pairs {
            if !track_used[ti] && !region_used[ri] {
                track_used[ti] = true;
                region_used[ri] = true;
                matched.push((ti, ri));
            }
        }
        (matched, region_used)
    }

    /// The silence gate (module doc): true when the frame's audio is below `silence_dbfs` or its
    /// top AudioSet class is one of `silence_classes`.
    pub fn is_silent(&self, det: &FrameDetections) -> bool {
        self.cfg
            .silence_dbfs
            .is_some_and(|limit| dbfs(det.audio_rms) < limit)
            || self.cfg.silence_classes.contains(&det.labels.audio_label)
    }

    /// The off-screen gate (module doc): true when the frame has an `in_view` score below
    /// `min_in_view` (never for a model without the output).
    pub fn is_off_screen(&self, det: &FrameDetections) -> bool {
        det.in_view.is_some_and(|p| p < self.cfg.min_in_view)
    }

    /// Feeds one frame (frames in time order); returns the events it causes: `end` of expired
    /// objects first, then `new` of the objects announced in this frame and `update` of those
    /// seen in it that changed significantly (the throttle, module doc).
    pub fn update(&mut self, det: &FrameDetections) -> Vec<Event> {
        let silent = self.is_silent(det) || self.is_off_screen(det);
        let kept: Vec<Region> = if silent {
            Vec::new()
        } else {
            det.regions
                .iter()
                .filter(|r| self.cfg.keeps(&r.label.category, r.score))
                .cloned()
                .collect()
        };
        let regions: &[Region] = &kept;
        let (matched, region_used) = self.match_regions(regions);
        for (ti, ri) in matched {
            let t = &mut self.tracks[ti];
            let previous_sub_label = std::mem::take(&mut t.state.sub_label);
            observe(&mut t.state, &regions[ri], det);
            t.sub_label_held = t.state.sub_label == previous_sub_label;
            t.vote();
            t.last_seen_ms = det.pts_ms;
        }
        let timeout = i64::try_from(self.cfg.end_timeout_ms).unwrap_or(i64::MAX);
        let mut events = self.end_where(|t| det.pts_ms.saturating_sub(t.last_seen_ms) >= timeout);
        for (r, _) in regions.iter().zip(&region_used).filter(|(_, &used)| !used) {
            let start = det.pts_ms as f64 / 1000.0;
            let mut state = ObjectState {
                id: format!("{start:.3}-{}", id_suffix(self.seq)),
                camera: self.cfg.camera.clone(),
                label: String::new(),
                label_score: 0.0,
                sub_label: String::new(),
                sub_label_index: -1,
                score: 0.0,
                top_score: 0.0,
                c3im_score: 0.0,
                frame_label: FrameLabelInfo {
                    label: String::new(),
                    index: -1,
                    c3im_score: 0.0,
                },
                frame_time: start,
                start_time: start,
                end_time: None,
                bbox: r.bbox,
                area: 0,
                area_fraction: 0.0,
                ratio: 0.0,
                frames: 0,
                active: true,
                mask: MaskInfo {
                    outline: vec![],
                    rle: r.mask.to_rle(),
                },
                audio: AudioInfo {
                    label: String::new(),
                    score: 0.0,
                    rms: 0.0,
                    dbfs: -200.0,
                },
                in_view: None,
            };
            self.seq += 1;
            observe(&mut state, r, det);
            let mut track = Track {
                state,
                last_sent: None,
                sent_ms: det.pts_ms,
                last_seen_ms: det.pts_ms,
                sub_label_held: false,
                votes: Vec::new(),
            };
            track.vote();
            self.tracks.push(track);
        }
        for t in &mut self.tracks {
            if t.last_seen_ms != det.pts_ms || t.state.frames < self.cfg.min_frames {
                continue;
            }
            let kind = match &t.last_sent {
                None => EventType::New,
                Some(sent) => {
                    let elapsed = det.pts_ms.saturating_sub(t.sent_ms);
                    if !significant(&self.cfg, sent, &t.state, elapsed, t.sub_label_held) {
                        continue;
                    }
                    EventType::Update
                }
            };
            let after = t.state.clone();
            let before = t
                .last_sent
                .replace(after.clone())
                .unwrap_or_else(|| after.clone());
            t.sent_ms = det.pts_ms;
            events.push(Event {
                version: version(&after),
                kind,
                before,
                after,
            });
        }
        events
    }

    /// End of input: ends every object (`end` for those that had a `new`).
    pub fn finish(&mut self) -> Vec<Event> {
        self.end_where(|_| true)
    }

    /// Removes the tracks matching `pred`; `end` events for those announced.
    fn end_where(&mut self, pred: impl Fn(&Track) -> bool) -> Vec<Event> {
        let mut events = vec![];
        let mut keep = Vec::with_capacity(self.tracks.len());
        for t in self.tracks.drain(..) {
            if !pred(&t) {
                keep.push(t);
                continue;
            }
            if let Some(before) = t.last_sent {
                let mut after = t.state;
                after.active = false;
                after.end_time = Some(after.frame_time);
                events.push(Event {
                    version: version(&after),
                    kind: EventType::End,
                    before,
                    after,
                });
            }
        }
        self.tracks = keep;
        events
    }
}

#[cfg(test)]
mod tests;
