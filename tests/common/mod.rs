//! Shared helpers for the integration tests: locating the Python-generated artefacts.
//!
//! Artefacts are produced by `bash tests/make-fixtures.sh` (the scripts in `tests/fixtures/`, the
//! untrained exports and the evaluator reference) into a directory named by `C3N_TEST_ARTIFACTS`
//! (conventionally `models/build/test-fixtures`). Rules:
//! * variable unset, `CI` not `true`: the test prints `SKIPPED: …` to stderr and passes;
//! * variable unset and `CI=true`: the test fails (CI must generate the artefacts);
//! * variable set but the file missing: the test fails (the setup is wrong).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// Path of artefact `rel`, or `None` (after a loud skip message) when artefacts are not configured.
pub fn artifact(test: &str, rel: &str) -> Option<PathBuf> {
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    match std::env::var_os("C3N_TEST_ARTIFACTS") {
        None if ci => panic!(
            "{test}: CI=true but C3N_TEST_ARTIFACTS is not set; run `bash tests/make-fixtures.sh` \
             and set C3N_TEST_ARTIFACTS=$PWD/models/build/test-fixtures"
        ),
        None => {
            // Written to the stderr handle directly (not eprintln!) so libtest does not capture it.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: {test} because C3N_TEST_ARTIFACTS is not set (generate the fixtures \
                 with `bash tests/make-fixtures.sh`, then set \
                 C3N_TEST_ARTIFACTS=$PWD/models/build/test-fixtures) ***\n"
            );
            None
        }
        Some(dir) => {
            let p = Path::new(&dir).join(rel);
            assert!(
                p.is_file(),
                "{test}: artefact {} is missing (C3N_TEST_ARTIFACTS={dir:?})",
                p.display()
            );
            Some(p)
        }
    }
}

/// `true` when a system prerequisite is present; otherwise a loud skip (`false`), or a failure
/// when `CI=true` (CI must install it). `what` says what is missing and how to get it.
pub fn require(test: &str, present: bool, what: &str) -> bool {
    if present {
        return true;
    }
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    assert!(!ci, "{test}: CI=true but {what}");
    let _ = writeln!(std::io::stderr(), "\n*** SKIP {test}: {what} ***\n");
    false
}

/// A fresh, empty temporary directory unique to this process and `name`.
pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("c3n-edge-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// Max absolute difference of two equally long slices (panics on length mismatch).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A 224×224 model-resolution mask (row-major) holding the filled ellipse centred at (`cx`, `cy`)
/// with radii (`rx`, `ry`), all in model pixels: the synthetic objects of the display tests.
pub fn ellipse_mask(cx: f32, cy: f32, rx: f32, ry: f32) -> c3n_edge::post::BitMask {
    let mut bits = vec![false; 224 * 224];
    for y in 0..224 {
        for x in 0..224 {
            let (dx, dy) = ((x as f32 - cx) / rx, (y as f32 - cy) / ry);
            bits[y * 224 + x] = dx * dx + dy * dy <= 1.0;
        }
    }
    c3n_edge::post::BitMask {
        width: 224,
        height: 224,
        bits,
    }
}

/// `c3n-edge run` arguments for the shipped demo clip `assets/clips/bbb-bird` (frames and WAV,
/// absolute paths) limited to `max_clips` model windows; callers append their own flags.
pub fn demo_clip_run_args(max_clips: u32) -> Vec<String> {
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/clips/bbb-bird");
    vec![
        "run".into(),
        format!("file://{}/frames/%05d.png", clip.display()),
        "--audio".into(),
        format!("file://{}/audio.wav", clip.display()),
        "--max-clips".into(),
        max_clips.to_string(),
    ]
}
