//! The bad-input suite: `c3n-edge` run on every case of the corpus that
//! `tests/bad_input/make_corpus.py` generates (broken models, WAVs, images, configs, eval trees,
//! URIs, flags, outputs that would overwrite inputs, a full disk, SIGTERM).
//!
//! Each case runs the real binary under `prlimit --as` (address-space limit: an allocation sized
//! by a hostile header fails instead of eating the machine; a case may set a tighter one, e.g.
//! 600 MB for a real 13000² PNG) and a timeout, and must:
//! * exit with the expected status, by itself (no signal, no abort, no timeout);
//! * print no `panicked at` and no allocation failure;
//! * name the bad file or flag on stderr (the case's `stderr` substrings), in prose without runs
//!   of spaces;
//! * leave the files it lists in `protect` byte-identical;
//! * for a full disk, leave only whole JSON lines in the events file.
//!
//! Needs `python3` and `prlimit` (util-linux); skipped loudly without them (a failure with
//! `CI=true`). `C3N_BAD_INPUT_FILTER=substring` runs the matching cases only.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Address-space limit of each run in bytes, 4 GiB (a normal run of the shipped model maps
/// ~1.5 GiB). In bytes: util-linux 2.38's prlimit crashes on suffixes such as `4G`.
const MEMORY_LIMIT: u64 = 4 << 30;
/// Wall-clock limit of each run.
const TIMEOUT: Duration = Duration::from_secs(90);
/// Cases run at once.
const PARALLEL: usize = 2;

#[derive(Debug, Clone, serde::Deserialize)]
struct Case {
    name: String,
    args: Vec<String>,
    exit: i32,
    stderr: Vec<String>,
    protect: Vec<String>,
    #[serde(default)]
    fsize: Option<u64>,
    #[serde(default)]
    memory: Option<u64>,
    #[serde(default)]
    term_after_s: Option<u64>,
    #[serde(default)]
    lines_whole: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct Corpus {
    cases: Vec<Case>,
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs one case; `Err` describes every way it failed.
fn run_case(case: &Case, dir: &Path, model: &Path) -> Result<Duration, String> {
    let subst = |s: &str| {
        s.replace("{dir}", &dir.display().to_string())
            .replace("{model}", &model.display().to_string())
            .replace("{root}", env!("CARGO_MANIFEST_DIR"))
    };
    let protected: HashMap<String, Vec<u8>> = case
        .protect
        .iter()
        .map(|p| {
            let p = subst(p);
            let bytes =
                std::fs::read(&p).unwrap_or_else(|e| panic!("{}: read {p}: {e}", case.name));
            (p, bytes)
        })
        .collect();
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={}", case.memory.unwrap_or(MEMORY_LIMIT)));
    if let Some(f) = case.fsize {
        cmd.arg(format!("--fsize={f}"));
    }
    cmd.arg("--")
        .arg(env!("CARGO_BIN_EXE_c3n-edge"))
        .args(case.args.iter().map(|a| subst(a)))
        .env("RUST_LOG", "warn")
        .env_remove("C3N_CONFIG")
        .env_remove("CONFIGURATION_DIRECTORY")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut termed = false;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            break s;
        }
        let t = started.elapsed();
        if let Some(after) = case.term_after_s {
            if !termed && t >= Duration::from_secs(after) {
                // the child is prlimit's exec'd image: same pid
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                termed = true;
            }
        }
        if t > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {} s", TIMEOUT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    let err = reader.join().unwrap_or_default();
    let mut problems = Vec::new();
    match status.code() {
        Some(c) if c == case.exit => {}
        Some(c) => problems.push(format!("exit status {c}, expected {}", case.exit)),
        None => problems.push(format!("killed by a signal ({status:?})")),
    }
    for bad in [
        "panicked at",
        "memory allocation of",
        "RUST_BACKTRACE",
        "Aborted",
    ] {
        if err.contains(bad) {
            problems.push(format!("stderr contains {bad:?}"));
        }
    }
    // messages are prose: no runs of spaces inside a line (a broken string continuation); the
    // caret lines of a TOML parse error (`  |        ^`) are layout
    let gap = "        ";
    if err.lines().any(|l| {
        let t = l.trim_start();
        t.find(gap).is_some_and(|i| !t[..i].ends_with('|'))
    }) {
        problems.push("stderr has a run of 8 or more spaces inside a line".into());
    }
    for want in &case.stderr {
        let want = subst(want);
        if !err.contains(&want) {
            problems.push(format!("stderr lacks {want:?}"));
        }
    }
    for (p, before) in &protected {
        if std::fs::read(p).ok().as_ref() != Some(before) {
            problems.push(format!("{p} was changed"));
        }
    }
    if let Some(f) = &case.lines_whole {
        let text = std::fs::read_to_string(subst(f)).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            problems.push(format!("{f} ends with a partial line"));
        }
        for line in text.lines() {
            if serde_json::from_str::<serde_json::Value>(line).is_err() {
                problems.push(format!("{f} has a line that is not JSON: {line:.80}"));
            }
        }
    }
    if termed && took > Duration::from_secs(case.term_after_s.unwrap_or(0) + 20) {
        problems.push(format!("took {took:?} to stop after SIGTERM"));
    }
    if problems.is_empty() {
        Ok(took)
    } else {
        Err(format!("{}\n    --- stderr:\n{err}", problems.join("; ")))
    }
}

#[test]
fn bad_inputs_fail_cleanly() {
    let test = "bad_input::bad_inputs_fail_cleanly";
    if !common::require(test, have("python3"), "python3 is not installed")
        || !common::require(
            test,
            have("prlimit"),
            "prlimit (util-linux) is not installed",
        )
    {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("models/c3n-edge-t5.onnx");
    let dir: PathBuf = common::tmp_dir("bad-input");
    let gen = Command::new("python3")
        .arg(root.join("tests/bad_input/make_corpus.py"))
        .arg(&dir)
        .arg(&model)
        .output()
        .expect("run make_corpus.py");
    assert!(
        gen.status.success(),
        "make_corpus.py failed: {}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let corpus: Corpus =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).expect("cases.json"))
            .expect("parse cases.json");
    let filter = std::env::var("C3N_BAD_INPUT_FILTER").unwrap_or_default();
    let cases: Vec<Case> = corpus
        .cases
        .into_iter()
        .filter(|c| c.name.contains(&filter))
        .collect();
    let n = cases.len();
    assert!(n > 0, "no case matches {filter:?}");
    let queue = Arc::new(Mutex::new(cases));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            let (queue, failures, dir, model) = (&queue, &failures, &dir, &model);
            s.spawn(move || loop {
                let Some(case) = queue.lock().expect("queue").pop() else {
                    return;
                };
                match run_case(&case, dir, model) {
                    Ok(t) => eprintln!("ok   {:<40} {:5.1} s", case.name, t.as_secs_f64()),
                    Err(why) => {
                        eprintln!("FAIL {:<40} {why}", case.name);
                        failures.lock().expect("failures").push(case.name.clone());
                    }
                }
            });
        }
    });
    let failures = failures.lock().expect("failures").clone();
    eprintln!(
        "bad-input suite: {n} cases, {} failed, {:.0} s",
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "failed cases: {failures:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
