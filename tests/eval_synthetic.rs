//! End-to-end evaluation on a tiny synthetic AVSBench tree (S4 + MS3 layouts), with the contract
//! stand-in models (T = 5 and T = 1), through the library and through the `c3n-edge` binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use c3n_edge::dataset::{Subset, SubsetFilter};
use c3n_edge::engine::{open_engine, Backend, EngineOptions};
use c3n_edge::eval::{evaluate, EvalError, EvalOptions};

fn write_frame(path: &Path, seed: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(224, 224, |x, y| {
        let v = (x * 7 + y * 3 + seed * 31) % 256;
        image::Rgb([v as u8, ((x + seed) % 256) as u8, ((y * 2) % 256) as u8])
    });
    img.save(path).unwrap();
}

/// Mask with a square object in frames 1–4 and an empty frame 5 (exercises the empty-GT rule).
fn write_mask(path: &Path, i: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::GrayImage::from_fn(224, 224, |x, y| {
        let inside = i < 5 && (40..120 + 10 * i).contains(&x) && (60..160).contains(&y);
        image::Luma([if inside { 255 } else { 0 }])
    });
    img.save(path).unwrap();
}

fn write_wav(path: &Path, sample_rate: u32, channels: u16, freq: f64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..(5 * sample_rate) {
        let v = (0.3
            * (2.0 * std::f64::consts::PI * freq * f64::from(n) / f64::from(sample_rate)).sin()
            * 32767.0) as i16;
        for _ in 0..channels {
            w.write_sample(v).unwrap();
        }
    }
    w.finalize().unwrap();
}

/// S4: 2 test clips (+1 train clip that must be ignored); MS3: 1 test clip.
fn make_dataset(name: &str) -> PathBuf {
    let root = common::tmp_dir(name);
    let s4 = root.join("Single-source");
    std::fs::create_dir_all(&s4).unwrap();
    std::fs::write(
        s4.join("s4_meta_data.csv"),
        "name,start,category,split\nclipA,0,dog_barking,test\nclipT,0,dog_barking,train\nclipB,2,race_car,test\n",
    )
    .unwrap();
    for (k, (vid, cat)) in [("clipA", "dog_barking"), ("clipB", "race_car")]
        .into_iter()
        .enumerate()
    {
        let d = s4.join("s4_data");
        for i in 1..=5u32 {
            write_frame(
                &d.join(format!("visual_frames/test/{cat}/{vid}/{vid}_{i}.png")),
                i + 10 * k as u32,
            );
            write_mask(
                &d.join(format!("gt_masks/test/{cat}/{vid}/{vid}_{i}.png")),
                i,
            );
        }
        // 44.1 kHz stereo: exercises down-mix and resampling
        write_wav(
            &d.join(format!("audio_wav/test/{cat}/{vid}.wav")),
            44_100,
            2,
            440.0 * (k + 1) as f64,
        );
    }
    let ms3 = root.join("Multi-sources");
    std::fs::create_dir_all(&ms3).unwrap();
    std::fs::write(
        ms3.join("ms3_meta_data.csv"),
        "vid,split\nmsX,test\nmsY,val\n",
    )
    .unwrap();
    let d = ms3.join("ms3_data");
    for i in 1..=5u32 {
        write_frame(
            &d.join(format!("visual_frames/msX/msX.mp4_{i}.png")),
            100 + i,
        );
        write_mask(&d.join(format!("gt_masks/test/msX/msX_{i}.png")), i);
    }
    write_wav(&d.join("audio_wav/test/msX.wav"), 16_000, 1, 1000.0);
    root
}

fn opts(root: &Path, subset: SubsetFilter) -> EvalOptions {
    EvalOptions {
        dataset_dir: root.to_path_buf(),
        split: "test".into(),
        subset,
        progress: false,
    }
}

