//! The `c3n-edge` command line: the clap definitions ([`args`]) and one file per subcommand or
//! group of subcommands. Each subcommand turns its flags and the config file into the library's
//! options, runs it and prints the result; errors go back to `main.rs`, which reports them once.

pub(crate) mod args;
mod bench;
mod checks;
mod engines;
mod eval;
mod info;
mod run;

use anyhow::Result;

use args::Command;

/// Runs one subcommand.
pub(crate) fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Eval(a) => eval::cmd_eval(a),
        Command::Config {
            file,
            sample,
            hash_password,
        } => {
            if hash_password {
                info::cmd_hash_password()
            } else {
                info::cmd_config(file.as_deref(), sample)
            }
        }
        Command::ModelInfo { path } => info::cmd_model_info(&path),
        Command::Run(a) => run::cmd_run(a),
        Command::Bench(a) => bench::cmd_bench(a),
        Command::BuildEngine { model } => engines::cmd_build_engine(&model),
        Command::BenchEngines {
            model,
            backends,
            iters,
            json,
        } => engines::cmd_bench_engines(&model, &backends, iters, json),
        Command::Devices => {
            print!("{}", c3n_edge::source::devices::report());
            Ok(())
        }
        Command::BenchCapture {
            input,
            seconds,
            inputs,
            json,
        } => bench::cmd_bench_capture(&input, seconds, &inputs, json),
    }
}
