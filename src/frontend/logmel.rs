//! Log-mel audio front end: 16 kHz mono waveform → YAMNet-style log-mel patches.
//!
//! Port of the Python reference `models/c3n/model/frontend.py` (the spec; parity ≤ 1e-4 max abs diff is
//! checked by `tests/frontend_parity.rs`). All arithmetic is in `f64` like the reference; results
//! are rounded to `f32` at the end. Parameters come from the ONNX metadata (`c3n.frontend.*`, see
//! [`crate::engine::model::ModelContract`]).
//!
//! Pipeline per STFT frame: 400-sample (25 ms) **periodic** Hann window, 160-sample (10 ms) hop,
//! zero-padded 512-point FFT (no centring, incomplete trailing frames dropped), magnitude
//! `|rfft|` (257 bins), 64 HTK-mel triangles 125–7500 Hz built in the mel domain (DC row zeroed,
//! no area normalisation), `ln(mel + 0.001)` (VGGish: `ln(mel + 0.01)`).
//!
//! Patch placement ([`PatchPlacement`], metadata `c3n.frontend.patch_placement`): the patch of
//! video-frame slot `i` starts at the slot's start (`slot`, the default and the edge model), or
//! at STFT frame `96·i` (`examples`: VGGish examples back to back from the clip start, as the
//! official `vggish_input.wavfile_to_examples` frames them, docs/avsbench.md §4).
//!
//! Models that take the waveform itself (`c3n.audio_input = waveform`, PANNs / BEATs,
//! [`AudioInput::Waveform`]) get one 1-s window per slot instead ([`LogMel::clip_input`]).

use std::sync::Arc;

use ndarray::{s, Array2, Array4};
use realfft::{RealFftPlanner, RealToComplex};

use crate::audio::wav::{MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};

/// Where the log-mel patch of video-frame slot `i` starts (`c3n.frontend.patch_placement`;
/// `models/c3n/model/frontend.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PatchPlacement {
    /// `"slot"` (default, also when the key is absent): STFT frame `round(i·slot_s·sr/hop)`.
    #[default]
    Slot,
    /// `"examples"`: STFT frame `i·patch_frames` (VGGish examples, 0.96 s back to back).
    Examples,
}

impl std::str::FromStr for PatchPlacement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "slot" => Ok(Self::Slot),
            "examples" => Ok(Self::Examples),
            o => Err(format!("expected \"slot\" or \"examples\", got {o:?}")),
        }
    }
}

impl std::fmt::Display for PatchPlacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Slot => "slot",
            Self::Examples => "examples",
        })
    }
}

/// The model's audio input (`c3n.audio_input`, schema 3; schema 2 is always `logmel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioInput {
    /// `"logmel"`: input `audio_logmel [T,1,patch_frames,mel_bands]`.
    #[default]
    Logmel,
    /// `"waveform"`: input `audio_waveform [T,sample_rate]`, one 1-s window of the 16 kHz mono
    /// waveform per frame slot, starting at the slot (PANNs, BEATs).
    Waveform,
}

impl std::str::FromStr for AudioInput {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "logmel" => Ok(Self::Logmel),
            "waveform" => Ok(Self::Waveform),
            o => Err(format!("expected \"logmel\" or \"waveform\", got {o:?}")),
        }
    }
}

impl std::fmt::Display for AudioInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Logmel => "logmel",
            Self::Waveform => "waveform",
        })
    }
}

/// Front-end parameters (`models/c3n/model/frontend.py::FrontendParams`; ONNX keys `c3n.frontend.*`,
/// and `c3n.audio_input` for [`FrontendParams::audio_input`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FrontendParams {
    /// Input sample rate in Hz (16000).
    pub sample_rate: u32,
    /// Analysis window length in samples (400 = 25 ms).
    pub window_samples: usize,
    /// Hop between STFT frames in samples (160 = 10 ms).
    pub hop_samples: usize,
    /// FFT length (512); the windowed frame is zero-padded to it.
    pub fft_size: usize,
    /// Number of mel bands (64).
    pub mel_bands: usize,
    /// Lower edge of the mel bank in Hz (125).
    pub mel_min_hz: f64,
    /// Upper edge of the mel bank in Hz (7500).
    pub mel_max_hz: f64,
    /// Offset added before the natural log (0.001).
    pub log_offset: f64,
    /// STFT frames per patch (96 = 0.975 s of audio).
    pub patch_frames: usize,
    /// Where each slot's patch starts ([`PatchPlacement`]).
    pub patch_placement: PatchPlacement,
    /// Log-mel patches or the waveform ([`AudioInput`]).
    pub audio_input: AudioInput,
}

