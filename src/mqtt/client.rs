//! The MQTT network side: two threads that never block the pipeline. The same logic serves MQTT
//! 3.1.1 and 5; what differs between them is behind [`super::protocol`].
//!
//! * `mqtt-net` drives rumqttc's event loop (`Conn::recv`), which connects and, after an
//!   error, reconnects on the next call; between attempts it sleeps a jittered exponential
//!   [`Backoff`]. It forwards every event to:
//! * `mqtt-pub`, which owns the rumqttc client (`Link`). On every CONNACK it subscribes to the
//!   command topics, publishes the discovery configs and every retained state, and only then
//!   `online`; while connected it hands queued event messages to rumqttc. It also handles
//!   `detect/set` and Home Assistant's `online` birth message.
//!
//! The pipeline side ([`MqttClient`]) only appends to a bounded drop-oldest queue (events) or
//! replaces a retained value (states, counts, snapshots) under a mutex, so a slow or absent
//! broker never slows the pipeline.
//!
//! Delivery accounting ([`MqttStats`], event messages only): an event is `published` once the
//! broker has it (QoS 0: written to the socket; QoS 1/2: acknowledged), `dropped` when the queue
//! overflowed (never sent), `unconfirmed` when it had been sent but not acknowledged when the
//! connection broke (clean sessions: rumqttc does not resend it; the broker may or may not have
//! received it — MQTT cannot tell), `rejected` when an MQTT 5 broker refused it in its
//! PUBACK/PUBREC (reason code ≥ 0x80, e.g. not authorised; an MQTT 3.1.1 broker cannot say so),
//! and `queued` while waiting or in flight. So
//! `queued + dropped + unconfirmed + rejected + published` = events enqueued, and a subscriber
//! that missed nothing received between `published` and `published + unconfirmed` of them.
//! Retained states are not counted: the latest value of each is republished after every
//! reconnect.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::protocol::{self, Conn, Content, Link, Message, NetEvent, Protocol};
use super::{discovery_configs, node_id, Backoff, BrokerUrl, DropOldest, MqttError, Topics};
use crate::control::RunControl;

/// Everything the client needs (resolved from [`super::MqttConfig`] and the command line).
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Broker address and transport.
    pub broker: BrokerUrl,
    /// MQTT 3.1.1 or 5.
    pub protocol: Protocol,
    /// MQTT client id.
    pub client_id: String,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Topic names.
    pub topics: Topics,
    /// QoS 0, 1 or 2.
    pub qos: u8,
    /// Retain the state topics.
    pub retain: bool,
    /// Event queue capacity (messages).
    pub queue_size: usize,
    /// Publish Home Assistant discovery.
    pub discovery: bool,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Wait at start for the first connection (refusals in that time are errors).
    pub connect_wait: Duration,
    /// How long [`MqttClient::shutdown`] waits to deliver what is queued.
    pub flush_wait: Duration,
    /// PEM CA file (TLS).
    pub ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate and PKCS#8 key (TLS).
    pub client_auth: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Categories with a count topic from the start (at 0) and a Home Assistant count sensor
    /// each: the tracked ones (`[events] labels`, else the model's whole vocabulary). Set by
    /// the caller after [`super::resolve`] (empty there).
    pub labels: Vec<String>,
}

/// Delivery counters of the event messages (see the module doc), reported in `state.mqtt`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MqttStats {
    /// Connected to the broker now.
    pub connected: bool,
    /// Successful connections so far (1 + reconnects).
    pub connects: u64,
    /// Event queue capacity.
    pub queue_size: usize,
    /// Events waiting in the queue or in flight.
    pub queued: u64,
    /// Events dropped from the full queue (drop-oldest) while the broker was unreachable.
    pub dropped: u64,
    /// Events sent but unacknowledged when the connection broke (delivery unknown; QoS ≥ 1 only,
    /// or QoS 0 events handed to rumqttc but not yet written).
    pub unconfirmed: u64,
    /// Events the broker refused (MQTT 5 PUBACK/PUBREC reason code ≥ 0x80, e.g. not authorised
    /// to publish on the topic): never delivered. Always 0 with MQTT 3.1.1.
    pub rejected: u64,
    /// Events the broker has (QoS 0: written to the socket; QoS ≥ 1: acknowledged).
    pub published: u64,
}

#[derive(Debug)]
struct Retained {
    payload: Vec<u8>,
    content: Content,
    dirty: bool,
}

