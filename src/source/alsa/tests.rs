use super::capture::{RawSamples, SampleFormat};
use super::resample::StreamResampler;

#[test]
fn stream_resampler_matches_the_file_resampler() {
    let x: Vec<f64> = (0..48_000)
        .map(|n| (n as f64 * 0.013).sin() * 0.4 + (n as f64 * 0.0007).cos() * 0.2)
        .collect();
    let whole = crate::audio::resample(&x, 48_000, 16_000).unwrap();
    let mut s = StreamResampler::new(48_000, 16_000).unwrap();
    let mut streamed = Vec::new();
    for block in x.chunks(960) {
        streamed.extend(s.process(block).unwrap());
    }
    assert!(streamed.len() > 15_000, "{}", streamed.len());
    let max = streamed
        .iter()
        .zip(&whole)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(max < 1e-12, "max diff {max}");
    let mut same = StreamResampler::new(16_000, 16_000).unwrap();
    assert_eq!(same.process(&x[..10]).unwrap(), x[..10].to_vec());
}

#[test]
fn raw_scaling_matches_the_wav_reader() {
    assert_eq!(
        RawSamples::S16(vec![-32768, 16384]).to_f64(),
        vec![-1.0, 0.5]
    );
    assert_eq!(RawSamples::S32(vec![i32::MIN]).to_f64(), vec![-1.0]);
    assert_eq!(RawSamples::Float(vec![0.25]).to_f64(), vec![0.25]);
    assert_eq!(SampleFormat::parse("S32_LE"), Some(SampleFormat::S32));
    assert_eq!(SampleFormat::parse("u8"), None);
}
