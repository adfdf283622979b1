//! Issue 25, the streaming mode end to end (`pipeline::run` with `Mode::Stream`): at the 1-Hz
//! slot times, with the same context, a streamed frame's mask equals the window mode's mask of the
//! window's last frame; without a mask rate every frame gets a mask, each per-frame part run once.

use std::path::Path;
use std::sync::{Arc, Mutex};

use c3n_edge::engine::tract::TractEngine;
use c3n_edge::engine::EngineOptions;
use c3n_edge::events::{dbfs, Event, FrameDetections};
use c3n_edge::pipeline::{self, Input, Mode, RunOptions};
use c3n_edge::sink::{AnalysedFrame, Sink, SinkError};
use c3n_edge::source::VideoOptions;
use c3n_edge::uri::InputUri;

/// Keeps every analysed frame's detections.
struct Keep(Arc<Mutex<Vec<FrameDetections>>>);

impl Sink for Keep {
    fn frame(&mut self, frame: &AnalysedFrame, _events: &[Event]) -> Result<(), SinkError> {
        self.0.lock().expect("lock").push(frame.detections.clone());
        Ok(())
    }
    fn finish(&mut self, _events: &[Event]) -> Result<(), SinkError> {
        Ok(())
    }
}

fn run(opts: &RunOptions) -> (Vec<FrameDetections>, pipeline::RunSummary) {
    run_threads(opts, None)
}

fn run_threads(
    opts: &RunOptions,
    threads: Option<usize>,
) -> (Vec<FrameDetections>, pipeline::RunSummary) {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/c3n-edge-t5.onnx");
    let engine = TractEngine::load(&model, &EngineOptions { threads }).expect("load shipped model");
    let kept = Arc::new(Mutex::new(Vec::new()));
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(Keep(kept.clone()))];
    let summary = pipeline::run(Box::new(engine), opts, &mut sinks).expect("run");
    let frames = kept.lock().expect("lock").clone();
    (frames, summary)
}

/// The shipped demo clip: 10 frames at 1 fps and their audio.
fn demo_clip() -> Input {
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/clips/bbb-bird");
    Input::Uris {
        video: InputUri::parse(&format!("file://{}/frames/%05d.png", clip.display())).expect("uri"),
        audio: Some(InputUri::parse(&format!("file://{}/audio.wav", clip.display())).expect("uri")),
        options: VideoOptions::default(),
    }
}

#[test]
fn stream_at_one_hertz_equals_the_windows_last_frames() {
    let window = RunOptions {
        input: demo_clip(),
        mode: Some(Mode::Window),
        ..Default::default()
    };
    let stream = RunOptions {
        mode: Some(Mode::Stream),
        mask_rate: Some(1.0),
        ..window.clone()
    };
    let (w, ws) = run(&window);
    let (s, ss) = run(&stream);
    assert_eq!((ws.clips, ws.frames), (2, 10));
    assert_eq!(
        (ss.clips, ss.frames),
        (10, 10),
        "one model call per streamed frame"
    );
    let mut compared = 0;
    for (i, (a, b)) in w.iter().zip(&s).enumerate() {
        assert_eq!(a.pts_ms, b.pts_ms, "frame {i}");
        // the same audio patch in both modes
        assert_eq!(a.audio_rms, b.audio_rms, "frame {i}");
        if i % 5 != 4 {
            continue; // before a window's last frame the two modes see different frames
        }
        // a silent frame is not context of a sounding one (pipeline/stream.rs): compare the
        // frames whose context is the window's
        let silent =
            |d: &FrameDetections| dbfs(d.audio_rms) < -50.0 || d.labels.audio_label == "Silence";
        if s[i - 4..i].iter().any(silent) {
            eprintln!("frame {i}: a context frame is silent, the contexts differ");
            continue;
        }
        compared += 1;
        assert_eq!(a.regions.len(), b.regions.len(), "frame {i}: regions");
        for (ra, rb) in a.regions.iter().zip(&b.regions) {
            assert_eq!(ra.bbox, rb.bbox, "frame {i}");
            assert!(ra.mask == rb.mask, "frame {i}: masks differ");
            assert!((ra.score - rb.score).abs() <= 1e-5, "frame {i}");
            assert_eq!(ra.label, rb.label, "frame {i}");
        }
        assert_eq!(a.labels, b.labels, "frame {i}: frame labels");
    }
    // a mask rate above the sequence's 1 fps analyses each frame once, at its own time
    let (s2, _) = run(&RunOptions {
        mask_rate: Some(2.0),
        ..stream.clone()
    });
    let pts: Vec<i64> = s2.iter().map(|d| d.pts_ms).collect();
    assert_eq!(pts, (0..10).map(|k| k * 1000).collect::<Vec<_>>());
    // the demo's seconds 7-8 are silent, so only the first window's last frame compares; it has
    // regions, so the comparison is not of empty lists
    assert_eq!(compared, 1);
    assert!(!w[4].regions.is_empty(), "no regions to compare");
}

