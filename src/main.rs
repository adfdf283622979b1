//! `c3n-edge` command line: thin layer over the library; errors are reported once, here.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use c3n_edge::bench;
use c3n_edge::config::{Config, DEFAULT_MODEL_PATH};
use c3n_edge::control::RunControl;
use c3n_edge::dataset::SubsetFilter;
use c3n_edge::engine::{self, Backend, EngineOptions, ModelContract};
use c3n_edge::eval::{self, EvalOptions};
use c3n_edge::pipeline::{self, Input, RunOptions};
use c3n_edge::render::Renderer;
use c3n_edge::sink::display::{DisplaySink, OutputUri};
use c3n_edge::sink::jsonl::JsonlSink;
use c3n_edge::sink::mqtt::MqttSink;
use c3n_edge::sink::overlay::{OverlayFormat, OverlaySink};
use c3n_edge::sink::Sink;
use c3n_edge::source::live::LiveOptions;
use c3n_edge::source::VideoOptions;
use c3n_edge::uri::InputUri;

mod cli_checks;
use cli_checks::{check_outputs, model_path_of, parse_alpha, parse_input_rate};

/// Runtime for the C3N audio-visual segmentation network.
#[derive(Debug, Parser)]
#[command(name = "c3n-edge", version, about)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), overrides RUST_LOG.
    #[arg(long, global = true)]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

// `run` carries many more flags than the other commands; the enum is parsed once per process,
// so its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate a model on AVSBench (S4 / MS3): mIoU and F-score per subset.
    Eval {
        /// AVSBench root holding Single-source/ and/or Multi-sources/.
        dataset_dir: PathBuf,
        /// Split to evaluate.
        #[arg(long, default_value = "test", value_parser = ["train", "val", "test"])]
        split: String,
        /// ONNX model with the c3n contract.
        #[arg(long, default_value = DEFAULT_MODEL_PATH)]
        model: PathBuf,
        /// Subset(s): s4, ms3 or all (all = every subset present).
        #[arg(long, default_value = "all")]
        subset: SubsetFilter,
        /// Print one JSON object per subset instead of text.
        #[arg(long)]
        json: bool,
        /// Inference threads.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: u16,
        /// Inference backend.
        #[arg(long, default_value = "tract")]
        backend: String,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Print the effective configuration (defaults merged with FILE), after validating it.
    Config {
        /// TOML file; default: the one `run` would read ($C3N_CONFIG,
        /// $CONFIGURATION_DIRECTORY/c3n-edge.toml, /etc/c3n-edge/c3n-edge.toml), else the defaults.
        file: Option<PathBuf>,
        /// Print the commented sample configuration (every key with its default) instead.
        #[arg(long)]
        sample: bool,
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

/// Model and backend options shared by `run` and `bench`.
#[derive(Debug, clap::Args)]
struct ModelArgs {
    /// ONNX model with the c3n contract [default: the config's [model] path, else
    /// models/c3n-edge-t5.onnx].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Inference threads [default: the config's [model] threads, else 1].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
    /// Inference backend: auto (TensorRT, then CUDA, then tract), tensorrt, cuda, cpu (ONNX
    /// Runtime CPU), tract [default: the config's [model] backend, else tract].
    #[arg(long, alias = "engine")]
    backend: Option<String>,
    /// libonnxruntime.so for tensorrt/cuda/cpu (default: $ORT_DYLIB_PATH, then the loader path).
    #[arg(long = "ort-lib")]
    ort_lib: Option<PathBuf>,
    /// TensorRT engine cache directory (default: $C3N_ENGINE_CACHE, $CACHE_DIRECTORY/engines,
    /// ~/.cache/c3n-edge/engines).
    #[arg(long = "engine-cache")]
    engine_cache: Option<PathBuf>,
    /// TensorRT precision: fp16, int8 (needs a QDQ model), fp32 (default: $C3N_TRT_PRECISION, fp16).
    #[arg(long)]
    precision: Option<String>,
}

impl ModelArgs {
    /// Fills the options not given on the command line from the config file's `[model]`.
    fn or_config(mut self, cfg: &c3n_edge::config::ModelConfig) -> Self {
        self.model = self.model.or_else(|| Some(cfg.path.clone()));
        self.threads = self
            .threads
            .or_else(|| u16::try_from(cfg.threads.clamp(1, 256)).ok());
        self.backend = self.backend.or_else(|| Some(cfg.backend.clone()));
        self
    }
    fn model(&self) -> PathBuf {
        self.model
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL_PATH))
    }
    fn threads(&self) -> u16 {
        self.threads.unwrap_or(1)
    }
    fn backend(&self) -> &str {
        self.backend.as_deref().unwrap_or("tract")
    }
}

