//! `c3n-edge run` end to end with a live microphone: a real ALSA capture PCM (the `file` plugin
//! over `null`, loaded through `ALSA_CONFIG_PATH`, docs/toolchain-and-test-infra.md §7.2) fed with the
//! recording of `assets/clips/bbb-bird/`, next to that clip's image sequence (a file, timestamps
//! from 0 ms). The two clocks differ (the microphone stamps in CLOCK_MONOTONIC ms), so the
//! pipeline places the live audio by sample count (`Rebase`, src/pipeline/clock.rs); without that
//! the model would get silence and the silence gate (`[events] silence_dbfs`) would suppress every
//! event.
//!
//! Passes when the run with the microphone prints events with an audio level above the silence
//! gate, and exactly the events (frame, label, level) of the same run with
//! `--audio file://audio.wav`: the microphone delivers the file's samples, placed by sample count.
#![cfg(feature = "alsa")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_c3n-edge");
const ALSA_CONF: &str = "/usr/share/alsa/alsa.conf";

fn run(args: &[&str], alsa_config: Option<&str>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).env("RUST_LOG", "warn");
    if let Some(p) = alsa_config {
        c.env("ALSA_CONFIG_PATH", p);
    }
    c.output().expect("spawn c3n-edge")
}

/// (frame_time s, label, dbfs) of every event line; panics on invalid lines.
fn events(o: &Output, what: &str) -> Vec<(i64, String, f64)> {
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("event line is JSON");
            let a = &v["after"];
            (
                a["frame_time"].as_f64().expect("frame_time").round() as i64,
                a["label"].as_str().unwrap_or_default().to_string(),
                a["audio"]["dbfs"].as_f64().expect("audio.dbfs"),
            )
        })
        .collect()
}

#[test]
fn image_sequence_with_a_live_alsa_microphone() {
    let test = "run_live_audio::image_sequence_with_a_live_alsa_microphone";
    if !common::require(
        test,
        Path::new(ALSA_CONF).is_file(),
        &format!("{ALSA_CONF} is missing (install libasound2)"),
    ) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let clip = root.join("assets/clips/bbb-bird");
    let model = root.join("models/c3n-edge-t5.onnx");
    let dir = common::tmp_dir("live-audio");
    // the recording as the microphone's raw S16_LE mono 16 kHz stream
    let wav = c3n_edge::audio::read_wav_mono(&clip.join("audio.wav")).expect("read audio.wav");
    assert_eq!(wav.sample_rate, 16_000);
    let raw: Vec<u8> = wav
        .samples
        .iter()
        .flat_map(|v| ((v * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect();
    let raw_path = dir.join("mic.raw");
    std::fs::write(&raw_path, raw).expect("write raw");
    let conf = dir.join("mic.conf");
    std::fs::write(
        &conf,
        format!(
            "pcm.c3n_e2e_mic {{ type file slave.pcm \"null\" file \"/dev/null\" infile \"{}\" format \"raw\" }}\n",
            raw_path.display()
        ),
    )
    .expect("write conf");
    let alsa_config = format!("{ALSA_CONF}:{}", conf.display());

    let frames = format!("file://{}/frames/%05d.png", clip.display());
    let model = model.to_string_lossy().into_owned();
    // a live microphone makes the run stream by default (a mask per frame); this test compares
    // the live run with the file run window by window, so both use the window mode
    let common_args = [
        "--model",
        &model,
        "--max-clips",
        "1",
        "--events",
        "-",
        "--mode",
        "window",
    ];
    let file_audio = format!("file://{}/audio.wav", clip.display());
    let mut args = vec!["run", &frames, "--audio", &file_audio];
    args.extend(common_args);
    let reference = events(&run(&args, None), "run with the WAV file");
    let mut args = vec![
        "run",
        &frames,
        "--audio",
        "alsa://c3n_e2e_mic",
        "--audio-format",
        "s16",
        "--audio-rate",
        "16000",
        "--audio-channels",
        "1",
    ];
    args.extend(common_args);
    let live = events(
        &run(&args, Some(&alsa_config)),
        "run with alsa://c3n_e2e_mic",
    );
    eprintln!("file audio: {reference:?}\nlive audio: {live:?}");

    assert!(
        !reference.is_empty(),
        "the WAV run found nothing: the fixture is wrong"
    );
    assert!(
        !live.is_empty(),
        "no events with the live microphone (audio silent? clocks not aligned?)"
    );
    for (t, label, db) in &live {
        assert!(
            (0..5).contains(t),
            "frame_time {t} s outside the first 5-frame clip"
        );
        assert!(*db > -60.0, "frame {t}: audio level {db} dBFS is silence");
        assert!(!label.is_empty());
    }
    assert_eq!(
        live.len(),
        reference.len(),
        "event count differs from the file run"
    );
    for (l, r) in live.iter().zip(&reference) {
        assert!(
            l.0 == r.0 && l.1 == r.1 && (l.2 - r.2).abs() < 0.01,
            "live {l:?} vs file {r:?}"
        );
    }
}
