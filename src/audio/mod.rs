//! Audio files: WAV decoding ([`wav`]), down-mix to mono, resampling (rubato).
//!
//! Sample scaling follows the AVSBench/VGGish reader (docs/avsbench.md §4): integer PCM is divided
//! by `2^(bits−1)` (int16 ÷ 32768), float PCM is taken as is; channels are averaged.

pub mod wav;

use std::io::Read;
use std::path::{Path, PathBuf};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use self::wav::WavError;

/// Errors while reading or converting audio. File errors name the file.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or read, or is not a regular file.
    #[error("cannot read WAV {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a WAV file this runtime can use (the message says what is wrong).
    #[error("cannot read WAV {path}: {source}")]
    Wav {
        /// File.
        path: PathBuf,
        /// What is wrong with its bytes.
        #[source]
        source: WavError,
    },
    /// The file is larger than [`MAX_WAV_BYTES`]; nothing of it was read.
    #[error(
        "cannot read WAV {path}: {bytes} bytes, more than the {max} a WAV file may have; split \
         it into shorter files"
    )]
    TooLarge {
        /// File.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// [`MAX_WAV_BYTES`].
        max: u64,
    },
    /// Resampler construction or processing failed.
    #[error("cannot resample {from_hz} Hz -> {to_hz} Hz: {reason}")]
    Resample {
        /// Input rate (Hz).
        from_hz: u32,
        /// Output rate (Hz).
        to_hz: u32,
        /// Resampler message.
        reason: String,
    },
}

/// Largest WAV file read, in bytes: 1 GiB (97 min of 48 kHz 16-bit stereo, 9.3 h of 16 kHz
/// 16-bit mono), checked from the file's size before it is read. The decoded samples are
/// bounded separately by [`wav::MAX_FRAMES`].
pub const MAX_WAV_BYTES: u64 = 1 << 30;

/// Mono audio, samples full scale ±1.
#[derive(Debug, Clone, PartialEq)]
pub struct MonoAudio {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Samples (`f64`, mean over the source channels).
    pub samples: Vec<f64>,
}

/// Reads a WAV file (8/16/24/32-bit integer PCM, 32/64-bit float; [`wav`]) and
/// down-mixes it to mono. Only a regular file of at most [`MAX_WAV_BYTES`] is read, and no more
/// bytes than it holds; what the
/// reader noticed (a cut-short data chunk, NaN samples, no samples at all) is logged as a
/// warning naming the file.
pub fn read_wav_mono(path: &Path) -> Result<MonoAudio, AudioError> {
    let io = |source| AudioError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::other(
            "not a regular file (a directory, FIFO or device cannot be read as a WAV file)",
        )));
    }
    if meta.len() > MAX_WAV_BYTES {
        return Err(AudioError::TooLarge {
            path: path.to_path_buf(),
            bytes: meta.len(),
            max: MAX_WAV_BYTES,
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(meta.len()).read_to_end(&mut bytes))
        .map_err(io)?;
    let d = wav::decode(&bytes).map_err(|source| AudioError::Wav {
        path: path.to_path_buf(),
        source,
    })?;
    for note in &d.notes {
        tracing::warn!("WAV {}: {note}", path.display());
    }
    let rate = f64::from(d.format.sample_rate);
    if d.samples.is_empty() {
        tracing::warn!(
            "WAV {}: no samples at all; the audio is analysed as silence",
            path.display()
        );
    } else if d.samples.len() < d.format.sample_rate as usize {
        tracing::warn!(
            "WAV {}: only {:.3} s of audio; the rest is analysed as silence",
            path.display(),
            d.samples.len() as f64 / rate
        );
    }
    Ok(MonoAudio {
        sample_rate: d.format.sample_rate,
        samples: d.samples,
    })
}

/// Resamples mono audio from `from_hz` to `to_hz` with rubato's synchronous FFT resampler
/// (band-limited; the resampler's start-up delay is trimmed, leaving a sub-sample offset of
/// about half an input sample — 11 µs at 44.1 kHz; the output has `ceil(n · to_hz / from_hz)` samples). Returns the input unchanged when the rates match.
pub fn resample(samples: &[f64], from_hz: u32, to_hz: u32) -> Result<Vec<f64>, AudioError> {
    if from_hz == to_hz || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let err = |reason: String| AudioError::Resample {
        from_hz,
        to_hz,
        reason,
    };
    // the resampler's FFT sizes grow with the rates' ratio: bound them (16 GiB at 2^31 Hz)
    let range = wav::MIN_SAMPLE_RATE..=wav::MAX_SAMPLE_RATE;
    if !range.contains(&from_hz) || !range.contains(&to_hz) {
        return Err(err(format!(
            "rates must be {} to {} Hz",
            range.start(),
            range.end()
        )));
    }
    let mut rs = Fft::<f64>::new(from_hz as usize, to_hz as usize, 1024, 1, FixedSync::Both)
        .map_err(|e| err(e.to_string()))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| err(e.to_string()))?;
    let out = rs
        .process_all(&input, samples.len(), None)
        .map_err(|e| err(e.to_string()))?;
    Ok(out.take_data())
}