impl Default for FrontendParams {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            window_samples: 400,
            hop_samples: 160,
            fft_size: 512,
            mel_bands: 64,
            mel_min_hz: 125.0,
            mel_max_hz: 7500.0,
            log_offset: 0.001,
            patch_frames: 96,
            patch_placement: PatchPlacement::Slot,
            audio_input: AudioInput::Logmel,
        }
    }
}

impl FrontendParams {
    /// Checks the internal consistency and the bounds of the parameters.
    ///
    /// Errors: the first [`FrontendParamsError`] found.
    pub fn validate(&self) -> Result<(), FrontendParamsError> {
        if self.sample_rate == 0 || self.window_samples == 0 || self.hop_samples == 0 {
            return Err(FrontendParamsError::ZeroFraming);
        }
        if self.fft_size < self.window_samples {
            return Err(FrontendParamsError::ShortFft {
                fft_size: self.fft_size,
                window_samples: self.window_samples,
            });
        }
        if self.mel_bands == 0 || self.patch_frames == 0 {
            return Err(FrontendParamsError::ZeroBands);
        }
        // buffers are sized from these: bound them (YAMNet: 16 kHz, 400/160/512, 64 x 96)
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&self.sample_rate)
            || self.fft_size > 1 << 20
            || self.hop_samples > 1 << 20
            || self.mel_bands > 4096
            || self.patch_frames > 100_000
        {
            return Err(FrontendParamsError::OutOfRange(self.clone()));
        }
        let nyquist = f64::from(self.sample_rate) / 2.0;
        if !(self.mel_min_hz >= 0.0
            && self.mel_min_hz < self.mel_max_hz
            && self.mel_max_hz <= nyquist)
        {
            return Err(FrontendParamsError::MelRange {
                min_hz: self.mel_min_hz,
                max_hz: self.mel_max_hz,
                nyquist,
            });
        }
        if self.log_offset.is_nan() || self.log_offset <= 0.0 {
            return Err(FrontendParamsError::LogOffset(self.log_offset));
        }
        Ok(())
    }
}

/// Inconsistent or out-of-range [`FrontendParams`] ([`FrontendParams::validate`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrontendParamsError {
    /// A zero sample rate, window or hop.
    #[error("sample_rate, window_samples and hop_samples must be > 0")]
    ZeroFraming,
    /// The FFT is shorter than the window.
    #[error("fft_size {fft_size} is shorter than window_samples {window_samples}")]
    ShortFft {
        /// `fft_size`.
        fft_size: usize,
        /// `window_samples`.
        window_samples: usize,
    },
    /// Zero mel bands or patch frames.
    #[error("mel_bands and patch_frames must be > 0")]
    ZeroBands,
    /// A value past the bounds buffers are sized by (the parameters as given).
    #[error(
        "out of range: sample_rate {} Hz ({MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE}), fft_size {} and \
         hop_samples {} (<= 2^20), mel_bands {} (<= 4096), patch_frames {} (<= 100000)",
        .0.sample_rate, .0.fft_size, .0.hop_samples, .0.mel_bands, .0.patch_frames
    )]
    OutOfRange(FrontendParams),
    /// The mel range is not `0 <= min < max <= Nyquist`.
    #[error("need 0 <= mel_min_hz ({min_hz}) < mel_max_hz ({max_hz}) <= Nyquist ({nyquist})")]
    MelRange {
        /// `mel_min_hz`.
        min_hz: f64,
        /// `mel_max_hz`.
        max_hz: f64,
        /// Half the sample rate.
        nyquist: f64,
    },
    /// `log_offset` not > 0.
    #[error("log_offset must be > 0, got {0}")]
    LogOffset(f64),
}

/// HTK mel scale: `1127 · ln(1 + f / 700)`.
pub fn hz_to_mel(f: f64) -> f64 {
    1127.0 * (f / 700.0).ln_1p()
}

