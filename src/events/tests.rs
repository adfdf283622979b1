//! Unit tests of the event lifecycle (`super`).
use super::*;
use crate::post::{BitMask, RegionLabel};

fn labelled(x: u32, category: &str, score: f32) -> Region {
    let mut r = region(x);
    r.label.category = category.into();
    r.label.category_score = score;
    r
}

fn region(x: u32) -> Region {
    Region {
        bbox: [x, 10, x + 40, 50],
        area_fraction: 0.1,
        score: 0.8,
        outline: vec![[x as f32, 10.0], [x as f32 + 40.0, 50.0]],
        mask: BitMask {
            width: 4,
            height: 4,
            bits: vec![false; 16],
        },
        label: RegionLabel {
            category: "musical_instrument".into(),
            category_score: 0.6,
            imagenet_index: 889,
            imagenet_label: "violin".into(),
            c3im_score: 0.4,
        },
    }
}

fn det(pts_ms: i64, regions: Vec<Region>) -> FrameDetections {
    FrameDetections {
        pts_ms,
        regions,
        labels: FrameLabels {
            visual_index: 5,
            visual_label: "violin".into(),
            audio_index: 1,
            audio_label: "Violin, fiddle".into(),
            audio_score: 0.9,
            c3im_score: 0.3,
        },
        audio_rms: 0.1,
    }
}

fn kinds(ev: &[Event]) -> Vec<(EventType, String)> {
    ev.iter().map(|e| (e.kind, e.after.id.clone())).collect()
}

#[test]
fn new_after_min_frames_then_update_then_end_after_timeout() {
    let mut tr = Tracker::new(EventConfig::default()); // min 2 frames, 3 s timeout
    assert!(tr.update(&det(0, vec![region(10)])).is_empty());
    let ev = tr.update(&det(1000, vec![region(12)]));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, EventType::New);
    assert_eq!(ev[0].before, ev[0].after);
    let id = ev[0].after.id.clone();
    assert!(id.starts_with("0.000-") && id.len() == 12, "{id}");
    assert_eq!(ev[0].after.frames, 2);
    assert_eq!(ev[0].after.area, 1600);
    let ev = tr.update(&det(2000, vec![region(14)]));
    assert_eq!(kinds(&ev), vec![(EventType::Update, id.clone())]);
    assert_eq!(ev[0].before.bbox[0], 12);
    assert_eq!(ev[0].after.bbox[0], 14);
    assert!(tr.update(&det(3000, vec![])).is_empty());
    assert!(tr.update(&det(4000, vec![])).is_empty());
    let ev = tr.update(&det(5000, vec![]));
    assert_eq!(kinds(&ev), vec![(EventType::End, id)]);
    assert!(!ev[0].after.active);
    assert_eq!(ev[0].after.end_time, Some(2.0));
    assert_eq!(tr.live(), 0);
}

#[test]
fn one_frame_blips_never_announce_and_separate_objects_get_separate_ids() {
    let mut tr = Tracker::new(EventConfig::default());
    tr.update(&det(0, vec![region(10), region(150)]));
    let ev = tr.update(&det(1000, vec![region(11), region(151)]));
    assert_eq!(ev.len(), 2);
    assert_ne!(ev[0].after.id, ev[1].after.id);
    let mut tr = Tracker::new(EventConfig::default());
    tr.update(&det(0, vec![region(10)]));
    assert!(tr.finish().is_empty());
}

#[test]
fn silence_counts_as_absence_and_finish_ends_everything() {
    let cfg = EventConfig {
        min_frames: 1,
        end_timeout_ms: 1000,
        ..Default::default()
    };
    let mut tr = Tracker::new(cfg);
    assert_eq!(tr.update(&det(0, vec![region(10)]))[0].kind, EventType::New);
    let mut quiet = det(1000, vec![region(10)]);
    quiet.audio_rms = 1e-5; // -100 dBFS
    assert_eq!(tr.update(&quiet)[0].kind, EventType::End);
    tr.update(&det(2000, vec![region(10)]));
    let ev = tr.finish();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, EventType::End);
}

