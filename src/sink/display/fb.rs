//! `display://N`: the Linux framebuffer (`/dev/fbN`, Documentation/fb/api.rst); DRM/KMS cards
//! are in [`super::kms`].
//!
//! The geometry (size, bits per pixel, line length, red/green/blue bit fields) comes from the
//! driver (`FBIOGET_VSCREENINFO` / `FBIOGET_FSCREENINFO`, through the `framebuffer` crate) or is
//! given explicitly ([`FbGeometry::parse_mode`], `?mode=WxH:BPP`) — then the "device" may be a
//! plain file, which is how the tests check the pixel packing. The picture is drawn by the
//! [`Renderer`] straight into an [`FbCanvas`] (a [`DrawTarget`] in the framebuffer's own pixel
//! format) and written with one `pwrite` at the visible page (`yoffset` × line length).
//! Packed truecolour only (16, 24 or 32 bits per pixel, little-endian, e.g. RGB565, XRGB8888);
//! other visuals are refused with an error.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;

use super::DisplayError;
use crate::render::{Renderer, Scene};

/// One colour channel's position in a pixel: bit offset (from the least significant bit) and
/// length in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    /// Bit offset.
    pub offset: u32,
    /// Bits.
    pub length: u32,
}

/// A framebuffer geometry that cannot be used: a malformed `?mode=`, or a pixel layout this
/// module cannot write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    /// `?mode=` is not `WxH:16` or `WxH:32` (the text as given).
    #[error("mode {0:?}: expected WIDTHxHEIGHT:16 or WIDTHxHEIGHT:32")]
    Mode(String),
    /// Bits per pixel other than 16, 24 or 32.
    #[error("{0} bits per pixel is not supported (16, 24 or 32 only)")]
    BitsPerPixel(u32),
    /// Width or height 0.
    #[error("zero-sized framebuffer")]
    ZeroSize,
    /// Lines shorter than the visible width.
    #[error("line length {line_length} bytes is shorter than {width} pixels")]
    LineLength {
        /// Bytes per line.
        line_length: u32,
        /// Visible width, pixels.
        width: u32,
    },
    /// A colour channel outside the pixel or wider than 8 bits (not a truecolour visual).
    #[error(
        "colour bit field {channel:?} does not fit a {bits_per_pixel} bit pixel (not a truecolour \
         mode?)"
    )]
    BitField {
        /// The channel.
        channel: Channel,
        /// Bits per pixel.
        bits_per_pixel: u32,
    },
}

/// Framebuffer geometry and pixel layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FbGeometry {
    /// Visible width, pixels.
    pub width: u32,
    /// Visible height, pixels.
    pub height: u32,
    /// Bits per pixel (16, 24 or 32).
    pub bits_per_pixel: u32,
    /// Bytes per line (≥ width × bytes per pixel).
    pub line_length: u32,
    /// Visible page: first line (double buffering panning offset), lines.
    pub yoffset: u32,
    /// Red channel.
    pub red: Channel,
    /// Green channel.
    pub green: Channel,
    /// Blue channel.
    pub blue: Channel,
    /// Alpha/padding channel (set to all ones when present).
    pub transp: Channel,
}

