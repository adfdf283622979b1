//! `c3n-edge config` (the effective or the sample configuration) and `c3n-edge model-info` (a
//! model's contract).

use std::path::Path;

use anyhow::Result;

use c3n_edge::config::{self, Config};
use c3n_edge::engine::ModelContract;

pub(crate) fn cmd_config(file: Option<&Path>, sample: bool) -> Result<()> {
    if sample {
        print!("{}", config::SAMPLE);
        return Ok(());
    }
    let cfg = match config::locate(file) {
        Some(p) => {
            eprintln!("# configuration from {}", p.display());
            Config::load(&p)?
        }
        None => {
            let c = Config::default();
            c.validate(Path::new("<defaults>"))?;
            c
        }
    };
    print!("{}", cfg.to_toml()?);
    Ok(())
}

pub(crate) fn cmd_model_info(path: &Path) -> Result<()> {
    let contract = ModelContract::from_file(path)?;
    println!("{contract}");
    Ok(())
}
