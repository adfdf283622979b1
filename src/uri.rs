//! Stream URIs, in jetson-utils' vocabulary (docs/integration-conventions.md §1.1) plus `alsa://`.
//!
//! | URI | meaning |
//! |---|---|
//! | `file://DIR/%05d.png` (any `%d`, `%0Nd`) | image sequence, numbered from 0 or 1 |
//! | `file://clip.mp4` / `.mkv` / `.webm` / `.mov` / `.avi` | container with a video and an audio track (feature `ffmpeg`) |
//! | `file://clip.wav` | WAV audio |
//! | `v4l2:///dev/video0` | V4L2 camera (live capture: not in this build) |
//! | `alsa://hw:1,0`, `alsa://default` | ALSA microphone (live capture: not in this build) |
//!
//! As in jetson-utils the `file://` prefix may be omitted, and a path starting with `/dev/video`
//! means V4L2. `file://` is followed by the path as is (`file://rel/dir` is relative,
//! `file:///abs/dir` absolute).

use std::fmt;
use std::path::PathBuf;

/// Container extensions opened by the ffmpeg-backed source (lower case).
pub const CONTAINER_EXTENSIONS: &[&str] = &["mp4", "mkv", "webm", "mov", "avi", "m4v"];

/// A parsed input URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputUri {
    /// Numbered image files; `pattern` holds one printf-style `%d` / `%0Nd` field.
    ImageSequence {
        /// Path pattern, e.g. `clip/%05d.png`.
        pattern: String,
    },
    /// A video container file (its first video and first audio track are used).
    Container {
        /// File path.
        path: PathBuf,
    },
    /// A WAV audio file.
    Wav {
        /// File path.
        path: PathBuf,
    },
    /// A V4L2 capture device, e.g. `/dev/video0`.
    V4l2 {
        /// Device node.
        device: String,
    },
    /// An ALSA capture device name, e.g. `hw:1,0` or `default`.
    Alsa {
        /// ALSA PCM name.
        device: String,
    },
}

/// Why a URI string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid input URI {uri:?}: {reason}")]
pub struct UriError {
    /// The URI as given.
    pub uri: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for InputUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputUri::ImageSequence { pattern } => write!(f, "file://{pattern}"),
            InputUri::Container { path } | InputUri::Wav { path } => {
                write!(f, "file://{}", path.display())
            }
            InputUri::V4l2 { device } => write!(f, "v4l2://{device}"),
            InputUri::Alsa { device } => write!(f, "alsa://{device}"),
        }
    }
}

impl InputUri {
    /// Parses a URI (see the module table).
    pub fn parse(s: &str) -> Result<Self, UriError> {
        let bad = |reason: &str| UriError {
            uri: s.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = match s.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None if s.starts_with("/dev/video") => ("v4l2".to_string(), s),
            None => ("file".to_string(), s),
        };
        if rest.is_empty() {
            return Err(bad("empty path or device"));
        }
        match scheme.as_str() {
            "v4l2" => Ok(InputUri::V4l2 {
                device: rest.to_string(),
            }),
            "alsa" => Ok(InputUri::Alsa {
                device: rest.to_string(),
            }),
            "file" => parse_file(rest).map_err(|e| bad(&e.to_string())),
            other => Err(bad(&format!(
                "unsupported scheme `{other}://` (supported: file://, v4l2://, alsa://)"
            ))),
        }
    }

    /// True for live capture devices (`v4l2://`, `alsa://`).
    pub fn is_live(&self) -> bool {
        matches!(self, InputUri::V4l2 { .. } | InputUri::Alsa { .. })
    }
}

/// Why a `file://` path is not an input.
#[derive(Debug, thiserror::Error)]
enum FileUriError {
    /// A bad printf field.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// Neither an image pattern, nor a WAV, nor a container.
    #[error(
        "expected an image pattern with %d/%05d, a .wav file or a video file ({})",
        CONTAINER_EXTENSIONS.join(", ")
    )]
    Kind,
}

