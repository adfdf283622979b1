//! Reduced-size imported networks (issues 24 and 28): random-weight official checkpoints of C3N
//! PVT-v2 × VGGish, C3N PVT-v2 × PANNs (waveform input) and the AVSBench ResNet-50 baseline, imported by `c3n.export.official`
//! (`tests/fixtures/make_imported_models.py`), run on tract — the whole graph and the frame split
//! with TPAVI's clip means — and on ONNX Runtime CPU (`ort` feature, `ORT_DYLIB_PATH`) against
//! onnxruntime's outputs: `mask_logits` within 1e-3 × max |logit|, identical unified labels
//! (issue 24's targets). `c3n-edge model-info` names the variant. The full-size networks are
//! checked outside CI (docs/model-card.md).

mod common;

use std::path::Path;
use std::process::Command;

use c3n_edge::engine::tract::TractEngine;
use c3n_edge::engine::{open_engine, Backend, Engine, EngineOptions, Inference, ModelInput};
use ndarray::{Array1, Array2, Array4};
use ndarray_npy::read_npy;

/// The fixture's input window: log-mel patches, or for a waveform model (PANNs)
/// `audio_waveform.npy` [T,n] as the engines' `[T,1,1,n]` windows.
fn input(dir: &Path) -> ModelInput {
    let wav = dir.join("audio_waveform.npy");
    let audio_logmel = if wav.exists() {
        let w: Array2<f32> = read_npy(wav).expect("audio_waveform.npy");
        let (t, n) = w.dim();
        w.into_shape_with_order((t, 1, 1, n)).expect("[T,1,1,n]")
    } else {
        read_npy(dir.join("audio_logmel.npy")).expect("audio_logmel.npy")
    };
    ModelInput {
        frames: read_npy(dir.join("frames.npy")).expect("frames.npy"),
        audio_logmel,
    }
}

/// `out` against onnxruntime's outputs in `dir`.
fn check_outputs(what: &str, dir: &Path, out: &Inference, c3im: bool) {
    let mask: Array4<f32> = read_npy(dir.join("mask_logits.npy")).expect("mask_logits.npy");
    let scale = mask.iter().fold(0f32, |m, v| m.max(v.abs()));
    let got = out.mask_logits.as_slice().expect("contiguous");
    let d = common::max_abs_diff(got, mask.as_slice().expect("contiguous"));
    assert!(
        d <= 1e-3 * scale,
        "{what}: mask_logits differ by {d} (max |logit| {scale})"
    );
    let audio: Array2<f32> = read_npy(dir.join("audio_logits.npy")).expect("audio_logits.npy");
    let scale_a = audio.iter().fold(0f32, |m, v| m.max(v.abs()));
    let da = common::max_abs_diff(
        out.audio_logits.as_slice().expect("contiguous"),
        audio.as_slice().expect("contiguous"),
    );
    assert!(da <= 1e-3 * scale_a, "{what}: audio_logits differ by {da}");
    if c3im {
        let label: Array1<i64> = read_npy(dir.join("unified_label.npy")).expect("label");
        assert_eq!(out.unified_label, label.to_vec(), "{what}: unified labels");
    } else {
        assert_eq!(out.unified_label, vec![-1; 5], "{what}");
    }
    eprintln!("{what}: mask_logits max abs diff {d:e} (max |logit| {scale:e}) vs onnxruntime");
}

/// One imported case on every backend; returns nothing when the artefacts are not set.
fn check_case(case: &str, variant: &str, c3im: bool) {
    let test = format!("imported_models::{case}");
    let Some(model) = common::artifact(&test, &format!("{case}/model.onnx")) else {
        return;
    };
    let dir = model.parent().expect("model dir");
    let x = input(dir);
    let opts = EngineOptions { threads: Some(1) };

    let mut split = TractEngine::load(&model, &opts).expect("tract load (split)");
    assert!(split.is_frame_split(), "{case}: T = 5 import runs split");
    assert_eq!(split.contract().variant.as_deref(), Some(variant));
    assert_eq!(split.contract().c3im, c3im);
    check_outputs(
        &format!("{case} tract split"),
        dir,
        &split.infer(&x).expect("infer split"),
        c3im,
    );
    let mut whole = TractEngine::load_with(&model, &opts, false).expect("tract load (whole)");
    assert!(!whole.is_frame_split());
    check_outputs(
        &format!("{case} tract whole"),
        dir,
        &whole.infer(&x).expect("infer whole"),
        c3im,
    );

    if cfg!(feature = "ort") {
        if std::env::var_os("ORT_DYLIB_PATH").is_some() {
            let mut e = open_engine(Backend::Cpu, &model, &EngineOptions::default()).expect("ort");
            check_outputs(
                &format!("{case} ort-cpu"),
                dir,
                &e.infer(&x).expect("ort infer"),
                c3im,
            );
        } else {
            eprintln!("*** SKIPPED: {test} ort-cpu because ORT_DYLIB_PATH is not set ***");
        }
    }

    let out = Command::new(env!("CARGO_BIN_EXE_c3n-edge"))
        .arg("model-info")
        .arg(&model)
        .output()
        .expect("run c3n-edge model-info");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{case}: model-info failed: {text}");
    assert!(
        text.contains(&format!("variant:       {variant} (schema 3)")),
        "{case}: model-info does not name the variant:\n{text}"
    );
}

#[test]
fn c3n_pvt_v2_vggish_reduced_matches_onnxruntime() {
    check_case("imported_c3n_pvt_t5", "c3n/pvt_v2_reduced/vggish", true);
}

#[test]
fn c3n_pvt_v2_panns_reduced_matches_onnxruntime() {
    check_case(
        "imported_c3n_pvt_panns_t5",
        "c3n/pvt_v2_reduced/panns",
        true,
    );
}

#[test]
fn avsbench_resnet50_vggish_reduced_matches_onnxruntime() {
    check_case(
        "imported_avsbench_resnet_t5",
        "avsbench/resnet50_reduced/vggish",
        false,
    );
}
