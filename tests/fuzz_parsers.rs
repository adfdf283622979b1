//! Property tests (proptest) of the parsers that read outside data: the WAV reader, input and
//! output URIs, the MQTT broker URL and `detect/set` payloads, the TOML configuration, and the
//! ONNX model contract (bytes and metadata). Each property feeds arbitrary or mutated input and
//! checks that the parser returns (no panic, no allocation beyond the input's size) and that what
//! it accepts is consistent.
//!
//! Bounded for CI: `PROPTEST_CASES` (default 256 per property here) and the seeds in
//! `tests/fuzz_corpus/`, which every run replays first (`seed_corpus_replays`). Failures proptest
//! finds are saved under `proptest-regressions/` and replayed first by later runs.

use std::path::Path;

use c3n_edge::audio::wav;
use c3n_edge::config::Config;
use c3n_edge::engine::ModelContract;
use c3n_edge::sink::display::OutputUri;
use c3n_edge::sink::mqtt::command::parse_detect;
use c3n_edge::sink::mqtt::BrokerUrl;
use c3n_edge::uri::{expand_pattern, printf_field, InputUri};
use proptest::prelude::*;
use tract_onnx::pb::{ModelProto, StringStringEntryProto};

/// A well-formed WAV header for `data`, with the given fields (the seed the mutations start from).
fn wav(tag: u16, channels: u16, rate: u32, bits: u16, declared: u32, data: &[u8]) -> Vec<u8> {
    let align = u32::from(channels) * u32::from(bits / 8);
    let mut v = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
    v.extend(tag.to_le_bytes());
    v.extend(channels.to_le_bytes());
    v.extend(rate.to_le_bytes());
    v.extend(rate.wrapping_mul(align).to_le_bytes());
    v.extend((align as u16).to_le_bytes());
    v.extend(bits.to_le_bytes());
    v.extend(b"data");
    v.extend(declared.to_le_bytes());
    v.extend(data);
    v
}

/// What every decode must satisfy, whatever the bytes.
fn check_decode(bytes: &[u8]) {
    if let Ok(d) = wav::decode(bytes) {
        // at least one byte per decoded frame: nothing sized by a header field
        assert!(d.samples.len() <= bytes.len());
        assert!(d.samples.iter().all(|s| s.is_finite()));
        if !d.format.float {
            assert!(d.samples.iter().all(|s| s.abs() <= 1.0));
        }
        assert!((wav::MIN_SAMPLE_RATE..=wav::MAX_SAMPLE_RATE).contains(&d.format.sample_rate));
    }
}

fn proto_with(metadata: Vec<(String, String)>) -> ModelProto {
    ModelProto {
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key, value })
            .collect(),
        ..Default::default()
    }
}

/// The contract keys (so that mutations reach the value checks, not only "missing key").
const KEYS: &[&str] = &[
    "c3n.schema",
    "c3n.config",
    "c3n.trained",
    "c3n.model_version",
    "c3n.clip_frames",
    "c3n.clip_rate_hz",
    "c3n.input_size",
    "c3n.mean",
    "c3n.std",
    "c3n.frontend.sample_rate",
    "c3n.frontend.window_samples",
    "c3n.frontend.hop_samples",
    "c3n.frontend.fft_size",
    "c3n.frontend.mel_bands",
    "c3n.frontend.mel_min_hz",
    "c3n.frontend.mel_max_hz",
    "c3n.frontend.log_offset",
    "c3n.frontend.patch_frames",
    "c3n.labels.imagenet",
    "c3n.labels.audioset",
];

