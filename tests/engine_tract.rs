//! tract backend vs reference outputs: onnxruntime on the contract stand-in models from
//! `tests/fixtures/make_contract_model.py`, and PyTorch eager on the real exported C3N graphs
//! (`python -m c3n.export --reference-dir`, CCAM backward in-graph); plus the model-contract
//! error paths.

mod common;

use std::path::{Path, PathBuf};

use c3n_edge::engine::model::ModelError;
use c3n_edge::engine::{
    open_engine, Backend, EngineError, EngineOptions, Inference, ModelContract, ModelInput,
};
use ndarray::{Array1, Array4};
use ndarray_npy::read_npy;

/// Inputs and onnxruntime's outputs of one fixture case.
fn load_case(dir: &Path) -> (ModelInput, Inference) {
    let r = |name: &str| dir.join(format!("{name}.npy"));
    let input = ModelInput {
        frames: read_npy(r("frames")).expect("frames.npy"),
        audio_logmel: read_npy(r("audio_logmel")).expect("audio_logmel.npy"),
    };
    let label: Array1<i64> = read_npy(r("unified_label")).expect("unified_label.npy");
    let score: Array1<f32> = read_npy(r("c3im_score")).expect("c3im_score.npy");
    let expected = Inference {
        mask_logits: read_npy(r("mask_logits")).expect("mask_logits.npy"),
        visual_logits: read_npy(r("visual_logits")).expect("visual_logits.npy"),
        audio_logits: read_npy(r("audio_logits")).expect("audio_logits.npy"),
        unified_label: label.to_vec(),
        c3im_score: score.to_vec(),
        visual_logit_map: read_npy(r("visual_logit_map")).expect("visual_logit_map.npy"),
        c3im_affinity: read_npy(r("c3im_affinity")).expect("c3im_affinity.npy"),
        in_view: None,
    };
    (input, expected)
}

fn s<D: ndarray::Dimension>(a: &ndarray::Array<f32, D>) -> &[f32] {
    a.as_slice().expect("standard layout")
}

/// `libonnxruntime.so` for the ort backends: `$ORT_DYLIB_PATH`, or `None` after a loud skip
/// (a failure when `CI=true`).
#[cfg(feature = "ort")]
fn ort_library(test: &str) -> Option<()> {
    common::require(
        test,
        std::env::var_os("ORT_DYLIB_PATH").is_some(),
        "ORT_DYLIB_PATH is not set (point it at libonnxruntime.so of ONNX Runtime 1.17+, e.g. \
         .venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1)",
    )
    .then_some(())
}

/// Absolute part of the output tolerance (outputs of magnitude <= 1: the mask, the score).
const TOL_ABS: f32 = 1e-3;
/// Relative part, times the largest reference magnitude of the output (README "Tests on any
/// CPU": measured differences are below a fifth of it on AVX-512, AVX2 and SSE kernels).
const TOL_REL: f32 = 1e-5;

/// One test body per backend (candle style): the backend's outputs vs the reference outputs.
fn check_parity(backend: Backend, case: &str, threads: Option<usize>) {
    let test = format!("engine_tract::{case} ({backend}, threads {threads:?})");
    let Some(model) = common::artifact(&test, &format!("{case}/model.onnx")) else {
        return;
    };
    #[cfg(feature = "ort")]
    if backend != Backend::Tract && ort_library(&test).is_none() {
        return;
    }
    let dir = model.parent().expect("model dir").to_path_buf();
    let (input, want) = load_case(&dir);
    let mut engine = open_engine(backend, &model, &EngineOptions { threads }).expect("load model");
    let expected_name = match backend {
        Backend::Cpu => "ort-cpu",
        _ => "tract",
    };
    assert_eq!(engine.name(), expected_name);
    let out = engine.infer(&input).expect("infer");
    let diffs = [
        (
            "mask_logits",
            common::max_abs_diff(s(&out.mask_logits), s(&want.mask_logits)),
        ),
        (
            "visual_logits",
            common::max_abs_diff(s(&out.visual_logits), s(&want.visual_logits)),
        ),
        (
            "audio_logits",
            common::max_abs_diff(s(&out.audio_logits), s(&want.audio_logits)),
        ),
        (
            "c3im_score",
            common::max_abs_diff(&out.c3im_score, &want.c3im_score),
        ),
        (
            "visual_logit_map",
            common::max_abs_diff(s(&out.visual_logit_map), s(&want.visual_logit_map)),
        ),
        (
            "c3im_affinity",
            common::max_abs_diff(s(&out.c3im_affinity), s(&want.c3im_affinity)),
        ),
    ];
    let scale = |a: &[f32]| a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scales = [
        scale(s(&want.mask_logits)),
        scale(s(&want.visual_logits)),
        scale(s(&want.audio_logits)),
        scale(&want.c3im_score),
        scale(s(&want.visual_logit_map)),
        scale(s(&want.c3im_affinity)),
    ];
    for ((name, d), ref_max) in diffs.into_iter().zip(scales) {
        // float32 sums in another order (SIMD width, FMA, threads) differ by a few ULPs of the
        // largest partial sums, so the tolerance grows with the output's magnitude: the real
        // export's audio_logits reach 609, where one ULP is 6.1e-5 and 1.25e-3 (20 ULPs) was
        // measured on an AVX2 EPYC against the 1e-3 absolute limit that held with AVX-512
        let tol = TOL_ABS + TOL_REL * ref_max;
        eprintln!(
            "{test}: {name} max abs diff {expected_name} vs reference = {d:e} \
             (max |reference| {ref_max:e}, tolerance {tol:e})"
        );
        assert!(d <= tol, "{name} differs by {d} (tolerance {tol})");
    }
    assert_eq!(out.unified_label, want.unified_label, "unified_label");
    // a second call on the same engine gives the same result
    assert_eq!(engine.infer(&input).expect("second infer"), out);
}

