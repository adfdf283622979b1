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
        in_view: None,
    }
}

fn kinds(ev: &[Event]) -> Vec<(EventType, String)> {
    ev.iter().map(|e| (e.kind, e.after.id.clone())).collect()
}

/// Today's per-frame lifecycle without the throttle: `update_interval_s` = 0 sends every frame.
fn every_frame() -> EventConfig {
    EventConfig {
        update_interval_s: 0.0,
        ..Default::default()
    }
}

#[test]
fn new_after_min_frames_then_update_then_end_after_timeout() {
    // min 2 frames, 3 s timeout; no throttle (the 2-px moves below are not significant)
    let mut tr = Tracker::new(every_frame());
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
    // one odd frame does not flip the dog (0.9 vs 0.4), so nothing changed: no update (throttle)
    assert!(tr
        .update(&det(1000, vec![labelled(10, "cat", 0.4)]))
        .is_empty());
    assert!(tr
        .update(&det(2000, vec![labelled(10, "cat", 0.4)]))
        .is_empty());
    // the third does (0.9 vs 1.2): the label change is sent at once
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
    assert_eq!(ev[1].before.label, "dog");
    assert!((ev[1].before.label_score - 0.9).abs() < 1e-6);
    assert!((ev[1].after.label_score - 0.3).abs() < 1e-6); // (0 + 0.4 · 3) / 4 frames
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

/// `n` frames of `region(10)` every 200 ms (5 fps) from `from_ms`, with `f` applied to frame `k`;
/// the events of each frame.
fn feed(
    tr: &mut Tracker,
    from_ms: i64,
    n: i64,
    f: impl Fn(i64, &mut Region),
) -> Vec<(i64, Vec<Event>)> {
    (0..n)
        .map(|k| {
            let mut r = region(10);
            f(k, &mut r);
            let t = from_ms + 200 * k;
            (t, tr.update(&det(t, vec![r])))
        })
        .collect()
}

/// The frame times with an event and the kinds of their events.
fn sent(frames: &[(i64, Vec<Event>)]) -> Vec<(i64, Vec<EventType>)> {
    frames
        .iter()
        .filter(|(_, ev)| !ev.is_empty())
        .map(|(t, ev)| (*t, ev.iter().map(|e| e.kind).collect()))
        .collect()
}

#[test]
fn a_still_object_is_sent_again_only_after_the_interval_but_tracked_every_frame() {
    let mut tr = Tracker::new(EventConfig::default()); // 5 s, min 2 frames, 3 s timeout
    let frames = feed(&mut tr, 0, 60, |_, _| {}); // 0 … 11.8 s, the same box and score
    assert_eq!(
        sent(&frames),
        [
            (200, vec![EventType::New]),
            (5200, vec![EventType::Update]),
            (10200, vec![EventType::Update])
        ]
    );
    let e = &frames[26].1[0]; // 5.2 s
                              // `before` is the state sent at 0.2 s, `after` counts every frame seen since
    assert_eq!((e.before.frame_time, e.before.frames), (0.2, 2));
    assert_eq!((e.after.frame_time, e.after.frames), (5.2, 27));
    // the end timeout runs from the last frame seen (11.8 s), not the last one sent (10.2 s)
    assert!(tr.update(&det(14_600, vec![])).is_empty());
    let ev = tr.update(&det(14_800, vec![]));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, EventType::End);
    assert_eq!((ev[0].before.frame_time, ev[0].before.frames), (10.2, 52));
    assert_eq!((ev[0].after.end_time, ev[0].after.frames), (Some(11.8), 60));
}

#[test]
fn a_moving_object_is_sent_when_its_box_leaves_the_one_last_sent() {
    let mut tr = Tracker::new(EventConfig::default()); // update_iou 0.7
                                                       // 2 px right per frame, 40-px box: IoU with the box sent k frames before = (40-2k)/(40+2k),
                                                       // 0.74 for k = 3, 0.67 for k = 4: one update every 4th frame
    let frames = feed(&mut tr, 0, 14, |k, r| {
        let x = 10 + 2 * k as u32;
        r.bbox = [x, 10, x + 40, 50];
    });
    let times: Vec<i64> = sent(&frames).iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [200, 1000, 1800, 2600]);
    let e = &frames[5].1[0]; // 1.0 s
    assert_eq!(e.kind, EventType::Update);
    assert_eq!((e.before.bbox[0], e.after.bbox[0]), (12, 20));
    assert_eq!(tr.live(), 1, "one object, followed frame by frame");
}