/// Values of the shipped model's kind, plus hostile ones.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1".to_string()),
        Just("edge".to_string()),
        Just("true".to_string()),
        Just("16000".to_string()),
        Just("224".to_string()),
        Just("0.5,0.5,0.5".to_string()),
        Just("NaN".to_string()),
        Just("1e-300".to_string()),
        Just("4294967295".to_string()),
        Just("-1".to_string()),
        Just("[\"a\"]".to_string()),
        "\\PC{0,12}",
        "[0-9.eE+-]{1,12}",
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn wav_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_decode(&bytes);
    }

    #[test]
    fn wav_mutated_headers(
        tag in prop_oneof![Just(1u16), Just(3), Just(0xFFFE), any::<u16>()],
        channels in prop_oneof![Just(1u16), Just(2), any::<u16>()],
        rate in prop_oneof![Just(16_000u32), Just(44_100), any::<u32>()],
        bits in prop_oneof![Just(8u16), Just(16), Just(24), Just(32), Just(64), any::<u16>()],
        declared in prop_oneof![Just(0u32), Just(u32::MAX), 0u32..4096],
        data in proptest::collection::vec(any::<u8>(), 0..256),
        flip in proptest::option::of((0usize..64, any::<u8>())),
        cut in proptest::option::of(0usize..300),
    ) {
        let mut bytes = wav(tag, channels, rate, bits, declared, &data);
        if let Some((at, v)) = flip {
            if at < bytes.len() {
                bytes[at] = v;
            }
        }
        if let Some(c) = cut {
            bytes.truncate(c);
        }
        check_decode(&bytes);
        // a declared size past the end is decoded from the bytes present, with a note
        if let Ok(d) = wav::decode(&bytes) {
            let frame = usize::from(d.format.channels) * usize::from(d.format.bytes_per_sample);
            prop_assert!(d.samples.len() * frame <= bytes.len());
        }
    }

    #[test]
    fn input_uri_round_trips(s in "\\PC{0,40}", n in any::<u64>()) {
        if let Ok(uri) = InputUri::parse(&s) {
            // what was accepted prints as a URI that parses to the same thing
            prop_assert_eq!(InputUri::parse(&uri.to_string()).ok(), Some(uri.clone()));
            if let InputUri::ImageSequence { pattern } = &uri {
                let field = printf_field(pattern).ok().flatten();
                prop_assert!(field.is_some());
                if let Some(f) = field {
                    let path = expand_pattern(pattern, f, n);
                    prop_assert!(path.contains(&n.to_string()));
                }
            }
        }
    }

    #[test]
    fn printf_patterns(s in "[a-z/%0-9d]{0,24}") {
        if let Ok(Some(f)) = printf_field(&s) {
            prop_assert!(f.range.0 < f.range.1 && f.range.1 <= s.len());
            let _ = expand_pattern(&s, f, 7);
        }
    }

    #[test]
    fn output_uris(s in "(display|window|file|http|ftp)?(://)?\\PC{0,30}") {
        let _ = OutputUri::parse(&s);
    }

    #[test]
    fn broker_urls(s in "(mqtts?://)?[a-z0-9:@\\[\\]./%_-]{0,40}") {
        if let Ok(u) = BrokerUrl::parse(&s) {
            // an accepted URL names a host and a port
            prop_assert!(!u.address().is_empty());
        }
    }

    #[test]
    fn detect_payloads(payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&payload);
        let t = text.trim();
        match parse_detect(&payload) {
            Ok(on) => prop_assert!(
                (on && t.eq_ignore_ascii_case("on")) || (!on && t.eq_ignore_ascii_case("off"))
            ),
            // the warning quotes at most 40 characters of a hostile payload
            Err(why) => prop_assert!(why.to_string().chars().count() < 40 * 10 + 100),
        }
    }

    #[test]
    fn config_text(
        section in prop_oneof![Just("events".to_string()), Just("post".to_string()), Just("mqtt".to_string()), Just("model".to_string()), Just("input".to_string()), Just("x".to_string())],
        key in prop_oneof![Just("camera".to_string()), Just("min_frames".to_string()), Just("threshold".to_string()), Just("qos".to_string()), Just("queue_size".to_string()), Just("threads".to_string()), "[a-z_]{1,10}"],
        value in prop_oneof![Just("1".to_string()), Just("-1".to_string()), Just("1e400".to_string()), Just("nan".to_string()), Just("\"a b\"".to_string()), Just("99999999999999999999".to_string()), Just("[1,2]".to_string()), "\\PC{0,16}"],
    ) {
        let text = format!("[{section}]\n{key} = {value}\n");
        if let Ok(cfg) = Config::parse(&text, Path::new("fuzz.toml")) {
            // accepted settings are valid settings, and print back to TOML that parses
            prop_assert!(cfg.validate(Path::new("fuzz.toml")).is_ok());
            let again = cfg.to_toml().map(|t| Config::parse(&t, Path::new("again.toml")).is_ok());
            prop_assert_eq!(again.ok(), Some(true));
        }
    }

    #[test]
    fn model_metadata(entries in proptest::collection::vec((proptest::sample::select(KEYS), value()), 0..24)) {
        let md = entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        // no graph: whatever the metadata, the answer is an error that names the file
        match ModelContract::from_proto(Path::new("fuzz.onnx"), &proto_with(md)) {
            Ok(_) => prop_assert!(false, "a model without a graph was accepted"),
            Err(e) => prop_assert!(e.to_string().contains("fuzz.onnx")),
        }
    }

    #[test]
    fn model_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let dir = std::env::temp_dir().join(format!("c3n-fuzz-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let p = dir.join("m.onnx");
        std::fs::write(&p, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(ModelContract::from_file(&p).is_err());
    }
}

/// The committed seeds (`tests/fuzz_corpus/`): real-world-shaped WAV headers, configs and
/// payloads, decoded or parsed on every run.
#[test]
fn seed_corpus_replays() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/fuzz_corpus") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read seed");
        match path.extension().and_then(|e| e.to_str()) {
            Some("wav") => check_decode(&bytes),
            Some("toml") => {
                let _ = Config::parse(&String::from_utf8_lossy(&bytes), &path);
            }
            Some("payload") => {
                let _ = parse_detect(&bytes);
            }
            Some("uri") => {
                for line in String::from_utf8_lossy(&bytes).lines() {
                    let _ = InputUri::parse(line);
                    let _ = OutputUri::parse(line);
                    let _ = BrokerUrl::parse(line);
                }
            }
            _ => continue,
        }
        n += 1;
    }
    assert!(n >= 10, "only {n} seeds in {}", dir.display());
}
