//! Latency statistics.

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
}
