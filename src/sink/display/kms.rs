//! `display://` on DRM/KMS (`/dev/dri/cardN`), for systems without fbdev (or with `?backend=drm`).
//!
//! Legacy (non-atomic) KMS through the `drm` crate (kernel UAPI `drm.h` / `drm_mode.h`, see the
//! kernel's Documentation/gpu/drm-kms.rst and drm-uapi.rst):
//!
//! 1. open the card read/write and be its DRM master (`DRM_IOCTL_SET_MASTER`; the first opener
//!    of a card is master automatically, a running compositor or X server holds it otherwise);
//! 2. the first *connected* connector with modes, in the card's connector order; its preferred
//!    mode (`DRM_MODE_TYPE_PREFERRED`, else the first listed) or the one asked for
//!    ([`ModeRequest`], `?mode=WxH` or `?mode=WxH@HZ`);
//! 3. the encoder and CRTC already driving that connector, else the first free CRTC one of its
//!    encoders can drive;
//! 4. a dumb buffer (`DRM_IOCTL_MODE_CREATE_DUMB`, 32 bits per pixel) registered as an
//!    XRGB8888 framebuffer (`ADDFB`, depth 24), cleared to black, scanned out with `SETCRTC`;
//! 5. each picture is drawn by the [`Renderer`] into an [`FbCanvas`] of the mode's size (frame
//!    scaled to fit and letterboxed, as on fbdev), copied into the mapped buffer and marked
//!    dirty (`DRM_IOCTL_MODE_DIRTYFB`: drivers with a shadow buffer, e.g. virtio-gpu, show
//!    nothing without it; drivers without the hook answer `ENOSYS`, which is fine);
//! 6. on drop the CRTC gets back its previous framebuffer, mode and connectors (or is switched
//!    off if it had none) and the buffer is freed.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use drm::buffer::DrmFourcc;
use drm::control::dumbbuffer::DumbBuffer;
use drm::control::{
    connector, crtc, framebuffer, ClipRect, Device as ControlDevice, Mode, ModeTypeFlags,
};
use drm::{Device, DriverCapability};

use super::fb::{FbCanvas, FbGeometry};
use super::DisplayError;
use crate::render::{Renderer, Scene};

/// A `?mode=` that is not `WxH` or `WxH@HZ` (the text as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mode {0:?}: expected WIDTHxHEIGHT or WIDTHxHEIGHT@HZ")]
pub struct ModeSyntaxError(pub String);

/// Why no mode of a connector could be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum PickModeError {
    /// The mode asked for is not among the connector's.
    #[error("the connector has no mode {request} (it has: {available})")]
    NoSuchMode {
        request: ModeRequest,
        /// The connector's modes, `WxH@HZ, …`.
        available: String,
    },
    /// The connector lists none.
    #[error("the connector lists no modes")]
    NoModes,
}

/// A mode asked for with `?mode=WxH` or `?mode=WxH@HZ`: size in pixels, optional vertical
/// refresh in Hz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeRequest {
    /// Horizontal resolution, pixels.
    pub width: u32,
    /// Vertical resolution, pixels.
    pub height: u32,
    /// Vertical refresh, Hz (`None`: the first listed mode of that size, i.e. the preferred or
    /// fastest one).
    pub refresh_hz: Option<u32>,
}

impl ModeRequest {
    /// Parses `WxH` or `WxH@HZ` (e.g. `1280x720`, `1920x1080@60`). Errors say what is expected.
    pub fn parse(s: &str) -> Result<Self, ModeSyntaxError> {
        let err = || ModeSyntaxError(s.to_string());
        let (size, hz) = match s.split_once('@') {
            Some((a, b)) => (a, Some(b.parse::<u32>().map_err(|_| err())?)),
            None => (s, None),
        };
        let (w, h) = size.split_once('x').ok_or_else(err)?;
        let (width, height): (u32, u32) =
            (w.parse().map_err(|_| err())?, h.parse().map_err(|_| err())?);
        if width == 0 || height == 0 || width > 16384 || height > 16384 || hz == Some(0) {
            return Err(err());
        }
        Ok(Self {
            width,
            height,
            refresh_hz: hz,
        })
    }
}

impl std::fmt::Display for ModeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)?;
        if let Some(hz) = self.refresh_hz {
            write!(f, "@{hz}")?;
        }
        Ok(())
    }
}

