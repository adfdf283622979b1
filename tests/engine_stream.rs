//! Issue 25, streaming inference (`c3n_edge::engine::stream`): a frame's outputs from
//! `Engine::per_frame` + `Engine::after` with the T − 1 frames before it as context equal the
//! last frame of `Engine::infer` on that window, on every backend (candle style: one test body,
//! run per engine). Frames slide: each per-frame state serves as context for the next frames.
//!
//! The shipped T = 5 model (`models/c3n-edge-t5.onnx`, with `c3n.frame_split`) and T = 1 model are
//! tracked files, so these tests need no generated artefact. The ONNX Runtime cases (feature
//! `ort`) need `ORT_DYLIB_PATH` (they skip loudly without it, and fail with `CI=true`).

mod common;

use std::path::{Path, PathBuf};

use c3n_edge::engine::stream::input_frame;
use c3n_edge::engine::tract::TractEngine;
use c3n_edge::engine::{Engine, EngineError, EngineOptions, FrameState, ModelInput};
use ndarray::Array4;

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name)
}

/// `n` frames of a deterministic input (an LCG in [-2, 2] for the frames, in [-8, 2] for the
/// log-mel patches): `frames [n,3,224,224]`, `audio_logmel [n,1,96,64]`.
fn inputs(n: usize, seed: u64) -> ModelInput {
    let mut x = seed;
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 40) as f32 / (1u64 << 24) as f32
    };
    // smooth images (a sum of a few waves) so the backbone sees structure, not only noise
    let mut frames = Array4::<f32>::zeros((n, 3, 224, 224));
    for f in 0..n {
        let (a, b, c) = (next() * 0.2, next() * 0.2, next() * 6.0);
        for ((_, ch, y, x), v) in frames
            .slice_mut(ndarray::s![f..=f, .., .., ..])
            .indexed_iter_mut()
        {
            *v = 1.5 * ((a * x as f32 + b * y as f32 + c + ch as f32).sin()) + 0.3 * (next() - 0.5);
        }
    }
    let audio_logmel = Array4::from_shape_simple_fn((n, 1, 96, 64), || -8.0 + 10.0 * next());
    ModelInput {
        frames,
        audio_logmel,
    }
}

fn max_abs_diff<D: ndarray::Dimension>(
    a: &ndarray::Array<f32, D>,
    b: &ndarray::Array<f32, D>,
) -> f32 {
    common::max_abs_diff(
        a.as_slice().expect("standard"),
        b.as_slice().expect("standard"),
    )
}

/// The one test body: 7 frames streamed through `engine`; frames 4, 5 and 6 (each with the four
/// before it) against `infer` on the windows [0..5), [1..6), [2..7).
fn check_stream_equals_window(test: &str, engine: &mut dyn Engine) {
    let t = engine.contract().clip_frames;
    let n = t + 2;
    let all = inputs(n, 7);
    let states: Vec<FrameState> = (0..n)
        .map(|i| engine.per_frame(&input_frame(&all, i)).expect("per_frame"))
        .collect();
    for last in t - 1..n {
        let first = last + 1 - t;
        let window = ModelInput {
            frames: all
                .frames
                .slice(ndarray::s![first..=last, .., .., ..])
                .to_owned(),
            audio_logmel: all
                .audio_logmel
                .slice(ndarray::s![first..=last, .., .., ..])
                .to_owned(),
        };
        let want = engine.infer(&window).expect("infer").frame(t - 1);
        let context: Vec<&FrameState> = states[first..last].iter().collect();
        let got = engine.after(&context, &states[last]).expect("after");
        let scale = want.mask_logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = max_abs_diff(&got.mask_logits, &want.mask_logits);
        eprintln!(
            "{test}: frame {last}: mask_logits max abs diff stream vs window = {d:e} (max |logit| {scale:e})"
        );
        // the clip mean sums the same T frames; only the order of float32 sums may differ
        assert!(
            d <= 1e-4 * scale.max(1.0),
            "frame {last}: mask_logits differ by {d}"
        );
        assert_eq!(got.unified_label, want.unified_label, "frame {last}");
        assert!(max_abs_diff(&got.visual_logits, &want.visual_logits) <= 1e-3);
        assert!(max_abs_diff(&got.audio_logits, &want.audio_logits) <= 1e-3);
        assert!(max_abs_diff(&got.visual_logit_map, &want.visual_logit_map) <= 1e-3);
        assert!(max_abs_diff(&got.c3im_affinity, &want.c3im_affinity) <= 1e-4);
        assert!((got.c3im_score[0] - want.c3im_score[0]).abs() <= 1e-5);
        // the context matters: another context changes the mask (a stream that ignored its
        // context would pass the equality above only by accident of T = 1)
        if t > 1 && last == n - 1 {
            let other: Vec<&FrameState> = std::iter::repeat_n(&states[0], t - 1).collect();
            let alone = engine.after(&other, &states[last]).expect("after");
            let d = max_abs_diff(&alone.mask_logits, &got.mask_logits);
            assert!(
                d > 1e-3,
                "a different context gave the same mask (diff {d})"
            );
        }
    }
    // a context of the wrong length is an error, not a panic
    if t > 1 {
        let short: Vec<&FrameState> = states[..t - 2].iter().collect();
        match engine.after(&short, &states[t - 1]) {
            Err(EngineError::Run { message, .. }) => {
                assert!(message.contains("context frame"), "{message}")
            }
            other => panic!("expected a context-length error, got {other:?}"),
        }
    }
    // a window-shaped input is not a frame
    let window = inputs(2, 3);
    assert!(matches!(
        engine.per_frame(&window),
        Err(EngineError::InputShape { .. })
    ));
}

