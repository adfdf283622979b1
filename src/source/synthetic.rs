//! Generated inputs for `bench` and tests: a moving bright disc on a gradient, and a tone.

use std::sync::Arc;

use image::{Rgb, RgbImage};

use super::wav::WavSource;
use super::AudioBlock;
use super::{AudioSource, SourceError, VideoFrame, VideoSource};

/// `n_frames` frames of `width × height` at `rate_hz` fps: a gradient with a white disc that
/// moves left to right.
#[derive(Debug)]
pub struct SyntheticVideo {
    width: u32,
    height: u32,
    rate_hz: f64,
    n_frames: u64,
    next: u64,
    /// The gradient without the disc, drawn once (`bench` measures the pipeline, not this
    /// generator: per frame only the disc's bounding box is painted over a copy).
    background: RgbImage,
}

impl SyntheticVideo {
    /// A new generator (`rate_hz` > 0).
    pub fn new(width: u32, height: u32, rate_hz: f64, n_frames: u64) -> Self {
        let (w, h) = (width.max(1), height.max(1));
        let background = RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 90])
        });
        Self {
            width: w,
            height: h,
            rate_hz,
            n_frames,
            next: 0,
            background,
        }
    }
}

impl VideoSource for SyntheticVideo {
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        if self.next >= self.n_frames {
            return Ok(None);
        }
        let k = self.next;
        self.next += 1;
        let (w, h) = (self.width, self.height);
        let cx = (k as f64 * 37.0) % f64::from(w);
        let cy = f64::from(h) / 2.0;
        let r = f64::from(w.min(h)) / 6.0;
        let mut img = self.background.clone();
        // the disc's bounding box, clamped to the image (pixels outside it are background)
        let x0 = (cx - r).floor().max(0.0) as u32;
        let x1 = ((cx + r).ceil() as u32).min(w - 1);
        let y0 = (cy - r).floor().max(0.0) as u32;
        let y1 = ((cy + r).ceil() as u32).min(h - 1);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (dx, dy) = (f64::from(x) - cx, f64::from(y) - cy);
                if dx * dx + dy * dy < r * r {
                    img.put_pixel(x, y, Rgb([250, 250, 250]));
                }
            }
        }
        Ok(Some(VideoFrame {
            pts_ms: (k as f64 * 1000.0 / self.rate_hz).round() as i64,
            image: Arc::new(img),
        }))
    }

    fn name(&self) -> String {
        format!(
            "synthetic://{}x{}@{}",
            self.width, self.height, self.rate_hz
        )
    }
}

/// `seconds` of a 440 Hz tone at 0.3 full scale, at `sample_rate` Hz.
#[derive(Debug)]
pub struct SyntheticAudio(WavSource);

impl SyntheticAudio {
    /// A new generator.
    pub fn new(sample_rate: u32, seconds: f64) -> Self {
        let n = (seconds * f64::from(sample_rate)).max(0.0) as usize;
        let sr = f64::from(sample_rate);
        let samples = (0..n)
            .map(|i| 0.3 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / sr).sin())
            .collect();
        Self(WavSource::from_samples(samples, sample_rate))
    }
}

impl AudioSource for SyntheticAudio {
    fn sample_rate(&self) -> u32 {
        self.0.sample_rate()
    }
    fn next_block(&mut self) -> Result<Option<AudioBlock>, SourceError> {
        self.0.next_block()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bounding-box drawing gives exactly the per-pixel definition (disc inside
    /// `dx² + dy² < r²`, gradient elsewhere), including a disc clipped by the left edge (frame 0).
    #[test]
    fn frames_match_the_per_pixel_definition() {
        let (w, h) = (61u32, 23u32);
        let mut src = SyntheticVideo::new(w, h, 25.0, 3);
        for k in 0..3u64 {
            let got = src.next_frame().unwrap().unwrap();
            let cx = (k as f64 * 37.0) % f64::from(w);
            let (cy, r) = (f64::from(h) / 2.0, f64::from(w.min(h)) / 6.0);
            let want = RgbImage::from_fn(w, h, |x, y| {
                let (dx, dy) = (f64::from(x) - cx, f64::from(y) - cy);
                if dx * dx + dy * dy < r * r {
                    Rgb([250, 250, 250])
                } else {
                    Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 90])
                }
            });
            assert_eq!(*got.image, want, "frame {k}");
            assert_eq!(got.pts_ms, (k as f64 * 40.0) as i64);
        }
        assert!(src.next_frame().unwrap().is_none());
    }
}