/// A `file://` URI by its path: an image pattern, a WAV or a container.
fn parse_file(rest: &str) -> Result<InputUri, FileUriError> {
    if printf_field(rest)?.is_some() {
        return Ok(InputUri::ImageSequence {
            pattern: rest.to_string(),
        });
    }
    let path = PathBuf::from(rest);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if ext == "wav" {
        Ok(InputUri::Wav { path })
    } else if CONTAINER_EXTENSIONS.contains(&ext.as_str()) {
        Ok(InputUri::Container { path })
    } else {
        Err(FileUriError::Kind)
    }
}

/// Position and zero-padded width of the single `%d` / `%0Nd` field of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrintfField {
    /// Byte range of the field in the pattern.
    pub range: (usize, usize),
    /// Minimum digits (0 = no padding).
    pub width: usize,
}

/// Why a pattern's printf field cannot be used ([`printf_field`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A `%` conversion other than `%d` / `%0Nd` (at this byte).
    #[error("unsupported printf field at byte {0} (only %d and %0Nd)")]
    Unsupported(usize),
    /// More than one `%d` field.
    #[error("more than one %d field")]
    SeveralFields,
}

/// Finds the `%d` / `%0Nd` field (`%%` is a literal percent).
///
/// Errors: [`PatternError`] for another conversion or more than one field.
pub fn printf_field(pattern: &str) -> Result<Option<PrintfField>, PatternError> {
    let b = pattern.as_bytes();
    let mut found = None;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'%') {
            i += 2;
            continue;
        }
        let mut j = i + 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if b.get(j) != Some(&b'd') {
            return Err(PatternError::Unsupported(i));
        }
        if found.is_some() {
            return Err(PatternError::SeveralFields);
        }
        let width = pattern[i + 1..j].parse::<usize>().unwrap_or(0);
        found = Some(PrintfField {
            range: (i, j + 1),
            width,
        });
        i = j + 1;
    }
    Ok(found)
}

/// Expands `pattern` (which must contain a [`PrintfField`]) for index `n`; `%%` becomes `%`.
pub fn expand_pattern(pattern: &str, field: PrintfField, n: u64) -> String {
    let (a, z) = field.range;
    let head = pattern[..a].replace("%%", "%");
    let tail = pattern[z..].replace("%%", "%");
    format!("{head}{n:0w$}{tail}", w = field.width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_vocabulary() {
        assert_eq!(
            InputUri::parse("file://clip/%05d.png").unwrap(),
            InputUri::ImageSequence {
                pattern: "clip/%05d.png".into()
            }
        );
        assert_eq!(
            InputUri::parse("file:///a/b.WAV").unwrap(),
            InputUri::Wav {
                path: "/a/b.WAV".into()
            }
        );
        assert_eq!(
            InputUri::parse("x.mp4").unwrap(),
            InputUri::Container {
                path: "x.mp4".into()
            }
        );
        assert_eq!(
            InputUri::parse("/dev/video0").unwrap(),
            InputUri::V4l2 {
                device: "/dev/video0".into()
            }
        );
        assert!(InputUri::parse("alsa://hw:1,0").unwrap().is_live());
        assert!(InputUri::parse("rtsp://host/x").is_err());
        assert!(InputUri::parse("file://notes.txt").is_err());
        assert!(InputUri::parse("file://a/%d_%d.png").is_err());
        assert!(InputUri::parse("file://").is_err());
    }

    #[test]
    fn expands_patterns() {
        let f = printf_field("d/%05d.png").unwrap().unwrap();
        assert_eq!(expand_pattern("d/%05d.png", f, 7), "d/00007.png");
        let p = "100%%/f_%d.png";
        let f = printf_field(p).unwrap().unwrap();
        assert_eq!(expand_pattern(p, f, 12), "100%/f_12.png");
        assert_eq!(printf_field("plain.png").unwrap(), None);
    }
}