/// The real C3N export (untrained decoder; the graph and its CCAM backward are what is tested):
/// tract vs the PyTorch outputs saved by `c3n.export --reference-dir` for a fixed real input.
#[test]
fn tract_matches_pytorch_c3n_edge_t5() {
    check_parity(Backend::Tract, "c3n-edge-untrained-t5", None);
}

#[test]
fn tract_matches_pytorch_c3n_edge_t1() {
    check_parity(Backend::Tract, "c3n-edge-untrained-t1", Some(2));
}

#[test]
fn tract_matches_onnxruntime_t5() {
    check_parity(Backend::Tract, "contract_t5", None);
}

#[test]
fn tract_matches_onnxruntime_t1_multithreaded() {
    check_parity(Backend::Tract, "contract_t1", Some(2));
}

/// The same bodies on ONNX Runtime's CPU provider (`--features ort`, `ORT_DYLIB_PATH`).
#[cfg(feature = "ort")]
mod ort_cpu {
    use super::*;

    #[test]
    fn ort_cpu_matches_pytorch_c3n_edge_t5() {
        check_parity(Backend::Cpu, "c3n-edge-untrained-t5", None);
    }

    #[test]
    fn ort_cpu_matches_pytorch_c3n_edge_t1() {
        check_parity(Backend::Cpu, "c3n-edge-untrained-t1", Some(2));
    }

    #[test]
    fn ort_cpu_matches_onnxruntime_t5() {
        check_parity(Backend::Cpu, "contract_t5", None);
    }

    #[test]
    fn ort_cpu_matches_onnxruntime_t1_multithreaded() {
        check_parity(Backend::Cpu, "contract_t1", Some(2));
    }

    /// Errors of the ort backend name the library / the provider, and `auto` falls back.
    #[test]
    fn ort_errors_and_auto_fallback() {
        let test = "engine_tract::ort_errors_and_auto_fallback";
        let Some(model) = common::artifact(test, "contract_t1/model.onnx") else {
            return;
        };
        if ort_library(test).is_none() {
            return;
        }
        // the CPU-only onnxruntime has no TensorRT provider; auto must fall back to tract
        let e = open_engine(Backend::Auto, &model, &EngineOptions::default()).expect("auto");
        assert_eq!(e.name(), "tract");
        match open_engine(Backend::TensorRt, &model, &EngineOptions::default()) {
            Err(EngineError::Unavailable { backend, reason }) => {
                assert_eq!(backend, "ort-tensorrt");
                assert!(!reason.is_empty());
            }
            Err(e) => panic!("expected Unavailable, got {e}"),
            Ok(_) => panic!("TensorRT loaded on a machine without it"),
        }
        let e = open_engine(Backend::Cpu, &model, &EngineOptions { threads: Some(0) }).err();
        assert!(matches!(e, Some(EngineError::Option(_))), "{e:?}");
    }
}

