//! The command line's clap definitions: the subcommands and their flags ([`Cli`]). The
//! subcommands themselves are in the sibling files (`run`, `eval`, `bench`, …).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use c3n_edge::config::{ModelConfig, DEFAULT_MODEL_PATH};
use c3n_edge::dataset::SubsetFilter;
use c3n_edge::pipeline::{parse_alpha, parse_input_rate, Input, Mode, OnBadFrame};
use c3n_edge::source::live::LiveOptions;
use c3n_edge::source::VideoOptions;
use c3n_edge::uri::InputUri;
use c3n_edge::util::threads::MAX_THREADS;

/// Runtime for the C3N audio-visual segmentation network.
#[derive(Debug, Parser)]
#[command(name = "c3n-edge", version, about)]
pub(crate) struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), overrides RUST_LOG.
    #[arg(long, global = true)]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

// `run` carries many more flags than the other commands; the enum is parsed once per process,
// so its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Evaluate a model on AVSBench (S4 / MS3): mIoU and F-score per subset.
    Eval(EvalArgs),
    /// Print the effective configuration (defaults merged with FILE), after validating it.
    Config {
        /// TOML file; default: the one `run` would read ($C3N_CONFIG,
        /// $CONFIGURATION_DIRECTORY/c3n-edge.toml, /etc/c3n-edge/c3n-edge.toml), else the defaults.
        file: Option<PathBuf>,
        /// Print the commented sample configuration (every key with its default) instead.
        #[arg(long)]
        sample: bool,
        /// Read a password from stdin (its first line) and print its Argon2id hash for
        /// `[preview] password_hash`.
        #[arg(long, conflicts_with_all = ["sample", "file"])]
        hash_password: bool,
    },
    /// Print the model contract read from an ONNX file's metadata (validates it).
    ModelInfo {
        /// ONNX model.
        path: PathBuf,
    },
    /// Find the sounding object in an input: events as JSON lines, optional overlay images.
    Run(RunArgs),
    /// Per-stage latency, throughput and peak memory of `run` (synthetic input by default).
    Bench(BenchArgs),
    /// Build (or find) the TensorRT engine in the engine cache ahead of time (a no-op for
    /// backends without an engine, and for `auto` when TensorRT is unavailable).
    BuildEngine {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Time several backends on the same model and input in one process (model call only).
    BenchEngines {
        #[command(flatten)]
        model: ModelArgs,
        /// Backends to compare, comma-separated; the first is the reference for the diffs.
        #[arg(long, default_value = "tract,cpu", value_delimiter = ',')]
        backends: Vec<String>,
        /// Timed calls per backend after the first.
        #[arg(long, default_value_t = 3)]
        iters: usize,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List V4L2 cameras (formats, sizes, frame rates) and ALSA capture PCMs.
    Devices,
    /// Capture-to-model-input latency and CPU use of one live (or file) source, without inference.
    BenchCapture {
        /// Input URI: v4l2:///dev/video0, alsa://hw:1,0, or a file input.
        input: String,
        /// Seconds to capture.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[command(flatten)]
        inputs: InputArgs,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

// (no doc comment: clap would put it in place of the subcommand's `about`)
#[derive(Debug, clap::Args)]
pub(crate) struct EvalArgs {
    /// AVSBench root holding Single-source/ and/or Multi-sources/.
    pub dataset_dir: PathBuf,
    /// Split to evaluate [default: the config's [eval] split, else test].
    #[arg(long, value_parser = ["train", "val", "test"])]
    pub split: Option<String>,
    /// ONNX model with the c3n contract.
    #[arg(long, default_value = DEFAULT_MODEL_PATH)]
    pub model: PathBuf,
    /// Subset(s): s4, ms3 or all (all = every subset present) [default: the config's [eval]
    /// subset, else all].
    #[arg(long)]
    pub subset: Option<SubsetFilter>,
    /// Print one JSON object per subset instead of text.
    #[arg(long)]
    pub json: bool,
    /// Inference threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=MAX_THREADS as i64))]
    pub threads: u16,
    /// Inference backend.
    #[arg(long, default_value = "tract")]
    pub backend: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Model and backend options shared by `run` and `bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct ModelArgs {
    /// ONNX model with the c3n contract [default: the config's [model] path, else
    /// models/c3n-edge-t5.onnx].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Inference threads [default: the config's [model] threads, else 1].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=MAX_THREADS as i64))]
    pub threads: Option<u16>,
    /// Inference backend: auto (TensorRT, then CUDA, then tract), tensorrt, cuda, cpu (ONNX
    /// Runtime CPU), tract [default: the config's [model] backend, else tract].
    #[arg(long, alias = "engine")]
    pub backend: Option<String>,
    /// libonnxruntime.so for tensorrt/cuda/cpu (default: $ORT_DYLIB_PATH, then the loader path).
    #[arg(long = "ort-lib")]
    pub ort_lib: Option<PathBuf>,
    /// TensorRT engine cache directory (default: $C3N_ENGINE_CACHE, $CACHE_DIRECTORY/engines,
    /// ~/.cache/c3n-edge/engines).
    #[arg(long = "engine-cache")]
    pub engine_cache: Option<PathBuf>,
    /// TensorRT precision: fp16, int8 (needs a QDQ model), fp32 (default: $C3N_TRT_PRECISION, fp16).
    #[arg(long)]
    pub precision: Option<String>,
}

impl ModelArgs {
    /// Fills the options not given on the command line from the config file's `[model]`.
    pub fn or_config(mut self, cfg: &ModelConfig) -> Self {
        self.model = self.model.or_else(|| Some(cfg.path.clone()));
        self.threads = self
            .threads
            .or_else(|| u16::try_from(cfg.threads.clamp(1, MAX_THREADS)).ok());
        self.backend = self.backend.or_else(|| Some(cfg.backend.clone()));
        self
    }
    /// The model file: `--model`, else the config's (after [`Self::or_config`]), else the default.
    pub fn model(&self) -> PathBuf {
        self.model
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL_PATH))
    }
    /// Inference threads (1 when unset).
    pub fn threads(&self) -> u16 {
        self.threads.unwrap_or(1)
    }
    /// Backend name (`tract` when unset).
    pub fn backend(&self) -> &str {
        self.backend.as_deref().unwrap_or("tract")
    }
}

/// Input options shared by `run` and `bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct InputArgs {
    /// Audio input (file://clip.wav, alsa://…); default: the video file's own audio track.
    #[arg(long)]
    pub audio: Option<String>,
    /// Frame rate in fps: of an image-sequence input (default 1), or requested from a camera
    /// (0.01 to 1000).
    #[arg(long = "input-rate", value_parser = parse_input_rate)]
    pub input_rate: Option<f64>,
    /// Camera: requested frame width in pixels (default 1280; closest mode wins).
    #[arg(long = "input-width")]
    pub input_width: Option<u32>,
    /// Camera: requested frame height in pixels (default 720).
    #[arg(long = "input-height")]
    pub input_height: Option<u32>,
    /// Camera: required pixel format (yuyv, nv12, mjpeg, rgb24); default: any, uncompressed preferred.
    #[arg(long = "input-codec")]
    pub input_codec: Option<String>,
    /// Live inputs: wait for a missing or busy camera/microphone at start instead of failing.
    #[arg(long = "input-wait")]
    pub input_wait: bool,
    /// Microphone: capture rate in Hz (default 16000 if offered, else nearest 48000).
    #[arg(long = "audio-rate")]
    pub audio_rate: Option<u32>,
    /// Microphone: channel count (default: the device's minimum; channels are averaged).
    #[arg(long = "audio-channels")]
    pub audio_channels: Option<u32>,
    /// Microphone: sample format s16, s32 or float (default: the first the device offers).
    #[arg(long = "audio-format")]
    pub audio_format: Option<String>,
    /// Extra passes over a file input (0 = once, -1 = forever).
    #[arg(
        long = "input-loop",
        default_value_t = 0,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(i64).range(-1..)
    )]
    pub input_loop: i64,
    /// A frame that cannot be decoded, is truncated or has another size (or an audio read
    /// error): `stop` the run, or `skip` it and count it (frames_bad, audio_gaps). Default: skip
    /// for live and looped inputs, stop for a single pass over a file.
    #[arg(long = "on-bad-frame", value_name = "stop|skip")]
    pub on_bad_frame: Option<OnBadFrame>,
    /// Stop after N model windows (clips; in `stream` mode, N masks).
    #[arg(long = "max-clips")]
    pub max_clips: Option<u64>,
    /// `window`: AVSBench windows of T one-second slots, one model call each (default for
    /// recorded files); `stream`: a mask for every analysed frame with the T − 1 frames one,
    /// two, … seconds before it as context (default for live and --paced inputs).
    #[arg(long = "mode", value_name = "window|stream")]
    pub mode: Option<Mode>,
    /// Masks per second, up to 120 (slots of 1/R s, one frame each; implies `--mode stream`);
    /// default every frame, the newest first when the engine is behind.
    #[arg(long = "mask-rate", value_name = "R", allow_negative_numbers = true)]
    pub mask_rate: Option<f64>,
    /// Release a recorded input at wall-clock pace, as a camera and a microphone deliver it
    /// (frames are dropped when the engine is behind; measures live latency on a file).
    #[arg(long = "paced")]
    pub paced: bool,
}

impl InputArgs {
    /// The input of `run`, `bench` and `bench-capture`: the `video` URI with `--audio` and the
    /// capture options.
    pub fn input(&self, video: &str) -> Result<Input> {
        Ok(Input::Uris {
            video: InputUri::parse(video)?,
            audio: self.audio.as_deref().map(InputUri::parse).transpose()?,
            options: VideoOptions {
                rate_hz: self.input_rate.unwrap_or(1.0),
                live: LiveOptions {
                    width: self.input_width,
                    height: self.input_height,
                    rate_hz: self.input_rate,
                    codec: self.input_codec.clone(),
                    wait: self.input_wait,
                    audio_rate: self.audio_rate,
                    audio_channels: self.audio_channels,
                    audio_format: self.audio_format.clone(),
                },
                ..VideoOptions::default()
            },
        })
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Video input: file://DIR/%05d.png, file://clip.mp4 (feature ffmpeg), v4l2:///dev/video0.
    pub input: String,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// TOML config file (command-line flags override it). Default: $C3N_CONFIG, else
    /// $CONFIGURATION_DIRECTORY/c3n-edge.toml, else /etc/c3n-edge/c3n-edge.toml, if it exists;
    /// commented sample with every default: systemd/c3n-edge.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Events as JSON lines: a file, or - for stdout.
    #[arg(long, default_value = "-")]
    pub events: PathBuf,
    /// Write annotated frames into this directory.
    #[arg(long)]
    pub overlay: Option<PathBuf>,
    /// Overlay image format: png or jpg.
    #[arg(long = "overlay-format", default_value = "png")]
    pub overlay_format: String,
    /// Display / preview output URI (repeatable): display://0 (framebuffer, else DRM/KMS;
    /// ?backend=drm, ?mode=WxH), window:// (feature
    /// window, ?linger=S), file://out/%05d.jpg, http://:8080 (live preview page on 127.0.0.1;
    /// asks for the [preview] credential unless ?auth=none; http://0.0.0.0:8080 for every
    /// interface).
    #[arg(long = "output", value_name = "URI")]
    pub outputs: Vec<String>,
    /// Drop display://, window:// outputs (no screen).
    #[arg(long)]
    pub headless: bool,
    /// Overlay mask opacity, 0-1.
    #[arg(long, default_value_t = 0.59, value_parser = parse_alpha)]
    pub alpha: f32,
    /// Mask probability threshold (overrides [post] threshold).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Minimum region area, fraction of the frame (overrides [post] min_area_fraction).
    #[arg(long = "min-area")]
    pub min_area: Option<f32>,
    /// Frames an object must be seen in before `new` (overrides [events] min_frames).
    #[arg(long = "min-frames")]
    pub min_frames: Option<u32>,
    /// End an object unseen for this many ms (overrides [events] end_timeout_ms).
    #[arg(long = "end-timeout-ms")]
    pub end_timeout_ms: Option<u64>,
    /// Send an unchanged object's `update` again after this many seconds; 0 sends one for every
    /// frame it is seen in (overrides [events] update_interval_s).
    #[arg(long = "update-interval", value_name = "SECONDS")]
    pub update_interval_s: Option<f64>,
    /// Drop a frame's regions when the model's `in_view` score (the probability that the sound's
    /// source is visible; models with that output only) is below this, 0-1 (overrides [events]
    /// min_in_view; default 0.5, provisional until tuned on validation).
    #[arg(long = "min-in-view", value_name = "P")]
    pub min_in_view: Option<f32>,
    /// Camera name: the events' `camera` and the MQTT topic level (overrides [events] camera).
    #[arg(long = "camera-name", visible_alias = "camera")]
    pub camera: Option<String>,
    /// Publish to an MQTT broker: mqtt://[user:pass@]HOST[:PORT][/PREFIX] (mqtts:// with the
    /// mqtt-tls feature). Topics <prefix>/available, <prefix>/<camera>/{events,state,<label>,
    /// <label>/snapshot,detect/set,detect/state} and Home Assistant discovery; more settings
    /// (qos, retain, queue_size, credentials, TLS files, discovery) in the [mqtt] config section.
    #[arg(long)]
    pub mqtt: Option<String>,
    /// Start an embedded MQTT broker on 0.0.0.0:PORT (build feature mqtt-broker); without
    /// --mqtt the output publishes to it (overrides [mqtt] embedded_port).
    #[arg(long = "mqtt-embedded", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub mqtt_embedded: Option<u16>,
    /// MQTT protocol version of the client (and of the embedded broker): 3.1.1 or 5 (overrides
    /// [mqtt] protocol; default 3.1.1). MQTT 5 adds content types to every message.
    #[arg(long = "mqtt-protocol", value_name = "3.1.1|5")]
    pub mqtt_protocol: Option<c3n_edge::sink::mqtt::Protocol>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Video input (as for `run`); default: synthetic 640x480 frames at 25 fps with a tone.
    pub input: Option<String>,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Seconds of synthetic input.
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    /// Live latency: N paced runs per mode (window, stream; or --mode's alone) of the input
    /// (frames and audio) after a random silent lead-in of 0–5 s, shown by a --camera-fps camera;
    /// reports capture → mask, sound onset → first `new` event (p50, p95) and masks per second.
    #[arg(long, default_value_t = 0)]
    pub onsets: usize,
    /// `--onsets`: seed of the lead-in times.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// `--onsets`: frame rate of the simulated camera, fps.
    #[arg(long = "camera-fps", default_value_t = 15.0)]
    pub camera_fps: f64,
    /// `--onsets`: frame size of the simulated camera, WIDTHxHEIGHT.
    #[arg(long = "camera-size", default_value = "640x480")]
    pub camera_size: String,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}