/// `numpy.linspace(start, stop, n)` (endpoint included), computed as numpy does:
/// `start + i · step` with the last value set to `stop` exactly.
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (n - 1) as f64;
            let mut v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
            v[n - 1] = stop;
            v
        }
    }
}

/// Mel weight matrix, `f64 [fft_size/2 + 1, mel_bands]` (257 × 64 by default); `frontend.py::mel_matrix`.
pub fn mel_matrix(p: &FrontendParams) -> Array2<f64> {
    let n_bins = p.fft_size / 2 + 1;
    let bins_mel: Vec<f64> = linspace(0.0, f64::from(p.sample_rate) / 2.0, n_bins)
        .into_iter()
        .map(hz_to_mel)
        .collect();
    let edges = linspace(
        hz_to_mel(p.mel_min_hz),
        hz_to_mel(p.mel_max_hz),
        p.mel_bands + 2,
    );
    let mut w = Array2::<f64>::zeros((n_bins, p.mel_bands));
    for m in 0..p.mel_bands {
        let (lo, ce, hi) = (edges[m], edges[m + 1], edges[m + 2]);
        for (k, &b) in bins_mel.iter().enumerate() {
            let rising = (b - lo) / (ce - lo);
            let falling = (hi - b) / (hi - ce);
            w[[k, m]] = rising.min(falling).max(0.0);
        }
    }
    w.row_mut(0).fill(0.0);
    w
}

/// Periodic Hann window `0.5 − 0.5·cos(2πn/N)`, `n = 0..N`.
pub fn periodic_hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

/// Python `round()` semantics (ties to even) for the slot start frame.
fn py_round(x: f64) -> f64 {
    x.round_ties_even()
}

