//! [`StreamResampler`]: the file resampler ([`crate::audio::resample`]) fed block by block.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// Streaming version of [`crate::audio::resample`]: the same rubato FFT resampler fed chunk by
/// chunk, start-up delay trimmed.
pub struct StreamResampler {
    rs: Option<Fft<f64>>,
    pending: Vec<f64>,
    trim: usize,
    out: Vec<f64>,
}

impl StreamResampler {
    /// From `from_hz` to `to_hz` (pass-through when equal).
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, StreamResampleError> {
        if from_hz == to_hz {
            return Ok(Self {
                rs: None,
                pending: vec![],
                trim: 0,
                out: vec![],
            });
        }
        let rs = Fft::<f64>::new(from_hz as usize, to_hz as usize, 1024, 1, FixedSync::Both)
            .map_err(|error| StreamResampleError::Create {
                from_hz,
                to_hz,
                error,
            })?;
        let trim = rs.output_delay();
        let out = vec![0.0; rs.output_frames_max()];
        Ok(Self {
            rs: Some(rs),
            pending: vec![],
            trim,
            out,
        })
    }

    /// Feeds mono samples; returns the output samples completed so far.
    pub fn process(&mut self, input: &[f64]) -> Result<Vec<f64>, StreamResampleError> {
        let Some(rs) = self.rs.as_mut() else {
            return Ok(input.to_vec());
        };
        self.pending.extend_from_slice(input);
        let mut result = Vec::new();
        let mut used = 0;
        loop {
            let need = rs.input_frames_next();
            if self.pending.len() - used < need {
                break;
            }
            let chunk = &self.pending[used..used + need];
            let inp = InterleavedSlice::new(chunk, 1, need)?;
            let n_out = self.out.len();
            let mut outp = InterleavedSlice::new_mut(&mut self.out, 1, n_out)?;
            let (nin, nout) = rs.process_into_buffer(&inp, &mut outp, None)?;
            used += nin;
            let skip = self.trim.min(nout);
            self.trim -= skip;
            result.extend_from_slice(&self.out[skip..nout]);
        }
        self.pending.drain(..used);
        Ok(result)
    }
}

/// Errors of [`StreamResampler`].
#[derive(Debug, thiserror::Error)]
pub enum StreamResampleError {
    /// rubato cannot resample between these rates.
    #[error("resampler {from_hz} -> {to_hz} Hz: {error}")]
    Create {
        /// Input rate, Hz.
        from_hz: u32,
        /// Output rate, Hz.
        to_hz: u32,
        /// rubato's error.
        error: rubato::ResamplerConstructionError,
    },
    /// A chunk or output buffer of the wrong size (a bug).
    #[error("{0}")]
    Buffer(#[from] rubato::audioadapter_buffers::SizeError),
    /// rubato failed on a chunk.
    #[error("{0}")]
    Process(#[from] rubato::ResampleError),
}
