//! ALSA capture against a real ALSA PCM: the `file` plugin over the `null` PCM, configured
//! through `ALSA_CONFIG_PATH` (docs/toolchain-and-test-infra.md §7.2), fed from the real recording
//! `assets/clips/bbb-bird/audio.wav` converted to raw S16_LE / S32_LE / FLOAT_LE at several rates
//! and channel counts. The raw capture must return exactly the file's samples; the source's
//! 16 kHz mono output must equal `audio::resample` of the down-mixed file.
#![cfg(feature = "alsa")]

use std::path::{Path, PathBuf};

use c3n_edge::audio;
use c3n_edge::source::alsa::{AlsaCapture, AlsaSource, RawSamples, ReadError, SampleFormat};
use c3n_edge::source::live::{monotonic_ms, LiveOptions};
use c3n_edge::source::AudioSource;

mod common;

const ALSA_CONF: &str = "/usr/share/alsa/alsa.conf";

fn prerequisites(test: &str) -> bool {
    common::require(
        test,
        Path::new(ALSA_CONF).is_file(),
        &format!("{ALSA_CONF} is missing (install libasound2)"),
    )
}

struct Case {
    pcm: &'static str,
    format: SampleFormat,
    rate: u32,
    channels: u32,
    raw: RawSamples,
    path: PathBuf,
}

