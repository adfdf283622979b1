//! The `run` pipeline, top to bottom:
//!
//! ```text
//! video reader ─(frames)─┐                       (bounded channels; one thread per box)
//!                         ├─ sync: slots → windows → front end ─(Window)─ engine ─(Inference)─┐
//! audio reader ─(blocks)─┘                                                                    │
//!            sinks ◀─(frames + events)─ events (lifecycle) ◀─ post (regions, labels) ◀────────┘
//! ```
//!
//! The readers, the sync/front-end stage and the engine each run on their own thread; post,
//! events and sinks run on the calling thread. Every channel is bounded ([`RunOptions::queue`]),
//! so a slow engine slows the readers down (recorded input loses nothing). For live inputs
//! (`v4l2://`, `alsa://`) the frame queue and the window queue drop their *oldest* item when full
//! instead (counted in `RunControl::dropped_frames`), so the capture-to-inference latency stays
//! bounded; the audio queue is drained into the sync stage's buffer with every frame, so the
//! microphone is never left unread. The first error of any stage stops the run and is returned;
//! a bad frame or an audio read error is skipped and counted instead under
//! `--on-bad-frame skip` (`faults.rs`).
//!
//! Control ([`RunControl`], shared with sources and outputs): `detect` off skips inference (the
//! frames still reach the sinks, without detections, and the active objects `end` once unseen
//! for `end_timeout_ms`), a stop request ends the run at the next
//! window; after every window each sink gets a [`RunState`] snapshot.
//!
//! Looping (`--input-loop`): each pass reopens the input and continues the timeline where the
//! previous pass's last window ended, so windows, events and timestamps stay consistent.
//!
//! Modes ([`Mode`], issue 25): `window` groups T one-second slots into one model call
//! (AVSBench; the default for recorded files); `stream` (the default for live and `--paced`
//! inputs) gives every analysed frame its own mask, the engine reusing the kept per-frame work
//! of the T − 1 context frames (`stream.rs`, [`crate::sync::StreamBuilder`]). Streaming a live
//! input, the window queue holds one frame: the newest wins, the others are counted as dropped.
//!
//! The run's options and their validation (also used by the command line) are in `options.rs`;
//! the timeline of mixed live and recorded inputs in `clock.rs`.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::{DeviceStatus, RunControl, RunState};
use crate::engine::{Engine, EngineError, Inference};
use crate::events::{dbfs, Event, FrameDetections, Tracker};
use crate::post;
use crate::sink::{AnalysedFrame, Sink, SinkError};
use crate::source::{AudioSource, SourceError, VideoSource};
use crate::sync::{AudioBuffer, StreamBuilder, Window, WindowBuilder, WindowBuilderError};
use crate::util::queue::{queue, FullPolicy, QueueRx, QueueTx};

mod clock;
mod faults;
mod options;
mod readers;
mod stream;
#[cfg(test)]
mod tests;

use clock::Rebase;
pub use faults::{AudioFaults, BadPolicy, FrameFaults, OnBadFrame, MAX_AUDIO_ERRORS_IN_A_ROW};
pub use options::{
    check_mask_rate, check_outputs, parse_alpha, parse_input_rate, Input, Mode, OpenedSources,
    OptionsError, RunOptions, RunOutputs,
};
use readers::{fill_audio, spawn_reader, Read};
use stream::{log_stream, Framer, Ready, StreamContext};

