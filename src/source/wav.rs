//! WAV audio source: the whole file is read, down-mixed and resampled to the model rate at open
//! time ([`crate::audio::load_mono`]), then handed out in 100 ms blocks.

use std::path::Path;

use super::{block_at, AudioBlock, AudioSource, SourceError};
use crate::audio;

/// Block length handed out per [`AudioSource::next_block`] call, in ms.
pub const BLOCK_MS: u32 = 100;

/// A WAV file as an audio stream.
#[derive(Debug)]
pub struct WavSource {
    samples: Vec<f64>,
    sample_rate: u32,
    pos: usize,
}

impl WavSource {
    /// Reads `path` and resamples it to `sample_rate` Hz mono.
    /// Errors: [`SourceError::NotFound`], [`SourceError::Audio`] (bad header, unsupported format).
    pub fn open(path: &Path, sample_rate: u32) -> Result<Self, SourceError> {
        let uri = format!("file://{}", path.display());
        if !path.exists() {
            return Err(SourceError::NotFound {
                uri,
                path: path.to_path_buf(),
            });
        }
        let samples = audio::load_mono(path, sample_rate)
            .map_err(|source| SourceError::Audio { uri, source })?;
        Ok(Self::from_samples(samples, sample_rate))
    }

    /// An audio stream over samples already at `sample_rate` Hz.
    pub fn from_samples(samples: Vec<f64>, sample_rate: u32) -> Self {
        Self {
            samples,
            sample_rate,
            pos: 0,
        }
    }
}

impl AudioSource for WavSource {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn next_block(&mut self) -> Result<Option<AudioBlock>, SourceError> {
        let block = (self.sample_rate * BLOCK_MS / 1000).max(1) as usize;
        let b = block_at(&self.samples, self.sample_rate, self.pos, block);
        self.pos += block;
        Ok(b)
    }
}
