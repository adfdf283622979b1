//! Faults in the middle of an input, through the real pipeline with a stand-in engine (a fixed
//! blob mask: every analysed frame has one object):
//! * under `--on-bad-frame stop` (the default for a single pass over a file) a bad frame (a
//!   corrupt PNG or JPEG, a truncated PNG, a frame of another size) ends the run with an error
//!   naming it, after the window in progress was analysed: the good frames before it reach the
//!   outputs with their events;
//! * under `skip` (the default for looped files) the run completes, each bad frame is counted in
//!   `frames_bad`, its slot repeats the previous frame, and the events are those of the clip
//!   with that frame good;
//! * a gap in the numbering ends the input there, the frames before it all analysed;
//! * (feature `ffmpeg`) a video file corrupt in the middle follows the same policy: `skip`
//!   counts its undecodable packets and reads on to the end, `stop` ends the run with the
//!   decoder's error.
//!
//! Audio faults (a read error mid-run) are tested on the pipeline's fault wrapper with a
//! stand-in source in `src/pipeline/tests.rs`: file audio is decoded when opened.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use c3n_edge::categories::CategoryMap;
use c3n_edge::control::RunControl;
use c3n_edge::engine::{Engine, EngineError, Inference, ModelContract, ModelInput};
use c3n_edge::events::{Event, EventConfig, EventType};
use c3n_edge::frontend::{FrontendParams, ImageNorm};
use c3n_edge::pipeline::{self, Input, OnBadFrame, RunOptions};
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
            schema: 2,
            variant: None,
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
            c3im: true,
            in_view: false,
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
            in_view: None,
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

/// A good 32x32 frame, encoded for `ext` (`png` or `jpg`).
fn good_frame(ext: &str, w: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, 32, image::Rgb([120, 80, 40]));
    let mut buf = std::io::Cursor::new(Vec::new());
    let format = if ext == "png" {
        image::ImageFormat::Png
    } else {
        image::ImageFormat::Jpeg
    };
    img.write_to(&mut buf, format).expect("encode");
    buf.into_inner()
}

/// Writes frames `frames` (good, 32x32) and `bad` (given bytes) as `DIR/%05d.<ext>`, and 12 s of
/// audio `DIR/a.wav`; returns the pattern.
fn write_seq(dir: &Path, frames: &[u64], ext: &str, bad: &[(u64, Vec<u8>)]) -> String {
    std::fs::create_dir_all(dir).expect("dir");
    for &i in frames {
        std::fs::write(dir.join(format!("{i:05}.{ext}")), good_frame(ext, 32)).expect("frame");
    }
    for (b, bytes) in bad {
        std::fs::write(dir.join(format!("{b:05}.{ext}")), bytes).expect("bad");
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
    format!("{}/%05d.{ext}", dir.display())
}

fn write_clip(dir: &Path, frames: &[u64], bad: Option<u64>) -> String {
    let bad: Vec<(u64, Vec<u8>)> = bad
        .map(|b| (b, b"\x89PNG not really".to_vec()))
        .into_iter()
        .collect();
    write_seq(dir, frames, "png", &bad)
}

/// What a run gave: its result, the frame numbers and events the sink got, and `frames_bad`.
struct Outcome {
    result: Result<pipeline::RunSummary, pipeline::PipelineError>,
    frames: Vec<u64>,
    events: Vec<Event>,
    frames_bad: u64,
}

fn run(
    pattern: &str,
    dir: &Path,
) -> (
    Result<pipeline::RunSummary, pipeline::PipelineError>,
    Vec<u64>,
    Vec<Event>,
) {
    let o = run_with(pattern, dir, None, 0);
    (o.result, o.frames, o.events)
}

fn run_with(pattern: &str, dir: &Path, policy: Option<OnBadFrame>, input_loop: i64) -> Outcome {
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
        input_loop,
        on_bad_frame: policy,
        ..RunOptions::default()
    };
    let control = Arc::new(RunControl::default());
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(rec.clone())];
    let result = pipeline::run_with(
        Box::new(BlobEngine::new()),
        &opts,
        &mut sinks,
        control.clone(),
    );
    let g = rec.0.lock().expect("recorder");
    Outcome {
        result,
        frames: g.0.clone(),
        events: g.1.clone(),
        frames_bad: control.frames_bad(),
    }
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