/// The mode in use: size in pixels, vertical refresh in Hz, and the connector showing it
/// (kernel name, e.g. `Virtual-1`, `HDMI-A-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsMode {
    /// Horizontal resolution, pixels.
    pub width: u32,
    /// Vertical resolution, pixels.
    pub height: u32,
    /// Vertical refresh, Hz.
    pub refresh_hz: u32,
    /// Connector name (`<type>-<index>`, as in /sys/class/drm).
    pub connector: String,
    /// True when this is the connector's preferred mode.
    pub preferred: bool,
}

impl std::fmt::Display for KmsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x{}@{} on {}{}",
            self.width,
            self.height,
            self.refresh_hz,
            self.connector,
            if self.preferred { " (preferred)" } else { "" }
        )
    }
}

/// An open DRM card (the `drm` crate's device traits over the file).
#[derive(Debug)]
struct Card(File);

impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Device for Card {}
impl ControlDevice for Card {}

/// A DRM/KMS output: the card (as DRM master), the scanned-out dumb buffer and the CRTC state
/// to restore.
#[derive(Debug)]
pub struct DrmOutput {
    card: Card,
    path: PathBuf,
    buffer: Option<DumbBuffer>,
    fb: Option<framebuffer::Handle>,
    crtc: crtc::Handle,
    saved: crtc::Info,
    saved_connectors: Vec<connector::Handle>,
    mode: KmsMode,
    canvas: FbCanvas,
    dirty_supported: bool,
}

fn connector_name(info: &connector::Info) -> String {
    format!("{}-{}", info.interface().as_str(), info.interface_id())
}

fn mode_of(m: &Mode, connector: String) -> KmsMode {
    let (w, h) = m.size();
    KmsMode {
        width: u32::from(w),
        height: u32::from(h),
        refresh_hz: m.vrefresh(),
        connector,
        preferred: m.mode_type().contains(ModeTypeFlags::PREFERRED),
    }
}

fn mode_list(modes: &[Mode]) -> String {
    let mut v: Vec<String> = modes
        .iter()
        .map(|m| format!("{}x{}@{}", m.size().0, m.size().1, m.vrefresh()))
        .collect();
    v.dedup();
    v.join(", ")
}

/// Picks `req` from `modes` (first of that size and refresh), else the preferred mode, else the
/// first. Errors list the modes there are.
fn pick_mode(modes: &[Mode], req: Option<ModeRequest>) -> Result<Mode, PickModeError> {
    match req {
        Some(r) => modes
            .iter()
            .find(|m| {
                (u32::from(m.size().0), u32::from(m.size().1)) == (r.width, r.height)
                    && r.refresh_hz.is_none_or(|hz| m.vrefresh() == hz)
            })
            .copied()
            .ok_or_else(|| PickModeError::NoSuchMode {
                request: r,
                available: mode_list(modes),
            }),
        None => modes
            .iter()
            .find(|m| m.mode_type().contains(ModeTypeFlags::PREFERRED))
            .or_else(|| modes.first())
            .copied()
            .ok_or(PickModeError::NoModes),
    }
}