#[test]
fn eval_t5_and_t1_agree() {
    let test = "eval_synthetic::eval_t5_and_t1_agree";
    let Some(m5) = common::artifact(test, "contract_t5/model.onnx") else {
        return;
    };
    let Some(m1) = common::artifact(test, "contract_t1/model.onnx") else {
        return;
    };
    let root = make_dataset("t5t1");
    let mut e5 = open_engine(Backend::Tract, &m5, &EngineOptions::default()).expect("load t5");
    let mut e1 = open_engine(Backend::Tract, &m1, &EngineOptions::default()).expect("load t1");
    let r5 = evaluate(e5.as_mut(), &opts(&root, SubsetFilter::All)).expect("eval t5");
    let r1 = evaluate(e1.as_mut(), &opts(&root, SubsetFilter::All)).expect("eval t1");
    assert_eq!(r5.len(), 2);
    assert_eq!(
        (r5[0].subset, r5[0].summary.clips, r5[0].summary.frames),
        (Subset::S4, 2, 10)
    );
    assert_eq!(
        (r5[1].subset, r5[1].summary.clips, r5[1].summary.frames),
        (Subset::Ms3, 1, 5)
    );
    for (a, b) in r5.iter().zip(&r1) {
        let (x, y) = (a.summary, b.summary);
        eprintln!("{}: T=5 {x:?}\n     T=1 {y:?}", a.subset);
        for v in [x.miou, x.fscore, x.fscore_per_frame] {
            assert!((0.0..=1.0).contains(&v));
        }
        // same weights, same per-frame graph: windowing must not change the result
        assert!((x.miou - y.miou).abs() < 1e-4 && (x.fscore - y.fscore).abs() < 1e-4);
        assert!((x.fscore_per_frame - y.fscore_per_frame).abs() < 1e-4);
    }
}

#[test]
fn eval_missing_wav_names_the_file() {
    let test = "eval_synthetic::eval_missing_wav_names_the_file";
    let Some(m1) = common::artifact(test, "contract_t1/model.onnx") else {
        return;
    };
    let root = make_dataset("missing-wav");
    let wav = root.join("Multi-sources/ms3_data/audio_wav/test/msX.wav");
    std::fs::remove_file(&wav).unwrap();
    let mut e1 = open_engine(Backend::Tract, &m1, &EngineOptions::default()).expect("load t1");
    let err = evaluate(e1.as_mut(), &opts(&root, SubsetFilter::Only(Subset::Ms3))).unwrap_err();
    assert!(matches!(err, EvalError::Audio(_)), "{err:?}");
    assert!(
        err.to_string().contains(&wav.display().to_string()),
        "{err}"
    );
}

#[test]
fn cli_eval_json_and_errors() {
    let test = "eval_synthetic::cli_eval_json_and_errors";
    let Some(m5) = common::artifact(test, "contract_t5/model.onnx") else {
        return;
    };
    let root = make_dataset("cli");
    let bin = env!("CARGO_BIN_EXE_c3n-edge");
    let out = Command::new(bin)
        .args([
            "eval",
            root.to_str().unwrap(),
            "--split",
            "test",
            "--json",
            "--quiet",
            "--threads",
            "2",
        ])
        .arg("--model")
        .arg(&m5)
        .output()
        .expect("run c3n-edge");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["subset"], "s4");
    assert_eq!(lines[1]["subset"], "ms3");
    for l in &lines {
        for k in ["miou", "fscore", "fscore_per_frame", "clips", "frames"] {
            assert!(l.get(k).is_some(), "key {k} missing in {l}");
        }
    }

    // model-info on a non-ONNX file: non-zero exit, the file named on stderr
    let bogus = root.join("bogus.onnx");
    std::fs::write(&bogus, b"garbage").unwrap();
    let out = Command::new(bin)
        .args(["model-info"])
        .arg(&bogus)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus.onnx"));

    // model-info on the real stand-in prints the contract
    let out = Command::new(bin)
        .args(["model-info"])
        .arg(&m5)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("T = 5 frames"));
}

#[test]
fn cli_config() {
    let bin = env!("CARGO_BIN_EXE_c3n-edge");
    let out = Command::new(bin).arg("config").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("backend = \"tract\""));
    let dir = common::tmp_dir("cfg");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[model]\nthreads = 0\n").unwrap();
    let out = Command::new(bin).arg("config").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml"));
}