#[test]
fn tract_frame_split_streams_like_windows() {
    let mut e = TractEngine::load(&shipped("c3n-edge-t5.onnx"), &EngineOptions::default())
        .expect("load the shipped model");
    assert!(e.is_frame_split() && e.streams_by_parts());
    check_stream_equals_window("tract split", &mut e);
}

#[test]
fn tract_whole_graph_streams_by_whole_windows() {
    let mut e = TractEngine::load_with(
        &shipped("c3n-edge-t5.onnx"),
        &EngineOptions::default(),
        false,
    )
    .expect("load the shipped model");
    assert!(!e.is_frame_split() && !e.streams_by_parts());
    check_stream_equals_window("tract whole", &mut e);
}

#[test]
fn tract_t1_streams_trivially() {
    let mut e = TractEngine::load(&shipped("c3n-edge-t1.onnx"), &EngineOptions::default())
        .expect("load the shipped T = 1 model");
    assert!(e.streams_by_parts());
    check_stream_equals_window("tract T=1", &mut e);
    // T = 1: the frame's own window
    let one = inputs(1, 11);
    let st = e.per_frame(&one).expect("per_frame");
    let got = e.after(&[], &st).expect("after");
    assert_eq!(got, e.infer(&one).expect("infer"));
}

/// Whether ONNX Runtime can be loaded (`ORT_DYLIB_PATH`); skips loudly otherwise (fails in CI).
#[cfg(feature = "ort")]
fn ort_library(test: &str) -> bool {
    common::require(
        test,
        std::env::var_os("ORT_DYLIB_PATH").is_some(),
        "ORT_DYLIB_PATH is not set (point it at libonnxruntime.so of ONNX Runtime 1.17+, e.g. \
         .venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1)",
    )
}

#[cfg(feature = "ort")]
fn ort_cpu(model: &str) -> c3n_edge::engine::ort::OrtEngine {
    c3n_edge::engine::ort::OrtEngine::load(
        &shipped(model),
        c3n_edge::engine::ort::Provider::Cpu,
        &EngineOptions::default(),
        &c3n_edge::engine::EngineSettings::from_env().expect("settings"),
    )
    .expect("load the shipped model on ONNX Runtime")
}

#[cfg(feature = "ort")]
#[test]
fn ort_cpu_frame_split_streams_like_windows() {
    let test = "ort_cpu_frame_split_streams_like_windows";
    if !ort_library(test) {
        return;
    }
    let mut e = ort_cpu("c3n-edge-t5.onnx");
    assert!(e.streams_by_parts());
    check_stream_equals_window("ort-cpu split", &mut e);
    // the parts were built (no fallback to whole windows) and use no engine cache on the CPU
    assert!(e.streams_by_parts());
    assert_eq!(e.part_cache_entries(), [None, None]);
    // a state of another engine is refused, not misread
    let mut tract = TractEngine::load(&shipped("c3n-edge-t5.onnx"), &EngineOptions::default())
        .expect("load the shipped model");
    let frame = input_frame(&inputs(1, 5), 0);
    let foreign = tract.per_frame(&frame).expect("tract per_frame");
    let own = e.per_frame(&frame).expect("ort per_frame");
    let context: Vec<&FrameState> = vec![&own, &own, &own, &foreign];
    match e.after(&context, &own) {
        Err(EngineError::Run { message, .. }) => {
            assert!(message.contains("another engine"), "{message}")
        }
        other => panic!("expected a foreign-state error, got {other:?}"),
    }
}

