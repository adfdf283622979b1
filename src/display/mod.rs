//! Local display and live preview: the overlay picture ([`render`]) on the outputs named by
//! jetson-inference-style URIs (integration-conventions.md §1.1), given with `--output`
//! (repeatable):
//!
//! | URI | output |
//! |---|---|
//! | `display://0` | the screen: Linux framebuffer `/dev/fb0` ([`fb`]; RGB565, XRGB8888 and other packed RGB layouts), or DRM/KMS `/dev/dri/card0` ([`kms`]) where there is no `/dev/fb0`; see [`DisplayBackend`] for the choice |
//! | `display://0?backend=drm` | DRM/KMS on `/dev/dri/card0` even where fbdev exists; `?mode=WxH` or `WxH@HZ` picks the KMS mode (default: the monitor's preferred one) and implies `backend=drm` |
//! | `display://0?device=PATH` | that device node: `/dev/dri/…` (or any DRM device) is driven by KMS, anything else as a framebuffer; `?mode=WxH:BPP` (16 or 32) gives a framebuffer's geometry instead of asking the driver (a plain file as a fake framebuffer) |
//! | `window://` | desktop window (embedded-graphics-simulator + SDL2, cargo feature `window`) |
//! | `file://out/%05d.jpg` (`.png`) | one image per analysed frame, numbered by frame number |
//! | `file://out.mp4` (`.mkv`, …) | H.264 video of the pictures (cargo feature `ffmpeg`; without it: an error) |
//! | `http://0.0.0.0:8080` | preview server ([`http`]): `/`, `/stream.mjpg`, `/snapshot.jpg`, `/api/state`, `/api/events`; `?linger=S` keeps serving S seconds after the input ended |
//!
//! `--headless` drops `display://` and `window://`.
//!
//! The display never slows inference: [`DisplaySink`] hands each frame to every output's own
//! thread through a one-place [`slot::Slot`] that *replaces* a frame the output has not taken yet
//! (counted as skipped). File outputs are the exception: they wait, so every frame is written.

pub mod fb;
pub mod http;
pub mod kms;
pub mod render;
pub mod slot;
#[cfg(feature = "ffmpeg")]
mod video;
#[cfg(feature = "window")]
pub mod window;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use image::RgbImage;

use crate::control::RunState;
use crate::events::{box_iou, Event, EventType};
use crate::sink::{AnalysedFrame, Sink, SinkError};
use crate::uri::{expand_pattern, printf_field, CONTAINER_EXTENSIONS};
use render::{Renderer, Scene, SceneObject};
use slot::Slot;

/// Errors of the display outputs; each names the output (URI, device or file).
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    /// The output URI is malformed or not supported.
    #[error("invalid output URI {uri:?}: {reason}")]
    Uri {
        /// The URI as given.
        uri: String,
        /// What is wrong.
        reason: String,
    },
    /// A device or file could not be opened or written.
    #[error("{what}: {source}")]
    Io {
        /// The device, file or address and what was done to it.
        what: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// Any other failure of an output (framebuffer layout, window, encoder).
    #[error("{what}: {reason}")]
    Output {
        /// The output.
        what: String,
        /// What is wrong.
        reason: String,
    },
}

/// How `display://N` reaches the screen (`?backend=auto|fbdev|drm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisplayBackend {
    /// `auto` (the default): with `?device=PATH`, KMS for a DRM device (a node under
    /// `/dev/dri/` or a character device of major 226), fbdev otherwise; without it, `/dev/fbN`
    /// when it exists, else `/dev/dri/cardN`. A `?mode=WxH:BPP` means fbdev, a `?mode=WxH` KMS.
    #[default]
    Auto,
    /// `fbdev`: the Linux framebuffer ([`fb`]), `/dev/fbN`.
    Fbdev,
    /// `drm`: DRM/KMS ([`kms`]), `/dev/dri/cardN`.
    Drm,
}

