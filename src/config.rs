//! TOML configuration (`c3n-edge config [FILE]`). Every field has a default, so an empty file is
//! valid; unknown keys are rejected so typos do not go unnoticed. The file is found by [`locate`]
//! (`--config`, `$C3N_CONFIG`, systemd's `$CONFIGURATION_DIRECTORY/c3n-edge.toml`,
//! `/etc/c3n-edge/c3n-edge.toml`); the shipped sample with every default is
//! `systemd/c3n-edge.toml` ([`SAMPLE`]). Keys, with example (not default) values:
//!
//! ```toml
//! [model]
//! path = "models/c3n-edge-t5.onnx"     # ONNX file with the c3n contract
//! backend = "tract"                      # inference backend (see engine::BACKENDS)
//! threads = 1                            # intra-op threads
//!
//! [eval]                                 # `eval` defaults (--split, --subset win)
//! split = "test"                         # AVSBench split
//! subset = "all"                         # s4 | ms3 | all
//!
//! [post]                                 # `run` post-processing (src/post/)
//! threshold = 0.5                        # mask probability threshold
//! min_area_fraction = 0.002              # drop smaller regions (fraction of the frame)
//!
//! [events]                               # `run` event lifecycle (src/events/)
//! min_frames = 2                         # frames seen before `new`
//! end_timeout_ms = 3000                  # unseen this long -> `end`
//! silence_dbfs = -50.0                   # quieter frames count as "nothing sounds"
//! silence_classes = ["Silence"]          # ... and so do frames whose top AudioSet class is one of these
//! min_in_view = 0.5                      # ... and frames whose `in_view` is below this (default 0.5, provisional)
//! camera = "default"                     # camera name: events' `camera`, MQTT topic level
//! labels = ["person", "dog"]             # track only these categories (default [] = all)
//! min_score = { person = 0.6 }           # minimum region score per category
//! update_iou = 0.7                       # `update` when the box IoU with the one sent is below
//! update_score_delta = 0.1               # ... or the score moved by more than this
//! update_interval_s = 0                  # ... or after this long (s); 0 = every frame
//!
//! [mqtt]                                 # MQTT output (src/sink/mqtt); off unless url or --mqtt
//! url = "mqtt://user:pass@broker:1883"   # mqtt:// or mqtts:// (feature mqtt-tls); path = prefix
//! protocol = "3.1.1"                     # "3.1.1" or "5" (MQTT 5: content types on every message)
//! prefix = "c3n"                         # topics <prefix>/available, <prefix>/<camera>/...
//! qos = 0                                # 0, 1 or 2 for every publish and subscription
//! retain = true                          # retain states, counts, snapshots, discovery
//! queue_size = 100                       # event queue while disconnected (drop-oldest, counted)
//! client_id = "c3n-edge-default"         # default c3n-edge-<camera>
//! discovery = true                       # Home Assistant discovery configs
//! discovery_prefix = "homeassistant"     # HA discovery prefix (birth topic <prefix>/status)
//! username = "c3n"                       # credentials (the URL's win)
//! password = "secret"
//! ca_file = "/etc/c3n/ca.pem"            # mqtts://: CA (PEM); default the system roots
//! client_cert = "/etc/c3n/client.pem"    # mqtts://: client certificate (PEM) ...
//! client_key = "/etc/c3n/client.key"     # ... and its PKCS#8 key (PEM)
//! keep_alive_s = 30                      # MQTT keep-alive, s
//! reconnect_min_ms = 500                 # reconnect backoff: first delay, doubling, jittered
//! reconnect_max_ms = 30000               # ... up to this
//! connect_wait_ms = 5000                 # wait for the broker at start (and to flush at exit)
//! snapshots = true                       # overlay JPEG snapshots per label
//! snapshot_quality = 80                  # JPEG quality 1-100
//! embedded_port = 1883                   # start an embedded broker (feature mqtt-broker)
//!
//! [input]                                # inputs (src/source/, src/pipeline/faults.rs)
//! wait = false                           # wait for a missing/busy device (= --input-wait)
//! max_pixels = 16777216                  # largest frame decoded (header checked first)
//! on_bad_frame = "skip"                  # stop | skip (= --on-bad-frame); unset: by input
//! mode = "stream"                        # window | stream (= --mode); unset: by input
//! mask_rate = 5.0                        # stream: masks/s, at most 120 (= --mask-rate); unset: every frame
//!
//! [preview]                              # `--output http://…` (src/sink/display/http/)
//! user = "viewer"                        # HTTP Basic user ...
//! password_hash = "$argon2id$v=19$..."   # ... and `c3n-edge config --hash-password` output
//! token_file = "/etc/c3n-edge/preview.token"  # or/and a bearer token
//! max_viewers = 4                        # concurrent MJPEG streams (?viewers=N)
//! timeout_s = 5                          # connection read/write timeout (?timeout=S)
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::SubsetFilter;
use crate::engine::{Backend, BACKENDS};
use crate::frontend::image::DEFAULT_MAX_PIXELS;
use crate::util::threads::{check_threads, MAX_THREADS};

