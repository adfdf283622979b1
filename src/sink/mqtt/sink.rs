//! MQTT output (topic layout in [`super`]): every event on `<prefix>/<camera>/events`,
//! the count of active sounding objects per label (the event's category, e.g. `dog`) on
//! `<prefix>/<camera>/<label>` (and `all`; every tracked category's from the start, at 0),
//! an overlay JPEG of each label's best frame on `<prefix>/<camera>/<label>/snapshot` (and
//! `all/snapshot`), and the run state on `<prefix>/<camera>/state`. The sink never waits for
//! the network: it hands messages to [`MqttClient`] (bounded queue, background threads).
//!
//! A snapshot is the frame where the object scored best ([`super::best`]: kept per active object
//! every frame, published with the object's next message when it changed, Frigate's best
//! snapshot, docs/integration-conventions.md §3.3); the overlay is the display's picture
//! ([`crate::render::Renderer`]), the same as `--overlay` and `--output` show.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::best::BestFrames;
use super::client::{MqttClient, MqttStats};
use super::protocol::Content;
use super::settings::ClientSettings;
use super::topics::label_slug;
use super::MqttError;
use crate::control::{RunControl, RunState};
use crate::events::{Event, EventType};
use crate::render::{encode_jpeg, Renderer};
use crate::sink::jsonl::event_json;
use crate::sink::scene::SceneBuilder;
use crate::sink::{AnalysedFrame, Sink, SinkError};

/// Publishes to an MQTT broker.
#[derive(Debug)]
pub struct MqttSink {
    client: MqttClient,
    renderer: Option<Renderer>,
    scenes: SceneBuilder,
    quality: u8,
    /// Active objects: id → label slug.
    active: HashMap<String, String>,
    /// Best frame of each active object (with snapshots on).
    best: BestFrames,
    /// Every label slug seen (its count topic stays, at 0 when none is active).
    counts: BTreeMap<String, usize>,
}

impl MqttSink {
    /// Connects (see [`MqttClient::start`]: waits up to the connect time for the broker, fails
    /// on a refusal such as wrong credentials) and publishes the initial `detect/state`.
    /// `snapshot_quality` = `None` disables snapshots; `alpha` is the overlay mask opacity.
    pub fn connect(
        settings: ClientSettings,
        control: Arc<RunControl>,
        snapshot_quality: Option<u8>,
        alpha: f32,
    ) -> Result<Self, MqttError> {
        let detect = if control.detect() { "ON" } else { "OFF" };
        // published before the first `online`
        let initial = vec![
            (
                settings.topics.detect_state(),
                detect.as_bytes().to_vec(),
                Content::Text,
            ),
            (settings.topics.count("all"), b"0".to_vec(), Content::Text),
        ];
        // every tracked category's count topic exists from the start, at 0
        let counts: BTreeMap<String, usize> =
            settings.labels.iter().map(|l| (label_slug(l), 0)).collect();
        let initial: Vec<_> = initial
            .into_iter()
            .chain(
                counts
                    .keys()
                    .map(|slug| (settings.topics.count(slug), b"0".to_vec(), Content::Text)),
            )
            .collect();
        let client = MqttClient::start(settings, Some(control), initial)?;
        let renderer = snapshot_quality.map(|_| Renderer {
            alpha: alpha.clamp(0.0, 1.0),
            status: true,
        });
        Ok(Self {
            client,
            renderer,
            scenes: SceneBuilder::default(),
            quality: snapshot_quality.unwrap_or(80),
            active: HashMap::new(),
            best: BestFrames::default(),
            counts,
        })
    }

    /// Delivery counters so far.
    pub fn stats(&self) -> MqttStats {
        self.client.stats()
    }

    /// Queues the events and updates the per-label counts.
    fn events(&mut self, events: &[Event]) -> Result<(), SinkError> {
        for e in events {
            let line = event_json(e).map_err(|e| SinkError::Option(format!("event JSON: {e}")))?;
            self.client.publish_event(line.into_bytes());
            let id = &e.after.id;
            match e.kind {
                EventType::New | EventType::Update => {
                    self.active.insert(id.clone(), label_slug(&e.after.label));
                }
                EventType::End => {
                    self.active.remove(id);
                }
            }
        }
        if !events.is_empty() {
            self.publish_counts();
        }
        Ok(())
    }

    /// Draws and publishes the best frames due with `events` ([`BestFrames::due`]) on their
    /// objects' label topics and `all/snapshot`.
    fn publish_snapshots(&mut self, events: &[Event]) {
        let Some(r) = self.renderer else {
            return;
        };
        for (scene, slugs) in self.best.due(events) {
            match encode_jpeg(&r.render_image(&scene), self.quality) {
                Ok(jpeg) => {
                    let topics = self.client.topics().clone();
                    for slug in &slugs {
                        self.client.set_retained(
                            topics.snapshot(slug),
                            jpeg.clone(),
                            Content::Jpeg,
                        );
                    }
                    self.client
                        .set_retained(topics.snapshot("all"), jpeg, Content::Jpeg);
                }
                Err(e) => tracing::warn!("MQTT snapshot of frame {}: {e}", scene.number),
            }
        }
    }

    fn publish_counts(&mut self) {
        for n in self.counts.values_mut() {
            *n = 0;
        }
        for slug in self.active.values() {
            *self.counts.entry(slug.clone()).or_insert(0) += 1;
        }
        let topics = self.client.topics().clone();
        for (slug, n) in &self.counts {
            self.client.set_retained(
                topics.count(slug),
                n.to_string().into_bytes(),
                Content::Text,
            );
        }
        self.client.set_retained(
            topics.count("all"),
            self.active.len().to_string().into_bytes(),
            Content::Text,
        );
    }
}

impl Sink for MqttSink {
    fn frame(&mut self, frame: &AnalysedFrame, events: &[Event]) -> Result<(), SinkError> {
        self.events(events)?;
        if self.renderer.is_none() {
            return Ok(());
        }
        // every frame: the scene builder follows the objects (ids → stable colours), and each
        // active object keeps its best frame
        let scene = self.scenes.scene(frame, events);
        let active = &self.active;
        self.best.observe(scene, |id| active.contains_key(id));
        self.publish_snapshots(events);
        Ok(())
    }

    fn finish(&mut self, events: &[Event]) -> Result<(), SinkError> {
        self.events(events)?;
        // the objects' `end`: the best frames not published yet
        self.publish_snapshots(events);
        let s = self.client.shutdown();
        let lost = s.dropped + s.queued + s.unconfirmed + s.rejected;
        if lost > 0 {
            tracing::warn!(
                "MQTT: {lost} of {} events not delivered: {} dropped from the full queue, {} \
                 still queued at exit (broker unreachable?), {} unconfirmed, {} rejected",
                lost + s.published,
                s.dropped,
                s.queued,
                s.unconfirmed,
                s.rejected
            );
        }
        tracing::info!(
            published = s.published,
            dropped = s.dropped,
            unconfirmed = s.unconfirmed,
            resent = s.resent,
            rejected = s.rejected,
            queued = s.queued,
            connects = s.connects,
            "MQTT: events delivered"
        );
        Ok(())
    }

    fn state(&mut self, state: &RunState) -> Result<(), SinkError> {
        self.scenes.set_state(state);
        match serde_json::to_value(state) {
            Ok(serde_json::Value::Object(m)) => self.client.set_run_state(m),
            Ok(_) => {}
            Err(e) => return Err(SinkError::Option(format!("state JSON: {e}"))),
        }
        Ok(())
    }
}
