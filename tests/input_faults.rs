//! Faults in the middle of an input, through the real pipeline with a stand-in engine (a fixed
//! blob mask: every analysed frame has one object):
//! * a frame that cannot be decoded ends the run with an error naming it, after the window in
//!   progress was analysed: the good frames before it reach the outputs with their events;
//! * a gap in the numbering ends the input there, the frames before it all analysed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use c3n_edge::categories::CategoryMap;
use c3n_edge::engine::{Engine, EngineError, Inference, ModelContract, ModelInput};
use c3n_edge::events::{Event, EventConfig, EventType};
use c3n_edge::frontend::{FrontendParams, ImageNorm};
use c3n_edge::pipeline::{self, Input, RunOptions};
use c3n_edge::sink::{AnalysedFrame, Sink, SinkError};
use c3n_edge::source::VideoOptions;
use c3n_edge::uri::InputUri;
use ndarray::{Array2, Array4};

mod common;

/// T = 5 at 1 Hz, 32x32 input; the mask is a centred square, the labels index 0.
struct BlobEngine(ModelContract);

impl BlobEngine {
    fn new() -> Self {
        Self(ModelContract {
            path: PathBuf::from("blob.onnx"),
            config: "edge".into(),
            model_version: "test".into(),
            trained: false,
            clip_frames: 5,
            clip_rate_hz: 1.0,
            image: ImageNorm {
                size: 32,
                ..ImageNorm::default()
            },
            frontend: FrontendParams::default(),
            imagenet_labels: (0..1000).map(|i| format!("in{i}")).collect(),
            audioset_labels: (0..521).map(|i| format!("as{i}")).collect(),
            alpha: 0.1,
            // the shipped vocabulary (every class of the blob's labels maps somewhere)
            categories: CategoryMap::from_json(
                include_str!("../models/assets/categories-v1.json"),
                1000,
                521,
            )
            .expect("models/assets/categories-v1.json"),
            categories_sha256: String::new(),
        })
    }
}

impl Engine for BlobEngine {
    fn infer(&mut self, w: &ModelInput) -> Result<Inference, EngineError> {
        let t = w.frames.shape()[0];
        let mut mask = Array4::from_elem((t, 1, 32, 32), -10.0f32);
        mask.slice_mut(ndarray::s![.., .., 8..24, 8..24]).fill(10.0);
        Ok(Inference {
            mask_logits: mask,
            visual_logits: Array2::zeros((t, 1000)),
            audio_logits: Array2::zeros((t, 521)),
            unified_label: vec![0; t],
            c3im_score: vec![0.9; t],
            visual_logit_map: Array4::zeros((t, 1000, 1, 1)),
            c3im_affinity: Array2::zeros((t, 1000)),
        })
    }
    fn name(&self) -> &str {
        "blob"
    }
    fn contract(&self) -> &ModelContract {
        &self.0
    }
}

/// Records the frames and events it is given.
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<(Vec<u64>, Vec<Event>)>>);

impl Sink for Recorder {
    fn frame(&mut self, f: &AnalysedFrame, events: &[Event]) -> Result<(), SinkError> {
        let mut g = self.0.lock().expect("recorder");
        g.0.push(f.number);
        g.1.extend_from_slice(events);
        Ok(())
    }
    fn finish(&mut self, events: &[Event]) -> Result<(), SinkError> {
        self.0.lock().expect("recorder").1.extend_from_slice(events);
        Ok(())
    }
}

fn write_clip(dir: &Path, frames: &[u64], bad: Option<u64>) -> String {
    std::fs::create_dir_all(dir).expect("dir");
    for &i in frames {
        let img = image::RgbImage::from_pixel(32, 32, image::Rgb([120, 80, 40]));
        img.save(dir.join(format!("{i:05}.png"))).expect("png");
    }
    if let Some(b) = bad {
        std::fs::write(dir.join(format!("{b:05}.png")), b"\x89PNG not really").expect("bad");
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(dir.join("a.wav"), spec).expect("wav");
    for n in 0..16_000 * 12 {
        w.write_sample(((n as f64 * 0.05).sin() * 8000.0) as i16)
            .expect("sample");
    }
    w.finalize().expect("finalize");
    format!("{}/%05d.png", dir.display())
}

fn run(
    pattern: &str,
    dir: &Path,
) -> (
    Result<pipeline::RunSummary, pipeline::PipelineError>,
    Vec<u64>,
    Vec<Event>,
) {
    let rec = Recorder::default();
    let opts = RunOptions {
        input: Input::Uris {
            video: InputUri::ImageSequence {
                pattern: pattern.to_string(),
            },
            audio: Some(InputUri::Wav {
                path: dir.join("a.wav"),
            }),
            options: VideoOptions::default(),
        },
        events: EventConfig {
            min_frames: 1,
            ..EventConfig::default()
        },
        ..RunOptions::default()
    };
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(rec.clone())];
    let r = pipeline::run(Box::new(BlobEngine::new()), &opts, &mut sinks);
    let g = rec.0.lock().expect("recorder");
    (r, g.0.clone(), g.1.clone())
}

#[test]
fn a_bad_frame_flushes_the_window_in_progress() {
    let dir = common::tmp_dir("bad-frame-flush");
    // frames 0..=6 good, 7 corrupt: window 1 (frames 0-4) is complete, window 2 holds 5 and 6
    let pattern = write_clip(&dir, &[0, 1, 2, 3, 4, 5, 6], Some(7));
    let (r, frames, events) = run(&pattern, &dir);
    let e = r.expect_err("the corrupt frame is an error").to_string();
    assert!(e.contains("00007.png"), "{e}");
    // all seven good frames were analysed (the partial window was padded, not dropped)
    assert_eq!(frames, (0..7).collect::<Vec<u64>>());
    // one object, seen from frame 0: new, updates, and an end at the end of the run
    assert_eq!(events.first().map(|e| e.kind), Some(EventType::New));
    assert_eq!(events.last().map(|e| e.kind), Some(EventType::End));
}

#[test]
fn a_gap_ends_the_input_after_the_frames_before_it() {
    let dir = common::tmp_dir("gap");
    let pattern = write_clip(&dir, &[0, 1, 2, 4, 5], None);
    let (r, frames, _) = run(&pattern, &dir);
    let s = r.expect("a gap ends the input (with a warning), it is not an error");
    assert_eq!(frames, vec![0, 1, 2]);
    assert_eq!(s.frames, 3);
}