/// Input options shared by `run` and `bench`.
#[derive(Debug, clap::Args)]
struct InputArgs {
    /// Audio input (file://clip.wav, alsa://…); default: the video file's own audio track.
    #[arg(long)]
    audio: Option<String>,
    /// Frame rate in fps: of an image-sequence input (default 1), or requested from a camera
    /// (0.01 to 1000).
    #[arg(long = "input-rate", value_parser = parse_input_rate)]
    input_rate: Option<f64>,
    /// Camera: requested frame width in pixels (default 1280; closest mode wins).
    #[arg(long = "input-width")]
    input_width: Option<u32>,
    /// Camera: requested frame height in pixels (default 720).
    #[arg(long = "input-height")]
    input_height: Option<u32>,
    /// Camera: required pixel format (yuyv, nv12, mjpeg, rgb24); default: any, uncompressed preferred.
    #[arg(long = "input-codec")]
    input_codec: Option<String>,
    /// Live inputs: wait for a missing or busy camera/microphone at start instead of failing.
    #[arg(long = "input-wait")]
    input_wait: bool,
    /// Microphone: capture rate in Hz (default 16000 if offered, else nearest 48000).
    #[arg(long = "audio-rate")]
    audio_rate: Option<u32>,
    /// Microphone: channel count (default: the device's minimum; channels are averaged).
    #[arg(long = "audio-channels")]
    audio_channels: Option<u32>,
    /// Microphone: sample format s16, s32 or float (default: the first the device offers).
    #[arg(long = "audio-format")]
    audio_format: Option<String>,
    /// Extra passes over a file input (0 = once, -1 = forever).
    #[arg(
        long = "input-loop",
        default_value_t = 0,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(i64).range(-1..)
    )]
    input_loop: i64,
    /// Stop after N model windows (clips).
    #[arg(long = "max-clips")]
    max_clips: Option<u64>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Video input: file://DIR/%05d.png, file://clip.mp4 (feature ffmpeg), v4l2:///dev/video0.
    input: String,
    #[command(flatten)]
    inputs: InputArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// TOML config file (command-line flags override it). Default: $C3N_CONFIG, else
    /// $CONFIGURATION_DIRECTORY/c3n-edge.toml, else /etc/c3n-edge/c3n-edge.toml, if it exists;
    /// commented sample with every default: systemd/c3n-edge.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Events as JSON lines: a file, or - for stdout.
    #[arg(long, default_value = "-")]
    events: PathBuf,
    /// Write annotated frames into this directory.
    #[arg(long)]
    overlay: Option<PathBuf>,
    /// Overlay image format: png or jpg.
    #[arg(long = "overlay-format", default_value = "png")]
    overlay_format: String,
    /// Display / preview output URI (repeatable): display://0 (framebuffer, else DRM/KMS;
    /// ?backend=drm, ?mode=WxH), window:// (feature
    /// window), file://out/%05d.jpg, http://0.0.0.0:8080 (live preview page).
    #[arg(long = "output", value_name = "URI")]
    outputs: Vec<String>,
    /// Drop display://, window:// outputs (no screen).
    #[arg(long)]
    headless: bool,
    /// Overlay mask opacity, 0-1.
    #[arg(long, default_value_t = 0.59, value_parser = parse_alpha)]
    alpha: f32,
    /// Mask probability threshold (overrides [post] threshold).
    #[arg(long)]
    threshold: Option<f32>,
    /// Minimum region area, fraction of the frame (overrides [post] min_area_fraction).
    #[arg(long = "min-area")]
    min_area: Option<f32>,
    /// Frames an object must be seen in before `new` (overrides [events] min_frames).
    #[arg(long = "min-frames")]
    min_frames: Option<u32>,
    /// End an object unseen for this many ms (overrides [events] end_timeout_ms).
    #[arg(long = "end-timeout-ms")]
    end_timeout_ms: Option<u64>,
    /// Camera name: the events' `camera` and the MQTT topic level (overrides [events] camera).
    #[arg(long = "camera-name", visible_alias = "camera")]
    camera: Option<String>,
    /// Publish to an MQTT broker: mqtt://[user:pass@]HOST[:PORT][/PREFIX] (mqtts:// with the
    /// mqtt-tls feature). Topics <prefix>/available, <prefix>/<camera>/{events,state,<label>,
    /// <label>/snapshot,detect/set,detect/state} and Home Assistant discovery; more settings
    /// (qos, retain, queue_size, credentials, TLS files, discovery) in the [mqtt] config section.
    #[arg(long)]
    mqtt: Option<String>,
    /// Start an embedded MQTT broker on 0.0.0.0:PORT (build feature mqtt-broker); without
    /// --mqtt the output publishes to it (overrides [mqtt] embedded_port).
    #[arg(long = "mqtt-embedded", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    mqtt_embedded: Option<u16>,
    /// MQTT protocol version of the client (and of the embedded broker): 3.1.1 or 5 (overrides
    /// [mqtt] protocol; default 3.1.1). MQTT 5 adds content types to every message.
    #[arg(long = "mqtt-protocol", value_name = "3.1.1|5")]
    mqtt_protocol: Option<c3n_edge::sink::mqtt::Protocol>,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Video input (as for `run`); default: synthetic 640x480 frames at 25 fps with a tone.
    input: Option<String>,
    #[command(flatten)]
    inputs: InputArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// Seconds of synthetic input.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

