//! `c3n-edge config` (the effective or the sample configuration, or `--hash-password`) and `c3n-edge model-info` (a
//! model's contract).

use std::path::Path;

use std::io::Read as _;

use anyhow::{Context as _, Result};

use c3n_edge::config::{self, Config};
use c3n_edge::engine::ModelContract;
use c3n_edge::sink::display::http::auth::hash_password;

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

/// `config --hash-password`: the first line of stdin (without its line end) as an Argon2id PHC
/// string on stdout.
pub(crate) fn cmd_hash_password() -> Result<()> {
    use std::io::BufRead;
    let mut line = String::new();
    // a password is short: stop reading at 1 KiB
    std::io::stdin()
        .lock()
        .take(1024)
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        anyhow::bail!("no password on stdin (e.g. `read -rs PW; printf '%s\\n' \"$PW\" | c3n-edge config --hash-password`)");
    }
    println!("{}", hash_password(password)?);
    Ok(())
}

pub(crate) fn cmd_model_info(path: &Path) -> Result<()> {
    let contract = ModelContract::from_file(path)?;
    println!("{contract}");
    Ok(())
}
