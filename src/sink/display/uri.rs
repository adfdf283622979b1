//! `--output` URIs (the table in [`super`]): [`OutputUri::parse`] and the `display://` backend
//! choice [`DisplayBackend`].

use std::path::{Path, PathBuf};

use super::fb::FbGeometry;
use super::http::auth::{check_timeout, check_viewers};
use super::kms::ModeRequest;
use super::DisplayError;
use crate::uri::{printf_field, CONTAINER_EXTENSIONS};

/// How `display://N` reaches the screen (`?backend=auto|fbdev|drm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisplayBackend {
    /// `auto` (the default): with `?device=PATH`, KMS for a DRM device (a node under
    /// `/dev/dri/` or a character device of major 226), fbdev otherwise; without it, `/dev/fbN`
    /// when it exists, else `/dev/dri/cardN`. A `?mode=WxH:BPP` means fbdev, a `?mode=WxH` KMS.
    #[default]
    Auto,
    /// `fbdev`: the Linux framebuffer ([`super::fb`]), `/dev/fbN`.
    Fbdev,
    /// `drm`: DRM/KMS ([`super::kms`]), `/dev/dri/cardN`.
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
        mode: Option<FbGeometry>,
        /// Backend choice (`?backend=`).
        backend: DisplayBackend,
        /// KMS mode asked for (`?mode=WxH` or `?mode=WxH@HZ`).
        drm_mode: Option<ModeRequest>,
        /// Seconds the final frame stays on the screen after the input ended (`?linger=S`,
        /// default 0). KMS gives the screen back when the output closes, so without it the
        /// final frame vanishes at once; a framebuffer keeps its last picture anyway.
        linger_s: u64,
    },
    /// Desktop window (feature `window`).
    Window {
        /// Seconds the window stays open on its final frame after the input ended
        /// (`?linger=S`; default 0: it closes once the final frame is shown). A stop signal
        /// (SIGTERM, Ctrl-C) or closing the window ends it early.
        linger_s: u64,
    },
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
        /// Listen address `host:port` (`127.0.0.1` when the URI names no host).
        addr: String,
        /// Seconds to keep serving after the input ended (`?linger=S`, default 0); a stop
        /// signal ends it early.
        linger_s: u64,
        /// `?auth=none`: serve without asking for a credential.
        no_auth: bool,
        /// `?viewers=N`: concurrent MJPEG viewers (default: `[preview] max_viewers`).
        viewers: Option<usize>,
        /// `?timeout=S`: read/write timeout of a connection, s (default: `[preview] timeout_s`).
        timeout_s: Option<u64>,
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
            "display" => &["device", "mode", "backend", "linger"],
            "window" => &["linger"],
            "http" => &["linger", "auth", "viewers", "timeout"],
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
        let linger_s = match param("linger") {
            Some(v) => v
                .parse()
                .map_err(|_| bad(format!("linger {v:?}: expected whole seconds")))?,
            None => 0,
        };
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
                        mode = Some(FbGeometry::parse_mode(&m).map_err(|e| bad(e.to_string()))?);
                    } else {
                        if backend == DisplayBackend::Fbdev {
                            return Err(bad(format!(
                                "mode {m:?}: a framebuffer takes WxH:16 or WxH:32 (its geometry); choosing a \
                                 mode needs backend=drm"
                            )));
                        }
                        drm_mode = Some(ModeRequest::parse(&m).map_err(|e| {
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
                    linger_s,
                })
            }
            "window" => Ok(OutputUri::Window { linger_s }),
            "http" => {
                let addr = http_addr(body.trim_end_matches('/')).map_err(|e| bad(e.to_string()))?;
                let no_auth = match param("auth").as_deref() {
                    None => false,
                    Some("none") => true,
                    Some(v) => {
                        return Err(bad(format!(
                            "auth {v:?}: only auth=none (no credential) is an option; \
                             credentials are set in [preview] of the config"
                        )))
                    }
                };
                let viewers = match param("viewers") {
                    Some(v) => {
                        let n = v
                            .parse()
                            .map_err(|_| bad(format!("viewers {v:?}: expected a number")))?;
                        check_viewers(n).map_err(|e| bad(e.to_string()))?;
                        Some(n)
                    }
                    None => None,
                };
                let timeout_s = match param("timeout") {
                    Some(v) => {
                        let t = v
                            .parse()
                            .map_err(|_| bad(format!("timeout {v:?}: expected seconds")))?;
                        check_timeout(t).map_err(|e| bad(e.to_string()))?;
                        Some(t)
                    }
                    None => None,
                };
                Ok(OutputUri::Http {
                    addr,
                    linger_s,
                    no_auth,
                    viewers,
                    timeout_s,
                })
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
        matches!(self, OutputUri::Display { .. } | OutputUri::Window { .. })
    }
}

