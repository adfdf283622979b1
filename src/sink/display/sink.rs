//! [`DisplaySink`]: the [`Sink`] that renders the overlay onto every `--output`, each on its own
//! thread (`OutputThread`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::output::OutputThread;
use super::screen::ScreenOutput;
use super::uri::OutputUri;
use super::{http, DisplayError};
use crate::control::{RunControl, RunState};
use crate::events::Event;
use crate::render::{Renderer, Scene};
use crate::sink::overlay::save_image;
use crate::sink::scene::SceneBuilder;
use crate::sink::{AnalysedFrame, Sink, SinkError};
use crate::uri::{expand_pattern, printf_field};

/// The display sink: renders the overlay onto every `--output`, each on its own thread.
pub struct DisplaySink {
    outputs: Vec<OutputThread>,
    scenes: SceneBuilder,
    preview: Vec<Arc<http::Preview>>,
    servers: Vec<http::PreviewServer>,
    last: Option<Scene>,
    /// The run's control: a stop request ends the outputs' linger.
    control: Option<Arc<RunControl>>,
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
    /// fails before the run starts). `renderer` is shared by all. A preview server gets no
    /// credential: it starts only with `?auth=none` (see [`Self::open_with_preview`]).
    pub fn open(uris: &[OutputUri], renderer: Renderer) -> Result<Self, DisplayError> {
        Self::open_with_preview(uris, renderer, &http::PreviewConfig::default())
    }

    /// [`Self::open`] with the credentials and limits of the preview servers (`[preview]`).
    pub fn open_with_preview(
        uris: &[OutputUri],
        renderer: Renderer,
        preview_cfg: &http::PreviewConfig,
    ) -> Result<Self, DisplayError> {
        let mut sink = DisplaySink {
            outputs: Vec::new(),
            scenes: SceneBuilder::default(),
            preview: Vec::new(),
            servers: Vec::new(),
            last: None,
            control: None,
        };
        for uri in uris {
            match uri {
                OutputUri::Display {
                    index, linger_s, ..
                } => {
                    let mut out = ScreenOutput::open(uri)?;
                    let name = format!("display://{index} ({})", out.describe());
                    let linger = Duration::from_secs(*linger_s);
                    sink.outputs
                        .push(OutputThread::spawn(name, false, linger, move |s| {
                            out.show(&renderer, &s)
                        }));
                }
                OutputUri::Window { linger_s } => sink
                    .outputs
                    .push(open_window(renderer, Duration::from_secs(*linger_s))?),
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
                    let linger = Duration::ZERO; // files do not linger
                    sink.outputs
                        .push(OutputThread::spawn(name, true, linger, move |s| {
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
                OutputUri::Http {
                    addr,
                    linger_s,
                    no_auth,
                    viewers,
                    timeout_s,
                } => {
                    let opts = serve_options(addr, *no_auth, *viewers, *timeout_s, preview_cfg)?;
                    let preview = Arc::new(http::Preview::default());
                    let server = http::PreviewServer::start(addr, preview.clone(), opts)?;
                    let p = preview.clone();
                    let name = format!("http://{}", server.addr());
                    let linger = Duration::from_secs(*linger_s);
                    sink.outputs
                        .push(OutputThread::spawn(name, false, linger, move |s| {
                            p.publish_frame(&renderer.render_image(&s))
                        }));
                    sink.preview.push(preview);
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

    /// Waits until every output thread has shown its final frame and lingered; a stop request
    /// ([`RunControl::request_stop`]) ends the lingering (an output's final frame, if still
    /// waiting in its slot, is shown first).
    fn wait_outputs(&self) {
        const POLL: Duration = Duration::from_millis(50);
        while self.outputs.iter().any(|o| o.is_running()) {
            if self.control.as_ref().is_some_and(|c| c.stop_requested()) {
                for o in &self.outputs {
                    o.slot.close_if_empty();
                }
            }
            std::thread::sleep(POLL);
        }
    }

    fn check_outputs(&mut self) -> Result<(), SinkError> {
        for o in &mut self.outputs {
            if o.has_ended() {
                o.join()?;
            }
        }
        Ok(())
    }
}

/// The access and limits of the preview server on `addr`: the URI's options over `[preview]`.
fn serve_options(
    addr: &str,
    no_auth: bool,
    viewers: Option<usize>,
    timeout_s: Option<u64>,
    cfg: &http::PreviewConfig,
) -> Result<http::ServeOptions, DisplayError> {
    let what = || format!("preview server http://{addr}");
    let access = if no_auth {
        http::Access::Open
    } else {
        let auth = http::PreviewAuth::from_config(cfg).map_err(|e| DisplayError::Output {
            what: what(),
            reason: e.to_string(),
        })?;
        match auth {
            Some(a) => http::Access::Credentials(Arc::new(a)),
            None => {
                return Err(DisplayError::Output {
                    what: what(),
                    reason: "no credential configured: set `user` and `password_hash` (from \
                             `c3n-edge config --hash-password`) or `token_file` in the [preview] \
                             section of the config, or add `?auth=none` to the URI to serve \
                             without one (anyone who can connect sees the camera)"
                        .into(),
                })
            }
        }
    };
    Ok(http::ServeOptions {
        access,
        max_viewers: viewers.unwrap_or(cfg.max_viewers),
        timeout: std::time::Duration::from_secs(timeout_s.unwrap_or(cfg.timeout_s)),
    })
}

#[cfg(feature = "ffmpeg")]
fn open_video(path: &Path, renderer: Renderer) -> Result<OutputThread, DisplayError> {
    super::video::open(path, renderer)
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
fn open_window(renderer: Renderer, linger: Duration) -> Result<OutputThread, DisplayError> {
    super::window::open(renderer, linger)
}

#[cfg(not(feature = "window"))]
fn open_window(_renderer: Renderer, _linger: Duration) -> Result<OutputThread, DisplayError> {
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
        for p in &self.preview {
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
        for p in &self.preview {
            p.publish_events(events);
        }
        // every output shows its final frame (the last scene put), then lingers on it
        for o in &self.outputs {
            o.slot.finish();
        }
        self.wait_outputs();
        let mut first_err = None;
        for o in &mut self.outputs {
            if let Err(e) = o.join() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn attach_control(&mut self, control: &Arc<RunControl>) {
        self.control = Some(control.clone());
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
        for p in &self.preview {
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

#[cfg(all(test, not(feature = "ffmpeg")))]
mod tests {
    use super::*;

    #[test]
    fn video_file_output_is_a_clear_error() {
        let u = OutputUri::parse("file://out.mp4").unwrap();
        let e = DisplaySink::open(&[u], Renderer::default()).unwrap_err();
        assert!(e.to_string().contains("out.mp4"), "{e}");
    }
}