/// Reads a WAV file, down-mixes to mono and resamples to `sample_rate` Hz.
pub fn load_mono(path: &Path, sample_rate: u32) -> Result<Vec<f64>, AudioError> {
    let a = read_wav_mono(path)?;
    resample(&a.samples, a.sample_rate, sample_rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("c3n-audio-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }

    fn write(path: &Path, spec: hound::WavSpec, frames: &[Vec<f64>]) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for f in frames {
            for &s in f {
                match spec.sample_format {
                    hound::SampleFormat::Float => w.write_sample(s as f32).unwrap(),
                    hound::SampleFormat::Int => {
                        let full = f64::from(1u32 << (spec.bits_per_sample - 1));
                        let v = (s * full).round().clamp(-full, full - 1.0) as i32;
                        w.write_sample(v).unwrap()
                    }
                }
            }
        }
        w.finalize().unwrap();
    }

    #[test]
    fn reads_all_formats_and_downmixes() {
        let frames = vec![vec![0.5, -0.25], vec![-1.0, 1.0], vec![0.25, 0.25]];
        for (fmt, bits) in [
            (hound::SampleFormat::Int, 16),
            (hound::SampleFormat::Int, 24),
            (hound::SampleFormat::Int, 32),
            (hound::SampleFormat::Float, 32),
        ] {
            let p = tmp(&format!("fmt_{bits}_{fmt:?}.wav"));
            let spec = hound::WavSpec {
                channels: 2,
                sample_rate: 22_050,
                bits_per_sample: bits,
                sample_format: fmt,
            };
            write(&p, spec, &frames);
            let a = read_wav_mono(&p).unwrap();
            assert_eq!(a.sample_rate, 22_050);
            assert_eq!(a.samples.len(), 3);
            for (got, want) in a.samples.iter().zip([0.125, 0.0, 0.25]) {
                assert!(
                    (got - want).abs() < 1e-4,
                    "{bits}-bit {fmt:?}: {got} vs {want}"
                );
            }
        }
        // int16 full-scale negative maps to exactly -1 (÷ 32768)
        let p = tmp("i16_min.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        write(&p, spec, &[vec![-1.0]]);
        assert_eq!(read_wav_mono(&p).unwrap().samples, vec![-1.0]);
    }

    #[test]
    fn malformed_wav_is_a_typed_error() {
        let p = tmp("bad_header.wav");
        std::fs::write(&p, b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00garbage").unwrap();
        let e = read_wav_mono(&p).unwrap_err();
        assert!(matches!(e, AudioError::Wav { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("bad_header.wav") && msg.contains("truncated"),
            "{msg}"
        );
        let e = read_wav_mono(Path::new("/nonexistent/a.wav")).unwrap_err();
        assert!(matches!(e, AudioError::Io { .. }));
        std::fs::write(&p, b"not a wav at all").unwrap();
        let msg = read_wav_mono(&p).unwrap_err().to_string();
        assert!(msg.contains("not a RIFF/WAVE file"), "{msg}");
        // a directory is refused before any read
        let msg = read_wav_mono(&std::env::temp_dir())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("not a regular file"), "{msg}");
    }

    fn dominant_freq(x: &[f64], sr: f64) -> f64 {
        // DFT scan 200 Hz .. 2 kHz in 1 Hz steps over the middle of the signal
        let mid = &x[x.len() / 4..3 * x.len() / 4];
        let mut best = (0.0, 0.0);
        for f in (200..2000).map(f64::from) {
            let (mut re, mut im) = (0.0, 0.0);
            for (n, &v) in mid.iter().enumerate() {
                let ph = 2.0 * std::f64::consts::PI * f * n as f64 / sr;
                re += v * ph.cos();
                im += v * ph.sin();
            }
            let p = re * re + im * im;
            if p > best.1 {
                best = (f, p);
            }
        }
        best.0
    }

    #[test]
    fn resampler_preserves_frequency_and_timing() {
        let sr_in = 44_100.0;
        let x: Vec<f64> = (0..44_100)
            .map(|n| 0.5 * (2.0 * std::f64::consts::PI * 440.0 * n as f64 / sr_in).sin())
            .collect();
        let y = resample(&x, 44_100, 16_000).unwrap();
        assert_eq!(y.len(), 16_000);
        assert!((dominant_freq(&y[..8000], 16_000.0) - 440.0).abs() <= 1.0);
        // amplitude and timing: least-squares fit of a 440 Hz sinusoid over the middle 0.75 s
        let (mut re, mut im) = (0.0, 0.0);
        for (n, v) in y.iter().enumerate().take(14_000).skip(2000) {
            let ph = 2.0 * std::f64::consts::PI * 440.0 * n as f64 / 16_000.0;
            re += v * ph.sin();
            im += v * ph.cos();
        }
        let amp = 2.0 * (re * re + im * im).sqrt() / 12_000.0;
        let delay = -im.atan2(re) / (2.0 * std::f64::consts::PI * 440.0 / 16_000.0);
        assert!((amp - 0.5).abs() < 5e-3, "amplitude {amp}");
        // start-up delay trimmed: residual offset below half an output sample (31 us)
        assert!(delay.abs() < 0.5, "delay {delay} samples");
        assert_eq!(resample(&x, 16_000, 16_000).unwrap(), x);
    }
}
