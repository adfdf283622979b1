//! `c3n-edge run`: the config file and the flags merged into the pipeline's options, checked,
//! the sinks opened (events, overlays, systemd, display, MQTT), the model loaded, the run.

use std::sync::Arc;

use anyhow::Result;

use c3n_edge::config::{self, Config};
use c3n_edge::control::RunControl;
use c3n_edge::engine::model::load_model_proto;
use c3n_edge::engine::ModelContract;
use c3n_edge::pipeline::{self, Input, RunOptions};
use c3n_edge::render::Renderer;
use c3n_edge::sink::display::{DisplaySink, OutputUri};
use c3n_edge::sink::jsonl::JsonlSink;
use c3n_edge::sink::mqtt::MqttSink;
use c3n_edge::sink::overlay::{OverlayFormat, OverlaySink};
use c3n_edge::sink::Sink;

use super::args::RunArgs;
use super::checks::{check_run, model_path_of};
use super::engines::{load_engine, load_engine_from};

pub(crate) fn cmd_run(a: RunArgs) -> Result<()> {
    let config_path = config::locate(a.config.as_deref());
    let mut cfg = match &config_path {
        Some(p) => {
            tracing::info!("configuration from {}", p.display());
            Config::load(p)?
        }
        None => Config::default(),
    };
    let mut post = cfg.post;
    let mut events = cfg.events;
    post.threshold = a.threshold.unwrap_or(post.threshold);
    post.min_area_fraction = a.min_area.unwrap_or(post.min_area_fraction);
    events.min_frames = a.min_frames.unwrap_or(events.min_frames);
    events.end_timeout_ms = a.end_timeout_ms.unwrap_or(events.end_timeout_ms);
    events.update_interval_s = a.update_interval_s.unwrap_or(events.update_interval_s);
    events.min_in_view = a.min_in_view.unwrap_or(events.min_in_view);
    if let Some(c) = a.camera.clone() {
        events.camera = c;
    }
    if let Some(p) = a.mqtt_protocol {
        cfg.mqtt.protocol = p;
    }
    let control = Arc::new(RunControl::default());
    let embedded = a.mqtt_embedded.or(cfg.mqtt.embedded_port);
    if let Some(port) = embedded {
        start_embedded_broker(port, cfg.mqtt.protocol)?;
    }
    let mqtt_url = a
        .mqtt
        .clone()
        .or_else(|| cfg.mqtt.url.clone())
        .or_else(|| embedded.map(|p| format!("mqtt://127.0.0.1:{p}")));
    let mut input = a.inputs.input(&a.input)?;
    if let Input::Uris { options, .. } = &mut input {
        options.live.wait |= cfg.input.wait;
        options.max_pixels = cfg.input.max_pixels;
    }
    let opts = RunOptions {
        input,
        input_loop: a.inputs.input_loop,
        max_clips: a.inputs.max_clips,
        on_bad_frame: a.inputs.on_bad_frame.or(cfg.input.on_bad_frame),
        mode: a.inputs.mode.or(cfg.input.mode),
        mask_rate: a.inputs.mask_rate.or(cfg.input.mask_rate),
        paced: a.inputs.paced,
        post,
        events,
        ..Default::default()
    };
    let overlay_format: OverlayFormat = a.overlay_format.parse()?;
    let model_path = model_path_of(&a.model, &cfg.model);
    let outputs = check_run(&a, &opts, &model_path, config_path.as_deref())?;
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(JsonlSink::open(&a.events)?)];
    if let Some(dir) = &a.overlay {
        sinks.push(Box::new(OverlaySink::open(dir, overlay_format, a.alpha)?));
    }
    // systemd: READY/WATCHDOG from the pipeline's state updates, STOPPING + clean stop on SIGTERM
    if let Some(n) = c3n_edge::sink::systemd::SystemdNotifier::from_env() {
        sinks.push(Box::new(n));
    }
    if let Some(display) = display_sink(&a.outputs, &outputs, a.headless, a.alpha, &cfg.preview)? {
        sinks.push(Box::new(display));
    }
    // MQTT before the model: wrong credentials fail fast. The model file is read once: its
    // contract names the categories here, and the engine is built from the same decoded model.
    let mut model = None;
    if let Some(url) = &mqtt_url {
        let mut settings = c3n_edge::sink::mqtt::resolve(&cfg.mqtt, url, &opts.events.camera)?;
        // the model's categories: a count topic and a Home Assistant sensor per tracked one
        let proto = load_model_proto(&model_path)?;
        let contract = ModelContract::from_proto(&model_path, &proto)?;
        let known = &contract.categories.names;
        opts.check_labels(known)?;
        settings.labels = opts.events.tracked(known).to_vec();
        let quality = cfg.mqtt.snapshots.then_some(cfg.mqtt.snapshot_quality);
        sinks.push(Box::new(MqttSink::connect(
            settings,
            control.clone(),
            quality,
            a.alpha,
        )?));
        model = Some(proto);
    }
    c3n_edge::service::stop_on_signals(control.clone())?;
    let model_args = a.model.or_config(&cfg.model);
    let engine = match &model {
        Some(proto) => load_engine_from(&model_args, proto)?,
        None => load_engine(&model_args)?,
    };
    drop(model);
    // no context here: each input, model and output error names its own file or URI
    let summary = pipeline::run_with(engine, &opts, &mut sinks, control)?;
    tracing::info!(
        mode = %opts.mode(),
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

/// The display sink for the `--output` URIs (`given`, parsed: `outputs`), minus screens when
/// headless, if any remain.
fn display_sink(
    given: &[String],
    outputs: &[OutputUri],
    headless: bool,
    alpha: f32,
    preview: &c3n_edge::sink::display::http::PreviewConfig,
) -> Result<Option<DisplaySink>> {
    let mut uris = Vec::new();
    for (o, u) in given.iter().zip(outputs) {
        if headless && u.is_screen() {
            tracing::info!("--headless: output {o} dropped");
            continue;
        }
        uris.push(u.clone());
    }
    if uris.is_empty() {
        return Ok(None);
    }
    let renderer = Renderer {
        alpha: alpha.clamp(0.0, 1.0),
        status: true,
    };
    Ok(Some(DisplaySink::open_with_preview(
        &uris, renderer, preview,
    )?))
}