impl DrmOutput {
    /// Opens the DRM card at `path` (e.g. `/dev/dri/card0`), becomes its master, sets up the
    /// first connected connector with its preferred mode (or `mode`) and shows a black screen.
    ///
    /// Errors, each naming the device: the card is missing or cannot be opened (permission:
    /// the `video` group), it is not a DRM device, another process (a compositor, an X server) is
    /// DRM master, the driver has no dumb buffers, no connector is connected, the mode asked for
    /// does not exist, no CRTC can drive the connector, or a KMS call fails.
    pub fn open(path: &Path, mode: Option<ModeRequest>) -> Result<Self, DisplayError> {
        let dev = path.display().to_string();
        let io_err = |what: String| {
            let dev = dev.clone();
            move |source: io::Error| DisplayError::Io {
                what: format!("{what} on {dev}"),
                source,
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| DisplayError::Io {
                what: if source.kind() == io::ErrorKind::NotFound {
                    format!("no DRM card {dev} (no KMS driver loaded?)")
                } else {
                    format!("cannot open DRM card {dev}")
                },
                source,
            })?;
        let card = Card(file);
        let driver = card.get_driver().map_err(|source| DisplayError::Io {
            what: format!("{dev} is not a DRM device (DRM_IOCTL_VERSION failed)"),
            source,
        })?;
        // the first opener of a card is master already; SET_MASTER then succeeds at once
        card.acquire_master_lock()
            .map_err(|source| DisplayError::Output {
                what: dev.clone(),
                reason: format!(
                    "cannot become DRM master ({source}): another process (a compositor, an X \
                     server or another display://) drives this card; stop it, or use the \
                     framebuffer (display://N?backend=fbdev) or http:// preview instead"
                ),
            })?;
        let dumb = card
            .get_driver_capability(DriverCapability::DumbBuffer)
            .unwrap_or(0);
        if dumb == 0 {
            return Err(DisplayError::Output {
                what: dev,
                reason: format!(
                    "driver {} has no dumb buffers (DRM_CAP_DUMB_BUFFER = 0)",
                    driver.name().to_string_lossy()
                ),
            });
        }

        let res = card
            .resource_handles()
            .map_err(io_err("cannot read the KMS resources".into()))?;
        let mut seen = Vec::new();
        let mut chosen = None;
        for &h in res.connectors() {
            let info = card
                .get_connector(h, true)
                .map_err(io_err(format!("cannot probe connector {h:?}")))?;
            let name = connector_name(&info);
            let state = info.state();
            seen.push(format!("{name} {state:?}").to_lowercase());
            if state == connector::State::Connected && !info.modes().is_empty() {
                chosen = Some(info);
                break;
            }
        }
        let Some(conn) = chosen else {
            return Err(DisplayError::Output {
                what: dev,
                reason: format!(
                    "no connected connector with modes (connectors: {}); plug in a monitor",
                    if seen.is_empty() {
                        "none".to_string()
                    } else {
                        seen.join(", ")
                    }
                ),
            });
        };
        let conn_name = connector_name(&conn);
        let m = pick_mode(conn.modes(), mode).map_err(|e| DisplayError::Output {
            what: format!("{dev} connector {conn_name}"),
            reason: e.to_string(),
        })?;
        let kmode = mode_of(&m, conn_name.clone());

        // the CRTC already driving the connector, else the first one an encoder can drive
        let mut crtc = None;
        if let Some(enc) = conn.current_encoder() {
            if let Ok(e) = card.get_encoder(enc) {
                crtc = e.crtc();
            }
        }
        if crtc.is_none() {
            for &enc in conn.encoders() {
                let Ok(e) = card.get_encoder(enc) else {
                    continue;
                };
                if let Some(&c) = res.filter_crtcs(e.possible_crtcs()).first() {
                    crtc = Some(c);
                    break;
                }
            }
        }
        let Some(crtc) = crtc else {
            return Err(DisplayError::Output {
                what: format!("{dev} connector {conn_name}"),
                reason: "no CRTC can drive this connector".into(),
            });
        };
        let saved = card
            .get_crtc(crtc)
            .map_err(io_err(format!("cannot read CRTC {crtc:?}")))?;
        // connectors the CRTC drives now (to give them back on drop)
        let mut saved_connectors = Vec::new();
        if saved.mode().is_some() {
            for &h in res.connectors() {
                let Ok(info) = card.get_connector(h, false) else {
                    continue;
                };
                let on_crtc = info
                    .current_encoder()
                    .and_then(|e| card.get_encoder(e).ok())
                    .and_then(|e| e.crtc())
                    == Some(crtc);
                if on_crtc {
                    saved_connectors.push(h);
                }
            }
        }

        let (w, h) = (kmode.width, kmode.height);
        let buffer = card
            .create_dumb_buffer((w, h), DrmFourcc::Xrgb8888, 32)
            .map_err(io_err(format!("cannot create a {w}x{h} dumb buffer")))?;
        let mut out = DrmOutput {
            card,
            path: path.to_path_buf(),
            buffer: Some(buffer),
            fb: None,
            crtc,
            saved,
            saved_connectors,
            mode: kmode,
            canvas: FbCanvas::new(FbGeometry {
                line_length: drm::buffer::Buffer::pitch(&buffer),
                ..FbGeometry::xrgb8888(w, h)
            }),
            dirty_supported: true,
        };
        // from here on, Drop frees the buffer (and the framebuffer once added)
        let fb = out
            .card
            .add_framebuffer(&buffer, 24, 32)
            .map_err(io_err("cannot add an XRGB8888 framebuffer".into()))?;
        out.fb = Some(fb);
        out.flush()?;
        out.card
            .set_crtc(crtc, Some(fb), (0, 0), &[conn.handle()], Some(m))
            .map_err(io_err(format!(
                "cannot set mode {} on CRTC {crtc:?}",
                out.mode
            )))?;
        tracing::info!(
            "DRM {} (driver {}): {}, CRTC {crtc:?}, pitch {} bytes",
            out.path.display(),
            driver.name().to_string_lossy(),
            out.mode,
            out.canvas.geometry().line_length
        );
        Ok(out)
    }

    /// The mode in use.
    pub fn mode(&self) -> &KmsMode {
        &self.mode
    }

    /// The card's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copies the canvas into the scanned-out buffer and marks it dirty.
    fn flush(&mut self) -> Result<(), DisplayError> {
        let dev = self.path.display().to_string();
        let Some(buffer) = self.buffer.as_mut() else {
            return Ok(());
        };
        {
            let mut map = self
                .card
                .map_dumb_buffer(buffer)
                .map_err(|source| DisplayError::Io {
                    what: format!("cannot map the dumb buffer on {dev}"),
                    source,
                })?;
            let src = self.canvas.bytes();
            let n = src.len().min(map.len());
            map[..n].copy_from_slice(&src[..n]);
        }
        if let (Some(fb), true) = (self.fb, self.dirty_supported) {
            let clip = ClipRect::new(
                0,
                0,
                self.mode.width.min(u32::from(u16::MAX)) as u16,
                self.mode.height.min(u32::from(u16::MAX)) as u16,
            );
            match self.card.dirty_framebuffer(fb, &[clip]) {
                Ok(()) => {}
                // no dirty hook: the driver scans the buffer out directly
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => self.dirty_supported = false,
                Err(source) => {
                    return Err(DisplayError::Io {
                        what: format!(
                            "cannot mark the framebuffer dirty on {dev} (DRM master lost to \
                             another process?)"
                        ),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Draws `scene` (scaled to the mode, letterboxed) and shows it.
    pub fn show(&mut self, renderer: &Renderer, scene: &Scene) -> Result<(), DisplayError> {
        match renderer.draw(scene, &mut self.canvas) {
            Ok(()) => {}
            Err(never) => match never {},
        }
        self.flush()
    }
}

impl Drop for DrmOutput {
    fn drop(&mut self) {
        let s = &self.saved;
        let res = match (s.mode(), s.framebuffer()) {
            (Some(m), Some(fb)) => self.card.set_crtc(
                self.crtc,
                Some(fb),
                s.position(),
                &self.saved_connectors,
                Some(m),
            ),
            _ => self.card.set_crtc(self.crtc, None, (0, 0), &[], None),
        };
        if let Err(e) = res {
            tracing::warn!(
                "DRM {}: cannot restore CRTC {:?}: {e}",
                self.path.display(),
                self.crtc
            );
        }
        if let Some(fb) = self.fb.take() {
            let _ = self.card.destroy_framebuffer(fb);
        }
        if let Some(b) = self.buffer.take() {
            let _ = self.card.destroy_dumb_buffer(b);
        }
        let _ = self.card.release_master_lock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mode_requests() {
        assert_eq!(
            ModeRequest::parse("1280x720").unwrap(),
            ModeRequest {
                width: 1280,
                height: 720,
                refresh_hz: None
            }
        );
        assert_eq!(
            ModeRequest::parse("1920x1080@60").unwrap().refresh_hz,
            Some(60)
        );
        for bad in [
            "1280",
            "0x720",
            "1280x720@",
            "1280x720@0",
            "axb",
            "1280x720:32",
        ] {
            assert!(ModeRequest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_card_is_a_clear_error() {
        let e = DrmOutput::open(Path::new("/nonexistent/dri/card7"), None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/nonexistent/dri/card7") && msg.contains("no DRM card"),
            "{msg}"
        );
    }

    #[test]
    fn a_plain_file_is_not_a_drm_device() {
        let p = std::env::temp_dir().join(format!("c3n-kms-notdrm-{}", std::process::id()));
        std::fs::write(&p, b"x").unwrap();
        let e = DrmOutput::open(&p, None).unwrap_err().to_string();
        let _ = std::fs::remove_file(&p);
        assert!(
            e.contains(&p.display().to_string()) && e.contains("not a DRM device"),
            "{e}"
        );
    }
}
