//! Checks of `run`'s command line before anything is opened, through the library's one
//! validation ([`c3n_edge::pipeline::OptionsError`]): the run's options and the outputs that
//! would overwrite an input. (The flags' value ranges are clap value parsers, in `args`.)

use std::path::{Path, PathBuf};

use anyhow::Result;

use c3n_edge::config::ModelConfig;
use c3n_edge::pipeline::{check_outputs, RunOptions, RunOutputs};
use c3n_edge::sink::display::OutputUri;

use super::args::{ModelArgs, RunArgs};

/// The model `run` will load: `--model`, else the config's.
pub(crate) fn model_path_of(m: &ModelArgs, cfg: &ModelConfig) -> PathBuf {
    m.model.clone().unwrap_or_else(|| cfg.path.clone())
}

/// Validates `opts`, parses the `--output` URIs and refuses outputs that are inputs (`config`:
/// the config file read), before any output is opened. Returns the parsed outputs.
pub(crate) fn check_run(
    a: &RunArgs,
    opts: &RunOptions,
    model: &Path,
    config: Option<&Path>,
) -> Result<Vec<OutputUri>> {
    opts.validate()?;
    let outputs = a
        .outputs
        .iter()
        .map(|o| OutputUri::parse(o))
        .collect::<Result<Vec<_>, _>>()?;
    let run_outputs = RunOutputs {
        events: Some(a.events.as_path()).filter(|e| *e != Path::new("-")),
        overlay: a.overlay.as_deref(),
        outputs: &outputs,
    };
    check_outputs(&run_outputs, &opts.input, model, config)?;
    Ok(outputs)
}