impl FbGeometry {
    /// RGB565: 16 bits, red 11..16, green 5..11, blue 0..5, lines `width × 2` bytes.
    pub fn rgb565(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            bits_per_pixel: 16,
            line_length: width * 2,
            yoffset: 0,
            red: Channel {
                offset: 11,
                length: 5,
            },
            green: Channel {
                offset: 5,
                length: 6,
            },
            blue: Channel {
                offset: 0,
                length: 5,
            },
            transp: Channel {
                offset: 0,
                length: 0,
            },
        }
    }

    /// XRGB8888: 32 bits, blue in byte 0, green 1, red 2, byte 3 unused; lines `width × 4` bytes.
    pub fn xrgb8888(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            bits_per_pixel: 32,
            line_length: width * 4,
            yoffset: 0,
            red: Channel {
                offset: 16,
                length: 8,
            },
            green: Channel {
                offset: 8,
                length: 8,
            },
            blue: Channel {
                offset: 0,
                length: 8,
            },
            transp: Channel {
                offset: 24,
                length: 0,
            },
        }
    }

    /// Parses `WxH:16` (RGB565) or `WxH:32` (XRGB8888). Errors: [`GeometryError::Mode`].
    pub fn parse_mode(s: &str) -> Result<Self, GeometryError> {
        let err = || GeometryError::Mode(s.to_string());
        let (size, bpp) = s.split_once(':').ok_or_else(err)?;
        let (w, h) = size.split_once('x').ok_or_else(err)?;
        let (w, h): (u32, u32) = (w.parse().map_err(|_| err())?, h.parse().map_err(|_| err())?);
        if w == 0 || h == 0 || w > 16384 || h > 16384 {
            return Err(err());
        }
        match bpp {
            "16" => Ok(Self::rgb565(w, h)),
            "32" => Ok(Self::xrgb8888(w, h)),
            _ => Err(err()),
        }
    }

    /// Reads the geometry of an open framebuffer device from its driver.
    pub fn query(device: &File, path: &Path) -> Result<Self, DisplayError> {
        let fail = |e: framebuffer::FramebufferError| DisplayError::Output {
            what: path.display().to_string(),
            reason: format!(
                "not a framebuffer device ({}); for a plain file give the geometry with \
                 ?mode=WxH:16 or ?mode=WxH:32",
                e.details
            ),
        };
        let var = framebuffer::Framebuffer::get_var_screeninfo(device).map_err(fail)?;
        let fix = framebuffer::Framebuffer::get_fix_screeninfo(device).map_err(fail)?;
        let ch = |b: framebuffer::Bitfield| Channel {
            offset: b.offset,
            length: b.length,
        };
        let g = Self {
            width: var.xres,
            height: var.yres,
            bits_per_pixel: var.bits_per_pixel,
            line_length: fix.line_length,
            yoffset: var.yoffset,
            red: ch(var.red),
            green: ch(var.green),
            blue: ch(var.blue),
            transp: ch(var.transp),
        };
        g.validate().map_err(|e| DisplayError::Output {
            what: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(g)
    }

    /// Bytes per pixel.
    pub fn bytes_per_pixel(&self) -> u32 {
        self.bits_per_pixel / 8
    }

    /// Checks that this is a packed truecolour layout this module can write. Errors: the
    /// [`GeometryError`] layout variants.
    pub fn validate(&self) -> Result<(), GeometryError> {
        if !matches!(self.bits_per_pixel, 16 | 24 | 32) {
            return Err(GeometryError::BitsPerPixel(self.bits_per_pixel));
        }
        if self.width == 0 || self.height == 0 {
            return Err(GeometryError::ZeroSize);
        }
        if self.line_length < self.width * self.bytes_per_pixel() {
            return Err(GeometryError::LineLength {
                line_length: self.line_length,
                width: self.width,
            });
        }
        for c in [self.red, self.green, self.blue] {
            if c.length == 0 || c.length > 8 || c.offset + c.length > self.bits_per_pixel {
                return Err(GeometryError::BitField {
                    channel: c,
                    bits_per_pixel: self.bits_per_pixel,
                });
            }
        }
        Ok(())
    }

    /// The pixel value of `c` in this layout.
    pub fn pack(&self, c: Rgb888) -> u32 {
        let f = |v: u8, ch: Channel| -> u32 {
            if ch.length == 0 {
                return 0;
            }
            (u32::from(v) >> (8 - ch.length.min(8))) << ch.offset
        };
        let t = if self.transp.length > 0 {
            ((1u32 << self.transp.length.min(31)) - 1) << self.transp.offset
        } else {
            0
        };
        f(c.r(), self.red) | f(c.g(), self.green) | f(c.b(), self.blue) | t
    }
}

/// The screen contents in the framebuffer's own layout; a [`DrawTarget`] of the visible size.
#[derive(Debug, Clone)]
pub struct FbCanvas {
    geometry: FbGeometry,
    buf: Vec<u8>,
}

impl FbCanvas {
    /// A black canvas for `geometry` (`line_length × height` bytes).
    pub fn new(geometry: FbGeometry) -> Self {
        Self {
            geometry,
            buf: vec![0; geometry.line_length as usize * geometry.height as usize],
        }
    }

    /// The geometry (size, pixel layout, line length).
    pub fn geometry(&self) -> FbGeometry {
        self.geometry
    }

    /// The bytes, line after line.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

impl OriginDimensions for FbCanvas {
    fn size(&self) -> Size {
        Size::new(self.geometry.width, self.geometry.height)
    }
}

impl DrawTarget for FbCanvas {
    type Color = Rgb888;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let g = self.geometry;
        let bpp = g.bytes_per_pixel() as usize;
        for Pixel(p, c) in pixels {
            if p.x < 0 || p.y < 0 || p.x as u32 >= g.width || p.y as u32 >= g.height {
                continue;
            }
            let at = p.y as usize * g.line_length as usize + p.x as usize * bpp;
            let v = g.pack(c).to_le_bytes();
            self.buf[at..at + bpp].copy_from_slice(&v[..bpp]);
        }
        Ok(())
    }
}

/// A framebuffer output: device (or file) and canvas.
#[derive(Debug)]
pub struct FramebufferOutput {
    file: File,
    path: PathBuf,
    canvas: FbCanvas,
}

impl FramebufferOutput {
    /// Opens `path` for writing; `mode` = geometry given explicitly (no ioctls), else asked from
    /// the driver. Errors name the device: missing, no permission, not a framebuffer, layout not
    /// supported.
    pub fn open(path: &Path, mode: Option<FbGeometry>) -> Result<Self, DisplayError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| DisplayError::Io {
                what: format!(
                    "cannot open framebuffer {} (no fbdev? display://N?backend=drm drives \
                     /dev/dri/cardN through DRM/KMS instead)",
                    path.display()
                ),
                source,
            })?;
        let geometry = match mode {
            Some(g) => g,
            None => FbGeometry::query(&file, path)?,
        };
        geometry.validate().map_err(|e| DisplayError::Output {
            what: path.display().to_string(),
            reason: e.to_string(),
        })?;
        tracing::info!(
            "framebuffer {}: {}x{} {} bpp, {} bytes/line",
            path.display(),
            geometry.width,
            geometry.height,
            geometry.bits_per_pixel,
            geometry.line_length
        );
        Ok(Self {
            file,
            path: path.to_path_buf(),
            canvas: FbCanvas::new(geometry),
        })
    }

    /// The geometry in use.
    pub fn geometry(&self) -> FbGeometry {
        self.canvas.geometry
    }

    /// The device (or file) path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Draws `scene` and writes it to the visible page.
    pub fn show(&mut self, renderer: &Renderer, scene: &Scene) -> Result<(), DisplayError> {
        match renderer.draw(scene, &mut self.canvas) {
            Ok(()) => {}
            Err(never) => match never {},
        }
        let g = self.canvas.geometry;
        let offset = u64::from(g.yoffset) * u64::from(g.line_length);
        self.file
            .write_all_at(&self.canvas.buf, offset)
            .map_err(|source| DisplayError::Io {
                what: format!("cannot write framebuffer {}", self.path.display()),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_rgb565_and_xrgb8888() {
        let c = Rgb888::new(200, 100, 50);
        assert_eq!(FbGeometry::rgb565(1, 1).pack(c), (25 << 11) | (25 << 5) | 6);
        assert_eq!(FbGeometry::xrgb8888(1, 1).pack(c), 0x00c8_6432);
        assert!(FbGeometry::parse_mode("64x48:24").is_err());
        assert!(FbGeometry::parse_mode("0x48:16").is_err());
        assert_eq!(FbGeometry::parse_mode("64x48:32").unwrap().line_length, 256);
    }
}
