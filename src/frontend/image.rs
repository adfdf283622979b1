//! Frame front end: RGB `u8` image → resize to `size × size` → `f32` CHW, ImageNet-normalised.
//!
//! Matches the AVSBench loader (docs/avsbench.md §3): PIL RGB → `ToTensor` (÷ 255) →
//! `Normalize(mean, std)`. AVSBench frames are already 224 × 224, in which case no resampling
//! happens; other sizes are resized with the `image` crate's bilinear (`Triangle`) filter (not
//! bit-identical to OpenCV).

use std::path::Path;

use ::image::imageops::{self, FilterType};
use ::image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};
use ndarray::{Array3, ArrayViewMut3};

pub use super::limits::{check_pixels, max_alloc_bytes, pixels, TooManyPixels, DEFAULT_MAX_PIXELS};

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
    /// The image's header declares more pixels than the limit; nothing was allocated for it.
    #[error("{path}: {source}")]
    TooLarge {
        /// The file.
        path: std::path::PathBuf,
        /// Declared size and the limit.
        #[source]
        source: TooManyPixels,
    },
    /// The file is larger than any frame within the limit can be ([`max_alloc_bytes`]); it was
    /// not read (a JPEG decoder reads the whole file first).
    #[error(
        "{path}: {bytes} bytes, more than the {max} a frame within [input] max_pixels may take"
    )]
    FileTooLarge {
        /// The file.
        path: std::path::PathBuf,
        /// Its size.
        bytes: u64,
        /// The largest accepted size: `max_pixels` × 8 bytes.
        max: u64,
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

/// Reads an image file as RGB8 (grey, alpha and 16-bit inputs are converted), at most
/// [`DEFAULT_MAX_PIXELS`] pixels ([`read_rgb_limited`]).
pub fn read_rgb(path: &Path) -> Result<RgbImage, ImageError> {
    read_rgb_limited(path, DEFAULT_MAX_PIXELS)
}

/// Reads an image file as RGB8, refusing one whose header declares more than `max_pixels`
/// pixels ([`ImageError::TooLarge`]) before its pixel buffer is allocated, and a file larger
/// than [`max_alloc_bytes`]`(max_pixels)` ([`ImageError::FileTooLarge`]) before it is read. The
/// format is found from the content (not the extension); the decoder's allocations are bounded
/// by [`max_alloc_bytes`]`(max_pixels)` (the image crate's `Limits`), and a header is read with
/// the image crate's default limits.
pub fn read_rgb_limited(path: &Path, max_pixels: u64) -> Result<RgbImage, ImageError> {
    let read = |source| ImageError::Read {
        path: path.to_path_buf(),
        source,
    };
    let io = |e| read(::image::ImageError::IoError(e));
    let file = std::fs::File::open(path).map_err(io)?;
    let bytes = file.metadata().map_err(io)?.len();
    let max = max_alloc_bytes(max_pixels);
    if bytes > max {
        return Err(ImageError::FileTooLarge {
            path: path.to_path_buf(),
            bytes,
            max,
        });
    }
    let reader = ImageReader::new(std::io::BufReader::new(file))
        .with_guessed_format()
        .map_err(io)?;
    let mut decoder = reader.into_decoder().map_err(read)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, max_pixels).map_err(|source| ImageError::TooLarge {
        path: path.to_path_buf(),
        source,
    })?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(max);
    limits.reserve(decoder.total_bytes()).map_err(read)?;
    decoder.set_limits(limits).map_err(read)?;
    let img = DynamicImage::from_decoder(decoder).map_err(read)?;
    Ok(match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
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
    fn header_over_the_limit_is_refused_naming_file_and_size() {
        let dir = std::env::temp_dir().join(format!("c3n-image-limit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("00003.png");
        RgbImage::from_pixel(40, 30, ::image::Rgb([1, 2, 3]))
            .save(&p)
            .unwrap();
        // exactly at the limit: decoded
        assert_eq!(read_rgb_limited(&p, 1200).unwrap().dimensions(), (40, 30));
        // one pixel over: refused, naming the file and both sizes
        let e = read_rgb_limited(&p, 1199).unwrap_err();
        assert!(matches!(e, ImageError::TooLarge { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.ends_with("00003.png: 40×30 pixels, over [input] max_pixels 1199"),
            "{msg}"
        );
        // a file that is not PNG by name is still decoded by content
        let q = dir.join("frame.dat");
        std::fs::copy(&p, &q).unwrap();
        assert_eq!(read_rgb(&q).unwrap().dimensions(), (40, 30));
        // a file larger than 8 bytes per allowed pixel is not read at all
        let len = std::fs::metadata(&p).unwrap().len();
        let e = read_rgb_limited(&p, len / 8 - 1).unwrap_err();
        assert!(matches!(e, ImageError::FileTooLarge { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains(&format!("{len} bytes, more than the")),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = ImageNorm::default()
            .load(Path::new("/nonexistent/x.png"))
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.png"));
    }
}