#[test]
fn silence_gate_by_level_and_by_audio_class() {
    let tr = Tracker::new(EventConfig::default()); // -50 dBFS, ["Silence"]
    let mut d = det(0, vec![region(10)]);
    d.audio_rms = 10f32.powf(-49.0 / 20.0);
    assert!(!tr.is_silent(&d), "-49 dBFS is above the -50 dBFS limit");
    d.audio_rms = 10f32.powf(-51.0 / 20.0);
    assert!(tr.is_silent(&d), "-51 dBFS is below the limit");
    let mut d = det(0, vec![region(10)]); // -20 dBFS, but YAMNet's top class is Silence
    d.labels.audio_label = "Silence".into();
    assert!(tr.is_silent(&d));
    d.labels.audio_label = "silence".into(); // names are exact
    assert!(!tr.is_silent(&d));
    // both gates off: a frame at -100 dBFS labelled Silence still counts
    let tr = Tracker::new(EventConfig {
        silence_dbfs: None,
        silence_classes: vec![],
        ..Default::default()
    });
    let mut d = det(0, vec![region(10)]);
    d.audio_rms = 1e-5;
    d.labels.audio_label = "Silence".into();
    assert!(!tr.is_silent(&d));
    // a gated frame starts no object
    let mut tr = Tracker::new(EventConfig {
        min_frames: 1,
        ..Default::default()
    });
    let mut d = det(0, vec![region(10)]);
    d.labels.audio_label = "Silence".into();
    assert!(tr.update(&d).is_empty());
    assert_eq!(tr.live(), 0);
}

#[test]
fn each_region_carries_its_own_labels_and_the_label_follows_the_votes() {
    let cfg = EventConfig {
        min_frames: 1,
        ..Default::default()
    };
    let mut tr = Tracker::new(cfg);
    let ev = tr.update(&det(
        0,
        vec![labelled(10, "dog", 0.9), labelled(150, "bird", 0.5)],
    ));
    let labels: Vec<&str> = ev.iter().map(|e| e.after.label.as_str()).collect();
    assert_eq!(labels, ["dog", "bird"]);
    assert_eq!(ev[0].after.frame_label.label, "violin");
    // one odd frame does not flip the dog (0.9 vs 0.4); two more do (0.9 vs 1.2)
    let ev = tr.update(&det(1000, vec![labelled(10, "cat", 0.4)]));
    assert_eq!(ev[0].after.label, "dog");
    assert!((ev[0].after.label_score - 0.45).abs() < 1e-6); // (0.9 + 0) / 2 frames
    tr.update(&det(2000, vec![labelled(10, "cat", 0.4)]));
    let ev = tr.update(&det(3000, vec![labelled(10, "cat", 0.4)]));
    // (the bird, unseen for 3 s, ends in the same frame)
    let kinds: Vec<(EventType, &str)> = ev
        .iter()
        .map(|e| (e.kind, e.after.label.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [(EventType::End, "bird"), (EventType::Update, "cat")]
    );
}

#[test]
fn labels_and_min_score_filter_regions_before_tracking() {
    let cfg = EventConfig {
        min_frames: 1,
        labels: vec!["dog".into(), "person".into()],
        min_score: [("person".to_string(), 0.85f32)].into_iter().collect(),
        ..Default::default()
    };
    assert!(cfg.validate().is_ok());
    let known: Vec<String> = ["person", "dog", "cat", "other"].map(String::from).to_vec();
    assert!(cfg.check_labels(&known).is_ok());
    assert_eq!(cfg.tracked(&known), ["dog", "person"]);
    let mut tr = Tracker::new(cfg.clone());
    let mut person = labelled(300, "person", 0.9);
    person.score = 0.8; // below its 0.85 minimum
    let ev = tr.update(&det(
        0,
        vec![labelled(10, "dog", 0.9), labelled(150, "cat", 0.9), person],
    ));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].after.label, "dog");
    let bad = EventConfig {
        labels: vec!["unicorn".into()],
        ..Default::default()
    };
    let e = bad.check_labels(&known).unwrap_err().to_string();
    assert!(
        e.contains("\"unicorn\"") && e.contains("person, dog, cat, other"),
        "{e}"
    );
    let bad = EventConfig {
        min_score: [("dog".to_string(), 1.5f32)].into_iter().collect(),
        ..Default::default()
    };
    assert!(bad.validate().is_err());
    assert_eq!(EventConfig::default().tracked(&known), known.as_slice());
}

#[test]
fn box_iou_basics() {
    assert_eq!(box_iou([0, 0, 10, 10], [0, 0, 10, 10]), 1.0);
    assert_eq!(box_iou([0, 0, 10, 10], [10, 0, 20, 10]), 0.0);
    assert!((box_iou([0, 0, 10, 10], [5, 0, 15, 10]) - 1.0 / 3.0).abs() < 1e-6);
    assert!((dbfs(1.0)).abs() < 1e-6 && dbfs(0.0) == -200.0);
}
