//! Captured buffers to RGB8 ([`to_rgb`]): YUYV and NV12 (BT.601 limited range), MJPEG and
//! RGB24.

use image::{ImageDecoder, RgbImage};

use crate::frontend::image::{max_alloc_bytes, pixels};

use super::modes::PixelFormat;

fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// BT.601 limited-range YCbCr → RGB (integer, 8-bit fixed point as in libyuv).
#[inline]
fn yuv_px(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (i32::from(y) - 16) * 298;
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    [
        clamp((c + 409 * e + 128) >> 8),
        clamp((c - 100 * d - 208 * e + 128) >> 8),
        clamp((c + 516 * d + 128) >> 8),
    ]
}

/// Converts one captured buffer to RGB8. `stride` is the bytes per line of the (first) plane
/// (`bytesperline`; 0 = tightly packed). Errors name the problem (short buffer, bad JPEG).
pub fn to_rgb(
    fmt: PixelFormat,
    data: &[u8],
    width: u32,
    height: u32,
    stride: u32,
) -> Result<RgbImage, ConvertError> {
    let (w, h) = (width as usize, height as usize);
    let short = |need: usize| ConvertError::Short {
        fmt,
        width,
        height,
        len: data.len(),
        need,
    };
    match fmt {
        PixelFormat::Mjpeg => decode_mjpeg(data, width, height),
        PixelFormat::Yuyv => {
            let s = if stride == 0 { w * 2 } else { stride as usize };
            let need = s * (h.saturating_sub(1)) + w * 2;
            if data.len() < need || w % 2 != 0 {
                return Err(short(need));
            }
            let mut out = vec![0u8; w * h * 3];
            for (y, row) in out.chunks_exact_mut(w * 3).enumerate() {
                let src = &data[y * s..y * s + w * 2];
                for (px, q) in row.chunks_exact_mut(6).zip(src.chunks_exact(4)) {
                    px[..3].copy_from_slice(&yuv_px(q[0], q[1], q[3]));
                    px[3..].copy_from_slice(&yuv_px(q[2], q[1], q[3]));
                }
            }
            RgbImage::from_raw(width, height, out).ok_or_else(|| short(need))
        }
        PixelFormat::Nv12 => {
            let s = if stride == 0 { w } else { stride as usize };
            let uv0 = s * h;
            let need = uv0 + s * (h.div_ceil(2).saturating_sub(1)) + w.div_ceil(2) * 2;
            if data.len() < need {
                return Err(short(need));
            }
            let mut out = vec![0u8; w * h * 3];
            for (y, row) in out.chunks_exact_mut(w * 3).enumerate() {
                let yrow = &data[y * s..y * s + w];
                let uvrow = &data[uv0 + (y / 2) * s..];
                for (x, px) in row.chunks_exact_mut(3).enumerate() {
                    let (u, v) = (uvrow[(x / 2) * 2], uvrow[(x / 2) * 2 + 1]);
                    px.copy_from_slice(&yuv_px(yrow[x], u, v));
                }
            }
            RgbImage::from_raw(width, height, out).ok_or_else(|| short(need))
        }
        PixelFormat::Rgb24 => {
            let s = if stride == 0 { w * 3 } else { stride as usize };
            let need = s * (h.saturating_sub(1)) + w * 3;
            if data.len() < need {
                return Err(short(need));
            }
            let mut out = Vec::with_capacity(w * h * 3);
            for y in 0..h {
                out.extend_from_slice(&data[y * s..y * s + w * 3]);
            }
            RgbImage::from_raw(width, height, out).ok_or_else(|| short(need))
        }
    }
}

/// Decodes an MJPEG buffer whose header declares at most the negotiated `width × height`
/// pixels (checked before the pixel buffer is allocated; the decoder's allocations are bounded by
/// the image crate's `Limits` for that size).
fn decode_mjpeg(data: &[u8], width: u32, height: u32) -> Result<RgbImage, ConvertError> {
    let jpeg = |error| ConvertError::Jpeg {
        len: data.len(),
        error,
    };
    let mut decoder =
        image::ImageReader::with_format(std::io::Cursor::new(data), image::ImageFormat::Jpeg)
            .into_decoder()
            .map_err(jpeg)?;
    let (w, h) = decoder.dimensions();
    let negotiated = pixels(width, height);
    if pixels(w, h) > negotiated {
        return Err(ConvertError::JpegTooLarge {
            declared: (w, h),
            negotiated: (width, height),
        });
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(max_alloc_bytes(negotiated));
    decoder.set_limits(limits).map_err(jpeg)?;
    Ok(image::DynamicImage::from_decoder(decoder)
        .map_err(jpeg)?
        .to_rgb8())
}

/// A captured buffer that cannot be converted ([`to_rgb`]); the frame is dropped.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Fewer bytes than the format, size and stride need.
    #[error("{fmt:?} {width}x{height} frame has {len} bytes, needs {need}")]
    Short {
        /// Pixel format.
        fmt: PixelFormat,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes in the buffer.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// An MJPEG buffer that does not decode.
    #[error("MJPEG frame ({len} bytes): {error}")]
    Jpeg {
        /// Bytes in the buffer.
        len: usize,
        /// Decoder error.
        error: image::ImageError,
    },
    /// An MJPEG buffer whose header declares more pixels than the negotiated size.
    #[error(
        "MJPEG frame declares {}×{} pixels, more than the negotiated {}×{}",
        declared.0, declared.1, negotiated.0, negotiated.1
    )]
    JpegTooLarge {
        /// Width and height in the JPEG header.
        declared: (u32, u32),
        /// Width and height negotiated with the driver.
        negotiated: (u32, u32),
    },
}
