//! Image-sequence video source: `file://DIR/%05d.png` (PNG or JPEG files), numbered from 0 or 1,
//! read until the first missing index. Frame `k` (0-based from the first file) gets the
//! timestamp `round(k · 1000 / rate)` ms.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{SourceError, VideoFrame, VideoSource};
use crate::frontend::image::read_rgb;
use crate::uri::{expand_pattern, printf_field, PrintfField};

/// Frames of a numbered image sequence.
#[derive(Debug)]
pub struct ImageSequence {
    pattern: String,
    field: PrintfField,
    first: u64,
    next: u64,
    rate_hz: f64,
}

impl ImageSequence {
    /// Opens `pattern` (one `%d`/`%0Nd` field); the first file must exist at index 0 or 1.
    /// `rate_hz` (> 0) is the frame rate that assigns the timestamps.
    pub fn open(pattern: &str, rate_hz: f64) -> Result<Self, SourceError> {
        let uri = format!("file://{pattern}");
        let field = printf_field(pattern)
            .map_err(|reason| SourceError::Unusable {
                uri: uri.clone(),
                reason,
            })?
            .ok_or_else(|| SourceError::Unusable {
                uri: uri.clone(),
                reason: "no %d field in the pattern".into(),
            })?;
        if !(rate_hz.is_finite() && rate_hz > 0.0) {
            return Err(SourceError::Unusable {
                uri,
                reason: format!("--input-rate must be > 0 fps, got {rate_hz}"),
            });
        }
        let path = |n| PathBuf::from(expand_pattern(pattern, field, n));
        let first = (0..=1)
            .find(|&n| path(n).is_file())
            .ok_or_else(|| SourceError::NotFound {
                uri: uri.clone(),
                path: path(0),
            })?;
        Ok(Self {
            pattern: pattern.to_string(),
            field,
            first,
            next: first,
            rate_hz,
        })
    }

    fn path(&self, n: u64) -> PathBuf {
        PathBuf::from(expand_pattern(&self.pattern, self.field, n))
    }
}

impl VideoSource for ImageSequence {
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        let path = self.path(self.next);
        if !Path::new(&path).is_file() {
            return Ok(None);
        }
        let image = read_rgb(&path).map_err(|source| SourceError::Image {
            uri: self.name(),
            source,
        })?;
        let k = self.next - self.first;
        self.next += 1;
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
        assert!(matches!(
            ImageSequence::open(&missing, 1.0),
            Err(SourceError::NotFound { .. })
        ));
        std::fs::write(dir.join("00004.png"), b"not a png").unwrap();
        let mut s = ImageSequence::open(&pattern, 1.0).unwrap();
        for _ in 0..3 {
            s.next_frame().unwrap();
        }
        let e = s.next_frame().unwrap_err().to_string();
        assert!(e.contains("00004.png"), "{e}");
    }
}
