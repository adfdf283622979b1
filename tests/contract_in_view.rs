//! The optional `in_view` output (issue 26, `src/engine/model.rs`): the stand-ins of
//! `tests/fixtures/make_contract_model_inview.py` parse with `in_view`, and its values reach
//! `Inference::in_view` on every engine path — tract whole graph and frame split, tract and ONNX
//! Runtime streaming parts (`per_frame` + `after`), ONNX Runtime whole windows (feature `ort`,
//! `ORT_DYLIB_PATH`) — equal to onnxruntime's; the metadata key without the output (or the other
//! way round) is refused naming the file; the shipped models have no `in_view`.

mod common;

use std::path::{Path, PathBuf};

use c3n_edge::engine::stream::input_frame;
use c3n_edge::engine::tract::TractEngine;
use c3n_edge::engine::{
    open_engine, Backend, Engine, EngineOptions, FrameState, ModelContract, ModelError, ModelInput,
};
use ndarray::{Array1, Array4};
use ndarray_npy::read_npy;

fn input(dir: &Path) -> ModelInput {
    ModelInput {
        frames: read_npy(dir.join("frames.npy")).expect("frames.npy"),
        audio_logmel: read_npy(dir.join("audio_logmel.npy")).expect("audio_logmel.npy"),
    }
}

fn reference(dir: &Path) -> Vec<f32> {
    let v: Array1<f32> = read_npy(dir.join("in_view.npy")).expect("in_view.npy");
    v.to_vec()
}

fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let d = common::max_abs_diff(got, want);
    assert!(
        d <= 1e-5,
        "{what}: in_view differs by {d}: {got:?} vs {want:?}"
    );
}

/// Every frame of `x` streamed (`per_frame`, then `after` with the frames before it as context,
/// the first frames repeated as a window would pad): the last frame's `in_view`.
fn streamed_last(engine: &mut dyn Engine, x: &ModelInput) -> f32 {
    let t = engine.contract().clip_frames;
    let states: Vec<FrameState> = (0..t)
        .map(|i| engine.per_frame(&input_frame(x, i)).expect("per_frame"))
        .collect();
    let context: Vec<&FrameState> = states[..t - 1].iter().collect();
    let inf = engine.after(&context, &states[t - 1]).expect("after");
    let v = inf.in_view.expect("streamed in_view");
    assert_eq!(v.len(), 1);
    v[0]
}

fn ort_available() -> bool {
    cfg!(feature = "ort") && std::env::var_os("ORT_DYLIB_PATH").is_some()
}

#[test]
fn schema2_in_view_reaches_inference_on_every_engine_path() {
    let test = "contract_in_view::schema2_in_view_reaches_inference_on_every_engine_path";
    let Some(model) = common::artifact(test, "inview_t5/model.onnx") else {
        return;
    };
    let dir = model.parent().expect("dir").to_path_buf();
    let c = ModelContract::from_file(&model).expect("contract");
    assert!(c.in_view && c.c3im);
    assert_eq!(c.output_names().last(), Some(&"in_view"));
    assert_eq!(c.output_names().len(), 8);
    let info = c.to_string();
    assert!(
        info.contains("output:        in_view float32 [5]"),
        "{info}"
    );
    assert!(info.contains("in view:       yes"), "{info}");
    let (x, want) = (input(&dir), reference(&dir));
    let mask: Array4<f32> = read_npy(dir.join("mask_logits.npy")).expect("mask");

    for split in [true, false] {
        let mut e = TractEngine::load_with(&model, &EngineOptions::default(), split).expect("load");
        assert_eq!(e.is_frame_split(), split, "the fixture has a frame split");
        let inf = e.infer(&x).expect("infer");
        close(inf.in_view.as_deref().expect("in_view"), &want, "tract");
        let d = common::max_abs_diff(
            inf.mask_logits.as_slice().expect("std"),
            mask.as_slice().expect("std"),
        );
        assert!(d <= 1e-4, "mask_logits differ by {d}");
        // streamed: frame T − 1 with the four before it as context (by parts when split)
        assert_eq!(e.streams_by_parts(), split);
        let v = streamed_last(&mut e, &x);
        close(&[v], &want[4..], "tract streamed");
        // a window's frame i (the window mode's per-frame view)
        close(
            inf.frame(2).in_view.as_deref().expect("frame"),
            &want[2..3],
            "frame(2)",
        );
    }
    // two threads: the split's scheduler
    let opts = EngineOptions { threads: Some(2) };
    let mut e = TractEngine::load(&model, &opts).expect("load");
    let inf = e.infer(&x).expect("infer");
    close(
        inf.in_view.as_deref().expect("in_view"),
        &want,
        "tract 2 threads",
    );

    if !ort_available() {
        eprintln!("*** SKIP {test}: ONNX Runtime (feature ort, ORT_DYLIB_PATH) ***");
        return;
    }
    let mut e = open_engine(Backend::Cpu, &model, &EngineOptions::default()).expect("ort load");
    let inf = e.infer(&x).expect("ort infer");
    close(inf.in_view.as_deref().expect("in_view"), &want, "ort");
    assert!(
        e.streams_by_parts(),
        "ONNX Runtime streams the split by parts"
    );
    let v = streamed_last(e.as_mut(), &x);
    close(&[v], &want[4..], "ort streamed");
}

