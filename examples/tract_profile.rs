//! tract's per-operator profile of a C3N model (issue 16, `models/README.md` "Where the time
//! goes"): the optimised plan's operators, slowest first, with their share of the node time.
//!
//! ```sh
//! cargo run --release --example tract_profile -- MODEL.onnx [THREADS] [CALLS]
//! ```
//!
//! THREADS as `--threads` (default 1), CALLS timed model calls after one warm-up (default 3); the
//! input is `bench-engines`' deterministic test window. A model with a frame split runs split
//! (its frames one after another; node names are prefixed with their segment: `per_frame.K/`
//! before the TPAVI clip means, `after.K/` after them); `C3N_PROFILE_WHOLE=1` runs the whole graph
//! at batch T instead. `C3N_PROFILE_NODES=N` also lists the N
//! slowest nodes. The counterpart for ONNX Runtime is
//! `python -m c3n.profile MODEL.onnx`.

use std::path::PathBuf;

use c3n_edge::engine::prebuild::test_window;
use c3n_edge::engine::tract::TractEngine;
use c3n_edge::engine::{Engine, EngineOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(
        args.next()
            .ok_or("usage: tract_profile MODEL.onnx [THREADS] [CALLS]")?,
    );
    let threads: usize = args.next().map_or(Ok(1), |s| s.parse())?;
    let calls: usize = args.next().map_or(Ok(3), |s| s.parse())?;
    let whole = std::env::var("C3N_PROFILE_WHOLE").is_ok_and(|v| v == "1");
    let engine = TractEngine::load_with(
        &model,
        &EngineOptions {
            threads: Some(threads),
        },
        !whole,
    )?;
    let window = test_window(engine.contract());
    let profile = engine.profile(&window, calls)?;
    let (ops, total) = (&profile.ops, profile.total_ms);
    println!(
        "tract, {}, {}, {threads} thread(s), median of {calls} calls: node time {total:.1} ms per call",
        model.display(),
        if engine.is_frame_split() { "frame split" } else { "whole graph" }
    );
    println!("| op | nodes | ms per call | share |");
    println!("|---|---|---|---|");
    for o in ops {
        if o.ms_per_call >= 0.001 * total {
            println!(
                "| {} | {} | {:.1} | {:.1} % |",
                o.op,
                o.nodes,
                o.ms_per_call,
                100.0 * o.ms_per_call / total
            );
        }
    }
    let top: usize = std::env::var("C3N_PROFILE_NODES").map_or(Ok(0), |s| s.parse())?;
    if top > 0 {
        println!("\n| node | op | ms per call |\n|---|---|---|");
        for n in profile.nodes.iter().take(top) {
            println!("| {} | {} | {:.2} |", n.name, n.op, n.ms_per_call);
        }
    }
    Ok(())
}
