//! An in-memory scene (`Input::Scene`): still images shown in turn, captured at a fixed frame
//! rate, with a mono waveform. `bench --onsets` builds one per run, a random silent lead-in
//! before a clip, to time sound onset → `new` event (issue 25).

use std::sync::Arc;

use image::RgbImage;

use super::wav::WavSource;
use super::{AudioSource, SourceError, VideoFrame, VideoSource};

/// A scene's opened video and audio.
pub type SceneSources = (Box<dyn VideoSource>, Box<dyn AudioSource>);

/// Images shown from given times, sampled at `fps`, and the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// `(from_ms, image)` in ascending time: each image is shown from its time until the next's.
    pub shots: Vec<(i64, Arc<RgbImage>)>,
    /// Frame rate of the "camera" in fps (> 0).
    pub fps: f64,
    /// Length in ms.
    pub length_ms: i64,
    /// Mono samples, full scale ±1.
    pub audio: Arc<Vec<f64>>,
    /// Sample rate of `audio` in Hz.
    pub sample_rate: u32,
}

impl Scene {
    /// Opens the scene's video and audio (the audio must be at `sample_rate` Hz).
    ///
    /// Errors: [`SourceError::Unusable`] for another sample rate, no image or a frame rate that
    /// is not a positive number.
    pub fn open(&self, sample_rate: u32) -> Result<SceneSources, SourceError> {
        let unusable = |reason: String| SourceError::Unusable {
            uri: "scene".into(),
            reason,
        };
        if self.sample_rate != sample_rate {
            return Err(unusable(format!(
                "audio at {} Hz, the model needs {sample_rate} Hz",
                self.sample_rate
            )));
        }
        if self.shots.is_empty() || !(self.fps.is_finite() && self.fps > 0.0) {
            return Err(unusable(
                "no image, or a frame rate that is not positive".into(),
            ));
        }
        Ok((
            Box::new(SceneVideo {
                scene: self.clone(),
                next: 0,
            }),
            Box::new(WavSource::from_samples(self.audio.to_vec(), sample_rate)),
        ))
    }
}

struct SceneVideo {
    scene: Scene,
    next: u64,
}

impl VideoSource for SceneVideo {
    fn next_frame(&mut self) -> Result<Option<VideoFrame>, SourceError> {
        let pts_ms = (self.next as f64 * 1000.0 / self.scene.fps).round() as i64;
        if pts_ms >= self.scene.length_ms {
            return Ok(None);
        }
        self.next += 1;
        let shot = self
            .scene
            .shots
            .partition_point(|(from, _)| *from <= pts_ms);
        let (_, image) = &self.scene.shots[shot.saturating_sub(1)];
        Ok(Some(VideoFrame {
            pts_ms,
            image: image.clone(),
        }))
    }

    fn name(&self) -> String {
        "scene".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shots_are_held_between_their_times() {
        let img = |v| Arc::new(RgbImage::from_pixel(2, 2, image::Rgb([v, v, v])));
        let scene = Scene {
            shots: vec![(0, img(1)), (1000, img(2))],
            fps: 4.0,
            length_ms: 2000,
            audio: Arc::new(vec![0.0; 32_000]),
            sample_rate: 16_000,
        };
        let (mut v, mut a) = scene.open(16_000).expect("open");
        let mut got = vec![];
        while let Some(f) = v.next_frame().expect("frame") {
            got.push((f.pts_ms, f.image.get_pixel(0, 0)[0]));
        }
        assert_eq!(
            got,
            vec![
                (0, 1),
                (250, 1),
                (500, 1),
                (750, 1),
                (1000, 2),
                (1250, 2),
                (1500, 2),
                (1750, 2)
            ]
        );
        let mut n = 0;
        while let Some(b) = a.next_block().expect("block") {
            n += b.samples.len();
        }
        assert_eq!(n, 32_000);
        assert!(scene.open(44_100).is_err());
    }
}
