//! Frame size limit (`[input] max_pixels`): the largest frame, in pixels, that a source decodes.
//!
//! Checked against the size a header declares (PNG/JPEG header, a video stream's parameters, a
//! camera's MJPEG frame) before the pixel buffer is allocated, so a small file that declares a
//! huge image costs no memory. The arithmetic is in `u64` (no overflow for any `u32` size).

/// Default `[input] max_pixels`: 4096 × 4096 = 16 777 216 pixels (a 4K UHD frame is 8.3 Mpx).
pub const DEFAULT_MAX_PIXELS: u64 = 4096 * 4096;

/// Most bytes one pixel takes in a decoder's output (RGBA, 16 bits per channel); the decoder's
/// allocation limit is `max_pixels` times this.
pub const MAX_BYTES_PER_PIXEL: u64 = 8;

/// A frame larger than the limit: its declared size and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{width}×{height} pixels, over [input] max_pixels {max_pixels}{}", side_hint(*max_pixels))]
pub struct TooManyPixels {
    /// Declared width.
    pub width: u32,
    /// Declared height.
    pub height: u32,
    /// The limit, pixels.
    pub max_pixels: u64,
}

/// ` (N×N)` when the limit is a square number, else nothing.
fn side_hint(max_pixels: u64) -> String {
    let side = (max_pixels as f64).sqrt().round() as u64;
    if side.checked_mul(side) == Some(max_pixels) {
        format!(" ({side}×{side})")
    } else {
        String::new()
    }
}

/// `width × height` in `u64` (cannot overflow: at most (2³² − 1)²).
pub fn pixels(width: u32, height: u32) -> u64 {
    u64::from(width) * u64::from(height)
}

/// `Ok` when a `width × height` frame is at most `max_pixels`.
pub fn check_pixels(width: u32, height: u32, max_pixels: u64) -> Result<(), TooManyPixels> {
    if pixels(width, height) <= max_pixels {
        Ok(())
    } else {
        Err(TooManyPixels {
            width,
            height,
            max_pixels,
        })
    }
}

/// The decoder allocation limit for `max_pixels` ([`MAX_BYTES_PER_PIXEL`] per pixel, saturating).
pub fn max_alloc_bytes(max_pixels: u64) -> u64 {
    max_pixels.saturating_mul(MAX_BYTES_PER_PIXEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_arithmetic_is_overflow_safe() {
        assert_eq!(pixels(u32::MAX, u32::MAX), 18_446_744_065_119_617_025);
        assert!(check_pixels(u32::MAX, u32::MAX, u64::MAX - 1).is_ok());
        assert!(check_pixels(u32::MAX, 2, u64::from(u32::MAX)).is_err());
        // 65536 × 65536 overflows u32 (wraps to 0): must still be refused
        assert!(check_pixels(65536, 65536, DEFAULT_MAX_PIXELS).is_err());
        assert_eq!(max_alloc_bytes(u64::MAX), u64::MAX);
        assert_eq!(max_alloc_bytes(DEFAULT_MAX_PIXELS), 134_217_728);
    }

    #[test]
    fn limit_is_inclusive() {
        assert!(check_pixels(4096, 4096, DEFAULT_MAX_PIXELS).is_ok());
        assert!(check_pixels(4097, 4096, DEFAULT_MAX_PIXELS).is_err());
        assert!(check_pixels(1, 16_777_216, DEFAULT_MAX_PIXELS).is_ok());
        assert!(check_pixels(1, 16_777_217, DEFAULT_MAX_PIXELS).is_err());
        assert!(check_pixels(0, u32::MAX, 0).is_ok());
    }

    #[test]
    fn message_names_size_and_limit() {
        let e = check_pixels(13000, 13000, DEFAULT_MAX_PIXELS).unwrap_err();
        assert_eq!(
            e.to_string(),
            "13000×13000 pixels, over [input] max_pixels 16777216 (4096×4096)"
        );
        let e = check_pixels(3, 1, 2).unwrap_err();
        assert_eq!(e.to_string(), "3×1 pixels, over [input] max_pixels 2");
    }
}