#[test]
fn stream_without_a_mask_rate_analyses_every_frame() {
    let opts = RunOptions {
        input: Input::Synthetic {
            width: 320,
            height: 240,
            fps: 10.0,
            seconds: 2.0,
        },
        mode: Some(Mode::Stream),
        ..Default::default()
    };
    let (frames, summary) = run(&opts);
    assert_eq!(summary.frames, 20);
    assert_eq!(summary.clips, 20);
    let pts: Vec<i64> = frames.iter().map(|d| d.pts_ms).collect();
    assert_eq!(pts, (0..20).map(|k| k * 100).collect::<Vec<_>>());
    // a mask rate keeps one frame per slot
    let (frames, _) = run(&RunOptions {
        mask_rate: Some(4.0),
        ..opts
    });
    assert_eq!(frames.len(), 8);
}

#[test]
fn paced_stream_accounts_for_every_frame() {
    use c3n_edge::control::RunControl;
    // 10 fps for 3 s at wall-clock pace: every frame is analysed, skipped (the engine was busy:
    // newest wins) or dropped (the reader's queue was full); none is lost unaccounted
    let opts = RunOptions {
        input: Input::Synthetic {
            width: 320,
            height: 240,
            fps: 10.0,
            seconds: 3.0,
        },
        paced: true,
        ..Default::default()
    };
    assert_eq!(
        opts.mode(),
        Mode::Stream,
        "a paced input streams by default"
    );
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/c3n-edge-t5.onnx");
    let engine = TractEngine::load(&model, &EngineOptions::default()).expect("load shipped model");
    let control = Arc::new(RunControl::default());
    let kept = Arc::new(Mutex::new(Vec::new()));
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(Keep(kept.clone()))];
    let summary =
        pipeline::run_with(Box::new(engine), &opts, &mut sinks, control.clone()).expect("run");
    let (skipped, dropped) = (control.frames_skipped(), control.dropped_frames());
    eprintln!(
        "analysed {}, skipped {skipped}, dropped {dropped}, wall {:?}",
        summary.frames, summary.wall
    );
    assert!(summary.frames >= 1);
    assert_eq!(summary.frames + skipped + dropped, 30);
    // paced: the run lasts the input's time (the last frame is released at 2.9 s)
    assert!(summary.wall.as_secs_f64() >= 2.8, "{:?}", summary.wall);
    // frames are stamped on CLOCK_MONOTONIC at release, in order
    let pts: Vec<i64> = kept
        .lock()
        .expect("lock")
        .iter()
        .map(|d| d.pts_ms)
        .collect();
    assert!(pts.windows(2).all(|w| w[1] > w[0]));
    assert!(pts.last().unwrap_or(&0) - pts[0] <= 2900);
}

#[test]
fn stream_on_two_threads_gives_the_one_thread_masks() {
    // --threads 2: the per-frame part of the next frame runs beside the second part of this one
    // (Engine::stream_workers); the masks are those of one thread, bit for bit
    let opts = RunOptions {
        input: demo_clip(),
        mode: Some(Mode::Stream),
        ..Default::default()
    };
    let (one, _) = run_threads(&opts, Some(1));
    let (two, summary) = run_threads(&opts, Some(2));
    assert_eq!(summary.frames, 10);
    assert_eq!(one.len(), two.len());
    for (i, (a, b)) in one.iter().zip(&two).enumerate() {
        assert_eq!(a.pts_ms, b.pts_ms, "frame {i}");
        assert_eq!(a.regions.len(), b.regions.len(), "frame {i}");
        for (ra, rb) in a.regions.iter().zip(&b.regions) {
            assert!(ra.mask == rb.mask && ra.score == rb.score, "frame {i}");
        }
        assert_eq!(a.labels, b.labels, "frame {i}");
    }
    assert!(
        one.iter().any(|d| !d.regions.is_empty()),
        "nothing to compare"
    );
}