/// A parsed `--output` URI.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputUri {
    /// The screen: Linux framebuffer or DRM/KMS.
    Display {
        /// Screen index N of `display://N` (device `/dev/fbN` or `/dev/dri/cardN`).
        index: u32,
        /// Device override (`?device=PATH`).
        device: Option<PathBuf>,
        /// Framebuffer geometry given instead of read from the driver (`?mode=WxH:BPP`).
        mode: Option<fb::FbGeometry>,
        /// Backend choice (`?backend=`).
        backend: DisplayBackend,
        /// KMS mode asked for (`?mode=WxH` or `?mode=WxH@HZ`).
        drm_mode: Option<kms::ModeRequest>,
    },
    /// Desktop window (feature `window`).
    Window,
    /// Image files; `pattern` holds one `%d` / `%0Nd` field.
    Images {
        /// Path pattern, e.g. `out/%05d.jpg`.
        pattern: String,
    },
    /// A video file (not supported in this build; rejected when opened).
    Video {
        /// File path.
        path: PathBuf,
    },
    /// Preview HTTP server.
    Http {
        /// Listen address `host:port`.
        addr: String,
        /// Seconds to keep serving after the input ended.
        linger_s: u64,
    },
}

impl OutputUri {
    /// Parses an output URI (see the module table).
    pub fn parse(s: &str) -> Result<Self, DisplayError> {
        let bad = |reason: String| DisplayError::Uri {
            uri: s.to_string(),
            reason,
        };
        let (scheme, rest) = match s.split_once("://") {
            Some((a, b)) => (a.to_ascii_lowercase(), b),
            None => ("file".to_string(), s),
        };
        let (body, query) = match rest.split_once('?') {
            Some((b, q)) if scheme != "file" => (b, q),
            _ => (rest, ""),
        };
        let mut params = Vec::new();
        for kv in query.split('&').filter(|x| !x.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            params.push((k.to_string(), v.to_string()));
        }
        let allowed: &[&str] = match scheme.as_str() {
            "display" => &["device", "mode", "backend"],
            "http" => &["linger"],
            _ => &[],
        };
        if let Some((k, _)) = params.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            return Err(bad(format!(
                "unknown option `{k}` (allowed: {})",
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            )));
        }
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match scheme.as_str() {
            "display" => {
                let index = if body.is_empty() {
                    0
                } else {
                    body.parse::<u32>()
                        .map_err(|_| bad(format!("screen index {body:?} is not a number")))?
                };
                let mut backend = match param("backend").as_deref() {
                    None | Some("auto") => DisplayBackend::Auto,
                    Some("fbdev") | Some("fb") => DisplayBackend::Fbdev,
                    Some("drm") | Some("kms") => DisplayBackend::Drm,
                    Some(other) => {
                        return Err(bad(format!(
                            "backend {other:?}: expected auto, fbdev or drm"
                        )))
                    }
                };
                // `WxH:BPP` = framebuffer geometry, `WxH[@HZ]` = KMS mode
                let (mut mode, mut drm_mode) = (None, None);
                if let Some(m) = param("mode") {
                    if m.contains(':') {
                        if backend == DisplayBackend::Drm {
                            return Err(bad(format!(
                                "mode {m:?} is a framebuffer geometry (WxH:BPP); with backend=drm give WxH or \
                                 WxH@HZ"
                            )));
                        }
                        mode = Some(fb::FbGeometry::parse_mode(&m).map_err(bad)?);
                    } else {
                        if backend == DisplayBackend::Fbdev {
                            return Err(bad(format!(
                                "mode {m:?}: a framebuffer takes WxH:16 or WxH:32 (its geometry); choosing a \
                                 mode needs backend=drm"
                            )));
                        }
                        drm_mode = Some(kms::ModeRequest::parse(&m).map_err(|e| {
                            bad(format!("{e}, or WIDTHxHEIGHT:BPP for a framebuffer"))
                        })?);
                        backend = DisplayBackend::Drm;
                    }
                }
                Ok(OutputUri::Display {
                    index,
                    device: param("device").map(PathBuf::from),
                    mode,
                    backend,
                    drm_mode,
                })
            }
            "window" => Ok(OutputUri::Window),
            "http" => {
                if body.is_empty() {
                    return Err(bad("missing host:port".into()));
                }
                let addr = body.trim_end_matches('/');
                let addr = if addr.contains(':') {
                    addr.to_string()
                } else {
                    format!("{addr}:8080")
                };
                let linger_s = match param("linger") {
                    Some(v) => v
                        .parse()
                        .map_err(|_| bad(format!("linger {v:?}: expected seconds")))?,
                    None => 0,
                };
                Ok(OutputUri::Http { addr, linger_s })
            }
            "file" => {
                if body.is_empty() {
                    return Err(bad("empty path".into()));
                }
                let ext = Path::new(body)
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                    .unwrap_or_default();
                if CONTAINER_EXTENSIONS.contains(&ext.as_str()) {
                    return Ok(OutputUri::Video { path: body.into() });
                }
                if !matches!(ext.as_str(), "jpg" | "jpeg" | "png") {
                    return Err(bad(format!(
                        "expected an image pattern ending in .jpg or .png, or a video file ({})",
                        CONTAINER_EXTENSIONS.join(", ")
                    )));
                }
                match printf_field(body).map_err(|e| bad(e.to_string()))? {
                    Some(_) => Ok(OutputUri::Images {
                        pattern: body.to_string(),
                    }),
                    None => Err(bad(
                        "an image output needs a %d or %05d field for the frame number".into(),
                    )),
                }
            }
            other => Err(bad(format!(
                "unsupported scheme `{other}://` (supported: display://, window://, file://, http://)"
            ))),
        }
    }

    /// True for outputs that need a screen (`display://`, `window://`): `--headless` drops them.
    pub fn is_screen(&self) -> bool {
        matches!(self, OutputUri::Display { .. } | OutputUri::Window)
    }
}

