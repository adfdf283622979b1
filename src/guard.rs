//! Checks that keep a run from destroying files, and the one-line-per-cause error report.
//!
//! * [`check_output_file`] / [`check_output_dir`]: no output (`--events`, `--overlay`,
//!   `--output file://…`) may be one of the run's inputs (the video, the audio, the model, the
//!   config file) or, for directories of numbered images, the directory of the input frames: a
//!   typo must not overwrite the input.
//! * [`create_dir`] / [`check_dir_creatable`]: a directory output whose path runs through a
//!   regular file gets a message saying so, not the OS's "File exists".
//! * [`report`]: an error and its causes, each cause printed only when the message above does
//!   not already contain it (library errors often include their source in their own message).

use std::error::Error;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::uri::{printf_field, InputUri};

/// An output that would overwrite an input, or an output directory that cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The output is one of the inputs.
    #[error("{flag} {output}: this is the {role} input {input}; refusing to overwrite an input")]
    OutputIsInput {
        /// The output option (`--events`, `--overlay`, `--output`).
        flag: &'static str,
        /// The output path.
        output: PathBuf,
        /// Which input (`audio`, `video`, `model`, `config`, `frame`).
        role: &'static str,
        /// The input path.
        input: PathBuf,
    },
    /// A directory output cannot be created.
    #[error("{flag} {path}: {reason}")]
    BadDir {
        /// The output option.
        flag: &'static str,
        /// The directory asked for.
        path: PathBuf,
        /// Why.
        reason: DirError,
    },
}

/// Why a directory cannot be created: a part of its path is an existing non-directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirError {
    /// The directory itself exists as a file.
    #[error("exists and is not a directory")]
    NotADirectory,
    /// A parent of the directory is a file.
    #[error("{} is a file, not a directory", .0.display())]
    FileInPath(PathBuf),
}

/// The files and directories a run reads.
#[derive(Debug, Default, Clone)]
pub struct RunInputs {
    /// (role, file): the video container, the WAV, the model, the config file.
    pub files: Vec<(&'static str, PathBuf)>,
    /// The pattern of an image-sequence input (`DIR/%05d.png`).
    pub frame_pattern: Option<String>,
}

impl RunInputs {
    /// Adds the file (or frame pattern) of an input URI; live devices are not files.
    pub fn add_uri(&mut self, role: &'static str, uri: &InputUri) {
        match uri {
            InputUri::ImageSequence { pattern } => self.frame_pattern = Some(pattern.clone()),
            InputUri::Container { path } | InputUri::Wav { path } => {
                self.files.push((role, path.clone()))
            }
            InputUri::V4l2 { .. } | InputUri::Alsa { .. } => {}
        }
    }

    /// The directory of the input frames (`.` for a bare pattern).
    fn frame_dir(&self) -> Option<PathBuf> {
        let p = self.frame_pattern.as_ref()?;
        Some(parent_or_dot(Path::new(p)))
    }
}

fn parent_or_dot(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// True when `a` and `b` name the same existing file (same device and inode).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// True when `path` is in the same directory as the frames of `pattern` and its file name
/// matches the pattern (it would be read as a frame).
fn matches_frames(pattern: &str, path: &Path) -> bool {
    let Ok(Some(field)) = printf_field(pattern) else {
        return false;
    };
    let pat = Path::new(pattern);
    if !same_file(&parent_or_dot(pat), &parent_or_dot(path)) {
        return false;
    }
    let (Some(pname), Some(name)) = (
        pat.file_name().and_then(|n| n.to_str()),
        path.file_name().and_then(|n| n.to_str()),
    ) else {
        return false;
    };
    let offset = pattern.len() - pname.len();
    if field.range.0 < offset {
        return false; // the number is in a directory name
    }
    let (Some(head), Some(tail)) = (
        pname.get(..field.range.0.saturating_sub(offset)),
        pname.get(field.range.1.saturating_sub(offset)..),
    ) else {
        return false;
    };
    name.strip_prefix(head)
        .and_then(|r| r.strip_suffix(tail))
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// An output file (`--events`, a video output) must not be an input.
pub fn check_output_file(
    flag: &'static str,
    output: &Path,
    inputs: &RunInputs,
) -> Result<(), GuardError> {
    for (role, input) in &inputs.files {
        if same_file(output, input) {
            return Err(GuardError::OutputIsInput {
                flag,
                output: output.to_path_buf(),
                role,
                input: input.clone(),
            });
        }
    }
    if let Some(p) = &inputs.frame_pattern {
        if matches_frames(p, output) {
            return Err(GuardError::OutputIsInput {
                flag,
                output: output.to_path_buf(),
                role: "frame",
                input: PathBuf::from(p),
            });
        }
    }
    Ok(())
}

/// An output directory of numbered images (`--overlay`, `--output file://DIR/%05d.jpg`) must
/// not be the directory of the input frames, and must be creatable.
pub fn check_output_dir(
    flag: &'static str,
    dir: &Path,
    inputs: &RunInputs,
) -> Result<(), GuardError> {
    if let Some(frames) = inputs.frame_dir() {
        if same_file(dir, &frames) {
            return Err(GuardError::OutputIsInput {
                flag,
                output: dir.to_path_buf(),
                role: "frame directory of the video",
                input: PathBuf::from(inputs.frame_pattern.clone().unwrap_or_default()),
            });
        }
    }
    check_dir_creatable(dir).map_err(|reason| GuardError::BadDir {
        flag,
        path: dir.to_path_buf(),
        reason,
    })
}

/// Checks that `dir` can be created: no part of it is an existing non-directory.
///
/// Errors: [`DirError`] naming the part that is a file.
pub fn check_dir_creatable(dir: &Path) -> Result<(), DirError> {
    for a in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        match std::fs::metadata(a) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) if a == dir => return Err(DirError::NotADirectory),
            Ok(_) => return Err(DirError::FileInPath(a.to_path_buf())),
            Err(_) => continue,
        }
    }
    Ok(())
}