/// Errors reading or validating a config file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Cannot read the file.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML or wrong types/keys.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Parser message (with line/column).
        message: String,
    },
    /// Values parse but are not acceptable.
    #[error("invalid config {path}: {message}")]
    Invalid {
        /// File (or `<defaults>`).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Model and backend.
    pub model: ModelConfig,
    /// `eval`: defaults of `--split` and `--subset`.
    pub eval: EvalConfig,
    /// `run`: mask post-processing (threshold, minimum area, outlines).
    pub post: crate::post::PostConfig,
    /// `run`: event lifecycle (min frames, end timeout, IoU matching, silence gate).
    pub events: crate::events::EventConfig,
    /// `run`: MQTT output (broker, topics, queue, Home Assistant discovery).
    pub mqtt: crate::sink::mqtt::MqttConfig,
    /// `run`: inputs (`[input] wait`, `max_pixels`, `on_bad_frame`).
    pub input: InputConfig,
    /// `run`: the `http://` preview's credentials and limits.
    pub preview: crate::sink::display::http::PreviewConfig,
}

/// `[input]` section: live capture devices (`v4l2://`, `alsa://`), the frame size limit and
/// faults of any input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputConfig {
    /// Wait (retrying with jittered exponential backoff, 0.25 s doubling up to 5 s) for a camera
    /// or microphone that is missing or busy at start instead of failing; same as `--input-wait`.
    pub wait: bool,
    /// Largest frame of an image sequence or a video file, in pixels (width × height; default
    /// [`DEFAULT_MAX_PIXELS`] = 4096 × 4096): a larger frame is refused from its header, before
    /// its pixel buffer is allocated.
    pub max_pixels: u64,
    /// What a frame that cannot be used (or an audio read error) does: `stop` the run or `skip`
    /// and count it; same as `--on-bad-frame`. Unset: `skip` for live and looped inputs, `stop`
    /// for a single pass over a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_bad_frame: Option<crate::pipeline::OnBadFrame>,
    /// `window` or `stream`; same as `--mode`. Unset: `stream` for live inputs, `window` for
    /// recorded files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<crate::pipeline::Mode>,
    /// Streaming mode: masks per second; same as `--mask-rate`. Unset: every frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_rate: Option<f64>,
}

impl Default for InputConfig {
    fn default() -> Self {
        Self {
            wait: false,
            max_pixels: DEFAULT_MAX_PIXELS,
            on_bad_frame: None,
            mode: None,
            mask_rate: None,
        }
    }
}

/// `[model]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// ONNX model file.
    pub path: PathBuf,
    /// Backend name (`tract`).
    pub backend: String,
    /// Intra-op threads (≥ 1).
    pub threads: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from(DEFAULT_MODEL_PATH),
            backend: "tract".into(),
            threads: 1,
        }
    }
}

/// Default model path: the shipped trained `edge` model, T = 5 (relative to the working directory).
pub const DEFAULT_MODEL_PATH: &str = "models/c3n-edge-t5.onnx";

/// `[eval]` section: the defaults of `c3n-edge eval` (its flags win). `eval` has no `--config`:
/// it reads the file [`locate`] finds without one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// AVSBench split (`train`, `val`, `test`; `--split`).
    pub split: String,
    /// `s4`, `ms3` or `all` (`--subset`).
    pub subset: String,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            split: "test".into(),
            subset: "all".into(),
        }
    }
}

/// Environment variable naming the config file (below `--config`, above the default locations).
pub const CONFIG_ENV: &str = "C3N_CONFIG";
/// The config file's default location when no `--config`, `$C3N_CONFIG` or systemd
/// `$CONFIGURATION_DIRECTORY` names one (read only if it exists).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/c3n-edge/c3n-edge.toml";
/// The shipped sample (`systemd/c3n-edge.toml`): every key with its default, commented.
pub const SAMPLE: &str = include_str!("../systemd/c3n-edge.toml");

/// Which config file to read: `explicit` (`--config`), else `$C3N_CONFIG`, else
/// `$CONFIGURATION_DIRECTORY/c3n-edge.toml` (set by systemd's `ConfigurationDirectory=`) if it
/// exists, else [`DEFAULT_CONFIG_PATH`] if it exists, else none (built-in defaults). A file named
/// by the flag or `$C3N_CONFIG` must exist ([`Config::load`] reports it otherwise).
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let systemd = std::env::var_os("CONFIGURATION_DIRECTORY")
        .filter(|v| !v.is_empty())
        // systemd passes a colon-separated list; the unit has one entry
        .and_then(|v| {
            v.to_string_lossy()
                .split(':')
                .next()
                .map(|d| Path::new(d).join("c3n-edge.toml"))
        });
    systemd
        .into_iter()
        .chain(std::iter::once(PathBuf::from(DEFAULT_CONFIG_PATH)))
        .find(|p| p.is_file())
}