/// Attaches event ids to a frame's regions: a region belongs to the event of the same frame with
/// the same box, else to the live event whose last box overlaps it most (IoU ≥ 0.3).
#[derive(Debug, Default, Clone)]
pub struct SceneBuilder {
    live: Vec<(String, [u32; 4])>,
    state: Option<RunState>,
}

impl SceneBuilder {
    /// Remembers the latest run state (shown in the status line).
    pub fn set_state(&mut self, state: &RunState) {
        self.state = Some(state.clone());
    }

    /// The scene of `frame` with the `events` it caused.
    pub fn scene(&mut self, frame: &AnalysedFrame, events: &[Event]) -> Scene {
        for e in events {
            self.live.retain(|(id, _)| *id != e.after.id);
            if e.kind != EventType::End {
                self.live.push((e.after.id.clone(), e.after.bbox));
            }
        }
        let d = &frame.detections;
        let objects = d
            .regions
            .iter()
            .map(|r| {
                let exact = events
                    .iter()
                    .find(|e| e.kind != EventType::End && e.after.bbox == r.bbox)
                    .map(|e| e.after.id.clone());
                let id = exact.or_else(|| {
                    self.live
                        .iter()
                        .map(|(id, b)| (id, box_iou(*b, r.bbox)))
                        .filter(|(_, iou)| *iou >= 0.3)
                        .max_by(|a, b| a.1.total_cmp(&b.1))
                        .map(|(id, _)| id.clone())
                });
                SceneObject {
                    id,
                    region: r.clone(),
                    // the region's own labels (category and ImageNet class); the frame's unified
                    // label for a region that was not labelled
                    visual_label: if r.label.category.is_empty() {
                        d.labels.visual_label.clone()
                    } else {
                        format!("{} ({})", r.label.category, r.label.imagenet_label)
                    },
                    audio_label: d.labels.audio_label.clone(),
                }
            })
            .collect();
        Scene {
            number: frame.number,
            pts_ms: d.pts_ms,
            image: frame.image.clone(),
            objects,
            audio_dbfs: crate::events::dbfs(d.audio_rms),
            state: self.state.clone(),
        }
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

/// Writes `img` as PNG or JPEG (quality 90) by the extension of `path`, creating its directory.
pub fn save_image(img: &RgbImage, path: &Path) -> Result<(), SinkError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::guard::create_dir(dir).map_err(|source| SinkError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let res = if ext == "png" {
        img.save_with_format(path, image::ImageFormat::Png)
    } else {
        std::fs::File::create(path)
            .map_err(image::ImageError::IoError)
            .and_then(|f| {
                let mut w = std::io::BufWriter::new(f);
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, 90).encode_image(img)
            })
    };
    res.map_err(|source| SinkError::Image {
        path: path.to_path_buf(),
        source,
    })
}

/// An output driven by its own thread: shows the scenes it takes from its slot.
struct OutputThread {
    name: String,
    slot: Arc<Slot<Scene>>,
    lossless: bool,
    thread: Option<JoinHandle<Result<(), DisplayError>>>,
}

impl OutputThread {
    /// Spawns `show` over the scenes of a new slot; the slot closes when the thread ends.
    fn spawn(
        name: String,
        lossless: bool,
        mut show: impl FnMut(Scene) -> Result<(), DisplayError> + Send + 'static,
    ) -> Self {
        Self::spawn_with(name, lossless, move |slot| {
            while let Some(scene) = slot.take() {
                show(scene)?;
            }
            Ok(())
        })
    }

