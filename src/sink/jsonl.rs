//! JSON-lines event output: one [`Event`] per line (schema `schema/event.schema.json`), to stdout
//! (`--events -`) or a file, flushed after every frame so that followers see events promptly.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{AnalysedFrame, Sink, SinkError};
use crate::events::Event;

/// One event as its JSON line (without the newline), schema `schema/event.schema.json`; the same
/// text is the MQTT `events` payload.
pub fn event_json(e: &Event) -> Result<String, serde_json::Error> {
    serde_json::to_string(e)
}

/// Writes events as JSON lines.
pub struct JsonlSink {
    out: Box<dyn Write + Send>,
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
    /// `-` = stdout, anything else a file (created or truncated).
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        if path == Path::new("-") {
            return Ok(Self::new(Box::new(std::io::stdout()), path));
        }
        let f = File::create(path).map_err(|source| SinkError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::new(Box::new(BufWriter::new(f)), path))
    }

    /// Over any writer (`path` is only used in errors).
    pub fn new(out: Box<dyn Write + Send>, path: &Path) -> Self {
        Self {
            out,
            path: path.to_path_buf(),
        }
    }

    fn write(&mut self, events: &[Event]) -> Result<(), SinkError> {
        let io = |source| SinkError::Io {
            path: self.path.clone(),
            source,
        };
        for e in events {
            let line = event_json(e).map_err(|e| io(std::io::Error::other(e)))?;
            writeln!(self.out, "{line}").map_err(io)?;
        }
        self.out.flush().map_err(io)
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
}
