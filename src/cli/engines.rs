//! Loading the engine for `run` and `bench`, and the engine commands: `c3n-edge build-engine`
//! (warm the TensorRT engine cache) and `c3n-edge bench-engines` (backends side by side).

use anyhow::{Context, Result};

use c3n_edge::engine::prebuild::{self, Prebuild};
use c3n_edge::engine::{self, Backend, Engine, EngineOptions, EngineSettings};

use super::args::ModelArgs;

/// The ONNX Runtime settings: the environment's, overridden by the flags.
fn engine_settings(m: &ModelArgs) -> Result<EngineSettings> {
    let mut s = EngineSettings::from_env()?;
    if let Some(p) = &m.ort_lib {
        s.ort_library = Some(p.clone());
    }
    if let Some(p) = &m.engine_cache {
        s.engine_cache = Some(p.clone());
    }
    if let Some(p) = &m.precision {
        s.precision = p.parse()?;
    }
    Ok(s)
}

fn engine_options(m: &ModelArgs) -> EngineOptions {
    EngineOptions {
        threads: Some(usize::from(m.threads())),
    }
}

/// Loads the engine `m` names (reads the model file).
pub(crate) fn load_engine(m: &ModelArgs) -> Result<Box<dyn Engine>> {
    let backend: Backend = m.backend().parse()?;
    engine::open_engine_with(
        backend,
        &m.model(),
        &engine_options(m),
        &engine_settings(m)?,
    )
    .with_context(|| format!("loading model {}", m.model().display()))
}

/// [`load_engine`] on the model `m` names, already read and decoded (`proto`): not read again.
pub(crate) fn load_engine_from(
    m: &ModelArgs,
    proto: &tract_onnx::pb::ModelProto,
) -> Result<Box<dyn Engine>> {
    let backend: Backend = m.backend().parse()?;
    let (options, settings) = (engine_options(m), engine_settings(m)?);
    engine::open_engine_from_proto(backend, &m.model(), proto, &options, &settings)
        .with_context(|| format!("loading model {}", m.model().display()))
}

pub(crate) fn cmd_build_engine(m: &ModelArgs) -> Result<()> {
    let backend: Backend = m.backend().parse()?;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match prebuild::prebuild(
        backend,
        &m.model(),
        &engine_options(m),
        &engine_settings(m)?,
        progress,
    )
    .with_context(|| format!("building the engine for {}", m.model().display()))?
    {
        Prebuild::NotNeeded(why) => println!("{why}"),
        Prebuild::Ready { dir, cached, load } => println!(
            "TensorRT engine {} in {:.1} s: {}",
            if cached {
                "loaded from the cache"
            } else {
                "built"
            },
            load.as_secs_f64(),
            dir.map_or_else(|| "(not cached)".to_string(), |d| d.display().to_string())
        ),
    }
    Ok(())
}

pub(crate) fn cmd_bench_engines(
    m: &ModelArgs,
    backends: &[String],
    iters: usize,
    json: bool,
) -> Result<()> {
    let backends = backends
        .iter()
        .map(|b| b.parse::<Backend>())
        .collect::<Result<Vec<_>, _>>()?;
    let rows = prebuild::compare(
        &backends,
        &m.model(),
        &engine_options(m),
        &engine_settings(m)?,
        iters,
    )
    .with_context(|| format!("benchmarking {}", m.model().display()))?;
    if !json {
        println!(
            "model {}, {} thread(s), {iters} timed calls after the first",
            m.model().display(),
            m.threads()
        );
        println!("| engine | load s | first call ms | median ms | mean ms | min ms | streamed mask median ms | stream / window | ms per mask, two threads overlapped | / window | max abs diff mask_logits | max abs diff c3im_score |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    }
    for r in rows {
        if json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "| {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {} | {} | {:.2e} | {:.2e} |",
                r.engine,
                r.load_s,
                r.first_ms,
                r.median_ms,
                r.mean_ms,
                r.min_ms,
                r.stream_median_ms,
                r.stream_ratio,
                r.stream_pipelined_ms
                    .map_or("n/a".into(), |m| format!("{m:.0}")),
                r.stream_pipelined_ms
                    .map_or("n/a".into(), |m| format!("{:.2}", m / r.median_ms)),
                r.mask_max_abs_diff,
                r.score_max_abs_diff
            );
        }
    }
    Ok(())
}