#[derive(Debug)]
struct Inner {
    queue: DropOldest<Vec<u8>>,
    retained: BTreeMap<String, Retained>,
    /// Pipeline state JSON (an object), merged with `mqtt` counters when published.
    run_state: Option<serde_json::Map<String, serde_json::Value>>,
    state_dirty: bool,
    stats: MqttStats,
    /// Events handed to rumqttc, not yet published.
    in_flight: u64,
    /// Events unacknowledged at disconnections.
    unconfirmed: u64,
    /// Events refused by the broker (MQTT 5).
    rejected: u64,
    /// First connection: `Some(Ok)` connected, `Some(Err)` refused by the broker.
    first: Option<Result<(), String>>,
    last_error: Option<String>,
}

impl Inner {
    fn stats(&self) -> MqttStats {
        MqttStats {
            queued: self.queue.len() as u64 + self.in_flight,
            dropped: self.queue.dropped(),
            unconfirmed: self.unconfirmed,
            rejected: self.rejected,
            ..self.stats
        }
    }
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The pipeline's handle on the MQTT connection.
#[derive(Debug)]
pub struct MqttClient {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    settings: ClientSettings,
}

impl MqttClient {
    /// Starts the threads and waits up to `connect_wait` for the first connection. Errors: the
    /// broker refused the connection (wrong credentials, …) within that time, TLS files, thread
    /// start. An unreachable broker is not an error: the client keeps retrying in the background
    /// (a warning is logged) and events queue up to `queue_size`.
    /// `initial` are retained `(topic, payload, content)` values published before the first
    /// `online`.
    pub fn start(
        settings: ClientSettings,
        control: Option<Arc<RunControl>>,
        initial: Vec<(String, Vec<u8>, Content)>,
    ) -> Result<Self, MqttError> {
        let (link, connection) = protocol::connect(&settings, 1024)?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                queue: DropOldest::new(settings.queue_size),
                retained: initial
                    .into_iter()
                    .map(|(t, payload, content)| {
                        (
                            t,
                            Retained {
                                payload,
                                content,
                                dirty: true,
                            },
                        )
                    })
                    .collect(),
                run_state: None,
                state_dirty: false,
                stats: MqttStats {
                    queue_size: settings.queue_size,
                    ..Default::default()
                },
                in_flight: 0,
                unconfirmed: 0,
                rejected: 0,
                first: None,
                last_error: None,
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel::<NetEvent>();
        let backoff = Backoff::new(settings.reconnect_min, settings.reconnect_max);
        let stop = shared.clone();
        std::thread::Builder::new()
            .name("mqtt-net".into())
            .spawn(move || net_loop(connection, tx, backoff, stop))
            .map_err(MqttError::Thread)?;
        let mut worker = Worker {
            client: link,
            shared: shared.clone(),
            settings: settings.clone(),
            control,
            node_id: node_id(&settings.client_id),
            connected: false,
            fifo: VecDeque::new(),
            awaiting: HashMap::new(),
            need_discovery: false,
            need_online: false,
        };
        let handle = std::thread::Builder::new()
            .name("mqtt-pub".into())
            .spawn(move || worker.run(rx))
            .map_err(MqttError::Thread)?;
        let me = Self {
            shared,
            worker: Some(handle),
            settings,
        };
        let deadline = Instant::now() + me.settings.connect_wait;
        let mut g = me.shared.lock();
        while g.first.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            g = me
                .shared
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let first = g.first.clone();
        let last_error = g.last_error.clone();
        drop(g);
        match first {
            Some(Ok(())) => {
                tracing::info!(
                    "MQTT: connected to {} (MQTT {})",
                    me.settings.broker.address(),
                    me.settings.protocol
                );
                Ok(me)
            }
            Some(Err(reason)) => Err(MqttError::Refused {
                broker: me.settings.broker.address(),
                reason,
            }),
            None => {
                tracing::warn!(
                    "MQTT broker {}: not connected after {} ms ({}); retrying in the background, \
                     events queue up to {}",
                    me.settings.broker.address(),
                    me.settings.connect_wait.as_millis(),
                    last_error.as_deref().unwrap_or("no answer"),
                    me.settings.queue_size
                );
                Ok(me)
            }
        }
    }

    /// The topic names.
    pub fn topics(&self) -> &Topics {
        &self.settings.topics
    }

    /// Queues one event message (JSON) for `<prefix>/<camera>/events`; when the queue is full the
    /// oldest is dropped and counted.
    pub fn publish_event(&self, payload: Vec<u8>) {
        self.shared.lock().queue.push(payload);
    }