/// Precomputed log-mel analyser (window, mel matrix, FFT plan) for one [`FrontendParams`].
pub struct LogMel {
    params: FrontendParams,
    window: Vec<f64>,
    /// Transposed mel matrix `[mel_bands, n_bins]` (rows contiguous for the dot products).
    mel_t: Array2<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl LogMel {
    /// Builds the analyser.
    ///
    /// Errors: [`FrontendParamsError`] when `params` are inconsistent or out of range.
    pub fn new(params: FrontendParams) -> Result<Self, FrontendParamsError> {
        params.validate()?;
        let window = periodic_hann(params.window_samples);
        let mel_t = mel_matrix(&params).t().as_standard_layout().to_owned();
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(params.fft_size);
        Ok(Self {
            params,
            window,
            mel_t,
            fft,
        })
    }

    /// The parameters this analyser was built with.
    pub fn params(&self) -> &FrontendParams {
        &self.params
    }

    /// Number of STFT frames for `n_samples` samples: `1 + (n − window) / hop`, 0 if shorter than a window.
    pub fn n_frames(&self, n_samples: usize) -> usize {
        let p = &self.params;
        if n_samples < p.window_samples {
            0
        } else {
            1 + (n_samples - p.window_samples) / p.hop_samples
        }
    }

    /// Log-mel spectrogram of a mono waveform at `sample_rate`, full scale ±1.
    ///
    /// Returns `f32 [n_frames, mel_bands]` (see [`LogMel::n_frames`]); `frontend.py::log_mel`.
    pub fn log_mel(&self, wave: &[f64]) -> Array2<f32> {
        let p = &self.params;
        let n_frames = self.n_frames(wave.len());
        let n_bins = p.fft_size / 2 + 1;
        let mut out = Array2::<f32>::zeros((n_frames, p.mel_bands));
        let mut buf = self.fft.make_input_vec();
        let mut spec = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut mag = vec![0.0f64; n_bins];
        for t in 0..n_frames {
            let start = t * p.hop_samples;
            let frame = &wave[start..start + p.window_samples];
            buf.iter_mut().for_each(|x| *x = 0.0);
            for ((b, &x), &w) in buf.iter_mut().zip(frame).zip(&self.window) {
                *b = x * w;
            }
            // Lengths come from make_*_vec of the same plan, so this cannot fail.
            if self
                .fft
                .process_with_scratch(&mut buf, &mut spec, &mut scratch)
                .is_err()
            {
                unreachable!("realfft buffers sized by the plan itself");
            }
            for (m, c) in mag.iter_mut().zip(&spec) {
                *m = c.re.hypot(c.im);
            }
            for (m, row) in self.mel_t.rows().into_iter().enumerate() {
                let e: f64 = row.iter().zip(&mag).map(|(w, x)| w * x).sum();
                out[[t, m]] = (e + p.log_offset).ln() as f32;
            }
        }
        out
    }

    /// First STFT frame of the patch of video-frame slot `i` (slot length `slot_s` seconds):
    /// `round(i · slot_s · sample_rate / hop)`, ties to even as in Python
    /// ([`PatchPlacement::Slot`]), or `i · patch_frames` ([`PatchPlacement::Examples`]).
    pub fn slot_start_frame(&self, i: usize, slot_s: f64) -> usize {
        let p = &self.params;
        if p.patch_placement == PatchPlacement::Examples {
            return i.saturating_mul(p.patch_frames);
        }
        py_round(i as f64 * slot_s * f64::from(p.sample_rate) / p.hop_samples as f64).max(0.0)
            as usize
    }

    /// The model's audio input for `n_slots` slots, by [`FrontendParams::audio_input`]:
    /// [`LogMel::clip_patches`] (`[n_slots,1,patch_frames,mel_bands]`), or
    /// [`LogMel::clip_waveforms`] (`[n_slots,1,1,sample_rate]`; the engines feed it as the
    /// contract's `audio_waveform [T,sample_rate]`).
    pub fn clip_input(&self, wave: &[f64], n_slots: usize, slot_s: f64) -> Array4<f32> {
        match self.params.audio_input {
            AudioInput::Logmel => self.clip_patches(wave, n_slots, slot_s),
            AudioInput::Waveform => self.clip_waveforms(wave, n_slots, slot_s),
        }
    }

    /// One 1-s waveform window per slot: `f32 [n_slots, 1, 1, sample_rate]`, window `i` from
    /// sample `round(i · slot_s · sample_rate)` (ties to even), zero-padded past the end of `wave`.
    pub fn clip_waveforms(&self, wave: &[f64], n_slots: usize, slot_s: f64) -> Array4<f32> {
        let n = self.params.sample_rate as usize;
        let mut out = Array4::<f32>::zeros((n_slots, 1, 1, n));
        for i in 0..n_slots {
            let start =
                py_round(i as f64 * slot_s * f64::from(self.params.sample_rate)).max(0.0) as usize;
            let src = wave.get(start..).unwrap_or(&[]);
            for (o, &x) in out.slice_mut(s![i, 0, 0, ..]).iter_mut().zip(src) {
                *o = x as f32;
            }
        }
        out
    }

    /// One log-mel patch per video-frame slot: `f32 [n_slots, 1, patch_frames, mel_bands]`
    /// (`[5,1,96,64]` for an AVSBench clip); `frontend.py::clip_patches`.
    ///
    /// `wave` is the clip's mono audio at `sample_rate`, starting at the clip's first frame slot;
    /// slot `i` covers `[i·slot_s, (i+1)·slot_s)` s. The waveform is zero-padded at the end when
    /// the last patch would run past it. `n_slots == 0` gives an empty array.
    pub fn clip_patches(&self, wave: &[f64], n_slots: usize, slot_s: f64) -> Array4<f32> {
        let p = &self.params;
        let mut out = Array4::<f32>::zeros((n_slots, 1, p.patch_frames, p.mel_bands));
        if n_slots == 0 {
            return out;
        }
        let last_start = self.slot_start_frame(n_slots - 1, slot_s);
        let need = (last_start + p.patch_frames - 1) * p.hop_samples + p.window_samples;
        let mut padded: Vec<f64> = wave[..need.min(wave.len())].to_vec();
        padded.resize(need, 0.0);
        let lm = self.log_mel(&padded);
        for i in 0..n_slots {
            let s = self.slot_start_frame(i, slot_s);
            out.slice_mut(s![i, 0, .., ..])
                .assign(&lm.slice(s![s..s + p.patch_frames, ..]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_matrix_shape_and_dc_row() {
        let w = mel_matrix(&FrontendParams::default());
        assert_eq!(w.dim(), (257, 64));
        assert!(w.row(0).iter().all(|&x| x == 0.0));
        assert!(w.iter().all(|&x| (0.0..=1.0).contains(&x)));
        // every band has some weight
        assert!(w.columns().into_iter().all(|c| c.sum() > 0.0));
    }

    #[test]
    fn hann_is_periodic() {
        let h = periodic_hann(400);
        assert_eq!(h[0], 0.0);
        assert!((h[200] - 1.0).abs() < 1e-15);
        assert!((h[100] - h[300]).abs() < 1e-12);
    }

    #[test]
    fn shapes_and_padding() {
        let lm = LogMel::new(FrontendParams::default()).unwrap();
        assert_eq!(lm.n_frames(399), 0);
        assert_eq!(lm.n_frames(400), 1);
        assert_eq!(lm.n_frames(16_000), 98);
        assert_eq!(lm.log_mel(&[0.0; 100]).dim(), (0, 64));
        // silence: ln(0 + 0.001) everywhere, including the zero-padded tail
        let p = lm.clip_patches(&[0.0; 1000], 5, 1.0);
        assert_eq!(p.dim(), (5, 1, 96, 64));
        let want = (0.001f64).ln() as f32;
        assert!(p.iter().all(|&x| x == want));
        assert_eq!(lm.slot_start_frame(4, 1.0), 400);
        // 0.5 ties to even like Python's round(): 0.125 s * 16000 / 160 = 12.5 -> 12
        assert_eq!(lm.slot_start_frame(1, 0.125), 12);
        assert_eq!(lm.slot_start_frame(3, 0.125), 38); // 37.5 -> 38
    }

    #[test]
    fn sine_peaks_in_the_right_band() {
        let lm = LogMel::new(FrontendParams::default()).unwrap();
        let wave: Vec<f64> = (0..16_000)
            .map(|n| (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 16_000.0).sin())
            .collect();
        let m = lm.log_mel(&wave);
        let row = m.row(10);
        let argmax = row
            .iter()
            .enumerate()
            .fold(0, |b, (i, &x)| if x > row[b] { i } else { b });
        // band whose centre is nearest to 1 kHz
        let edges = linspace(hz_to_mel(125.0), hz_to_mel(7500.0), 66);
        let target = hz_to_mel(1000.0);
        let nearest = (0..64)
            .min_by(|&a, &b| {
                (edges[a + 1] - target)
                    .abs()
                    .total_cmp(&(edges[b + 1] - target).abs())
            })
            .unwrap();
        assert!(
            (argmax as i64 - nearest as i64).abs() <= 1,
            "argmax {argmax} nearest {nearest}"
        );
    }

    #[test]
    fn examples_placement_and_waveform_windows() {
        let lm = LogMel::new(FrontendParams {
            log_offset: 0.01,
            patch_placement: PatchPlacement::Examples,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(lm.slot_start_frame(4, 1.0), 384);
        assert_eq!(lm.slot_start_frame(4, 0.5), 384); // the slot length does not move examples
        let wave: Vec<f64> = (0..80_000)
            .map(|n| ((n % 97) as f64 - 48.0) / 60.0)
            .collect();
        let all = lm.log_mel(&wave);
        let p = lm.clip_patches(&wave, 5, 1.0);
        for i in 0..5 {
            assert_eq!(
                p.slice(s![i, 0, .., ..]),
                all.slice(s![96 * i..96 * i + 96, ..])
            );
        }
        let w = LogMel::new(FrontendParams {
            audio_input: AudioInput::Waveform,
            ..Default::default()
        })
        .unwrap();
        let x = w.clip_input(&wave[..40_000], 3, 1.0);
        assert_eq!(x.dim(), (3, 1, 1, 16_000));
        assert_eq!(x[[1, 0, 0, 5]], wave[16_005] as f32);
        assert_eq!(x[[2, 0, 0, 7_999]], wave[39_999] as f32);
        assert_eq!(x[[2, 0, 0, 8_000]], 0.0); // zero-padded tail
        assert_eq!("examples".parse(), Ok(PatchPlacement::Examples));
        assert!("centre".parse::<PatchPlacement>().is_err());
        assert_eq!("waveform".parse(), Ok(AudioInput::Waveform));
    }

    #[test]
    fn rejects_bad_params() {
        let p = FrontendParams {
            fft_size: 256,
            ..Default::default()
        };
        assert!(LogMel::new(p).is_err());
        let p = FrontendParams {
            mel_max_hz: 9000.0,
            ..Default::default()
        };
        assert!(LogMel::new(p).is_err());
    }
}
