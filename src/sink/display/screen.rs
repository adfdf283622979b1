//! `display://N`: the screen, on the Linux framebuffer ([`super::fb`]) or DRM/KMS
//! ([`super::kms`]), chosen as [`DisplayBackend`] says.

use std::path::{Path, PathBuf};

use super::fb::FramebufferOutput;
use super::kms::DrmOutput;
use super::uri::{DisplayBackend, OutputUri};
use super::DisplayError;
use crate::render::{Renderer, Scene};

/// An open `display://` screen: a framebuffer or a DRM/KMS output.
#[derive(Debug)]
pub enum ScreenOutput {
    /// Linux framebuffer (or a file standing for one).
    Fbdev(FramebufferOutput),
    /// DRM/KMS card.
    Drm(DrmOutput),
}

/// DRM character devices have major number 226 (Documentation/admin-guide/devices.txt).
fn is_drm_device(path: &Path) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if path.starts_with("/dev/dri") {
        return true;
    }
    std::fs::metadata(path)
        .is_ok_and(|m| m.file_type().is_char_device() && libc::major(m.rdev()) == 226)
}

impl ScreenOutput {
    /// Opens the screen of a `display://` URI, choosing the backend as [`DisplayBackend`]
    /// says. Errors name the device(s): none of them exists, or the chosen one cannot be used
    /// ([`FramebufferOutput::open`], [`DrmOutput::open`]). Any other URI is an error.
    pub fn open(uri: &OutputUri) -> Result<Self, DisplayError> {
        let OutputUri::Display {
            index,
            device,
            mode,
            backend,
            drm_mode,
            ..
        } = uri
        else {
            return Err(DisplayError::Uri {
                uri: format!("{uri:?}"),
                reason: "not a display:// output".into(),
            });
        };
        let fb_path = || PathBuf::from(format!("/dev/fb{index}"));
        let card_path = || PathBuf::from(format!("/dev/dri/card{index}"));
        let backend = match (backend, device, mode) {
            (DisplayBackend::Auto, Some(d), _) if is_drm_device(d) => DisplayBackend::Drm,
            (DisplayBackend::Auto, Some(_), _) | (DisplayBackend::Auto, None, Some(_)) => {
                DisplayBackend::Fbdev
            }
            (DisplayBackend::Auto, None, None) => {
                if fb_path().exists() {
                    DisplayBackend::Fbdev
                } else if card_path().exists() {
                    DisplayBackend::Drm
                } else {
                    return Err(DisplayError::Output {
                        what: format!("display://{index}"),
                        reason: format!(
                            "no screen: neither the framebuffer {} nor the DRM card {} exists (no display \
                             driver loaded?); use http://0.0.0.0:8080 for a browser preview",
                            fb_path().display(),
                            card_path().display()
                        ),
                    });
                }
            }
            (b, _, _) => *b,
        };
        match backend {
            DisplayBackend::Drm => {
                let path = device.clone().unwrap_or_else(card_path);
                Ok(ScreenOutput::Drm(DrmOutput::open(&path, *drm_mode)?))
            }
            _ => {
                let path = device.clone().unwrap_or_else(fb_path);
                Ok(ScreenOutput::Fbdev(FramebufferOutput::open(&path, *mode)?))
            }
        }
    }

    /// Device and geometry, e.g. `/dev/fb0, fbdev 1920x1080 32 bpp` or
    /// `/dev/dri/card0, DRM 1280x720@60 on Virtual-1 (preferred)`.
    pub fn describe(&self) -> String {
        match self {
            ScreenOutput::Fbdev(o) => {
                let g = o.geometry();
                format!(
                    "{}, fbdev {}x{} {} bpp",
                    o.path().display(),
                    g.width,
                    g.height,
                    g.bits_per_pixel
                )
            }
            ScreenOutput::Drm(o) => format!("{}, DRM {}", o.path().display(), o.mode()),
        }
    }

    /// Draws `scene` and shows it.
    pub fn show(&mut self, renderer: &Renderer, scene: &Scene) -> Result<(), DisplayError> {
        match self {
            ScreenOutput::Fbdev(o) => o.show(renderer, scene),
            ScreenOutput::Drm(o) => o.show(renderer, scene),
        }
    }
}