/// Largest configuration file read, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl Config {
    /// Reads, parses and validates a TOML file.
    /// Only a regular file of at most [`MAX_CONFIG_BYTES`] is read (not a FIFO or a device).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Err(io(std::io::Error::other("not a regular file")));
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(io(std::io::Error::other(format!(
                "{} bytes: a configuration file is at most {MAX_CONFIG_BYTES}",
                meta.len()
            ))));
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::parse(&text, path)
    }

    /// Parses and validates TOML text; `path` is only used in the errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks value ranges; `path` is only used in the error.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        self.model.backend.parse::<Backend>().map_err(|_| {
            bad(format!(
                "model.backend = {:?}: expected one of {BACKENDS:?}",
                self.model.backend
            ))
        })?;
        if check_threads(self.model.threads).is_err() {
            return Err(bad(format!(
                "model.threads = {}: expected 1..={MAX_THREADS}",
                self.model.threads
            )));
        }
        if !["train", "val", "test"].contains(&self.eval.split.as_str()) {
            return Err(bad(format!(
                "eval.split = {:?}: expected train, val or test",
                self.eval.split
            )));
        }
        self.eval
            .subset
            .parse::<SubsetFilter>()
            .map_err(|e| bad(format!("eval.subset: {e}")))?;
        if self.input.max_pixels == 0 {
            return Err(bad(
                "input.max_pixels = 0: expected at least 1 (width × height of the largest frame)"
                    .into(),
            ));
        }
        if let Some(r) = self.input.mask_rate {
            crate::pipeline::check_mask_rate(r)
                .map_err(|e| bad(format!("input.mask_rate: {e}")))?;
        }
        self.post.validate().map_err(|e| bad(e.to_string()))?;
        self.events.validate().map_err(|e| bad(e.to_string()))?;
        self.mqtt.validate().map_err(|e| bad(e.to_string()))?;
        self.preview.validate().map_err(|e| bad(e.to_string()))?;
        Ok(())
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid {
            path: PathBuf::from("<config>"),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn shipped_sample_parses_and_equals_the_defaults() {
        let sample: Config = toml::from_str(SAMPLE).expect("systemd/c3n-edge.toml parses");
        sample
            .validate(Path::new("systemd/c3n-edge.toml"))
            .expect("sample validates");
        assert_eq!(
            sample,
            Config::default(),
            "the sample must show the defaults"
        );
    }

    #[test]
    fn explicit_config_wins_over_the_environment() {
        let p = Path::new("/nonexistent/explicit.toml");
        assert_eq!(locate(Some(p)), Some(p.to_path_buf()));
    }

    use super::*;

    #[test]
    fn defaults_and_partial_files() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c, Config::default());
        c.validate(Path::new("x")).unwrap();
        let c: Config = toml::from_str("[model]\nthreads = 2\n").unwrap();
        assert_eq!(c.model.threads, 2);
        assert_eq!(c.model.backend, "tract");
        let round: Config = toml::from_str(&c.to_toml().unwrap()).unwrap();
        assert_eq!(round, c);
        let c: Config = toml::from_str("[input]\nwait = true\n").unwrap();
        assert!(c.input.wait && !Config::default().input.wait);
        assert!(toml::from_str::<Config>("[input]\nwiat = true\n").is_err());
        assert_eq!(Config::default().input.max_pixels, 4096 * 4096);
        let c: Config = toml::from_str("[input]\nmax_pixels = 640\n").unwrap();
        assert_eq!((c.input.max_pixels, c.input.wait), (640, false));
        let c: Config = toml::from_str("[input]\nmax_pixels = 0\n").unwrap();
        assert!(c.validate(Path::new("x")).is_err());
        let c: Config = toml::from_str("[input]\non_bad_frame = \"skip\"\n").unwrap();
        assert_eq!(
            c.input.on_bad_frame,
            Some(crate::pipeline::OnBadFrame::Skip)
        );
        assert_eq!(Config::default().input.on_bad_frame, None);
        let c: Config = toml::from_str("[input]\nmode = \"stream\"\nmask_rate = 4.0\n").unwrap();
        assert_eq!(c.input.mode, Some(crate::pipeline::Mode::Stream));
        assert_eq!(c.input.mask_rate, Some(4.0));
        assert!(toml::from_str::<Config>("[input]\nmode = \"batch\"\n").is_err());
        let bad: Config = toml::from_str("[input]\nmask_rate = 0.0\n").unwrap();
        let e = bad.validate(Path::new("c.toml")).unwrap_err().to_string();
        assert!(e.contains("input.mask_rate") && e.contains("c.toml"), "{e}");
        assert!(toml::from_str::<Config>("[input]\non_bad_frame = \"ignore\"\n").is_err());
    }

    #[test]
    fn rejects_unknown_and_invalid() {
        assert!(toml::from_str::<Config>("[model]\nthread = 2\n").is_err());
        let c: Config = toml::from_str("[model]\nbackend = \"onnxruntime\"\n").unwrap();
        assert!(c.validate(Path::new("x")).is_err());
        let c: Config = toml::from_str("[eval]\nsubset = \"s5\"\n").unwrap();
        assert!(c.validate(Path::new("x")).is_err());
    }
}
