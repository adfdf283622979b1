//! `c3n-edge` command line: thin layer over the library; errors are reported once, here. The
//! subcommands and their flags are in `src/cli/`.

use clap::Parser;

mod cli;

fn init_logging(filter: Option<&str>) {
    let filter = match filter {
        Some(f) => tracing_subscriber::EnvFilter::new(f),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
    };
    // plain text in pipes, files and the journal; in the journal no second timestamp, and each
    // record's priority (c3n_edge::service::JournalStderr)
    let style = c3n_edge::service::log_style();
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(style.ansi);
    if style.journal {
        fmt.with_writer(c3n_edge::service::JournalStderr)
            .without_time()
            .init();
    } else {
        fmt.with_writer(std::io::stderr).init();
    }
}

fn main() -> std::process::ExitCode {
    let cli = cli::args::Cli::parse();
    init_logging(cli.log.as_deref());
    c3n_edge::service::ignore_file_size_signal();
    match cli::dispatch(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // each cause once (library errors often carry their source in their own text)
            eprintln!("{}", c3n_edge::guard::report(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}