#[test]
fn label_sub_label_and_score_changes_are_sent_at_once() {
    let cfg = EventConfig {
        min_frames: 1,
        ..Default::default()
    };
    let kinds_at = |f: &dyn Fn(i64, &mut Region)| {
        let mut tr = Tracker::new(cfg.clone());
        sent(&feed(&mut tr, 0, 6, f))
    };
    let new = (0, vec![EventType::New]);
    let update = |t| (t, vec![EventType::Update]);
    // nothing changes: only `new`
    assert_eq!(kinds_at(&|_, _| {}), std::slice::from_ref(&new));
    // the category flips from frame 2 on (0.6 → 0.9 each frame: the votes turn at frame 3)
    let flip = |k: i64, r: &mut Region| {
        if k >= 2 {
            r.label.category = "bird".into();
            r.label.category_score = 0.9;
        }
    };
    assert_eq!(kinds_at(&flip), [new.clone(), update(600)]);
    // a one-frame sub_label is not a change; a held one is, in its second frame
    let blip = |k: i64, r: &mut Region| {
        if k == 1 || k >= 3 {
            r.label.imagenet_label = "cello".into();
        }
    };
    assert_eq!(kinds_at(&blip), [new.clone(), update(800)]);
    // score: 0.8 → 0.75 is within 0.1, 0.8 → 0.65 is not (both compared with the score sent)
    let score = |k: i64, r: &mut Region| {
        r.score = match k {
            1 | 2 => 0.75,
            3.. => 0.65,
            _ => 0.8,
        }
    };
    assert_eq!(kinds_at(&score), [new, update(600)]);
}

#[test]
fn update_settings_are_checked() {
    for bad in [
        EventConfig {
            update_iou: 1.5,
            ..Default::default()
        },
        EventConfig {
            update_score_delta: -0.1,
            ..Default::default()
        },
        EventConfig {
            update_interval_s: f64::NAN,
            ..Default::default()
        },
        EventConfig {
            update_interval_s: -1.0,
            ..Default::default()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    assert!(every_frame().validate().is_ok());
    let e = EventConfig {
        update_iou: 2.0,
        ..Default::default()
    };
    assert_eq!(
        e.validate().unwrap_err().to_string(),
        "events.update_iou = 2: expected 0..=1"
    );
}

#[test]
fn off_screen_gate_drops_regions_below_min_in_view_and_keeps_them_above() {
    // min 1 frame; default min_in_view 0.5
    let cfg = EventConfig {
        min_frames: 1,
        end_timeout_ms: 1000,
        ..Default::default()
    };
    assert_eq!(cfg.min_in_view, DEFAULT_MIN_IN_VIEW);
    let at = |pts_ms: i64, in_view: Option<f32>| FrameDetections {
        in_view,
        ..det(pts_ms, vec![region(10)])
    };
    let mut tr = Tracker::new(cfg.clone());
    assert!(tr.is_off_screen(&at(0, Some(0.49))));
    assert!(
        !tr.is_off_screen(&at(0, Some(0.5))),
        "the limit itself is in view"
    );
    assert!(
        !tr.is_off_screen(&at(0, None)),
        "no in_view output: never gated"
    );
    // below: nothing starts; above: `new`, carrying the score; below again: `end` after the
    // timeout as for silence
    assert!(tr.update(&at(0, Some(0.2))).is_empty());
    assert_eq!(tr.live(), 0);
    let ev = tr.update(&at(500, Some(0.8)));
    assert_eq!(ev[0].kind, EventType::New);
    assert_eq!(ev[0].after.in_view, Some(0.8));
    assert_eq!(ev[0].version, SCHEMA_VERSION);
    assert!(tr.update(&at(1000, Some(0.1))).is_empty());
    let ev = tr.update(&at(1500, Some(0.1)));
    assert_eq!(ev[0].kind, EventType::End);
    assert_eq!(
        ev[0].after.in_view,
        Some(0.8),
        "the last frame it was seen in"
    );
    // min_in_view = 0 turns the gate off
    let tr = Tracker::new(EventConfig {
        min_in_view: 0.0,
        ..cfg
    });
    assert!(!tr.is_off_screen(&at(0, Some(0.0))));
}

#[test]
fn event_json_carries_in_view_only_when_the_model_has_it() {
    let cfg = EventConfig {
        min_frames: 1,
        ..Default::default()
    };
    let mut tr = Tracker::new(cfg.clone());
    let with = FrameDetections {
        in_view: Some(0.75),
        ..det(0, vec![region(10)])
    };
    let line = serde_json::to_value(&tr.update(&with)[0]).expect("JSON");
    assert_eq!(line["version"], "2.1.0");
    assert_eq!(line["after"]["in_view"], 0.75);
    assert_eq!(line["before"]["in_view"], 0.75);
    let mut tr = Tracker::new(cfg);
    let line = serde_json::to_value(&tr.update(&det(0, vec![region(10)]))[0]).expect("JSON");
    assert_eq!(line["version"], SCHEMA_VERSION_NO_IN_VIEW);
    assert!(line["after"].get("in_view").is_none(), "{line}");
    let back: Event = serde_json::from_value(line).expect("2.0.0 events still parse");
    assert_eq!(back.after.in_view, None);
}

#[test]
fn min_in_view_is_validated() {
    for bad in [-0.1, 1.5, f32::NAN] {
        let cfg = EventConfig {
            min_in_view: bad,
            ..Default::default()
        };
        assert!(
            matches!(cfg.validate(), Err(EventConfigError::MinInView(_))),
            "{bad}"
        );
    }
    for ok in [0.0, 0.5, 1.0] {
        let cfg = EventConfig {
            min_in_view: ok,
            ..Default::default()
        };
        assert_eq!(cfg.validate(), Ok(()));
    }
}