#[test]
fn contract_is_read_from_metadata() {
    let Some(model) = common::artifact(
        "engine_tract::contract_is_read_from_metadata",
        "contract_t5/model.onnx",
    ) else {
        return;
    };
    let c = ModelContract::from_file(&model).expect("contract");
    assert_eq!(c.clip_frames, 5);
    assert_eq!(c.config, "edge");
    assert!(!c.trained);
    assert_eq!(c.clip_rate_hz, 1.0);
    assert_eq!(c.image, c3n_edge::frontend::ImageNorm::default());
    assert_eq!(c.frontend, c3n_edge::frontend::FrontendParams::default());
    assert_eq!(c.imagenet_labels.len(), 1000);
    assert_eq!(c.audioset_labels[520], "audioset_520");
    assert!(c.to_string().contains("frames float32 [5, 3, 224, 224]"));
}

fn expect_model_error(path: &Path) -> ModelError {
    match open_engine(Backend::Tract, path, &EngineOptions::default()) {
        Err(EngineError::Model(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "error does not name the file: {msg}"
            );
            e
        }
        Err(e) => panic!("expected a ModelError, got {e:?}"),
        Ok(_) => panic!("{} loaded but should not", path.display()),
    }
}

#[test]
fn missing_model_file() {
    let e = expect_model_error(Path::new("/nonexistent/dir/model.onnx"));
    assert!(matches!(e, ModelError::Io { .. }), "{e:?}");
}

#[test]
fn non_onnx_and_empty_files() {
    let dir = common::tmp_dir("non-onnx");
    let text = dir.join("readme.onnx");
    std::fs::write(&text, "this is not a protobuf, just some text\n").unwrap();
    assert!(matches!(
        expect_model_error(&text),
        ModelError::NotOnnx { .. }
    ));
    let empty = dir.join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        expect_model_error(&empty),
        ModelError::NotOnnx { .. }
    ));
}

#[test]
fn truncated_onnx() {
    let Some(model) = common::artifact("engine_tract::truncated_onnx", "contract_t5/model.onnx")
    else {
        return;
    };
    let bytes = std::fs::read(&model).unwrap();
    let dir = common::tmp_dir("truncated");
    for frac in [2usize, 10] {
        let p: PathBuf = dir.join(format!("truncated_{frac}.onnx"));
        std::fs::write(&p, &bytes[..bytes.len() / frac]).unwrap();
        let e = expect_model_error(&p);
        assert!(matches!(e, ModelError::NotOnnx { .. }), "1/{frac}: {e:?}");
    }
}

#[test]
fn wrong_input_shape_in_graph() {
    let Some(model) = common::artifact(
        "engine_tract::wrong_input_shape_in_graph",
        "bad/wrong_input_shape.onnx",
    ) else {
        return;
    };
    match expect_model_error(&model) {
        ModelError::Signature { kind, problem, .. } => {
            assert_eq!(kind, "input");
            assert!(
                problem.contains("frames") && problem.contains("[5,3,112,112]"),
                "{problem}"
            );
        }
        e => panic!("expected a signature error, got {e:?}"),
    }
}

#[test]
fn missing_metadata_key() {
    let Some(model) = common::artifact(
        "engine_tract::missing_metadata_key",
        "bad/missing_metadata.onnx",
    ) else {
        return;
    };
    match expect_model_error(&model) {
        ModelError::MissingKey { key, .. } => assert_eq!(key, "c3n.frontend.fft_size"),
        e => panic!("expected MissingKey, got {e:?}"),
    }
}

#[test]
fn wrong_window_shape_and_bad_options() {
    let Some(model) = common::artifact(
        "engine_tract::wrong_window_shape_and_bad_options",
        "contract_t1/model.onnx",
    ) else {
        return;
    };
    let mut engine = open_engine(Backend::Tract, &model, &EngineOptions::default()).expect("load");
    let bad = ModelInput {
        frames: Array4::zeros((5, 3, 224, 224)),
        audio_logmel: Array4::zeros((1, 1, 96, 64)),
    };
    match engine.infer(&bad) {
        Err(EngineError::InputShape {
            name,
            expected,
            got,
        }) => {
            assert_eq!(name, "frames");
            assert_eq!(expected, vec![1, 3, 224, 224]);
            assert_eq!(got, vec![5, 3, 224, 224]);
        }
        other => panic!("expected InputShape, got {other:?}"),
    }
    let e = open_engine(Backend::Tract, &model, &EngineOptions { threads: Some(0) }).err();
    assert!(matches!(e, Some(EngineError::Option(_))), "{e:?}");
    assert!(matches!(
        "onnxruntime".parse::<Backend>(),
        Err(EngineError::UnknownBackend(_))
    ));
}