/// The bad frames of the tests: (name, extension, bytes, what the stop error says).
fn bad_frames() -> Vec<(&'static str, &'static str, Vec<u8>, &'static str)> {
    let png = good_frame("png", 32);
    let jpg = good_frame("jpg", 32);
    let mut bad_jpeg = jpg[..4].to_vec(); // SOI + the start of a segment, then garbage
    bad_jpeg.extend_from_slice(&[0x5a; 200]);
    vec![
        (
            "corrupt_png",
            "png",
            b"\x89PNG not really".to_vec(),
            "00007.png",
        ),
        (
            "truncated_png",
            "png",
            png[..png.len() / 2].to_vec(),
            "00007.png",
        ),
        ("bad_jpeg", "jpg", bad_jpeg, "00007.jpg"),
        (
            "truncated_jpeg",
            "jpg",
            jpg[..jpg.len() / 2].to_vec(),
            "00007.jpg",
        ),
        (
            "wrong_size",
            "png",
            good_frame("png", 48),
            "bad frame ", // + the path, "48x32 pixels, but the sequence's first frame is 32x32"
        ),
    ]
}

#[test]
fn bad_frames_stop_a_single_pass_by_default_and_under_stop() {
    for (name, ext, bytes, says) in bad_frames() {
        for policy in [None, Some(OnBadFrame::Stop)] {
            let dir = common::tmp_dir(&format!("stop-{name}-{policy:?}"));
            let good: Vec<u64> = (0..10).filter(|&i| i != 7).collect();
            let pattern = write_seq(&dir, &good, ext, &[(7, bytes.clone())]);
            let o = run_with(&pattern, &dir, policy, 0);
            let e = o.result.expect_err(name).to_string();
            assert!(e.contains(says) && e.contains("00007."), "{name}: {e}");
            if name == "wrong_size" {
                assert!(
                    e.ends_with("48x32 pixels, but the sequence's first frame is 32x32"),
                    "{e}"
                );
            }
            // the window in progress (frames 5 and 6) was analysed, padded, not dropped
            assert_eq!(o.frames, (0..7).collect::<Vec<u64>>(), "{name}");
            assert_eq!(o.frames_bad, 0, "{name}");
            assert_eq!(o.events.last().map(|e| e.kind), Some(EventType::End));
        }
    }
}

#[test]
fn bad_frames_are_skipped_counted_and_filled_under_skip() {
    for (name, ext, bytes, _) in bad_frames() {
        // the same clip with frame 7 good: the reference events
        let clean_dir = common::tmp_dir(&format!("skip-clean-{name}"));
        let clean = write_seq(&clean_dir, &(0..10).collect::<Vec<u64>>(), ext, &[]);
        let want = run_with(&clean, &clean_dir, Some(OnBadFrame::Skip), 0);
        let want_summary = want.result.expect("clean clip");
        assert_eq!(want.frames_bad, 0);

        let dir = common::tmp_dir(&format!("skip-{name}"));
        let good: Vec<u64> = (0..10).filter(|&i| i != 7).collect();
        let pattern = write_seq(&dir, &good, ext, &[(7, bytes)]);
        let o = run_with(&pattern, &dir, Some(OnBadFrame::Skip), 0);
        let s = o.result.expect("under skip the run completes");
        assert_eq!(o.frames_bad, 1, "{name}");
        // frame 7's slot repeats frame 6, like a dropped frame: all 10 slots, 2 windows
        assert_eq!(o.frames, (0..10).collect::<Vec<u64>>(), "{name}");
        assert_eq!((s.frames, s.clips), (10, 2), "{name}");
        assert_eq!(
            (s.frames, s.clips),
            (want_summary.frames, want_summary.clips)
        );
        // the events are those of the clean clip (one object, new … end)
        assert!(!o.events.is_empty());
        assert_eq!(o.events, want.events, "{name}");
    }
}

#[test]
fn a_burst_of_bad_frames_and_a_bad_last_frame_are_skipped() {
    let dir = common::tmp_dir("skip-burst");
    let bad: Vec<(u64, Vec<u8>)> = [3, 4, 5, 9]
        .iter()
        .map(|&i| (i, b"\x89PNG not really".to_vec()))
        .collect();
    let pattern = write_seq(&dir, &[0, 1, 2, 6, 7, 8], "png", &bad);
    let o = run_with(&pattern, &dir, Some(OnBadFrame::Skip), 0);
    let s = o.result.expect("completes");
    assert_eq!(o.frames_bad, 4);
    // slots 3-5 repeat frame 2; the bad last frame leaves slot 9 out (the window is padded)
    assert_eq!(o.frames, (0..9).collect::<Vec<u64>>());
    assert_eq!(s.clips, 2);
}

