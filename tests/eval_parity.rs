//! `c3n-edge eval` (tract) vs the Python evaluator (`python -m c3n.evaluate`, onnxruntime) on the
//! same AVS-Composites split with the shipped trained model: mIoU and both F-scores must agree to
//! 1e-4 (training issue, item 7). The Python side is written by `tests/run-all.sh` to
//! `$C3N_TEST_ARTIFACTS/eval_parity/python.jsonl`, with the data set path in `dataset.txt`.

mod common;

use std::process::Command;

fn field(v: &serde_json::Value, k: &str) -> f64 {
    v.get(k)
        .and_then(|x| x.as_f64())
        .unwrap_or_else(|| panic!("key {k} missing in {v}"))
}

#[test]
fn rust_eval_equals_python_eval() {
    let test = "eval_parity::rust_eval_equals_python_eval";
    let Some(py) = common::artifact(test, "eval_parity/python.jsonl") else {
        return;
    };
    let dir = py.parent().expect("parent").to_path_buf();
    let dataset = std::fs::read_to_string(dir.join("dataset.txt")).expect("dataset.txt");
    let model = std::fs::read_to_string(dir.join("model.txt")).expect("model.txt");
    let out = Command::new(env!("CARGO_BIN_EXE_c3n-edge"))
        .args([
            "eval",
            dataset.trim(),
            "--split",
            "test",
            "--model",
            model.trim(),
            "--json",
            "--quiet",
        ])
        .output()
        .expect("run c3n-edge eval");
    assert!(
        out.status.success(),
        "c3n-edge eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rust: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("rust json"))
        .collect();
    let python: Vec<serde_json::Value> = std::fs::read_to_string(&py)
        .expect("python.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("python json"))
        .collect();
    assert!(!python.is_empty(), "no Python results");
    for p in &python {
        let subset = p["subset"].as_str().expect("subset");
        let r = rust
            .iter()
            .find(|r| r["subset"].as_str() == Some(subset))
            .unwrap_or_else(|| panic!("no Rust result for {subset}"));
        assert_eq!(r["clips"], p["clips"], "{subset} clips");
        assert_eq!(r["frames"], p["frames"], "{subset} frames");
        for k in ["miou", "fscore", "fscore_per_frame"] {
            let (a, b) = (field(r, k), field(p, k));
            eprintln!(
                "{subset} {k}: rust {a:.6} python {b:.6} diff {:.2e}",
                (a - b).abs()
            );
            assert!(
                (a - b).abs() <= 1e-4,
                "{subset} {k}: rust {a} vs python {b}"
            );
        }
    }
}
