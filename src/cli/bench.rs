//! `c3n-edge bench` (per-stage latency of `run`, synthetic input by default) and
//! `c3n-edge bench-capture` (capture-to-model-input latency of one source, no inference).

use anyhow::{Context, Result};

use c3n_edge::bench;
use c3n_edge::pipeline::{self, Input, RunOptions};
use c3n_edge::sink::jsonl::JsonlSink;
use c3n_edge::sink::Sink;

use super::args::{BenchArgs, InputArgs};
use super::engines::load_engine;

pub(crate) fn cmd_bench(a: BenchArgs) -> Result<()> {
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