#[test]
fn schema3_audio_only_with_in_view() {
    let test = "contract_in_view::schema3_audio_only_with_in_view";
    let Some(model) = common::artifact(test, "s3_inview_audio_only_t5/model.onnx") else {
        return;
    };
    let dir = model.parent().expect("dir").to_path_buf();
    let c = ModelContract::from_file(&model).expect("contract");
    assert_eq!((c.schema, c.c3im, c.in_view), (3, false, true));
    assert_eq!(c.output_names(), ["mask_logits", "audio_logits", "in_view"]);
    let (x, want) = (input(&dir), reference(&dir));
    let mut backends = vec![Backend::Tract];
    if ort_available() {
        backends.push(Backend::Cpu);
    }
    for b in backends {
        let mut e = open_engine(b, &model, &EngineOptions::default()).expect("load");
        let inf = e.infer(&x).expect("infer");
        close(
            inf.in_view.as_deref().expect("in_view"),
            &want,
            &b.to_string(),
        );
        assert_eq!(inf.unified_label, vec![-1; 5]);
        // no split: a streamed frame reruns the window
        let v = streamed_last(e.as_mut(), &x);
        close(&[v], &want[4..], &format!("{b} streamed"));
    }
}

#[test]
fn key_and_output_must_agree() {
    let test = "contract_in_view::key_and_output_must_agree";
    for (rel, want) in [
        (
            "bad/inview_key_without_output.onnx",
            "metadata `c3n.in_view` = 1 but the last output is not `in_view`",
        ),
        (
            "bad/inview_output_without_key.onnx",
            "the last output is `in_view` but metadata `c3n.in_view` is not 1",
        ),
    ] {
        let Some(model) = common::artifact(test, rel) else {
            return;
        };
        let e = ModelContract::from_file(&model).expect_err(rel);
        assert!(matches!(e, ModelError::Signature { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(want), "{msg}");
        assert!(
            msg.contains(&model.display().to_string()),
            "names the file: {msg}"
        );
        let e = TractEngine::load(&model, &EngineOptions::default()).expect_err(rel);
        assert!(e.to_string().contains(want), "{e}");
    }
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name)
}

/// The shipped files (tracked, schema 2) have no `in_view`: contract, model-info and outputs
/// as before.
#[test]
fn shipped_models_have_no_in_view() {
    for name in ["c3n-edge-t5.onnx", "c3n-edge-t1.onnx"] {
        let c = ModelContract::from_file(&shipped(name)).expect("shipped contract");
        assert!(!c.in_view, "{name}");
        assert_eq!(c.output_names().len(), 7);
        assert!(c.to_string().contains("in view:       no"));
    }
    let c = ModelContract::from_file(&shipped("c3n-edge-t1.onnx")).expect("contract");
    let mut e =
        TractEngine::load(&shipped("c3n-edge-t1.onnx"), &EngineOptions::default()).expect("load");
    let x = ModelInput {
        frames: Array4::zeros((1, 3, 224, 224)),
        audio_logmel: Array4::from_elem(c.audio_window_shape(), -4.0),
    };
    assert_eq!(e.infer(&x).expect("infer").in_view, None);
}

/// `c3n-edge run` on the demo clip with the `in_view` stand-in (gates off but the off-screen
/// one): every event carries the frame's `in_view` at or above `min_in_view`, `version` 2.1.0,
/// and is valid under `schema/event.schema.json`; `min_in_view = 1` drops every frame's regions.
#[test]
fn run_gates_frames_below_min_in_view_and_reports_the_score() {
    let test = "contract_in_view::run_gates_frames_below_min_in_view_and_reports_the_score";
    let Some(model) = common::artifact(test, "inview_t5/model.onnx") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("schema/event.schema.json")).expect("schema"),
    )
    .expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("valid JSON Schema");
    let dir = common::tmp_dir("in_view_run");
    let run = |min_in_view: f32| -> Vec<serde_json::Value> {
        let cfg = dir.join(format!("c3n-{min_in_view}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[events]\nmin_frames = 1\nsilence_dbfs = -200.0\nsilence_classes = []\n\
                 update_interval_s = 0\nmin_in_view = {min_in_view}\n"
            ),
        )
        .expect("config");
        let events = dir.join(format!("events-{min_in_view}.jsonl"));
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_c3n-edge"))
            .current_dir(root)
            .args([
                "run",
                "file://assets/clips/bbb-bird/frames/%05d.png",
                "--audio",
                "file://assets/clips/bbb-bird/audio.wav",
                "--model",
            ])
            .arg(&model)
            .arg("--config")
            .arg(&cfg)
            .arg("--events")
            .arg(&events)
            .status()
            .expect("run c3n-edge");
        assert!(status.success());
        std::fs::read_to_string(&events)
            .expect("events")
            .lines()
            .map(|l| serde_json::from_str(l).expect("event JSON"))
            .collect()
    };
    let all = run(0.0);
    assert!(!all.is_empty(), "the stand-in finds regions on the demo");
    let mut scores = Vec::new();
    for e in &all {
        let errors: Vec<String> = validator.iter_errors(e).map(|x| x.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}: {e}");
        assert_eq!(e["version"], "2.1.0");
        let v = e["after"]["in_view"].as_f64().expect("in_view") as f32;
        assert!((0.0..=1.0).contains(&v));
        scores.push(v);
    }
    // a limit between the scores seen: only frames at or above it are seen
    scores.sort_by(f32::total_cmp);
    let limit = (scores[0] + scores[scores.len() - 1]) / 2.0;
    if scores[0] < limit {
        let gated = run(limit);
        assert!(gated.len() < all.len(), "{} vs {}", gated.len(), all.len());
        for e in gated.iter().filter(|e| e["type"] != "end") {
            let v = e["after"]["in_view"].as_f64().expect("in_view") as f32;
            assert!(v >= limit, "{v} < {limit}");
        }
    }
    assert!(
        run(1.0).is_empty(),
        "in_view < 1 everywhere: no region is kept"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
