//! JSON-lines event output: one [`Event`] per line (schema `schema/event.schema.json`), to stdout
//! (`--events -`) or a file, flushed after every frame so that followers see events promptly.
//!
//! A file is checked when the sink is opened (writable, not a directory) but created or
//! truncated only when the run starts writing ([`Sink::state`], called once the model and the
//! inputs are open): a run that fails at startup leaves an existing events file as it was.
//! Lines are whole: the lines of one frame are written with one `write_all`, and when that
//! fails (a full disk) the file is cut back to its last complete line before the error is
//! returned.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{AnalysedFrame, Sink, SinkError};
use crate::control::RunState;
use crate::events::Event;

/// One event as its JSON line (without the newline), schema `schema/event.schema.json`; the same
/// text is the MQTT `events` payload.
pub fn event_json(e: &Event) -> Result<String, serde_json::Error> {
    serde_json::to_string(e)
}

/// Where the lines go.
enum Target {
    /// Any writer (stdout, a test buffer, `io::sink`).
    Writer(Box<dyn Write + Send>),
    /// A file not created yet (checked, not touched).
    Pending,
    /// The open file and the length of its complete lines.
    File { file: File, good_len: u64 },
}

/// Writes events as JSON lines.
pub struct JsonlSink {
    target: Target,
    path: PathBuf,
}

impl std::fmt::Debug for JsonlSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlSink")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl JsonlSink {
    /// `-` = stdout, anything else a file, created or truncated when the run starts writing.
    /// Checked now: the file's directory exists, and the path is not a directory and, if it
    /// exists, can be opened for writing (opened without truncating, so nothing changes).
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        if path == Path::new("-") {
            return Ok(Self::new(Box::new(std::io::stdout()), path));
        }
        let io = |source| SinkError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(io(std::io::Error::other(
                    "is a directory (--events takes a file name, or - for stdout)",
                )))
            }
            Ok(_) => {
                OpenOptions::new().append(true).open(path).map_err(io)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                if !dir.is_dir() {
                    return Err(io(std::io::Error::other(format!(
                        "the directory {} does not exist",
                        dir.display()
                    ))));
                }
            }
            Err(e) => return Err(io(e)),
        }
        Ok(Self {
            target: Target::Pending,
            path: path.to_path_buf(),
        })
    }

    /// Over any writer (`path` is only used in errors).
    pub fn new(out: Box<dyn Write + Send>, path: &Path) -> Self {
        Self {
            target: Target::Writer(out),
            path: path.to_path_buf(),
        }
    }

    fn io(&self, source: std::io::Error) -> SinkError {
        SinkError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Creates (truncates) a pending file.
    fn start(&mut self) -> Result<(), SinkError> {
        if matches!(self.target, Target::Pending) {
            let file = File::create(&self.path).map_err(|e| self.io(e))?;
            self.target = Target::File { file, good_len: 0 };
        }
        Ok(())
    }

    fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        self.start()?;
        let mut text = String::new();
        for e in events {
            let line = event_json(e).map_err(|e| self.io(std::io::Error::other(e)))?;
            text.push_str(&line);
            text.push('\n');
        }
        let result = match &mut self.target {
            Target::Writer(w) => w.write_all(text.as_bytes()).and_then(|()| w.flush()),
            Target::File { file, good_len } => match file.write_all(text.as_bytes()) {
                Ok(()) => {
                    *good_len += text.len() as u64;
                    Ok(())
                }
                Err(e) => {
                    // no half line: cut back to the last complete one (best effort; a device
                    // such as /dev/full cannot be cut)
                    let _ = file
                        .set_len(*good_len)
                        .and_then(|()| file.seek(SeekFrom::Start(*good_len)).map(drop));
                    Err(e)
                }
            },
            Target::Pending => Ok(()),
        };
        result.map_err(|e| self.io(e))
    }
}

impl Sink for JsonlSink {
    fn frame(&mut self, _frame: &AnalysedFrame, events: &[Event]) -> Result<(), SinkError> {
        if events.is_empty() {
            return Ok(());
        }
        self.write(events)
    }

    fn finish(&mut self, events: &[Event]) -> Result<(), SinkError> {
        self.write(events)
    }

    fn state(&mut self, _state: &RunState) -> Result<(), SinkError> {
        self.start()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_created_only_when_the_run_starts() {
        let dir = std::env::temp_dir().join(format!("c3n-jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("events.jsonl");
        std::fs::write(&p, "previous results\n").unwrap();
        let mut sink = JsonlSink::open(&p).unwrap();
        // a startup failure after open: the sink is dropped, the file is untouched
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "previous results\n");
        sink.finish(&[]).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "");
        drop(sink);
        let e = JsonlSink::open(&dir).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let e = JsonlSink::open(&dir.join("no/such/dir.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