/// Errors of a run; each wraps the failing stage's error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Opening or reading the input.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Inference.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Writing an output.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Invalid options ([`RunOptions::validate`], [`RunOptions::check_labels`]).
    #[error("invalid run options: {0}")]
    Options(#[from] OptionsError),
    /// A model whose front-end parameters are unusable.
    #[error("invalid run options: model front-end parameters: {0}")]
    FrontEnd(#[from] WindowBuilderError),
    /// A stage thread panicked (a bug).
    #[error("internal error: the {0} thread panicked")]
    Panicked(&'static str),
}

/// Per-window time spent in each stage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Video decoding of the window's frames (audio files are decoded when opened).
    pub decode: Duration,
    /// Log-mel front end.
    pub frontend: Duration,
    /// Frame resize + normalisation.
    pub preprocess: Duration,
    /// Model call.
    pub inference: Duration,
    /// Regions, labels and event lifecycle.
    pub postprocess: Duration,
    /// Sinks.
    pub output: Duration,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Model windows (clips) processed; in the stream mode, streamed frames (one model call
    /// each: a clip of one frame).
    pub clips: u64,
    /// Frames analysed (real slots, padding excluded).
    pub frames: u64,
    /// Events emitted.
    pub events: u64,
    /// Stage times, one entry per window.
    pub times: Vec<StageTimes>,
    /// Wall time of the whole run.
    pub wall: Duration,
}

/// A window with its inference (`None`: detection was paused) and the model call's time.
type Analysed = (Window, Option<Inference>, Duration);

/// Runs `engine` over the input to its end (or `max_clips`), writing to `sinks`, with a private
/// [`RunControl`].
pub fn run(
    engine: Box<dyn Engine>,
    opts: &RunOptions,
    sinks: &mut [Box<dyn Sink>],
) -> Result<RunSummary, PipelineError> {
    run_with(engine, opts, sinks, Arc::new(RunControl::default()))
}

/// Runs `engine` over the input to its end (or `max_clips`, or until `control` asks to stop),
/// writing to `sinks`. `control` is shared with whoever pauses detection or watches the state.
pub fn run_with(
    engine: Box<dyn Engine>,
    opts: &RunOptions,
    sinks: &mut [Box<dyn Sink>],
    control: Arc<RunControl>,
) -> Result<RunSummary, PipelineError> {
    opts.validate()?;
    let contract = engine.contract().clone();
    opts.check_labels(&contract.categories.names)?;
    let engine_name = engine.name().to_string();
    let mode = opts.mode();
    let framer = match mode {
        Mode::Window => Framer::windows(WindowBuilder::new(&contract)?),
        Mode::Stream => Framer::Stream(StreamBuilder::new(
            &contract,
            opts.mask_rate,
            opts.frame_slot_ms(),
        )?),
    };
    let stream = match (&framer, mode) {
        (Framer::Stream(b), _) => {
            log_stream(engine.as_ref(), opts, b.clip_ms());
            Some(StreamContext::new(
                contract.clip_frames,
                b.clip_ms(),
                &opts.events,
                &contract.audioset_labels,
            ))
        }
        _ => None,
    };
    // Open the first pass here so that a missing or broken input fails before any thread starts.
    let first = opts.open_input(framer.sample_rate())?;
    for s in sinks.iter_mut() {
        s.attach_control(&control);
    }
    let started = Instant::now();
    let ctl = &*control;

    let live = opts.is_live();
    // streaming a live input: the newest frame wins (a queue of one, the older frame dropped)
    let win_cap = if live && stream.is_some() {
        1
    } else {
        opts.queue
    };
    let streaming = stream.is_some();
    let win_policy = if live {
        let c = control.clone();
        // streaming, a frame the engine had no time for is skipped (newest wins); a window
        // dropped is lost input
        FullPolicy::DropOldest(Box::new(move |w: &Window| {
            if streaming {
                c.add_skipped_frames(w.valid as u64)
            } else {
                c.add_dropped_frames(w.valid as u64)
            }
        }))
    } else {
        FullPolicy::Block
    };
    let (win_tx, win_rx) = queue::<Window>(win_cap, win_policy);
    let (inf_tx, inf_rx) = sync_channel::<Analysed>(opts.queue);
    let mut summary = std::thread::scope(|s| {
        let ctl_arc = &control;
        let sync = s.spawn(move || sync_stage(opts, ctl_arc, framer, first, win_tx));
        let infer = s.spawn(move || engine_stage(engine, stream, ctl, win_rx, inf_tx));
        let out = output_stage(opts, ctl, &engine_name, &contract, inf_rx, sinks);
        let sync = sync.join().map_err(|_| PipelineError::Panicked("sync"))?;
        let infer = infer
            .join()
            .map_err(|_| PipelineError::Panicked("engine"))?;
        // Upstream errors first: a sink error after an input error is a consequence.
        sync?;
        infer?;
        out
    })?;
    summary.wall = started.elapsed();
    Ok(summary)
}

/// Sync + front end: slots, windows or streamed frames, model input. Runs the passes of
/// `--input-loop`.
fn sync_stage(
    opts: &RunOptions,
    control: &Arc<RunControl>,
    mut framer: Framer,
    first: (Box<dyn VideoSource>, Box<dyn AudioSource>),
    out: QueueTx<Window>,
) -> Result<(), PipelineError> {
    let (video_live, audio_live) = opts.input.live_sides();
    let live = opts.is_live();
    let on_bad = opts.bad_frame_policy();
    let audio_name = opts.input.audio_name();
    let mut sources = Some(first);
    let mut offset_ms = 0i64;
    let mut emitted = 0u64;
    let mut pass = 0i64;
    let mut audio_ended_warned = false;
    loop {
        let emitted_before = emitted;
        let (mut video, mut audio) = match sources.take() {
            Some(s) => s,
            None => opts.open_input(framer.sample_rate())?,
        };
        video.set_control(control.clone());
        audio.set_control(control.clone());
        control.set_video_status(DeviceStatus::Streaming);
        control.set_audio_status(DeviceStatus::Streaming);
        let sr = audio.sample_rate();
        // drop-oldest for a live or paced camera: a file's frames must not be lost while the
        // sync stage waits for a live microphone
        let frame_policy = if video_live || opts.paced {
            let c = control.clone();
            FullPolicy::DropOldest(Box::new(move |_: &Read<_>| c.add_dropped_frames(1)))
        } else {
            FullPolicy::Block
        };
        let result = std::thread::scope(|s| {
            let mut video = FrameFaults::new(&mut *video, on_bad, control.clone());
            let mut audio =
                AudioFaults::new(&mut *audio, audio_name.clone(), on_bad, control.clone());
            let frames = spawn_reader(s, 4, frame_policy, move || video.next_frame());
            let blocks = spawn_reader(s, 16, FullPolicy::Block, move || audio.next_block());
            let mut abuf = AudioBuffer::new(sr);
            let mut vclock = Rebase::video(video_live && !audio_live);
            let mut aclock = Rebase::audio(audio_live && !video_live, sr);
            framer.restart();
            let mut decode = Duration::ZERO;
            let mut pass_end = offset_ms;
            let mut failed = None;
            let mut emit = |item: Ready<'_>,
                            abuf: &mut AudioBuffer,
                            aclock: &mut Rebase,
                            decode: &mut Duration|
             -> Result<bool, PipelineError> {
                let until = match &item {
                    Ready::Window(b) => b.audio_needed_until(),
                    Ready::Frame(b, slot) => Some(b.audio_needed_until(slot)),
                };
                if let Some(until) = until {
                    fill_audio(abuf, &blocks, offset_ms, aclock, until)?;
                    if abuf.ended && !audio_ended_warned {
                        // the video goes on without audio: say so once, with the time
                        let end = abuf.end_ms().unwrap_or(offset_ms as f64);
                        if end < until {
                            audio_ended_warned = true;
                            tracing::warn!(
                                "the audio input ends at {:.3} s, before the video (audio is needed up to \
                                 {:.3} s): the rest is analysed as silence",
                                (end - offset_ms as f64) / 1000.0,
                                (until - offset_ms as f64) / 1000.0
                            );
                        }
                    }
                }
                let is_window = matches!(item, Ready::Window(_));
                let w = match item {
                    Ready::Window(b) => match b.build(abuf, std::mem::take(decode)) {
                        Some(w) => w,
                        None => return Ok(true),
                    },
                    Ready::Frame(b, slot) => b.build(slot, abuf, std::mem::take(decode)),
                };
                let end = match is_window {
                    // the next pass continues after this window, or after this frame and the
                    // audio read so far (a streamed frame's anchor is before the frame)
                    true => w.start_ms + (w.slots.len() as f64 * w.slot_ms).round() as i64,
                    false => (w.slots[0].frame.pts_ms + 1)
                        .max(abuf.end_ms().map_or(i64::MIN, |e| e.ceil() as i64)),
                };
                pass_end = pass_end.max(end);
                emitted += 1;
                let more = out.send(w).is_ok()
                    && opts.max_clips.is_none_or(|m| emitted < m)
                    && !control.stop_requested();
                Ok(more)
            };
            loop {
                match frames.recv() {
                    Ok(Ok((mut f, dt))) => {
                        decode += dt;
                        f.pts_ms = vclock.map(f.pts_ms, 0) + offset_ms;
                        if audio_live {
                            // keep the microphone drained while frames arrive
                            while let Some(b) = blocks.try_recv() {
                                let (b, _) = b?;
                                abuf.push(
                                    aclock.map(b.pts_ms, b.samples.len()) + offset_ms,
                                    &b.samples,
                                );
                            }
                        }
                        match &mut framer {
                            Framer::Windows(builder, slotter) => {
                                for slot in slotter.push(f) {
                                    if builder.push(slot)
                                        && !emit(
                                            Ready::Window(builder),
                                            &mut abuf,
                                            &mut aclock,
                                            &mut decode,
                                        )?
                                    {
                                        return Ok((false, pass_end));
                                    }
                                }
                            }
                            Framer::Stream(b) => {
                                let Some(slot) = b.push(f) else { continue };
                                // live: a frame is prepared only when the engine has taken
                                // the last one (newest wins, no front end spent on frames the
                                // queue would drop); the others are counted as skipped
                                if live && !out.is_empty() {
                                    control.add_skipped_frames(1);
                                } else if !emit(
                                    Ready::Frame(b, slot),
                                    &mut abuf,
                                    &mut aclock,
                                    &mut decode,
                                )? {
                                    return Ok((false, pass_end));
                                }
                            }
                        }
                    }
                    Ok(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    Err(_) => break,
                }
            }
            // end of the input, or a frame that cannot be read: the window in progress is
            // analysed first, so the events of the good frames before a bad one are not lost
            let more = match &mut framer {
                Framer::Windows(builder, slotter) => {
                    if let Some(slot) = slotter.finish() {
                        builder.push(slot);
                    }
                    !builder.has_pending()
                        || emit(Ready::Window(builder), &mut abuf, &mut aclock, &mut decode)?
                }
                Framer::Stream(b) => match b.finish() {
                    Some(slot) => emit(Ready::Frame(b, slot), &mut abuf, &mut aclock, &mut decode)?,
                    None => true,
                },
            };
            if let Some(e) = failed {
                return Err(e.into());
            }
            Ok::<_, PipelineError>((more, pass_end))
        });
        let (more, end) = result?;
        control.set_video_status(DeviceStatus::Ended);
        control.set_audio_status(DeviceStatus::Ended);
        if !more || control.stop_requested() {
            return Ok(());
        }
        if emitted == emitted_before {
            return Ok(()); // an empty pass: nothing to loop over
        }
        if !opts.paced {
            // a paced input is stamped on the monotonic clock: its passes follow each other
            offset_ms = end;
        }
        pass += 1;
        if opts.input_loop >= 0 && pass > opts.input_loop {
            return Ok(());
        }
    }
}

/// Inference on its own thread: whole windows, or streamed frames with their context. An
/// engine with two streaming workers ([`Engine::stream_workers`], `--threads` ≥ 2) runs them on
/// two threads, the per-frame part of the next frame beside the second part of this one.
fn engine_stage(
    mut engine: Box<dyn Engine>,
    stream: Option<StreamContext>,
    control: &RunControl,
    windows: QueueRx<Window>,
    out: SyncSender<Analysed>,
) -> Result<(), PipelineError> {
    let Some(ctx) = stream else {
        for w in windows {
            if control.stop_requested() {
                break; // stop promptly: queued windows are dropped, not analysed
            }
            let t = Instant::now();
            let inf = control
                .detect()
                .then(|| engine.infer(&w.input))
                .transpose()?;
            if out.send((w, inf, t.elapsed())).is_err() {
                break;
            }
        }
        return Ok(());
    };
    stream::run(engine.as_mut(), ctx, control, windows, out)
}

/// Post-processing, events and sinks (calling thread).
fn output_stage(
    opts: &RunOptions,
    control: &RunControl,
    engine_name: &str,
    contract: &crate::engine::ModelContract,
    analysed: Receiver<Analysed>,
    sinks: &mut [Box<dyn Sink>],
) -> Result<RunSummary, PipelineError> {
    let mut tracker = Tracker::new(opts.events.clone());
    let mut summary = RunSummary::default();
    let mut fps = 0.0f64;
    let mut last = Instant::now();
    let started = last;
    let mut rate_logged = false;
    let mut audio_dbfs = -200.0f64;
    let state = RunState::snapshot(control, engine_name, 0.0, 0.0, 0, 0, audio_dbfs);
    for s in sinks.iter_mut() {
        s.state(&state)?;
    }
    for (w, inf, inference) in analysed {
        let mut times = StageTimes {
            decode: w.times.decode,
            frontend: w.times.frontend,
            preprocess: w.times.preprocess,
            inference,
            ..Default::default()
        };
        for (i, slot) in w.slots.iter().enumerate().take(w.valid) {
            let t = Instant::now();
            let audio_rms = w.audio_rms.get(i).copied().unwrap_or(0.0);
            audio_dbfs = f64::from(dbfs(audio_rms));
            // a slot that repeats an earlier frame is reported at its own start time
            let pts_ms = slot.frame.pts_ms.max(slot.slot_start_ms);
            let (detections, events) = match &inf {
                Some(inf) => {
                    let (sw, sh) = slot.frame.image.dimensions();
                    let prob =
                        post::probabilities(inf.mask_logits.slice(ndarray::s![i, 0, .., ..]));
                    let mut regions = post::regions(prob.view(), sw, sh, &opts.post);
                    let logit_map = inf.visual_logit_map.index_axis(ndarray::Axis(0), i);
                    for r in &mut regions {
                        r.label = if contract.c3im {
                            post::label_region(
                                &r.mask,
                                logit_map,
                                inf.c3im_affinity.row(i),
                                inf.audio_logits.row(i),
                                contract.alpha,
                                &contract.imagenet_labels,
                                &contract.categories,
                            )
                        } else {
                            // no ImageNet head (schema 3): the audio side alone
                            post::label_region_audio(inf.audio_logits.row(i), &contract.categories)
                        };
                    }
                    let detections = FrameDetections {
                        pts_ms,
                        regions,
                        labels: post::frame_labels(
                            inf.unified_label[i],
                            inf.c3im_score[i],
                            inf.audio_logits.row(i),
                            &contract.imagenet_labels,
                            &contract.audioset_labels,
                        ),
                        audio_rms,
                        in_view: inf.in_view.as_ref().and_then(|v| v.get(i).copied()),
                    };
                    if tracker.is_off_screen(&detections) {
                        control.add_off_screen_frame();
                    }
                    let events = tracker.update(&detections);
                    (detections, events)
                }
                // detection paused: the frame is shown without detections, and the tracker
                // sees it as a frame without objects, so the active ones end after
                // `end_timeout_ms` (counts go to 0, Home Assistant's "sound source present"
                // goes off)
                None => {
                    let detections = FrameDetections::empty(pts_ms, audio_rms);
                    let events = tracker.update(&detections);
                    (detections, events)
                }
            };
            let frame = AnalysedFrame {
                number: summary.frames,
                image: slot.frame.image.clone(),
                detections,
            };
            times.postprocess += t.elapsed();
            let t = Instant::now();
            for s in sinks.iter_mut() {
                s.frame(&frame, &events)?;
            }
            times.output += t.elapsed();
            summary.frames += 1;
            summary.events += events.len() as u64;
        }
        summary.clips += 1;
        summary.times.push(times);
        let dt = last.elapsed().as_secs_f64();
        last = Instant::now();
        if dt > 0.0 {
            let inst = w.valid as f64 / dt;
            fps = if summary.clips == 1 {
                inst
            } else {
                0.7 * fps + 0.3 * inst
            };
        }
        let state = RunState::snapshot(
            control,
            engine_name,
            fps,
            inference.as_secs_f64() * 1e3,
            summary.clips,
            summary.frames,
            audio_dbfs,
        )
        .with_mask_rate(fps); // one mask per analysed frame, in both modes
        if !rate_logged && started.elapsed() >= Duration::from_secs(10) {
            rate_logged = true;
            tracing::info!(
                "{:.2} masks/s after {:.0} s ({} frame(s) skipped, {} dropped)",
                fps,
                started.elapsed().as_secs_f64(),
                control.frames_skipped(),
                control.dropped_frames()
            );
        }
        for s in sinks.iter_mut() {
            s.state(&state)?;
        }
    }
    let events: Vec<Event> = tracker.finish();
    for s in sinks.iter_mut() {
        s.finish(&events)?;
    }
    summary.events += events.len() as u64;
    Ok(summary)
}
