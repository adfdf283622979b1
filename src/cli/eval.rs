//! `c3n-edge eval`: mIoU and F-score of a model on AVSBench, one line (or JSON object) per
//! subset.

use anyhow::{Context, Result};

use c3n_edge::engine::{self, Backend, EngineOptions};
use c3n_edge::eval::{self, EvalOptions};

use super::args::EvalArgs;

pub(crate) fn cmd_eval(a: EvalArgs) -> Result<()> {
    let backend: Backend = a.backend.parse()?;
    let options = EngineOptions {
        threads: Some(usize::from(a.threads)),
    };
    let mut engine = engine::open_engine(backend, &a.model, &options)
        .with_context(|| format!("loading model {}", a.model.display()))?;
    let opts = EvalOptions {
        dataset_dir: a.dataset_dir.clone(),
        split: a.split,
        subset: a.subset,
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