#[test]
fn a_looped_file_skips_bad_frames_by_default() {
    let dir = common::tmp_dir("loop-default");
    let pattern = write_clip(&dir, &[0, 1, 2, 3, 4, 5, 6, 8, 9], Some(7));
    let o = run_with(&pattern, &dir, None, 1);
    let s = o.result.expect("a looped file skips by default");
    // two passes of 10 slots, one bad frame each
    assert_eq!((o.frames_bad, s.frames), (2, 20));
    // and under an explicit stop the first pass ends the run
    let o = run_with(&pattern, &dir, Some(OnBadFrame::Stop), 1);
    assert!(o.result.is_err());
    assert_eq!(o.frames, (0..7).collect::<Vec<u64>>());
}

/// The shipped clip's video file with 4000 bytes in the middle overwritten (a copy in a temp
/// dir; the input is never written): the H.264 decoder fails on the packets there.
#[cfg(feature = "ffmpeg")]
fn corrupt_video(dir: &Path) -> PathBuf {
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/clips/bbb-bird/bbb-bird.mp4");
    let mut bytes = std::fs::read(&clip).expect("read the shipped clip");
    let mid = bytes.len() / 2;
    for (i, b) in bytes[mid..mid + 4000].iter_mut().enumerate() {
        *b = if i % 2 == 0 { 0xa5 } else { 0x5a };
    }
    let copy = dir.join("corrupt.mp4");
    std::fs::write(&copy, bytes).expect("write the corrupt copy");
    copy
}

#[cfg(feature = "ffmpeg")]
fn run_video(video: &Path, policy: Option<OnBadFrame>) -> Outcome {
    let rec = Recorder::default();
    let wav = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/clips/bbb-bird/audio.wav");
    let opts = RunOptions {
        input: Input::Uris {
            video: InputUri::Container {
                path: video.to_path_buf(),
            },
            audio: Some(InputUri::Wav { path: wav }),
            options: VideoOptions::default(),
        },
        events: EventConfig {
            min_frames: 1,
            ..EventConfig::default()
        },
        on_bad_frame: policy,
        ..RunOptions::default()
    };
    let control = Arc::new(RunControl::default());
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(rec.clone())];
    let result = pipeline::run_with(
        Box::new(BlobEngine::new()),
        &opts,
        &mut sinks,
        control.clone(),
    );
    let g = rec.0.lock().expect("recorder");
    Outcome {
        result,
        frames: g.0.clone(),
        events: g.1.clone(),
        frames_bad: control.frames_bad(),
    }
}

/// A video file corrupt in the middle (issue 27): under `skip` the undecodable packets are
/// counted in `frames_bad` and the run goes on to the end, every 1-s slot filled, with the events
/// of the intact file; under `stop` (the default for one pass) the first of them ends the run
/// with the decoder's error, after the frames before it were analysed.
#[cfg(feature = "ffmpeg")]
#[test]
fn a_video_file_corrupt_in_the_middle_follows_on_bad_frame() {
    let dir = common::tmp_dir("corrupt-video");
    let video = corrupt_video(&dir);
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/clips/bbb-bird/bbb-bird.mp4");
    let want = run_video(&clip, Some(OnBadFrame::Skip));
    let want_summary = want.result.expect("the intact clip");
    assert_eq!(want.frames_bad, 0);
    assert_eq!((want_summary.frames, want_summary.clips), (10, 2));

    let o = run_video(&video, Some(OnBadFrame::Skip));
    let s = o
        .result
        .expect("under skip the corrupt file is read to its end");
    // 10 s at 24 fps: some of its 240 frames are lost, most decode
    assert!(
        (1..120).contains(&o.frames_bad),
        "frames_bad {}",
        o.frames_bad
    );
    assert_eq!(
        (s.frames, s.clips),
        (want_summary.frames, want_summary.clips)
    );
    assert_eq!(o.frames, want.frames);
    assert_eq!(o.events, want.events);

    for policy in [None, Some(OnBadFrame::Stop)] {
        let o = run_video(&video, policy);
        let e = o.result.expect_err("stop ends the run").to_string();
        assert!(
            e.contains("corrupt.mp4: cannot decode: decoding video: "),
            "{policy:?}: {e}"
        );
        assert_eq!(o.frames_bad, 0);
        // the corruption is in the second half: the first seconds were analysed
        assert!(
            (3..10).contains(&o.frames.len()),
            "{policy:?}: frames {:?}",
            o.frames
        );
    }
}