/// A `http://:PORT` whose port is not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("port {0:?} is not a number")]
struct BadPort(String);

/// The listen address of `http://BODY`: `HOST:PORT`, `HOST` (port 8080), `:PORT` or `PORT`
/// (host 127.0.0.1), or nothing (127.0.0.1:8080).
///
/// Errors: [`BadPort`] for a `:PORT` that is not a port number.
fn http_addr(body: &str) -> Result<String, BadPort> {
    const LOCAL: &str = "127.0.0.1";
    if body.is_empty() {
        return Ok(format!("{LOCAL}:8080"));
    }
    if let Some(port) = body.strip_prefix(':') {
        return port
            .parse::<u16>()
            .map(|p| format!("{LOCAL}:{p}"))
            .map_err(|_| BadPort(port.to_string()));
    }
    if let Ok(p) = body.parse::<u16>() {
        return Ok(format!("{LOCAL}:{p}"));
    }
    // `[::1]:8080` and `host:port` as given; a bare IPv6 address in brackets gets the port
    if body.starts_with('[') && body.ends_with(']') {
        return Ok(format!("{body}:8080"));
    }
    if body.contains(':') {
        Ok(body.to_string())
    } else {
        Ok(format!("{body}:8080"))
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
                linger_s: 0,
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
                linger_s: 0,
            } => {
                assert_eq!(d, PathBuf::from("/tmp/fb"));
                assert_eq!((m.width, m.height, m.bits_per_pixel), (64, 48, 16));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            OutputUri::parse("window://").unwrap(),
            OutputUri::Window { linger_s: 0 }
        );
        assert_eq!(
            OutputUri::parse("window://?linger=30").unwrap(),
            OutputUri::Window { linger_s: 30 }
        );
        assert!(matches!(
            OutputUri::parse("display://0?backend=drm&linger=5").unwrap(),
            OutputUri::Display {
                backend: DisplayBackend::Drm,
                linger_s: 5,
                ..
            }
        ));
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
                linger_s: 5,
                no_auth: false,
                viewers: None,
                timeout_s: None,
            }
        );
        assert_eq!(
            OutputUri::parse("http://:9000?auth=none&viewers=2&timeout=1").unwrap(),
            OutputUri::Http {
                addr: "127.0.0.1:9000".into(),
                linger_s: 0,
                no_auth: true,
                viewers: Some(2),
                timeout_s: Some(1),
            }
        );
        for (uri, addr) in [
            ("http://", "127.0.0.1:8080"),
            ("http://8081", "127.0.0.1:8081"),
            ("http://camera.local", "camera.local:8080"),
            ("http://[::1]", "[::1]:8080"),
            ("http://[::]:80/", "[::]:80"),
        ] {
            match OutputUri::parse(uri).unwrap() {
                OutputUri::Http { addr: a, .. } => assert_eq!(a, addr, "{uri}"),
                other => panic!("{other:?}"),
            }
        }
        for bad in [
            "rtp://host:1234",
            "file://out.jpg",
            "file://out/%05d.txt",
            "display://x",
            "display://0?mode=12",
            "display://0?backend=vulkan",
            "display://0?backend=drm&mode=64x48:16",
            "display://0?backend=fbdev&mode=64x48",
            "http://h:1?foo=1",
            "http://h:1?linger=-1",
            "window://?linger=2.5",
            "window://?mode=64x48",
            "http://h:1?auth=basic",
            "http://h:1?viewers=0",
            "http://h:1?timeout=x",
            "http://:x",
        ] {
            let e = OutputUri::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        assert!(OutputUri::parse("window://").unwrap().is_screen());
        assert!(!OutputUri::parse("http://h:1").unwrap().is_screen());
    }
}