    /// Spawns `run`, which takes the scenes from the slot itself.
    fn spawn_with(
        name: String,
        lossless: bool,
        run: impl FnOnce(&Slot<Scene>) -> Result<(), DisplayError> + Send + 'static,
    ) -> Self {
        let slot = Arc::new(Slot::new());
        let rx = slot.clone();
        let thread = std::thread::Builder::new()
            .name(format!("output {name}"))
            .spawn(move || {
                let _closer = slot::CloseOnDrop(rx.clone());
                run(&rx)
            });
        match thread {
            Ok(t) => Self {
                name,
                slot,
                lossless,
                thread: Some(t),
            },
            Err(e) => {
                tracing::error!("cannot start the thread of output {name}: {e}");
                slot.close();
                Self {
                    name,
                    slot,
                    lossless,
                    thread: None,
                }
            }
        }
    }

    /// Ends the thread (after it has shown what is queued) and returns its result.
    fn join(&mut self) -> Result<(), SinkError> {
        self.slot.finish();
        let Some(t) = self.thread.take() else {
            return Ok(());
        };
        let res = t.join().map_err(|_| SinkError::Output {
            output: self.name.clone(),
            message: "the output thread panicked".into(),
        })?;
        if self.slot.skipped() > 0 {
            tracing::info!(
                "output {}: {} frames skipped (display behind)",
                self.name,
                self.slot.skipped()
            );
        }
        res.map_err(|e| SinkError::Output {
            output: self.name.clone(),
            message: e.to_string(),
        })
    }
}

/// The display sink: renders the overlay onto every `--output`, each on its own thread.
pub struct DisplaySink {
    outputs: Vec<OutputThread>,
    scenes: SceneBuilder,
    preview: Vec<(Arc<http::Preview>, u64)>,
    servers: Vec<http::PreviewServer>,
    last: Option<Scene>,
}

impl std::fmt::Debug for DisplaySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisplaySink")
            .field(
                "outputs",
                &self.outputs.iter().map(|o| &o.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl DisplaySink {
    /// Opens every output (devices, windows, server sockets are opened here, so a bad output
    /// fails before the run starts). `renderer` is shared by all.
    pub fn open(uris: &[OutputUri], renderer: Renderer) -> Result<Self, DisplayError> {
        let mut sink = DisplaySink {
            outputs: Vec::new(),
            scenes: SceneBuilder::default(),
            preview: Vec::new(),
            servers: Vec::new(),
            last: None,
        };
        for uri in uris {
            match uri {
                OutputUri::Display { index, .. } => {
                    let mut out = ScreenOutput::open(uri)?;
                    let name = format!("display://{index} ({})", out.describe());
                    sink.outputs
                        .push(OutputThread::spawn(name, false, move |s| {
                            out.show(&renderer, &s)
                        }));
                }
                OutputUri::Window => sink.outputs.push(open_window(renderer)?),
                OutputUri::Images { pattern } => {
                    let field = printf_field(pattern).map_err(|e| DisplayError::Uri {
                        uri: pattern.clone(),
                        reason: e.to_string(),
                    })?;
                    let Some(field) = field else {
                        return Err(DisplayError::Uri {
                            uri: pattern.clone(),
                            reason: "no %d field".into(),
                        });
                    };
                    let pattern = pattern.clone();
                    let name = format!("file://{pattern}");
                    sink.outputs.push(OutputThread::spawn(name, true, move |s| {
                        let path = PathBuf::from(expand_pattern(&pattern, field, s.number));
                        save_image(&renderer.render_image(&s), &path).map_err(|e| {
                            DisplayError::Output {
                                what: path.display().to_string(),
                                reason: e.to_string(),
                            }
                        })
                    }));
                }
                OutputUri::Video { path } => sink.outputs.push(open_video(path, renderer)?),
                OutputUri::Http { addr, linger_s } => {
                    let preview = Arc::new(http::Preview::default());
                    let server = http::PreviewServer::start(addr, preview.clone())?;
                    let p = preview.clone();
                    let name = format!("http://{}", server.addr());
                    sink.outputs
                        .push(OutputThread::spawn(name, false, move |s| {
                            p.publish_frame(&renderer.render_image(&s))
                        }));
                    sink.preview.push((preview, *linger_s));
                    sink.servers.push(server);
                }
            }
        }
        Ok(sink)
    }

    /// Addresses the preview servers listen on (port 0 in the URI = a free port).
    pub fn http_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.servers.iter().map(|s| s.addr()).collect()
    }

    /// Frames skipped so far per output (replaced before the output took them).
    pub fn skipped(&self) -> Vec<(String, u64)> {
        self.outputs
            .iter()
            .map(|o| (o.name.clone(), o.slot.skipped()))
            .collect()
    }

    fn check_outputs(&mut self) -> Result<(), SinkError> {
        for o in &mut self.outputs {
            if o.slot.is_closed() && o.thread.as_ref().is_some_and(|t| t.is_finished()) {
                o.join()?;
            }
        }
        Ok(())
    }
}

/// An open `display://` screen: a framebuffer or a DRM/KMS output.
#[derive(Debug)]
pub enum ScreenOutput {
    /// Linux framebuffer (or a file standing for one).
    Fbdev(fb::FramebufferOutput),
    /// DRM/KMS card.
    Drm(kms::DrmOutput),
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
    /// ([`fb::FramebufferOutput::open`], [`kms::DrmOutput::open`]). Any other URI is an error.
    pub fn open(uri: &OutputUri) -> Result<Self, DisplayError> {
        let OutputUri::Display {
            index,
            device,
            mode,
            backend,
            drm_mode,
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
                Ok(ScreenOutput::Drm(kms::DrmOutput::open(&path, *drm_mode)?))
            }
            _ => {
                let path = device.clone().unwrap_or_else(fb_path);
                Ok(ScreenOutput::Fbdev(fb::FramebufferOutput::open(
                    &path, *mode,
                )?))
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

#[cfg(feature = "ffmpeg")]
fn open_video(path: &Path, renderer: Renderer) -> Result<OutputThread, DisplayError> {
    video::open(path, renderer)
}

#[cfg(not(feature = "ffmpeg"))]
fn open_video(path: &Path, _renderer: Renderer) -> Result<OutputThread, DisplayError> {
    Err(DisplayError::Uri {
        uri: format!("file://{}", path.display()),
        reason: "video file output needs a build with `--features ffmpeg` (Debian's libav*-dev); \
                 or write images with file://DIR/%05d.jpg"
            .into(),
    })
}

#[cfg(feature = "window")]
fn open_window(renderer: Renderer) -> Result<OutputThread, DisplayError> {
    window::open(renderer)
}

#[cfg(not(feature = "window"))]
fn open_window(_renderer: Renderer) -> Result<OutputThread, DisplayError> {
    Err(DisplayError::Uri {
        uri: "window://".into(),
        reason: "this build has no window support; rebuild with `--features window` \
                 (needs libsdl2-dev)"
            .into(),
    })
}

impl Sink for DisplaySink {
    fn frame(&mut self, frame: &AnalysedFrame, events: &[Event]) -> Result<(), SinkError> {
        self.check_outputs()?;
        for (p, _) in &self.preview {
            p.publish_events(events);
        }
        let scene = self.scenes.scene(frame, events);
        for o in &self.outputs {
            o.slot.put(scene.clone(), o.lossless);
        }
        self.last = Some(scene);
        Ok(())
    }

    fn finish(&mut self, events: &[Event]) -> Result<(), SinkError> {
        for (p, _) in &self.preview {
            p.publish_events(events);
        }
        let mut first_err = None;
        for o in &mut self.outputs {
            if let Err(e) = o.join() {
                first_err.get_or_insert(e);
            }
        }
        let linger = self.preview.iter().map(|(_, l)| *l).max().unwrap_or(0);
        if linger > 0 && first_err.is_none() {
            tracing::info!("input ended; preview kept up for {linger} s");
            std::thread::sleep(std::time::Duration::from_secs(linger));
        }
        first_err.map_or(Ok(()), Err)
    }

    fn state(&mut self, state: &RunState) -> Result<(), SinkError> {
        self.scenes.set_state(state);
        // live outputs show the new status at once (on the last frame); files keep theirs
        if let Some(scene) = &mut self.last {
            scene.state = Some(state.clone());
            for o in self.outputs.iter().filter(|o| !o.lossless) {
                o.slot.put(scene.clone(), false);
            }
        }
        for (p, _) in &self.preview {
            p.publish_state(state, &self.outputs.iter().map(|o| o.slot.skipped()).sum());
        }
        Ok(())
    }
}

impl Drop for DisplaySink {
    fn drop(&mut self) {
        for o in &mut self.outputs {
            o.slot.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_output_uris() {
        assert_eq!(
            OutputUri::parse("display://0").unwrap(),
            OutputUri::Display {
                index: 0,
                device: None,
                mode: None,
                backend: DisplayBackend::Auto,
                drm_mode: None,
            }
        );
        match OutputUri::parse("display://1?mode=1280x720@60").unwrap() {
            OutputUri::Display {
                index: 1,
                backend: DisplayBackend::Drm,
                drm_mode: Some(m),
                mode: None,
                ..
            } => assert_eq!((m.width, m.height, m.refresh_hz), (1280, 720, Some(60))),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            OutputUri::parse("display://0?backend=drm&device=/dev/dri/card1").unwrap(),
            OutputUri::Display {
                backend: DisplayBackend::Drm,
                device: Some(_),
                ..
            }
        ));
        assert!(matches!(
            OutputUri::parse("display://0?backend=fbdev").unwrap(),
            OutputUri::Display {
                backend: DisplayBackend::Fbdev,
                ..
            }
        ));
        let u = OutputUri::parse("display://1?device=/tmp/fb&mode=64x48:16").unwrap();
        match u {
            OutputUri::Display {
                index: 1,
                device: Some(d),
                mode: Some(m),
                backend: DisplayBackend::Auto,
                drm_mode: None,
            } => {
                assert_eq!(d, PathBuf::from("/tmp/fb"));
                assert_eq!((m.width, m.height, m.bits_per_pixel), (64, 48, 16));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(OutputUri::parse("window://").unwrap(), OutputUri::Window);
        assert_eq!(
            OutputUri::parse("file://out/%05d.jpg").unwrap(),
            OutputUri::Images {
                pattern: "out/%05d.jpg".into()
            }
        );
        assert!(matches!(
            OutputUri::parse("file://out.mp4").unwrap(),
            OutputUri::Video { .. }
        ));
        assert_eq!(
            OutputUri::parse("http://0.0.0.0:8080?linger=5").unwrap(),
            OutputUri::Http {
                addr: "0.0.0.0:8080".into(),
                linger_s: 5
            }
        );
        for bad in [
            "rtp://host:1234",
            "file://out.jpg",
            "file://out/%05d.txt",
            "display://x",
            "display://0?mode=12",
            "display://0?backend=vulkan",
            "display://0?backend=drm&mode=64x48:16",
            "display://0?backend=fbdev&mode=64x48",
            "http://",
            "http://h:1?foo=1",
        ] {
            let e = OutputUri::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        assert!(OutputUri::parse("window://").unwrap().is_screen());
        assert!(!OutputUri::parse("http://h:1").unwrap().is_screen());
    }

    #[cfg(not(feature = "ffmpeg"))]
    #[test]
    fn video_file_output_is_a_clear_error() {
        let u = OutputUri::parse("file://out.mp4").unwrap();
        let e = DisplaySink::open(&[u], Renderer::default()).unwrap_err();
        assert!(e.to_string().contains("out.mp4"), "{e}");
    }
}
