//! Image-sequence video source: `file://DIR/%05d.png` (PNG or JPEG files), numbered from 0 or 1,
//! read until the first missing index. Frame `k` (0-based from the first file) gets the
//! timestamp `round(k · 1000 / rate)` ms.
//!
//! An input that ends early says so: a gap in the numbering with later files present, or an
//! entry that is not a regular file (a FIFO, a directory), ends the sequence with a warning that
//! names the frame; a sequence that starts at another number is refused naming its first file.
//!
//! A frame that cannot be decoded, or whose size differs from the first frame's, is an error
//! ([`SourceError::is_bad_frame`]) after which the sequence goes on with the next file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::warn;

use super::{SourceError, VideoFrame, VideoSource};
use crate::frontend::image::{read_rgb_limited, DEFAULT_MAX_PIXELS};
use crate::uri::{expand_pattern, printf_field, PrintfField};

/// Frames of a numbered image sequence.
#[derive(Debug)]
pub struct ImageSequence {
    pattern: String,
    field: PrintfField,
    first: u64,
    next: u64,
    rate_hz: f64,
    max_pixels: u64,
    /// Size of the first frame decoded; a frame of another size is a bad frame.
    size: Option<(u32, u32)>,
}

impl ImageSequence {
    /// Opens `pattern` (one `%d`/`%0Nd` field); the first file must exist at index 0 or 1.
    /// `rate_hz` ([`check_rate`]) is the frame rate that assigns the timestamps.
    pub fn open(pattern: &str, rate_hz: f64) -> Result<Self, SourceError> {
        let uri = format!("file://{pattern}");
        let field = printf_field(pattern)
            .map_err(|e| SourceError::Unusable {
                uri: uri.clone(),
                reason: e.to_string(),
            })?
            .ok_or_else(|| SourceError::Unusable {
                uri: uri.clone(),
                reason: "no %d field in the pattern".into(),
            })?;
        if check_rate(rate_hz).is_err() {
            return Err(SourceError::Unusable {
                uri,
                reason: format!(
                    "--input-rate {rate_hz}: expected {MIN_RATE_HZ} to {MAX_RATE_HZ} fps"
                ),
            });
        }
        let path = |n| PathBuf::from(expand_pattern(pattern, field, n));
        let Some(first) = (0..=1).find(|&n| path(n).is_file()) else {
            let reason = match numbered_files(pattern, field).first() {
                Some(&(n, ref p)) => format!(
                    "no frame numbered 0 or 1 ({} or {}); the first file of the sequence is {} \
                     (number {n}): a sequence must start at 0 or 1",
                    path(0).display(),
                    path(1).display(),
                    p.display()
                ),
                None => format!(
                    "no file matches the pattern: {} does not exist (nor {})",
                    path(0).display(),
                    path(1).display()
                ),
            };
            return Err(SourceError::Unusable { uri, reason });
        };
        Ok(Self {
            pattern: pattern.to_string(),
            field,
            first,
            next: first,
            rate_hz,
            max_pixels: DEFAULT_MAX_PIXELS,
            size: None,
        })
    }

    /// Sets the largest frame decoded, in pixels (default [`DEFAULT_MAX_PIXELS`]): a file whose
    /// header declares more is refused (a [`SourceError::Image`] naming it and its size) without
    /// being decoded.
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    fn path(&self, n: u64) -> PathBuf {
        PathBuf::from(expand_pattern(&self.pattern, self.field, n))
    }

    /// Warns when the sequence ends at `path` (index `self.next`) although it goes on.
    fn warn_if_cut_short(&self, path: &Path) {
        let frame = self.next - self.first;
        if path.exists() {
            warn!(
                "input {}: {} is not a regular file (a FIFO or a directory?); the input ends \
                 at frame {frame} ({:.3} s)",
                self.name(),
                path.display(),
                frame as f64 / self.rate_hz
            );
            return;
        }
        let later: Vec<(u64, PathBuf)> = numbered_files(&self.pattern, self.field)
            .into_iter()
            .filter(|(n, _)| *n > self.next)
            .collect();
        if let Some((_, p)) = later.first() {
            warn!(
                "input {}: {} is missing, but {} later files exist (from {}); the input ends at \
                 frame {frame} ({:.3} s): fill the gap or renumber the files",
                self.name(),
                path.display(),
                later.len(),
                p.display(),
                frame as f64 / self.rate_hz
            );
        }
    }
}

/// Lowest `--input-rate` of an image sequence, in fps (one frame per 100 s).
pub const MIN_RATE_HZ: f64 = 0.01;
/// Highest `--input-rate` of an image sequence, in fps.
pub const MAX_RATE_HZ: f64 = 1000.0;

/// A frame rate outside [`MIN_RATE_HZ`]..=[`MAX_RATE_HZ`] (or NaN).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("{rate} fps is outside {} to {} fps", MIN_RATE_HZ, MAX_RATE_HZ)]
pub struct RateOutOfRange {
    /// The rate asked for, fps.
    pub rate: f64,
}