    /// Sets the value of a retained topic (`content`: what the payload is, told to MQTT 5
    /// receivers); published now if connected, and again after every reconnect. Unchanged values
    /// are not republished.
    pub fn set_retained(&self, topic: String, payload: Vec<u8>, content: Content) {
        let mut g = self.shared.lock();
        if g.retained.get(&topic).is_some_and(|r| r.payload == payload) {
            return;
        }
        g.retained.insert(
            topic,
            Retained {
                payload,
                content,
                dirty: true,
            },
        );
    }

    /// Sets the pipeline part of the `state` payload (a JSON object; the client adds `mqtt`).
    pub fn set_run_state(&self, state: serde_json::Map<String, serde_json::Value>) {
        let mut g = self.shared.lock();
        g.run_state = Some(state);
        g.state_dirty = true;
    }

    /// Current counters.
    pub fn stats(&self) -> MqttStats {
        self.shared.lock().stats()
    }

    /// Delivers what is queued (waiting up to the flush time), publishes the final `state` and
    /// `offline`, disconnects cleanly, and returns the final counters. Idempotent.
    pub fn shutdown(&mut self) -> MqttStats {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.worker.take() {
            if h.join().is_err() {
                tracing::error!("MQTT: the publishing thread panicked");
            }
        }
        self.stats()
    }
}

impl Drop for MqttClient {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `mqtt-net`: drives the event loop, sleeps the backoff after errors.
fn net_loop(
    mut connection: Conn,
    tx: mpsc::Sender<NetEvent>,
    mut backoff: Backoff,
    shared: Arc<Shared>,
) {
    // None: every client handle is gone
    while let Some(ev) = connection.recv() {
        let failed = matches!(ev, NetEvent::Error { .. });
        if matches!(ev, NetEvent::Connected { .. }) {
            backoff.reset();
        }
        let done = ev == NetEvent::DisconnectSent;
        if tx.send(ev).is_err() || done {
            return;
        }
        if failed {
            // sleep the backoff in slices so that a shutdown is not held up
            let until = Instant::now() + backoff.next_delay();
            while Instant::now() < until {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
            }
        }
    }
}

/// What one handed-out publish was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Event,
    Other,
}

/// `mqtt-pub` state.
struct Worker {
    client: Link,
    shared: Arc<Shared>,
    settings: ClientSettings,
    control: Option<Arc<RunControl>>,
    node_id: String,
    connected: bool,
    /// Publishes handed to rumqttc (kind, QoS), in order, until rumqttc reports them sent.
    fifo: VecDeque<(Kind, u8)>,
    /// QoS ≥ 1 publishes sent, by packet id, until acknowledged.
    awaiting: HashMap<u16, Kind>,
    need_discovery: bool,
    need_online: bool,
}

impl Worker {
    fn run(&mut self, rx: mpsc::Receiver<NetEvent>) {
        let mut stop_at: Option<Instant> = None;
        let mut final_sent = false;
        loop {
            match rx.recv_timeout(Duration::from_millis(10)) {
                Ok(ev) => {
                    self.on_event(ev);
                    while let Ok(ev) = rx.try_recv() {
                        self.on_event(ev);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.connected {
                self.hand_out();
            }
            if !self.shared.stop.load(Ordering::SeqCst) {
                continue;
            }
            let deadline =
                *stop_at.get_or_insert_with(|| Instant::now() + self.settings.flush_wait);
            let late = Instant::now() >= deadline;
            let idle = {
                let g = self.shared.lock();
                g.queue.is_empty()
                    && g.retained.values().all(|r| !r.dirty)
                    && !g.state_dirty
                    && !self.need_online
            } && self.fifo.is_empty()
                && self.awaiting.is_empty();
            if !self.connected && late {
                let g = self.shared.lock();
                let s = g.stats();
                tracing::warn!(
                    "MQTT broker {}: not connected at exit; {} queued events not delivered",
                    self.settings.broker.address(),
                    s.queued
                );
                return;
            }
            if self.connected && !final_sent && (idle || late) {
                // final state (its counters cover every event) and a clean `offline`
                self.shared.lock().state_dirty = true;
                self.hand_state();
                self.hand(
                    Message {
                        topic: self.settings.topics.available(),
                        payload: b"offline".to_vec(),
                        qos: 1,
                        retain: self.settings.retain,
                        content: Content::Text,
                    },
                    Kind::Other,
                );
                final_sent = true;
                stop_at = Some(Instant::now() + Duration::from_secs(2));
                continue;
            }
            if final_sent && ((self.fifo.is_empty() && self.awaiting.is_empty()) || late) {
                self.client.disconnect();
                // give the event loop a moment to send DISCONNECT
                let end = Instant::now() + Duration::from_secs(1);
                while Instant::now() < end {
                    match rx.recv_timeout(Duration::from_millis(20)) {
                        Ok(NetEvent::DisconnectSent) => break,
                        Ok(ev) => self.on_event(ev),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                let mut g = self.shared.lock();
                g.stats.connected = false;
                return;
            }
        }
    }

    fn on_event(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Connected { session_present } => {
                self.connected = true;
                let mut g = self.shared.lock();
                if !session_present {
                    // rumqttc discards what was not acknowledged: delivery of those is unknown
                    let lost = self.fifo.iter().filter(|(k, _)| *k == Kind::Event).count()
                        + self
                            .awaiting
                            .values()
                            .filter(|k| **k == Kind::Event)
                            .count();
                    g.unconfirmed += lost as u64;
                    g.in_flight = g.in_flight.saturating_sub(lost as u64);
                    self.fifo.clear();
                    self.awaiting.clear();
                }
                g.stats.connected = true;
                g.stats.connects += 1;
                if g.stats.connects > 1 {
                    tracing::info!(
                        "MQTT: reconnected to {} (connection {})",
                        self.settings.broker.address(),
                        g.stats.connects
                    );
                }
                for r in g.retained.values_mut() {
                    r.dirty = true;
                }
                g.state_dirty = g.run_state.is_some();
                g.first.get_or_insert(Ok(()));
                g.last_error = None;
                drop(g);
                self.shared.changed.notify_all();
                let mut subs = vec![self.settings.topics.detect_set()];
                if self.settings.discovery {
                    subs.push(self.settings.topics.ha_status());
                }
                for t in subs {
                    if let Err(e) = self.client.subscribe(&t, self.settings.qos) {
                        tracing::warn!("MQTT: cannot subscribe to {t}: {e}");
                    }
                }
                self.need_discovery = self.settings.discovery;
                self.need_online = true;
            }
            NetEvent::PublishSent { pkid } => {
                if let Some((kind, qos)) = self.fifo.pop_front() {
                    if qos == 0 {
                        self.delivered(kind);
                    } else {
                        self.awaiting.insert(pkid, kind);
                    }
                }
            }
            NetEvent::Acked { pkid, refused } => {
                if let Some(k) = self.awaiting.remove(&pkid) {
                    match refused {
                        None => self.delivered(k),
                        Some(reason) => self.refused(k, &reason),
                    }
                }
            }
            NetEvent::Message { topic, payload } => self.on_message(&topic, &payload),
            NetEvent::DisconnectSent | NetEvent::Other => {}
            NetEvent::Error { message, refused } => {
                let mut g = self.shared.lock();
                if self.connected {
                    tracing::warn!(
                        "MQTT broker {}: connection lost ({message}); reconnecting",
                        self.settings.broker.address()
                    );
                } else if refused {
                    tracing::error!(
                        "MQTT broker {} refused the connection: {message}",
                        self.settings.broker.address()
                    );
                } else {
                    tracing::debug!(
                        "MQTT broker {}: cannot connect: {message}",
                        self.settings.broker.address()
                    );
                }
                self.connected = false;
                g.stats.connected = false;
                if refused && g.first.is_none() {
                    g.first = Some(Err(message.clone()));
                }
                g.last_error = Some(message);
                drop(g);
                self.shared.changed.notify_all();
            }
        }
    }

    fn delivered(&mut self, kind: Kind) {
        if kind == Kind::Event {
            let mut g = self.shared.lock();
            g.in_flight = g.in_flight.saturating_sub(1);
            g.stats.published += 1;
        }
    }

    /// A publish the broker refused (MQTT 5 reason code): events are counted as `rejected`.
    fn refused(&mut self, kind: Kind, reason: &str) {
        let mut g = self.shared.lock();
        if kind == Kind::Event {
            g.in_flight = g.in_flight.saturating_sub(1);
            g.rejected += 1;
        }
        let n = g.rejected;
        drop(g);
        // refused events: warn at the 1st, 2nd, 4th, 8th, … (all are in `mqtt.rejected`)
        if kind == Kind::Other || n.is_power_of_two() {
            tracing::warn!(
                "MQTT broker {} refused a publish ({reason}); events refused so far: {n}",
                self.settings.broker.address()
            );
        }
    }

    fn on_message(&mut self, topic: &str, payload: &[u8]) {
        let topics = &self.settings.topics;
        if topic == topics.detect_set() {
            let on = match super::command::parse_detect(payload) {
                Ok(on) => on,
                Err(why) => {
                    tracing::warn!("MQTT {topic}: {why}");
                    return;
                }
            };
            if let Some(c) = &self.control {
                c.set_detect(on);
            }
            tracing::info!("MQTT: detection {}", if on { "on" } else { "off" });
            let mut g = self.shared.lock();
            g.retained.insert(
                topics.detect_state(),
                Retained {
                    payload: if on { b"ON".to_vec() } else { b"OFF".to_vec() },
                    content: Content::Text,
                    dirty: true,
                },
            );
        } else if topic == topics.ha_status()
            && String::from_utf8_lossy(payload).trim() == "online"
            && self.settings.discovery
        {
            // Home Assistant (re)started: discovery and current states again
            self.need_discovery = true;
            let mut g = self.shared.lock();
            for r in g.retained.values_mut() {
                r.dirty = true;
            }
            g.state_dirty = g.run_state.is_some();
            drop(g);
            self.need_online = true;
        }
    }

    /// Hands a publish to rumqttc; gives it back when its channel is full (try again later).
    fn try_hand(&mut self, m: Message, kind: Kind) -> Result<(), Message> {
        let qos = m.qos;
        self.client.publish(m)?;
        self.fifo.push_back((kind, qos));
        Ok(())
    }

    /// [`Self::try_hand`]; false when the channel is full.
    fn hand(&mut self, m: Message, kind: Kind) -> bool {
        let ok = self.try_hand(m, kind).is_ok();
        if !ok {
            tracing::debug!("MQTT: request channel full; retrying");
        }
        ok
    }

    fn hand_state(&mut self) -> bool {
        let mut g = self.shared.lock();
        if !g.state_dirty {
            return true;
        }
        let Some(mut obj) = g.run_state.clone() else {
            g.state_dirty = false;
            return true;
        };
        let stats = g.stats();
        drop(g);
        obj.insert(
            "version".into(),
            serde_json::Value::String(super::STATE_SCHEMA_VERSION.into()),
        );
        obj.insert(
            "camera".into(),
            serde_json::Value::String(self.settings.topics.camera.clone()),
        );
        obj.insert(
            "mqtt".into(),
            serde_json::to_value(stats).unwrap_or(serde_json::Value::Null),
        );
        let payload = serde_json::Value::Object(obj).to_string().into_bytes();
        let ok = self.hand(
            Message {
                topic: self.settings.topics.state(),
                payload,
                qos: self.settings.qos,
                retain: self.settings.retain,
                content: Content::Json,
            },
            Kind::Other,
        );
        if ok {
            self.shared.lock().state_dirty = false;
        }
        ok
    }

    /// Discovery, dirty retained values, `online` (once they are out), then queued events.
    fn hand_out(&mut self) {
        let qos = self.settings.qos;
        let retain = self.settings.retain;
        let msg = |topic: String, payload: Vec<u8>, content: Content| Message {
            topic,
            payload,
            qos,
            retain,
            content,
        };
        if self.need_discovery {
            for (t, p) in discovery_configs(
                &self.settings.topics,
                &self.node_id,
                qos,
                &self.settings.labels,
            ) {
                if !self.hand(msg(t, p.into_bytes(), Content::Json), Kind::Other) {
                    return;
                }
            }
            self.need_discovery = false;
        }
        let dirty: Vec<(String, Vec<u8>, Content)> = {
            let g = self.shared.lock();
            g.retained
                .iter()
                .filter(|(_, r)| r.dirty)
                .map(|(t, r)| (t.clone(), r.payload.clone(), r.content))
                .collect()
        };
        for (t, p, content) in dirty {
            if !self.hand(msg(t.clone(), p.clone(), content), Kind::Other) {
                return;
            }
            let mut g = self.shared.lock();
            if let Some(r) = g.retained.get_mut(&t) {
                if r.payload == p {
                    r.dirty = false;
                }
            }
        }
        if !self.hand_state() {
            return;
        }
        if self.need_online {
            let online = Message {
                qos: 1,
                ..msg(
                    self.settings.topics.available(),
                    b"online".to_vec(),
                    Content::Text,
                )
            };
            if !self.hand(online, Kind::Other) {
                return;
            }
            self.need_online = false;
        }
        loop {
            let payload = {
                let mut g = self.shared.lock();
                let Some(p) = g.queue.pop() else { break };
                g.in_flight += 1;
                p
            };
            let m = msg(self.settings.topics.events(), payload, Content::Json);
            // events are never retained
            if let Err(m) = self.try_hand(Message { retain: false, ..m }, Kind::Event) {
                let mut g = self.shared.lock();
                g.in_flight -= 1;
                g.queue.push_front(m.payload);
                break;
            }
        }
    }
}
