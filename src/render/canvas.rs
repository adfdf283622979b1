//! Pictures as images: [`ImageCanvas`], an [`RgbImage`] the renderer draws into (files, the
//! preview server, snapshots), and [`encode_jpeg`], the one JPEG encoding of those pictures.

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use image::RgbImage;

/// An [`RgbImage`] as a [`DrawTarget`] (pixels outside are ignored).
#[derive(Debug, Clone)]
pub struct ImageCanvas(pub RgbImage);

impl OriginDimensions for ImageCanvas {
    fn size(&self) -> Size {
        Size::new(self.0.width(), self.0.height())
    }
}

impl DrawTarget for ImageCanvas {
    type Color = Rgb888;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let (w, h) = self.0.dimensions();
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < w && (p.y as u32) < h {
                self.0
                    .put_pixel(p.x as u32, p.y as u32, image::Rgb([c.r(), c.g(), c.b()]));
            }
        }
        Ok(())
    }
}

/// JPEG bytes of `img` at `quality` (1–100, clamped): the preview stream, snapshots and MQTT
/// snapshots all encode through this.
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::with_capacity(64 * 1024);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
        .encode_image(img)?;
    Ok(out)
}