/// `rate_hz` if it is a frame rate an image sequence or a camera can have (the one check of
/// `--input-rate`, also used by `pipeline::RunOptions::validate`).
pub fn check_rate(rate_hz: f64) -> Result<f64, RateOutOfRange> {
    if (MIN_RATE_HZ..=MAX_RATE_HZ).contains(&rate_hz) {
        Ok(rate_hz)
    } else {
        Err(RateOutOfRange { rate: rate_hz })
    }
}

/// The files of the pattern's directory that match it, as (number, path), by number. Only when
/// the `%d` field is in the file name (not in a directory part); unreadable directories give
/// nothing.
fn numbered_files(pattern: &str, field: PrintfField) -> Vec<(u64, PathBuf)> {
    let (a, z) = field.range;
    let head = &pattern[..a];
    let (dir, prefix) = match head.rfind('/') {
        Some(i) => (&head[..=i], &head[i + 1..]),
        None => ("", head),
    };
    let suffix = &pattern[z..];
    if suffix.contains('/') || dir.contains('%') || prefix.contains('%') || suffix.contains('%') {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(if dir.is_empty() { "." } else { dir }) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((digits.parse().ok()?, PathBuf::from(format!("{dir}{name}"))))
        })
        .collect();
    found.sort();
    found
}

impl VideoSource for ImageSequence {
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        let path = self.path(self.next);
        if !Path::new(&path).is_file() {
            self.warn_if_cut_short(&path);
            return Ok(None);
        }
        // past this frame before decoding it: after a bad frame the next call reads the next one
        let k = self.next - self.first;
        self.next += 1;
        let image =
            read_rgb_limited(&path, self.max_pixels).map_err(|source| SourceError::Image {
                uri: self.name(),
                source,
            })?;
        let size = image.dimensions();
        match self.size {
            None => self.size = Some(size),
            Some(first) if first != size => {
                return Err(SourceError::BadFrame {
                    uri: self.name(),
                    frame: path.display().to_string(),
                    reason: format!(
                        "{}x{} pixels, but the sequence's first frame is {}x{}",
                        size.0, size.1, first.0, first.1
                    ),
                })
            }
            Some(_) => {}
        }
        Ok(Some(VideoFrame {
            pts_ms: (k as f64 * 1000.0 / self.rate_hz).round() as i64,
            image: Arc::new(image),
        }))
    }

    fn name(&self) -> String {
        format!("file://{}", self.pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(p: &str) -> PrintfField {
        printf_field(p).unwrap().unwrap()
    }

    #[test]
    fn reads_numbered_files_with_timestamps() {
        let dir = std::env::temp_dir().join(format!("c3n-frames-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 1..=3u8 {
            let img = image::RgbImage::from_pixel(8, 6, image::Rgb([i, 0, 0]));
            img.save(dir.join(format!("{i:05}.png"))).unwrap();
        }
        let pattern = format!("{}/%05d.png", dir.display());
        let mut s = ImageSequence::open(&pattern, 2.0).unwrap();
        let mut pts = vec![];
        while let Some(f) = s.next_frame().unwrap() {
            assert_eq!(f.image.dimensions(), (8, 6));
            pts.push(f.pts_ms);
        }
        assert_eq!(pts, vec![0, 500, 1000]);
        let missing = format!("{}/x%d.png", dir.display());
        let e = ImageSequence::open(&missing, 1.0).unwrap_err().to_string();
        assert!(e.contains("no file matches") && e.contains("x0.png"), "{e}");
        // a sequence starting at 2 names its first file
        let late = dir.join("late");
        std::fs::create_dir_all(&late).unwrap();
        std::fs::copy(dir.join("00001.png"), late.join("f_0002.png")).unwrap();
        let e = ImageSequence::open(&format!("{}/f_%04d.png", late.display()), 1.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("f_0002.png (number 2)"), "{e}");
        assert_eq!(
            numbered_files(&format!("{}/%05d.png", dir.display()), field(&pattern))
                .iter()
                .map(|f| f.0)
                .collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        for bad in [0.0, -1.0, 1e-9, f64::NAN, 1e6] {
            assert!(ImageSequence::open(&pattern, bad).is_err(), "rate {bad}");
        }
        std::fs::write(dir.join("00004.png"), b"not a png").unwrap();
        let mut s = ImageSequence::open(&pattern, 1.0).unwrap();
        for _ in 0..3 {
            s.next_frame().unwrap();
        }
        let e = s.next_frame().unwrap_err();
        assert!(
            e.is_bad_frame() && e.to_string().contains("00004.png"),
            "{e}"
        );
        // past the bad frame: the next file is read, and one of another size is a bad frame
        image::RgbImage::from_pixel(8, 6, image::Rgb([5, 0, 0]))
            .save(dir.join("00005.png"))
            .unwrap();
        image::RgbImage::from_pixel(6, 8, image::Rgb([6, 0, 0]))
            .save(dir.join("00006.png"))
            .unwrap();
        let f = s.next_frame().unwrap().unwrap();
        assert_eq!((f.pts_ms, f.image.get_pixel(0, 0)[0]), (4000, 5));
        let e = s.next_frame().unwrap_err();
        assert!(e.is_bad_frame(), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "input file://{pattern}: bad frame {}: 6x8 pixels, but the sequence's first \
                 frame is 8x6",
                dir.join("00006.png").display()
            )
        );
        assert!(s.next_frame().unwrap().is_none());
    }
}