/// Issue 16: the frame split (two batch-1 graphs, TPAVI's clip means taken by the engine) is
/// what a T = 5 export runs on, with 2 threads (frames in parallel) as with 1; it matches PyTorch
/// like the whole graph does.
#[test]
fn tract_frame_split_two_threads_matches_pytorch_t5() {
    check_parity(Backend::Tract, "c3n-edge-untrained-t5", Some(2));
}

/// Issue 16: which models run split, and the split against tract's own whole-graph run.
#[test]
fn tract_frame_split_equals_whole_graph() {
    use c3n_edge::engine::tract::TractEngine;
    use c3n_edge::engine::Engine;

    let test = "engine_tract::tract_frame_split_equals_whole_graph";
    let Some(model) = common::artifact(test, "c3n-edge-untrained-t5/model.onnx") else {
        return;
    };
    let (input, _) = load_case(model.parent().expect("model dir"));
    let opts = EngineOptions { threads: Some(1) };
    let mut split = TractEngine::load(&model, &opts).expect("load split");
    let mut whole = TractEngine::load_with(&model, &opts, false).expect("load whole");
    assert!(split.is_frame_split() && !whole.is_frame_split());
    let (a, b) = (
        split.infer(&input).expect("split"),
        whole.infer(&input).expect("whole"),
    );
    let d = common::max_abs_diff(s(&a.mask_logits), s(&b.mask_logits));
    eprintln!("{test}: mask_logits max abs diff split vs whole = {d:e}");
    assert!(d <= TOL_ABS, "mask_logits differ by {d}");
    assert_eq!(a.unified_label, b.unified_label);
    assert!(common::max_abs_diff(s(&a.visual_logit_map), s(&b.visual_logit_map)) <= 1e-3);
    // the scheduler: any number of workers (fewer, as many as and more than the 5 frames) gives
    // the one-thread result bit for bit (each job is single-threaded, the clip mean sums the frames
    // in order)
    for threads in [2, 3, 5, 8] {
        let mut e = TractEngine::load(
            &model,
            &EngineOptions {
                threads: Some(threads),
            },
        )
        .expect("load split");
        assert_eq!(e.infer(&input).expect("infer"), a, "{threads} threads");
    }
    // T = 1 and models without `c3n.frame_split` run whole
    for case in ["c3n-edge-untrained-t1", "contract_t5"] {
        if let Some(m) = common::artifact(test, &format!("{case}/model.onnx")) {
            let e = TractEngine::load(&m, &opts).expect("load");
            assert!(!e.is_frame_split(), "{case}");
        }
    }
}

/// Issue 16: a `c3n.frame_split` whose names do not cut the graph is logged and the whole graph
/// runs; the model still loads and gives the same outputs.
#[test]
fn tract_bad_frame_split_metadata_falls_back_to_whole_graph() {
    use c3n_edge::engine::model::load_model_proto;
    use c3n_edge::engine::tract::TractEngine;
    use c3n_edge::engine::Engine;

    let test = "engine_tract::tract_bad_frame_split_metadata_falls_back_to_whole_graph";
    let Some(model) = common::artifact(test, "c3n-edge-untrained-t5/model.onnx") else {
        return;
    };
    let (input, _) = load_case(model.parent().expect("model dir"));
    let opts = EngineOptions { threads: Some(1) };
    let proto = load_model_proto(&model).expect("decode");
    let good = TractEngine::from_proto(&model, &proto, &opts, true).expect("load");
    assert!(good.is_frame_split());
    assert!(proto
        .metadata_props
        .iter()
        .any(|p| p.key == "c3n.frame_split"));
    for (from, to) in [("split/x0", "split/nowhere"), ("{", "[")] {
        let mut bad = proto.clone();
        let e = bad
            .metadata_props
            .iter_mut()
            .find(|p| p.key == "c3n.frame_split")
            .expect("key");
        e.value = e.value.replacen(from, to, 1);
        let mut engine = TractEngine::from_proto(&model, &bad, &opts, true).expect("still loads");
        assert!(!engine.is_frame_split(), "{from} -> {to}");
        let out = engine.infer(&input).expect("whole graph runs");
        assert_eq!(out.mask_logits.shape(), &[5, 1, 224, 224]);
    }
}