#[cfg(feature = "ort")]
#[test]
fn ort_cpu_t1_streams_trivially() {
    let test = "ort_cpu_t1_streams_trivially";
    if !ort_library(test) {
        return;
    }
    let mut e = ort_cpu("c3n-edge-t1.onnx");
    assert!(e.streams_by_parts());
    check_stream_equals_window("ort-cpu T=1", &mut e);
}

#[cfg(feature = "ort")]
#[test]
fn ort_cpu_split_that_does_not_cut_streams_by_windows() {
    let test = "ort_cpu_split_that_does_not_cut_streams_by_windows";
    if !ort_library(test) {
        return;
    }
    // the shipped model with a `c3n.frame_split` that lists no carry: it parses, but the part
    // after the clip means would read the graph's inputs, so the parts cannot be built
    let mut proto = c3n_edge::engine::model::load_model_proto(&shipped("c3n-edge-t5.onnx"))
        .expect("decode the shipped model");
    let entry = proto
        .metadata_props
        .iter_mut()
        .find(|p| p.key == c3n_edge::engine::split::METADATA_KEY)
        .expect("the shipped model has a frame split");
    let mut split: serde_json::Value = serde_json::from_str(&entry.value).expect("split JSON");
    split["carry"] = serde_json::json!([]);
    entry.value = split.to_string();
    let dir = common::tmp_dir("ort-split-no-carry");
    let path = dir.join("c3n-edge-t5-no-carry.onnx");
    std::fs::write(&path, prost::Message::encode_to_vec(&proto)).expect("write the model");
    drop(proto);
    let mut e = c3n_edge::engine::ort::OrtEngine::load(
        &path,
        c3n_edge::engine::ort::Provider::Cpu,
        &EngineOptions::default(),
        &c3n_edge::engine::EngineSettings::from_env().expect("settings"),
    )
    .expect("load");
    // known only once the first frame tries to build the parts
    assert!(e.streams_by_parts());
    e.per_frame(&inputs(1, 1)).expect("per_frame falls back");
    assert!(!e.streams_by_parts());
    check_stream_equals_window("ort-cpu split without carry", &mut e);
    std::fs::remove_dir_all(&dir).expect("remove the temp dir");
}

#[test]
fn tract_stream_workers_match_the_window() {
    // --threads 2: the two parts as workers for two threads (Engine::stream_workers); one thread
    // has none
    let model = shipped("c3n-edge-t5.onnx");
    let mut one = TractEngine::load(&model, &EngineOptions { threads: Some(1) }).expect("load");
    assert!(one.stream_workers().is_none());
    let mut e = TractEngine::load(&model, &EngineOptions { threads: Some(2) }).expect("load");
    let all = inputs(6, 5);
    let want = e
        .infer(&ModelInput {
            frames: all.frames.slice(ndarray::s![1..6, .., .., ..]).to_owned(),
            audio_logmel: all
                .audio_logmel
                .slice(ndarray::s![1..6, .., .., ..])
                .to_owned(),
        })
        .expect("infer")
        .frame(4);
    let mut w = e.stream_workers().expect("workers at 2 threads");
    // each worker on its own thread, as the pipeline runs them
    let states: Vec<FrameState> = std::thread::scope(|s| {
        s.spawn(|| {
            (0..6)
                .map(|i| {
                    w.per_frame
                        .per_frame(&input_frame(&all, i))
                        .expect("per_frame")
                })
                .collect()
        })
        .join()
        .expect("per-frame thread")
    });
    let mut after = w.after;
    let got = std::thread::scope(|s| {
        s.spawn(move || {
            let context: Vec<&FrameState> = states[1..5].iter().collect();
            after.after(&context, &states[5]).expect("after")
        })
        .join()
        .expect("after thread")
    });
    assert_eq!(got.mask_logits, want.mask_logits);
    assert_eq!(got.unified_label, want.unified_label);
}
