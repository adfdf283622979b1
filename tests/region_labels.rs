//! Per-region labels (issue 15) on a built composite frame: the Tux Paint violin and dog cut-outs
//! side by side (`tests/fixtures/make_two_objects.py`), once with the violin's recording and once
//! with the dog's. The shipped T = 1 model runs in tract; each cut-out's mask is labelled with
//! `post::label_region`. The two regions must get two different categories, the same as the
//! independent Python reference (onnxruntime + `c3n.regionstats` / `c3n.categories`), where the
//! frame-level unified label gives both regions one label.

mod common;

use std::path::{Path, PathBuf};

use c3n_edge::engine::{open_engine, Backend, EngineOptions, ModelInput};
use c3n_edge::post::{label_region, BitMask};
use ndarray::{Array2, Axis};
use ndarray_npy::read_npy;

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/c3n-edge-t1.onnx")
}

fn mask(path: &Path) -> BitMask {
    let m: Array2<u8> = read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (h, w) = m.dim();
    BitMask {
        width: w as u32,
        height: h as u32,
        bits: m.iter().map(|&v| v > 0).collect(),
    }
}

fn check(audio: &str) {
    let test = format!("region_labels::{audio}");
    let m = model();
    if !common::require(
        &test,
        m.is_file(),
        &format!("the shipped model {} is missing", m.display()),
    ) {
        return;
    }
    let Some(expected) = common::artifact(&test, &format!("two-objects/{audio}/expected.json"))
    else {
        return;
    };
    let dir = expected.parent().expect("case dir").to_path_buf();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&expected).expect("expected.json"))
            .expect("expected JSON");
    let input = ModelInput {
        frames: read_npy(dir.join("frames.npy")).expect("frames.npy"),
        audio_logmel: read_npy(dir.join("audio_logmel.npy")).expect("audio_logmel.npy"),
    };
    let mut engine = open_engine(Backend::Tract, &m, &EngineOptions::default()).expect("load");
    let contract = engine.contract().clone();
    let out = engine.infer(&input).expect("infer");
    assert_eq!(
        out.unified_label[0],
        expected["unified_label"].as_i64().unwrap_or(-2),
        "frame-level unified label"
    );
    let mut categories = Vec::new();
    for name in ["violin", "dog"] {
        let region = mask(&dir.join(format!("mask_{name}.npy")));
        assert!(region.count() > 1000, "{name}: mask too small");
        let label = label_region(
            &region,
            out.visual_logit_map.index_axis(Axis(0), 0),
            out.c3im_affinity.row(0),
            out.audio_logits.row(0),
            contract.alpha,
            &contract.imagenet_labels,
            &contract.categories,
        );
        let want = &expected["regions"][name];
        eprintln!(
            "{test}: {name} region -> {} ({}, C3IM {:.4}); reference {} ({})",
            label.category,
            label.imagenet_label,
            label.c3im_score,
            want["category"],
            want["sub_label"]
        );
        assert_eq!(
            label.category,
            want["category"].as_str().unwrap_or("?"),
            "{name}"
        );
        assert_eq!(
            label.imagenet_index,
            want["sub_label_index"].as_i64().unwrap_or(-2),
            "{name}: sub_label"
        );
        let ref_score = want["c3im_score"].as_f64().unwrap_or(f64::NAN) as f32;
        assert!(
            (label.c3im_score - ref_score).abs() <= 1e-4,
            "{name}: C3IM score {} vs reference {ref_score}",
            label.c3im_score
        );
        categories.push(label.category);
    }
    assert_eq!(categories, ["musical_instrument", "dog"]);
}

#[test]
fn violin_and_dog_side_by_side_with_the_violin_sounding() {
    check("violin");
}

#[test]
fn violin_and_dog_side_by_side_with_the_dog_sounding() {
    check("dog");
}