fn init_logging(filter: Option<&str>) {
    let filter = match filter {
        Some(f) => tracing_subscriber::EnvFilter::new(f),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
    };
    // plain text in pipes, files and the journal; in the journal no second timestamp, and each
    // record's priority (c3n_edge::service::JournalStderr)
    let style = c3n_edge::service::log_style();
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(style.ansi);
    if style.journal {
        fmt.with_writer(c3n_edge::service::JournalStderr)
            .without_time()
            .init();
    } else {
        fmt.with_writer(std::io::stderr).init();
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log.as_deref());
    c3n_edge::service::ignore_file_size_signal();
    match run_command(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // each cause once (library errors often carry their source in their own text)
            eprintln!("{}", c3n_edge::guard::report(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_command(command: Command) -> Result<()> {
    match command {
        Command::Eval {
            dataset_dir,
            split,
            model,
            subset,
            json,
            threads,
            backend,
            quiet,
        } => {
            let backend: Backend = backend.parse()?;
            let options = EngineOptions {
                threads: Some(usize::from(threads)),
            };
            let mut engine = engine::open_engine(backend, &model, &options)
                .with_context(|| format!("loading model {}", model.display()))?;
            let opts = EvalOptions {
                dataset_dir: dataset_dir.clone(),
                split,
                subset,
                progress: !quiet,
            };
            let reports = eval::evaluate(engine.as_mut(), &opts)
                .with_context(|| format!("evaluating {}", dataset_dir.display()))?;
            for r in &reports {
                if json {
                    println!("{}", serde_json::to_string(r)?);
                } else {
                    let s = &r.summary;
                    println!(
                        "{:<4} mIoU {:.4}  F-score {:.4} (4-clip batches)  F-score/frame {:.4}  ({} clips, {} frames)",
                        r.subset, s.miou, s.fscore, s.fscore_per_frame, s.clips, s.frames
                    );
                }
            }
        }
        Command::Config { sample: true, .. } => print!("{}", c3n_edge::config::SAMPLE),
        Command::Config { file, .. } => {
            let cfg = match c3n_edge::config::locate(file.as_deref()) {
                Some(p) => {
                    eprintln!("# configuration from {}", p.display());
                    Config::load(&p)?
                }
                None => {
                    let c = Config::default();
                    c.validate(std::path::Path::new("<defaults>"))?;
                    c
                }
            };
            print!("{}", cfg.to_toml()?);
        }
        Command::ModelInfo { path } => {
            let contract = ModelContract::from_file(&path)?;
            println!("{contract}");
        }
        Command::Run(args) => cmd_run(args)?,
        Command::Bench(args) => cmd_bench(args)?,
        Command::BuildEngine { model } => cmd_build_engine(&model)?,
        Command::BenchEngines {
            model,
            backends,
            iters,
            json,
        } => cmd_bench_engines(&model, &backends, iters, json)?,
        Command::Devices => print!("{}", c3n_edge::source::devices::report()),
        Command::BenchCapture {
            input,
            seconds,
            inputs,
            json,
        } => {
            let Input::Uris { video, options, .. } = input_of(&input, &inputs)? else {
                unreachable!("input_of returns URIs")
            };
            let r = c3n_edge::source::devices::bench_capture(&video, &options, seconds)
                .with_context(|| format!("capturing {input}"))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{r}");
            }
        }
    }
    Ok(())
}

fn engine_settings(m: &ModelArgs) -> Result<engine::EngineSettings> {
    let mut s = engine::EngineSettings::from_env()?;
    if let Some(p) = &m.ort_lib {
        s.ort_library = Some(p.clone());
    }
    if let Some(p) = &m.engine_cache {
        s.engine_cache = Some(p.clone());
    }
    if let Some(p) = &m.precision {
        s.precision = p.parse()?;
    }
    Ok(s)
}

fn load_engine(m: &ModelArgs) -> Result<Box<dyn engine::Engine>> {
    let backend: Backend = m.backend().parse()?;
    let options = EngineOptions {
        threads: Some(usize::from(m.threads())),
    };
    engine::open_engine_with(backend, &m.model(), &options, &engine_settings(m)?)
        .with_context(|| format!("loading model {}", m.model().display()))
}

fn cmd_build_engine(m: &ModelArgs) -> Result<()> {
    use c3n_edge::engine::prebuild::{prebuild, Prebuild};
    let backend: Backend = m.backend().parse()?;
    let options = EngineOptions {
        threads: Some(usize::from(m.threads())),
    };
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match prebuild(
        backend,
        &m.model(),
        &options,
        &engine_settings(m)?,
        progress,
    )
    .with_context(|| format!("building the engine for {}", m.model().display()))?
    {
        Prebuild::NotNeeded(why) => println!("{why}"),
        Prebuild::Ready { dir, cached, load } => println!(
            "TensorRT engine {} in {:.1} s: {}",
            if cached {
                "loaded from the cache"
            } else {
                "built"
            },
            load.as_secs_f64(),
            dir.map_or_else(|| "(not cached)".to_string(), |d| d.display().to_string())
        ),
    }
    Ok(())
}

fn cmd_bench_engines(m: &ModelArgs, backends: &[String], iters: usize, json: bool) -> Result<()> {
    let backends = backends
        .iter()
        .map(|b| b.parse::<Backend>())
        .collect::<Result<Vec<_>, _>>()?;
    let options = EngineOptions {
        threads: Some(usize::from(m.threads())),
    };
    let rows = c3n_edge::engine::prebuild::compare(
        &backends,
        &m.model(),
        &options,
        &engine_settings(m)?,
        iters,
    )
    .with_context(|| format!("benchmarking {}", m.model().display()))?;
    if !json {
        println!(
            "model {}, {} thread(s), {iters} timed calls after the first",
            m.model().display(),
            m.threads()
        );
        println!("| engine | load s | first call ms | median ms | mean ms | min ms | max abs diff mask_logits | max abs diff c3im_score |");
        println!("|---|---|---|---|---|---|---|---|");
    }
    for r in rows {
        if json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!(
                "| {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2e} | {:.2e} |",
                r.engine,
                r.load_s,
                r.first_ms,
                r.median_ms,
                r.mean_ms,
                r.min_ms,
                r.mask_max_abs_diff,
                r.score_max_abs_diff
            );
        }
    }
    Ok(())
}

fn input_of(video: &str, i: &InputArgs) -> Result<Input> {
    Ok(Input::Uris {
        video: InputUri::parse(video)?,
        audio: i.audio.as_deref().map(InputUri::parse).transpose()?,
        options: VideoOptions {
            rate_hz: i.input_rate.unwrap_or(1.0),
            live: LiveOptions {
                width: i.input_width,
                height: i.input_height,
                rate_hz: i.input_rate,
                codec: i.input_codec.clone(),
                wait: i.input_wait,
                audio_rate: i.audio_rate,
                audio_channels: i.audio_channels,
                audio_format: i.audio_format.clone(),
            },
        },
    })
}

fn cmd_run(a: RunArgs) -> Result<()> {
    let mut cfg = match c3n_edge::config::locate(a.config.as_deref()) {
        Some(p) => {
            tracing::info!("configuration from {}", p.display());
            Config::load(&p)?
        }
        None => Config::default(),
    };
    let mut post = cfg.post;
    let mut events = cfg.events;
    post.threshold = a.threshold.unwrap_or(post.threshold);
    post.min_area_fraction = a.min_area.unwrap_or(post.min_area_fraction);
    events.min_frames = a.min_frames.unwrap_or(events.min_frames);
    events.end_timeout_ms = a.end_timeout_ms.unwrap_or(events.end_timeout_ms);
    if let Some(c) = a.camera.clone() {
        events.camera = c;
    }
    if let Some(p) = a.mqtt_protocol {
        cfg.mqtt.protocol = p;
    }
    let control = std::sync::Arc::new(RunControl::default());
    let embedded = a.mqtt_embedded.or(cfg.mqtt.embedded_port);
    if let Some(port) = embedded {
        start_embedded_broker(port, cfg.mqtt.protocol)?;
    }
    let mqtt_url = a
        .mqtt
        .clone()
        .or_else(|| cfg.mqtt.url.clone())
        .or_else(|| embedded.map(|p| format!("mqtt://127.0.0.1:{p}")));
    let mut input = input_of(&a.input, &a.inputs)?;
    if let Input::Uris { options, .. } = &mut input {
        options.live.wait |= cfg.input.wait;
    }
    let opts = RunOptions {
        input,
        input_loop: a.inputs.input_loop,
        max_clips: a.inputs.max_clips,
        post,
        events,
        ..Default::default()
    };
    let overlay_format: OverlayFormat = a.overlay_format.parse()?;
    opts.events.validate().map_err(anyhow::Error::msg)?;
    opts.post.validate().map_err(anyhow::Error::msg)?;
    check_outputs(&a, &opts.input, &model_path_of(&a.model, &cfg.model))?;
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(JsonlSink::open(&a.events)?)];
    if let Some(dir) = &a.overlay {
        sinks.push(Box::new(OverlaySink::open(dir, overlay_format, a.alpha)?));
    }
    // systemd: READY/WATCHDOG from the pipeline's state updates, STOPPING + clean stop on SIGTERM
    if let Some(n) = c3n_edge::sink::systemd::SystemdNotifier::from_env() {
        sinks.push(Box::new(n));
    }
    if let Some(display) = display_sink(&a.outputs, a.headless, a.alpha)? {
        sinks.push(Box::new(display));
    }
    // MQTT before the model: wrong credentials fail fast
    if let Some(url) = &mqtt_url {
        let mut settings = c3n_edge::sink::mqtt::resolve(&cfg.mqtt, url, &opts.events.camera)?;
        // the model's categories: a count topic and a Home Assistant sensor per tracked one
        let contract = engine::ModelContract::from_file(&model_path_of(&a.model, &cfg.model))?;
        let known = &contract.categories.names;
        opts.events
            .check_labels(known)
            .map_err(anyhow::Error::msg)?;
        settings.labels = opts.events.tracked(known).to_vec();
        let quality = cfg.mqtt.snapshots.then_some(cfg.mqtt.snapshot_quality);
        sinks.push(Box::new(MqttSink::connect(
            settings,
            control.clone(),
            quality,
            a.alpha,
        )?));
    }
    c3n_edge::service::stop_on_signals(control.clone())?;
    let model_args = a.model.or_config(&cfg.model);
    let engine = load_engine(&model_args)?;
    // no context here: each input, model and output error names its own file or URI
    let summary = pipeline::run_with(engine, &opts, &mut sinks, control)?;
    tracing::info!(
        clips = summary.clips,
        frames = summary.frames,
        events = summary.events,
        "run finished in {:.1} s",
        summary.wall.as_secs_f64()
    );
    Ok(())
}

#[cfg(feature = "mqtt-broker")]
fn start_embedded_broker(port: u16, protocol: c3n_edge::sink::mqtt::Protocol) -> Result<()> {
    Ok(c3n_edge::sink::mqtt::broker::start(port, protocol)?)
}

#[cfg(not(feature = "mqtt-broker"))]
fn start_embedded_broker(port: u16, _protocol: c3n_edge::sink::mqtt::Protocol) -> Result<()> {
    anyhow::bail!(
        "--mqtt-embedded {port}: this build has no embedded MQTT broker (cargo feature mqtt-broker)"
    )
}

/// The display sink for the `--output` URIs (minus screens when headless), if any remain.
fn display_sink(outputs: &[String], headless: bool, alpha: f32) -> Result<Option<DisplaySink>> {
    let mut uris = Vec::new();
    for o in outputs {
        let u = OutputUri::parse(o)?;
        if headless && u.is_screen() {
            tracing::info!("--headless: output {o} dropped");
            continue;
        }
        uris.push(u);
    }
    if uris.is_empty() {
        return Ok(None);
    }
    let renderer = Renderer {
        alpha: alpha.clamp(0.0, 1.0),
        status: true,
    };
    Ok(Some(DisplaySink::open(&uris, renderer)?))
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    let input = match &a.input {
        Some(v) => input_of(v, &a.inputs)?,
        None => Input::Synthetic {
            width: 640,
            height: 480,
            fps: 25.0,
            seconds: a.seconds,
        },
    };
    let label = a
        .input
        .clone()
        .unwrap_or_else(|| format!("synthetic 640x480 @25 fps, {} s", a.seconds));
    let engine = load_engine(&a.model)?;
    let t = engine.contract().clip_frames;
    let opts = RunOptions {
        input,
        input_loop: a.inputs.input_loop,
        max_clips: a.inputs.max_clips,
        ..Default::default()
    };
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(JsonlSink::new(
        Box::new(std::io::sink()),
        std::path::Path::new("<discarded>"),
    ))];
    let summary = pipeline::run(engine, &opts, &mut sinks).context("benchmark run")?;
    let report = bench::report(
        &a.model.model().display().to_string(),
        &label,
        t,
        usize::from(a.model.threads()),
        &summary,
    );
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}
