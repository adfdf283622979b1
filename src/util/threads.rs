//! The one bound on thread counts (`--threads`, `model.threads`, the engines' worker and
//! intra-op pools).

/// Upper bound for a thread count (guards rayon and ONNX Runtime against absurd values).
pub const MAX_THREADS: usize = 256;

/// A thread count outside `1..=`[`MAX_THREADS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("threads must be 1..={MAX_THREADS}, got {0}")]
pub struct ThreadCountError(pub usize);

/// `n` when it is in `1..=`[`MAX_THREADS`].
///
/// Errors: [`ThreadCountError`] for 0 or more than [`MAX_THREADS`].
pub fn check_threads(n: usize) -> Result<usize, ThreadCountError> {
    if (1..=MAX_THREADS).contains(&n) {
        Ok(n)
    } else {
        Err(ThreadCountError(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_are_bounded() {
        assert_eq!(check_threads(1), Ok(1));
        assert_eq!(check_threads(MAX_THREADS), Ok(MAX_THREADS));
        assert_eq!(check_threads(0), Err(ThreadCountError(0)));
        let e = check_threads(MAX_THREADS + 1).unwrap_err();
        assert_eq!(e.to_string(), "threads must be 1..=256, got 257");
    }
}
