//! Frame front end: RGB `u8` image → resize to `size × size` → `f32` CHW, ImageNet-normalised.
//!
//! Matches the AVSBench loader (docs/avsbench.md §3): PIL RGB → `ToTensor` (÷ 255) →
//! `Normalize(mean, std)`. AVSBench frames are already 224 × 224, in which case no resampling
//! happens; other sizes are resized with the `image` crate's bilinear (`Triangle`) filter (not
//! bit-identical to OpenCV).

use std::path::Path;

use ::image::imageops::{self, FilterType};
use ::image::RgbImage;
use ndarray::{Array3, ArrayViewMut3};

/// Image normalisation parameters (ONNX keys `c3n.input_size`, `c3n.mean`, `c3n.std`).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageNorm {
    /// Square model input size in pixels (224).
    pub size: u32,
    /// Per-channel RGB mean on the 0–1 scale (ImageNet: 0.485, 0.456, 0.406).
    pub mean: [f32; 3],
    /// Per-channel RGB standard deviation on the 0–1 scale (ImageNet: 0.229, 0.224, 0.225).
    pub std: [f32; 3],
}

impl Default for ImageNorm {
    fn default() -> Self {
        Self {
            size: 224,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }
}

/// Errors of the frame front end.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image file could not be opened or decoded.
    #[error("cannot read image {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Decoder error.
        #[source]
        source: ::image::ImageError,
    },
}

impl ImageNorm {
    /// Normalises `img` into a new `f32 [3, size, size]` array (RGB planes, `(x/255 − mean) / std`).
    pub fn to_chw(&self, img: &RgbImage) -> Array3<f32> {
        let n = self.size as usize;
        let mut out = Array3::<f32>::zeros((3, n, n));
        self.write_chw(img, out.view_mut());
        out
    }

    /// Like [`ImageNorm::to_chw`], writing into `out` (`[3, size, size]`, e.g. one frame slot of a
    /// `[T,3,224,224]` model input). Panics if `out` has another shape (a programming error).
    pub fn write_chw(&self, img: &RgbImage, mut out: ArrayViewMut3<'_, f32>) {
        let n = self.size;
        assert_eq!(
            out.dim(),
            (3, n as usize, n as usize),
            "output view must be [3, size, size]"
        );
        let resized;
        let img = if img.dimensions() == (n, n) {
            img
        } else {
            resized = imageops::resize(img, n, n, FilterType::Triangle);
            &resized
        };
        for (x, y, px) in img.enumerate_pixels() {
            for c in 0..3 {
                out[[c, y as usize, x as usize]] =
                    (f32::from(px[c]) / 255.0 - self.mean[c]) / self.std[c];
            }
        }
    }

    /// Reads an image file (PNG/JPEG; any colour type is converted to RGB8) and normalises it.
    pub fn load(&self, path: &Path) -> Result<Array3<f32>, ImageError> {
        Ok(self.to_chw(&read_rgb(path)?))
    }
}

/// Reads an image file as RGB8 (grey, alpha and 16-bit inputs are converted).
pub fn read_rgb(path: &Path) -> Result<RgbImage, ImageError> {
    let img = ::image::open(path).map_err(|source| ImageError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(img.to_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_channels_in_chw_order() {
        let norm = ImageNorm {
            size: 2,
            ..Default::default()
        };
        let mut img = RgbImage::new(2, 2);
        img.put_pixel(1, 0, ::image::Rgb([255, 0, 128]));
        let a = norm.to_chw(&img);
        assert_eq!(a.dim(), (3, 2, 2));
        assert!((a[[0, 0, 1]] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((a[[1, 0, 1]] - (0.0 - 0.456) / 0.224).abs() < 1e-6);
        assert!((a[[2, 0, 1]] - (128.0 / 255.0 - 0.406) / 0.225).abs() < 1e-6);
        assert!((a[[0, 1, 0]] - (-0.485 / 0.229)).abs() < 1e-6);
    }

    #[test]
    fn resizes_to_square() {
        let norm = ImageNorm::default();
        let img = RgbImage::from_pixel(320, 240, ::image::Rgb([255, 255, 255]));
        let a = norm.to_chw(&img);
        assert_eq!(a.dim(), (3, 224, 224));
        assert!((a[[0, 100, 100]] - (1.0 - 0.485) / 0.229).abs() < 1e-5);
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = ImageNorm::default()
            .load(Path::new("/nonexistent/x.png"))
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.png"));
    }
}
