//! Latency statistics, and the first maximum of a score row.

use std::time::Duration;

/// Nearest-rank percentile (`q` in 0–1) of unsorted samples in ms; 0 when empty.
pub fn percentile_ms(samples: &[Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Index and value of the first maximum of `xs` (a row of logits, e.g. `audio_logits [N]`):
/// ties go to the lower index, as an argmax does; `(0, -inf)` for an empty row; NaN entries
/// are never chosen.
pub fn first_max<'a>(xs: impl IntoIterator<Item = &'a f32>) -> (usize, f32) {
    xs.into_iter()
        .copied()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, x)| if x > b.1 { (i, x) } else { b },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&v, 0.5), 10.0);
        assert_eq!(percentile_ms(&v, 0.95), 19.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn first_max_takes_the_first_of_equal_maxima_and_skips_nan() {
        assert_eq!(first_max(&[0.5, 2.0, f32::NAN, 2.0]), (1, 2.0));
        assert_eq!(first_max(&[f32::NAN, -1.0]), (1, -1.0));
        assert_eq!(first_max(&[]), (0, f32::NEG_INFINITY));
    }
}