fn write_raw(path: &Path, raw: &RawSamples) {
    let bytes: Vec<u8> = match raw {
        RawSamples::S16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        RawSamples::S32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        RawSamples::Float(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    };
    std::fs::write(path, bytes).unwrap();
}

fn downmix(inter: &[f64], ch: usize) -> Vec<f64> {
    inter
        .chunks_exact(ch)
        .map(|f| f.iter().sum::<f64>() / ch as f64)
        .collect()
}

#[test]
fn alsa_file_plugin_capture_is_bit_exact_and_resampled_like_files() {
    let test = "alsa_file_plugin_capture_is_bit_exact_and_resampled_like_files";
    if !prerequisites(test) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wav = root.join("assets/clips/bbb-bird/audio.wav");
    let clip = audio::read_wav_mono(&wav).unwrap();
    assert_eq!(clip.sample_rate, 16_000);
    let x16: Vec<f64> = clip.samples[..64_000].to_vec(); // 4 s of the recording
    let dir = common::tmp_dir("alsa");

    // S16_LE mono 16 kHz: the recording's own samples
    let s16: Vec<i16> = x16.iter().map(|v| (v * 32768.0).round() as i16).collect();
    // S32_LE stereo 48 kHz and FLOAT_LE 3-channel 44.1 kHz: the recording upsampled, channels
    // scaled differently so that the down-mix is exercised
    let x48 = audio::resample(&x16, 16_000, 48_000).unwrap();
    let s32: Vec<i32> = x48
        .iter()
        .flat_map(|v| {
            [
                (v * 0.9 * 2_147_483_648.0) as i32,
                (-v * 0.5 * 2_147_483_648.0) as i32,
            ]
        })
        .collect();
    let x44 = audio::resample(&x16, 16_000, 44_100).unwrap();
    let f32s: Vec<f32> = x44
        .iter()
        .flat_map(|v| [*v as f32, (*v * 0.25) as f32, 0.1f32])
        .collect();
    let mut cases = vec![
        Case {
            pcm: "c3n_mic_s16",
            format: SampleFormat::S16,
            rate: 16_000,
            channels: 1,
            raw: RawSamples::S16(s16),
            path: dir.join("s16.raw"),
        },
        Case {
            pcm: "c3n_mic_s32",
            format: SampleFormat::S32,
            rate: 48_000,
            channels: 2,
            raw: RawSamples::S32(s32),
            path: dir.join("s32.raw"),
        },
        Case {
            pcm: "c3n_mic_f32",
            format: SampleFormat::Float,
            rate: 44_100,
            channels: 3,
            raw: RawSamples::Float(f32s),
            path: dir.join("f32.raw"),
        },
    ];
    let mut conf = String::new();
    for c in &mut cases {
        write_raw(&c.path, &c.raw);
        conf += &format!(
            "pcm.{} {{ type file slave.pcm \"null\" file \"/dev/null\" infile \"{}\" format \"raw\" }}\n",
            c.pcm,
            c.path.display()
        );
    }
    let conf_path = dir.join("fakemic.conf");
    std::fs::write(&conf_path, conf).unwrap();
    // before the first ALSA call of this process (ASOUNDRC is not honoured, §7.2)
    std::env::set_var(
        "ALSA_CONFIG_PATH",
        format!("{ALSA_CONF}:{}", conf_path.display()),
    );

    for c in &cases {
        let opts = LiveOptions {
            audio_rate: Some(c.rate),
            audio_channels: Some(c.channels),
            audio_format: Some(format!("{:?}", c.format)),
            ..Default::default()
        };
        // 1. raw capture: the file's samples, bit for bit
        let mut cap = AlsaCapture::open(c.pcm, &opts).unwrap();
        assert_eq!(
            (cap.format, cap.rate, cap.channels),
            (c.format, c.rate, c.channels)
        );
        let total = match &c.raw {
            RawSamples::S16(v) => v.len(),
            RawSamples::S32(v) => v.len(),
            RawSamples::Float(v) => v.len(),
        } / c.channels as usize;
        let t_open = monotonic_ms() as f64;
        let mut got: Option<RawSamples> = None;
        let mut frames = 0;
        while frames < total {
            let want = cap.period().min(total - frames);
            let b = match cap.read(want) {
                Ok(b) => b,
                Err(ReadError::Timeout) => continue,
                Err(e) => panic!("{}: read failed: {e:?}", c.pcm),
            };
            assert!(
                (b.pts_ms - t_open).abs() < 5_000.0,
                "{}: pts {} not on CLOCK_MONOTONIC near {t_open}",
                c.pcm,
                b.pts_ms
            );
            frames += b.frames;
            got = Some(match (got, b.samples) {
                (None, s) => s,
                (Some(RawSamples::S16(mut a)), RawSamples::S16(s)) => {
                    a.extend(s);
                    RawSamples::S16(a)
                }
                (Some(RawSamples::S32(mut a)), RawSamples::S32(s)) => {
                    a.extend(s);
                    RawSamples::S32(a)
                }
                (Some(RawSamples::Float(mut a)), RawSamples::Float(s)) => {
                    a.extend(s);
                    RawSamples::Float(a)
                }
                (a, s) => panic!("format changed: {a:?} vs {s:?}"),
            });
        }
        assert_eq!(
            got.as_ref(),
            Some(&c.raw),
            "{}: captured samples differ from the file",
            c.pcm
        );
        drop(cap);

        // 2. the AudioSource: down-mixed and resampled to 16 kHz like a file
        let want = audio::resample(
            &downmix(&c.raw.to_f64(), c.channels as usize),
            c.rate,
            16_000,
        )
        .unwrap();
        let uri = format!("alsa://{}", c.pcm);
        let mut src = AlsaSource::open(&uri, c.pcm, 16_000, &opts).unwrap();
        assert_eq!(src.sample_rate(), 16_000);
        let mut out = Vec::new();
        let n = want.len() * 9 / 10; // the file plugin repeats stale data past the file's end
        while out.len() < n {
            let b = src
                .next_block()
                .unwrap()
                .expect("a live source does not end");
            out.extend(b.samples);
        }
        let max = out[..n]
            .iter()
            .zip(&want[..n])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            max < 1e-6,
            "{}: streamed 16 kHz differs from audio::resample by {max}",
            c.pcm
        );
        eprintln!(
            "{}: {total} frames bit-exact; {n} samples at 16 kHz, max diff {max:.2e}",
            c.pcm
        );
    }

    // a PCM that does not exist: a clear error naming it
    let e = AlsaSource::open(
        "alsa://c3n_no_such_pcm",
        "c3n_no_such_pcm",
        16_000,
        &LiveOptions::default(),
    )
    .err()
    .expect("opening a missing PCM fails");
    let msg = e.to_string();
    assert!(
        msg.contains("c3n_no_such_pcm") && msg.contains("--input-wait"),
        "{msg}"
    );
}
