//! `c3n-edge bench` (per-stage latency of `run`, synthetic input by default) and
//! `c3n-edge bench-capture` (capture-to-model-input latency of one source, no inference).

use anyhow::{Context, Result};

use c3n_edge::bench;
use c3n_edge::bench::live::{live_report, onset_scene, LatencySink, PacedRun};
use c3n_edge::pipeline::{self, Input, Mode, RunOptions};
use c3n_edge::sink::jsonl::JsonlSink;
use c3n_edge::sink::Sink;
use c3n_edge::sync::SLOT_TARGET_FRACTION;
use c3n_edge::uri::InputUri;
use image::RgbImage;

use super::args::{BenchArgs, InputArgs};
use super::engines::load_engine;

pub(crate) fn cmd_bench(a: BenchArgs) -> Result<()> {
    if a.onsets > 0 {
        return bench_onsets(&a);
    }
    let input = match &a.input {
        Some(v) => a.inputs.input(v)?,
        None => Input::Synthetic {
            width: 640,
            height: 480,
            fps: 25.0,
            seconds: a.seconds,
        },
    };
    let label = a
        .input
        .clone()
        .unwrap_or_else(|| format!("synthetic 640x480 @25 fps, {} s", a.seconds));
    let engine = load_engine(&a.model)?;
    let t = engine.contract().clip_frames;
    let opts = RunOptions {
        input,
        input_loop: a.inputs.input_loop,
        max_clips: a.inputs.max_clips,
        on_bad_frame: a.inputs.on_bad_frame,
        mode: a.inputs.mode,
        mask_rate: a.inputs.mask_rate,
        paced: a.inputs.paced,
        ..Default::default()
    };
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(JsonlSink::new(
        Box::new(std::io::sink()),
        std::path::Path::new("<discarded>"),
    ))];
    let summary = pipeline::run(engine, &opts, &mut sinks).context("benchmark run")?;
    let report = bench::report(
        &a.model.model().display().to_string(),
        &label,
        t,
        usize::from(a.model.threads()),
        &summary,
    );
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

pub(crate) fn cmd_bench_capture(
    input: &str,
    seconds: f64,
    inputs: &InputArgs,
    json: bool,
) -> Result<()> {
    let Input::Uris { video, options, .. } = inputs.input(input)? else {
        unreachable!("InputArgs::input returns URIs")
    };
    let r = c3n_edge::source::devices::bench_capture(&video, &options, seconds)
        .with_context(|| format!("capturing {input}"))?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{r}");
    }
    Ok(())
}

/// `bench --onsets N`: paced runs of the input after random lead-ins, per mode
/// ([`c3n_edge::bench::live`]).
fn bench_onsets(a: &BenchArgs) -> Result<()> {
    let Some(video) = &a.input else {
        anyhow::bail!("--onsets needs an input with sound (e.g. the demo clip and --audio)");
    };
    let (w, h) = a
        .camera_size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|&(w, h)| (16..=4096).contains(&w) && (16..=4096).contains(&h))
        .with_context(|| {
            format!(
                "--camera-size {}: expected WIDTHxHEIGHT, 16 to 4096",
                a.camera_size
            )
        })?;
    anyhow::ensure!(
        a.camera_fps.is_finite() && (0.1..=120.0).contains(&a.camera_fps),
        "--camera-fps {} is outside 0.1 to 120",
        a.camera_fps
    );
    let engine = load_engine(&a.model)?;
    let sr = engine.contract().frontend.sample_rate;
    let engine_name = engine.name().to_string();
    drop(engine);
    let input = a.inputs.input(video)?;
    let (images, audio) = read_clip(&input, sr)?;
    // a 1-fps image sequence's frames are stamped at their second's start; a camera sees them
    // where AVSBench took them, 15/16 into it
    let shift_ms = match &input {
        Input::Uris {
            video: InputUri::ImageSequence { .. },
            options,
            ..
        } => (SLOT_TARGET_FRACTION * 1000.0 / options.rate_hz).round() as i64,
        _ => 0,
    };
    let modes = match a.inputs.mode {
        Some(m) => vec![m],
        None => vec![Mode::Window, Mode::Stream],
    };
    let mut rng = a.seed.max(1);
    let lead_ins: Vec<i64> = (0..a.onsets)
        .map(|_| {
            // xorshift64: lead-ins uniform in [0, 5000) ms
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % 5000) as i64
        })
        .collect();
    println!(
        "model {}, engine {}, {} thread(s), camera {w}x{h} at {} fps, {} paced run(s) per mode, lead-ins {lead_ins:?} ms (seed {})",
        a.model.model().display(),
        engine_name,
        a.model.threads(),
        a.camera_fps,
        a.onsets,
        a.seed
    );
    println!("| mode | runs | capture → mask p50 ms | p95 ms | masks/s | onset → new p50 ms | p95 ms | runs without new |");
    println!("|---|---|---|---|---|---|---|---|");
    for mode in modes {
        let mut runs = Vec::new();
        for &lead in &lead_ins {
            let scene = onset_scene(&images, &audio, sr, lead, shift_ms, a.camera_fps, (w, h));
            let opts = RunOptions {
                input: Input::Scene(Box::new(scene)),
                mode: Some(mode),
                mask_rate: a.inputs.mask_rate,
                paced: true,
                ..Default::default()
            };
            let sink = LatencySink::default();
            let seen = sink.0.clone();
            let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(sink)];
            let summary =
                pipeline::run(load_engine(&a.model)?, &opts, &mut sinks).context("paced run")?;
            let latencies = seen.lock().map(|l| l.clone()).unwrap_or_default();
            runs.push(PacedRun {
                latencies,
                wall_s: summary.wall.as_secs_f64(),
                lead_in_ms: Some(lead),
            });
        }
        let r = live_report(&mode.to_string(), &runs);
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!("{r}");
        }
    }
    Ok(())
}

/// A clip in memory: images with their times from its start (ms), and the mono audio.
type Clip = (Vec<(i64, RgbImage)>, Vec<f64>);

/// The input's frames (with their times from its start) and its audio at `sample_rate` Hz, read
/// into memory (at most 10 minutes of frames at 1 fps or 600 frames).
fn read_clip(input: &Input, sample_rate: u32) -> Result<Clip> {
    let (mut video, mut audio) = input.open(sample_rate)?;
    let mut images = Vec::new();
    let mut t0 = None;
    while let Some(f) = video.next_frame()? {
        anyhow::ensure!(
            images.len() < 600,
            "--onsets: the input has more than 600 frames"
        );
        let t0 = *t0.get_or_insert(f.pts_ms);
        images.push((f.pts_ms - t0, (*f.image).clone()));
    }
    anyhow::ensure!(!images.is_empty(), "--onsets: the input has no frame");
    let mut wave = Vec::new();
    while let Some(b) = audio.next_block()? {
        anyhow::ensure!(
            wave.len() < 600 * sample_rate as usize,
            "--onsets: more than 10 minutes of audio"
        );
        wave.extend_from_slice(&b.samples);
    }
    Ok((images, wave))
}
