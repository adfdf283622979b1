//! Checks of `run`'s command line that the binary does before opening anything: value ranges
//! of flags (clap value parsers) and outputs that would overwrite an input.

use std::path::PathBuf;

use anyhow::Result;

use c3n_edge::pipeline::Input;
use c3n_edge::sink::display::OutputUri;

use super::{ModelArgs, RunArgs};

/// `--input-rate`: a finite frame rate in the range an image sequence or a camera can have.
pub(crate) fn parse_input_rate(s: &str) -> Result<f64, String> {
    use c3n_edge::source::frames::{MAX_RATE_HZ, MIN_RATE_HZ};
    match s.trim().parse::<f64>() {
        Ok(r) if (MIN_RATE_HZ..=MAX_RATE_HZ).contains(&r) => Ok(r),
        Ok(r) => Err(format!(
            "{r} fps is outside {MIN_RATE_HZ} to {MAX_RATE_HZ} fps"
        )),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

/// `--alpha`: an opacity in 0..=1 (not NaN).
pub(crate) fn parse_alpha(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(a) if (0.0..=1.0).contains(&a) => Ok(a),
        Ok(a) => Err(format!("{a} is outside 0 to 1")),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

/// The model `run` will load: `--model`, else the config's.
pub(crate) fn model_path_of(m: &ModelArgs, cfg: &c3n_edge::config::ModelConfig) -> PathBuf {
    m.model.clone().unwrap_or_else(|| cfg.path.clone())
}

/// Refuses outputs that are inputs (c3n_edge::guard), before any output is opened.
pub(crate) fn check_outputs(a: &RunArgs, input: &Input, model: &std::path::Path) -> Result<()> {
    use c3n_edge::guard::{check_output_dir, check_output_file, RunInputs};
    let mut inputs = RunInputs::default();
    if let Input::Uris { video, audio, .. } = input {
        inputs.add_uri("video", video);
        if let Some(audio) = audio {
            inputs.add_uri("audio", audio);
        }
    }
    inputs.files.push(("model", model.to_path_buf()));
    if let Some(c) = c3n_edge::config::locate(a.config.as_deref()) {
        inputs.files.push(("config", c));
    }
    if a.events != std::path::Path::new("-") {
        check_output_file("--events", &a.events, &inputs)?;
    }
    if let Some(dir) = &a.overlay {
        check_output_dir("--overlay", dir, &inputs)?;
    }
    for o in &a.outputs {
        match OutputUri::parse(o)? {
            OutputUri::Images { pattern } => {
                let dir = std::path::Path::new(&pattern)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."))
                    .to_path_buf();
                check_output_dir("--output", &dir, &inputs)?;
            }
            OutputUri::Video { path } => check_output_file("--output", &path, &inputs)?,
            _ => {}
        }
    }
    Ok(())
}
