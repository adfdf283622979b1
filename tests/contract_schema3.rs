//! Schema-3 contract (issue 24, `src/engine/model.rs`): the stand-ins of
//! `tests/fixtures/make_contract_model_s3.py` (527 AudioSet classes, the VGGish front end, a model
//! without C3IM outputs, a waveform input) parse with the right contract and run on tract (and on
//! ONNX Runtime with the `ort` feature) with onnxruntime's outputs; the VGGish front end selected
//! by the metadata matches the Python one.

mod common;

use std::path::Path;

use c3n_edge::audio::read_wav_mono;
use c3n_edge::engine::{open_engine, Backend, EngineOptions, ModelContract, ModelInput};
use c3n_edge::frontend::{AudioInput, LogMel, PatchPlacement};
use ndarray::{Array1, Array2, Array4, ArrayD};
use ndarray_npy::read_npy;

fn npy_f32(dir: &Path, name: &str) -> ArrayD<f32> {
    read_npy(dir.join(format!("{name}.npy"))).expect(name)
}

fn input(dir: &Path, c: &ModelContract) -> ModelInput {
    let frames: Array4<f32> = read_npy(dir.join("frames.npy")).expect("frames.npy");
    let audio_logmel = match c.frontend.audio_input {
        AudioInput::Logmel => read_npy(dir.join("audio_logmel.npy")).expect("audio_logmel.npy"),
        AudioInput::Waveform => {
            let w: Array2<f32> = read_npy(dir.join("audio_waveform.npy")).expect("waveform");
            let (t, n) = w.dim();
            w.into_shape_with_order((t, 1, 1, n)).expect("reshape")
        }
    };
    ModelInput {
        frames,
        audio_logmel,
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    common::max_abs_diff(a, b)
}

/// Contract of case `case` and, per backend, its outputs vs onnxruntime's.
fn check_case(case: &str, backends: &[Backend]) -> Option<ModelContract> {
    let test = format!("contract_schema3::{case}");
    let model = common::artifact(&test, &format!("{case}/model.onnx"))?;
    let dir = model.parent().expect("dir").to_path_buf();
    let c = ModelContract::from_file(&model).expect("schema-3 contract");
    assert_eq!(c.schema, 3);
    assert_eq!(c.n_audioset(), 527);
    assert_eq!(c.audioset_labels[137], "Music");
    assert_eq!(c.categories.audioset.len(), 527);
    let info = c.to_string();
    assert!(info.contains(&format!(
        "variant:       {} (schema 3)",
        c.variant.as_deref().expect("variant")
    )));
    let x = input(&dir, &c);
    for &backend in backends {
        let mut engine = open_engine(backend, &model, &EngineOptions::default()).expect("load");
        let out = engine.infer(&x).expect("infer");
        let mask: Array4<f32> = read_npy(dir.join("mask_logits.npy")).expect("mask");
        let d = max_diff(
            out.mask_logits.as_slice().unwrap(),
            mask.as_slice().unwrap(),
        );
        assert!(d <= 1e-4, "{case} {backend}: mask_logits differ by {d}");
        let audio = npy_f32(&dir, "audio_logits");
        let d = max_diff(
            out.audio_logits.as_slice().unwrap(),
            audio.as_slice().unwrap(),
        );
        assert!(d <= 1e-4, "{case} {backend}: audio_logits differ by {d}");
        if c.c3im {
            let label: Array1<i64> = read_npy(dir.join("unified_label.npy")).expect("label");
            assert_eq!(out.unified_label, label.to_vec(), "{case} {backend}");
            let aff = npy_f32(&dir, "c3im_affinity");
            let d = max_diff(
                out.c3im_affinity.as_slice().unwrap(),
                aff.as_slice().unwrap(),
            );
            assert!(d <= 1e-5, "{case} {backend}: c3im_affinity differs by {d}");
        } else {
            assert_eq!(out.visual_logits.dim(), (5, 0));
            assert_eq!(out.unified_label, vec![-1; 5]);
            assert_eq!(out.visual_logit_map.dim(), (5, 0, 0, 0));
        }
        eprintln!("{case}: {} matches onnxruntime", engine.name());
    }
    Some(c)
}

fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Tract];
    if cfg!(feature = "ort") && std::env::var_os("ORT_DYLIB_PATH").is_some() {
        b.push(Backend::Cpu);
    }
    b
}

#[test]
fn vggish_527_with_c3im() {
    let Some(c) = check_case("s3_vggish_t5", &backends()) else {
        return;
    };
    assert!(c.c3im);
    assert_eq!(c.variant.as_deref(), Some("c3n/test/vggish"));
    assert_eq!(c.frontend.audio_input, AudioInput::Logmel);
    assert_eq!(c.frontend.patch_placement, PatchPlacement::Examples);
    assert_eq!(c.frontend.log_offset, 0.01);
    assert_eq!(c.input_shapes()[1], ("audio_logmel", vec![5, 1, 96, 64]));
}

#[test]
fn audio_only_without_c3im_outputs() {
    let Some(c) = check_case("s3_audio_only_t5", &backends()) else {
        return;
    };
    assert!(!c.c3im);
    assert_eq!(c.config, "avsbench");
    assert!(c.imagenet_labels.is_empty());
    assert_eq!(c.output_names(), ["mask_logits", "audio_logits"]);
    assert!(c.to_string().contains("regions labelled from the audio"));
}

#[test]
fn waveform_input() {
    let Some(c) = check_case("s3_waveform_t5", &backends()) else {
        return;
    };
    assert_eq!(c.frontend.audio_input, AudioInput::Waveform);
    assert_eq!(c.input_shapes()[1], ("audio_waveform", vec![5, 16_000]));
    assert_eq!(c.audio_window_shape(), [5, 1, 1, 16_000]);
}

/// The VGGish front end chosen by the schema-3 metadata (log offset 0.01, examples back to back)
/// vs `frontend.clip_patches(x, 5, 1.0, VGGISH)` of `tests/fixtures/make_frontend_ref.py`.
#[test]
fn vggish_front_end_from_metadata_matches_python() {
    let test = "contract_schema3::vggish_front_end_from_metadata_matches_python";
    let Some(model) = common::artifact(test, "s3_vggish_t5/model.onnx") else {
        return;
    };
    let Some(wav) = common::artifact(test, "violin_16k.wav") else {
        return;
    };
    let Some(reference) = common::artifact(test, "violin_16k.vggish_patches.npy") else {
        return;
    };
    let c = ModelContract::from_file(&model).expect("contract");
    let lm = LogMel::new(c.frontend.clone()).expect("front end");
    let audio = read_wav_mono(&wav).expect("wav");
    let want: Array4<f32> = read_npy(&reference).expect("npy");
    let got = lm.clip_input(&audio.samples, 5, 1.0);
    let d = max_diff(got.as_slice().unwrap(), want.as_slice().unwrap());
    eprintln!("VGGish clip_patches max abs diff vs Python: {d:e}");
    assert!(d <= 1e-4, "VGGish patches differ by {d}");
}
