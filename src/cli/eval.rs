//! `c3n-edge eval`: mIoU and F-score of a model on AVSBench, one line (or JSON object) per
//! subset. `--split` and `--subset` default to the config file's `[eval]` section.

use anyhow::{Context, Result};

use c3n_edge::config::{self, Config, EvalConfig};
use c3n_edge::dataset::SubsetFilter;
use c3n_edge::engine::{self, Backend, EngineOptions};
use c3n_edge::eval::{self, EvalOptions};

use super::args::EvalArgs;

pub(crate) fn cmd_eval(a: EvalArgs) -> Result<()> {
    // the file `run` would read (no --config here: $C3N_CONFIG or the default locations)
    let cfg = match config::locate(None) {
        Some(p) => {
            tracing::info!("configuration from {}", p.display());
            Config::load(&p)?
        }
        None => Config::default(),
    };
    let (split, subset) = split_and_subset(&a, &cfg.eval)?;
    let backend: Backend = a.backend.parse()?;
    let options = EngineOptions {
        threads: Some(usize::from(a.threads)),
    };
    let mut engine = engine::open_engine(backend, &a.model, &options)
        .with_context(|| format!("loading model {}", a.model.display()))?;
    let opts = EvalOptions {
        dataset_dir: a.dataset_dir.clone(),
        split,
        subset,
        progress: !a.quiet,
    };
    let reports = eval::evaluate(engine.as_mut(), &opts)
        .with_context(|| format!("evaluating {}", a.dataset_dir.display()))?;
    for r in &reports {
        if a.json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            let s = &r.summary;
            println!(
                "{:<4} mIoU {:.4}  F-score {:.4} (4-clip batches)  F-score/frame {:.4}  ({} clips, {} frames)",
                r.subset, s.miou, s.fscore, s.fscore_per_frame, s.clips, s.frames
            );
        }
    }
    Ok(())
}

/// `--split` and `--subset`, else the config's `[eval]` ones.
fn split_and_subset(a: &EvalArgs, cfg: &EvalConfig) -> Result<(String, SubsetFilter)> {
    let split = a.split.clone().unwrap_or_else(|| cfg.split.clone());
    let subset = match a.subset {
        Some(s) => s,
        None => cfg.subset.parse()?,
    };
    Ok((split, subset))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use c3n_edge::config::EvalConfig;
    use c3n_edge::dataset::{Subset, SubsetFilter};

    use crate::cli::args::{Cli, Command, EvalArgs};
    use crate::cli::eval::split_and_subset;

    fn eval_args(flags: &[&str]) -> EvalArgs {
        let argv = ["c3n-edge", "eval", "DATA"].iter().chain(flags);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Eval(a)) => a,
            other => panic!("not an eval command line: {other:?}"),
        }
    }

    #[test]
    fn eval_defaults_come_from_the_config_and_flags_win() {
        let cfg = EvalConfig {
            split: "val".into(),
            subset: "ms3".into(),
        };
        let (split, subset) = split_and_subset(&eval_args(&[]), &cfg).unwrap();
        assert_eq!(
            (split.as_str(), subset),
            ("val", SubsetFilter::Only(Subset::Ms3))
        );
        let flags = eval_args(&["--split", "train", "--subset", "s4"]);
        let (split, subset) = split_and_subset(&flags, &cfg).unwrap();
        assert_eq!(
            (split.as_str(), subset),
            ("train", SubsetFilter::Only(Subset::S4))
        );
        // no file: the built-in defaults, as before the section was read
        let (split, subset) = split_and_subset(&eval_args(&[]), &EvalConfig::default()).unwrap();
        assert_eq!((split.as_str(), subset), ("test", SubsetFilter::All));
    }
}