/// `create_dir_all` with a clear error when a part of the path is a file.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    check_dir_creatable(dir).map_err(io::Error::other)?;
    std::fs::create_dir_all(dir)
}

/// The error and its causes, one per line (`Error: …` then `  caused by: …`), skipping a cause
/// whose text the line above already contains.
pub fn report(e: &(dyn Error + 'static)) -> String {
    let mut out = format!("Error: {e}");
    let mut above = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !above.contains(&text) {
            out.push_str("\n  caused by: ");
            out.push_str(&text);
        }
        above = text;
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] Inner);
    #[derive(Debug, thiserror::Error)]
    #[error("inner detail")]
    struct Inner;
    #[derive(Debug, thiserror::Error)]
    #[error("top")]
    struct Top(#[source] Outer);

    #[test]
    fn report_prints_each_cause_once() {
        assert_eq!(
            report(&Top(Outer(Inner))),
            "Error: top\n  caused by: outer: inner detail"
        );
        assert_eq!(report(&Outer(Inner)), "Error: outer: inner detail");
    }

    #[test]
    fn outputs_that_are_inputs_are_refused() {
        let dir = std::env::temp_dir().join(format!("c3n-guard-{}", std::process::id()));
        let frames = dir.join("frames");
        std::fs::create_dir_all(&frames).unwrap();
        std::fs::write(dir.join("a.wav"), b"x").unwrap();
        std::fs::write(frames.join("00003.png"), b"x").unwrap();
        let mut inputs = RunInputs::default();
        inputs.add_uri(
            "audio",
            &InputUri::parse(&format!("file://{}/a.wav", dir.display())).unwrap(),
        );
        inputs.add_uri(
            "video",
            &InputUri::parse(&format!("file://{}/%05d.png", frames.display())).unwrap(),
        );
        // the same file under another name
        let e = check_output_file("--events", &dir.join("frames/../a.wav"), &inputs).unwrap_err();
        assert!(e.to_string().contains("audio input"), "{e}");
        // a frame of the sequence, existing or not
        assert!(check_output_file("--events", &frames.join("00003.png"), &inputs).is_err());
        assert!(check_output_file("--events", &frames.join("00009.png"), &inputs).is_err());
        assert!(check_output_file("--events", &frames.join("events.jsonl"), &inputs).is_ok());
        assert!(check_output_file("--events", &dir.join("b.wav"), &inputs).is_ok());
        // the frame directory as an image output directory
        assert!(check_output_dir("--overlay", &dir.join("./frames"), &inputs).is_err());
        assert!(check_output_dir("--overlay", &dir.join("overlay"), &inputs).is_ok());
        let e = check_output_dir("--overlay", &dir.join("a.wav/x"), &inputs).unwrap_err();
        assert!(e.to_string().contains("is a file, not a directory"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
