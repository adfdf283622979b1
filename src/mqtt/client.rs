//! The MQTT network side: two threads that never block the pipeline.
//!
//! * `mqtt-net` drives rumqttc's event loop (`Connection::recv`), which connects and, after an
//!   error, reconnects on the next call; between attempts it sleeps a jittered exponential
//!   [`Backoff`]. It forwards every event to:
//! * `mqtt-pub`, which owns the rumqttc [`Client`]. On every CONNACK it subscribes to the command
//!   topics, publishes the discovery configs and every retained state, and only then `online`;
//!   while connected it hands queued event messages to rumqttc. It also handles `detect/set` and
//!   Home Assistant's `online` birth message.
//!
//! The pipeline side ([`MqttClient`]) only appends to a bounded drop-oldest queue (events) or
//! replaces a retained value (states, counts, snapshots) under a mutex, so a slow or absent
//! broker never slows the pipeline.
//!
//! Delivery accounting ([`MqttStats`], event messages only): an event is `published` once the
//! broker has it (QoS 0: written to the socket; QoS 1/2: acknowledged), `dropped` when the queue
//! overflowed (never sent), `unconfirmed` when it had been sent but not acknowledged when the
//! connection broke (clean sessions: rumqttc does not resend it; the broker may or may not have
//! received it — MQTT cannot tell), and `queued` while waiting or in flight. So
//! `queued + dropped + unconfirmed + published` = events enqueued, and a subscriber that missed
//! nothing received between `published` and `published + unconfirmed` of them. Retained states
//! are not counted: the latest value of each is republished after every reconnect.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{
    Client, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS,
};
use serde::Serialize;

use super::{discovery_configs, node_id, Backoff, BrokerUrl, DropOldest, MqttError, Topics};
use crate::control::RunControl;

/// Everything the client needs (resolved from [`super::MqttConfig`] and the command line).
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Broker address and transport.
    pub broker: BrokerUrl,
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
    /// Events the broker has (QoS 0: written to the socket; QoS ≥ 1: acknowledged).
    pub published: u64,
}

#[derive(Debug)]
struct Retained {
    payload: Vec<u8>,
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

/// What `mqtt-net` forwards.
enum NetEvent {
    Event(Event),
    Error {
        message: String,
        refused: Option<ConnectReturnCode>,
    },
}

fn qos_of(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn refusal_text(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::BadUserNamePassword => "bad user name or password",
        ConnectReturnCode::NotAuthorized => "not authorised (check the user name and password)",
        ConnectReturnCode::BadClientId => "client id rejected",
        ConnectReturnCode::RefusedProtocolVersion => "MQTT protocol version not supported",
        ConnectReturnCode::ServiceUnavailable => "service unavailable",
        ConnectReturnCode::Success => "success",
    }
}

impl MqttClient {
    /// Starts the threads and waits up to `connect_wait` for the first connection. Errors: the
    /// broker refused the connection (wrong credentials, …) within that time, TLS files, thread
    /// start. An unreachable broker is not an error: the client keeps retrying in the background
    /// (a warning is logged) and events queue up to `queue_size`.
    /// `initial` are retained `(topic, payload)` values published before the first `online`.
    pub fn start(
        settings: ClientSettings,
        control: Option<Arc<RunControl>>,
        initial: Vec<(String, Vec<u8>)>,
    ) -> Result<Self, MqttError> {
        let mut opts = MqttOptions::new(
            settings.client_id.clone(),
            settings.broker.host.clone(),
            settings.broker.port,
        );
        opts.set_keep_alive(settings.keep_alive);
        opts.set_clean_session(true);
        // snapshots are JPEGs of whole frames; commands are tiny
        opts.set_max_packet_size(64 * 1024, 16 * 1024 * 1024);
        opts.set_last_will(LastWill::new(
            settings.topics.available(),
            "offline",
            QoS::AtLeastOnce,
            settings.retain,
        ));
        if let Some(u) = &settings.username {
            opts.set_credentials(u.clone(), settings.password.clone().unwrap_or_default());
        }
        if settings.broker.tls {
            configure_tls(&mut opts, &settings)?;
        }
        let (client, connection) = Client::new(opts, 1024);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                queue: DropOldest::new(settings.queue_size),
                retained: initial
                    .into_iter()
                    .map(|(t, payload)| {
                        (
                            t,
                            Retained {
                                payload,
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
            client,
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
                tracing::info!("MQTT: connected to {}", me.settings.broker.address());
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

    /// Sets the value of a retained topic; published now if connected, and again after every
    /// reconnect. Unchanged values are not republished.
    pub fn set_retained(&self, topic: String, payload: Vec<u8>) {
        let mut g = self.shared.lock();
        if g.retained.get(&topic).is_some_and(|r| r.payload == payload) {
            return;
        }
        g.retained.insert(
            topic,
            Retained {
                payload,
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

#[cfg(feature = "mqtt-tls")]
fn configure_tls(opts: &mut MqttOptions, s: &ClientSettings) -> Result<(), MqttError> {
    use rumqttc::tokio_native_tls::native_tls;
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|source| MqttError::TlsFile {
            path: p.to_path_buf(),
            source,
        })
    };
    let bad = |what: &str, e: native_tls::Error| {
        MqttError::Config(format!(
            "TLS for broker {}: {what}: {e}",
            s.broker.address()
        ))
    };
    let mut b = native_tls::TlsConnector::builder();
    if let Some(ca) = &s.ca_file {
        let cert = native_tls::Certificate::from_pem(&read(ca)?)
            .map_err(|e| bad(&format!("CA file {}", ca.display()), e))?;
        b.add_root_certificate(cert);
    }
    if let Some((cert, key)) = &s.client_auth {
        let id = native_tls::Identity::from_pkcs8(&read(cert)?, &read(key)?).map_err(|e| {
            bad(
                &format!(
                    "client certificate {} / key {}",
                    cert.display(),
                    key.display()
                ),
                e,
            )
        })?;
        b.identity(id);
    }
    let connector = b.build().map_err(|e| bad("connector", e))?;
    opts.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::NativeConnector(connector),
    ));
    Ok(())
}

#[cfg(not(feature = "mqtt-tls"))]
fn configure_tls(_opts: &mut MqttOptions, s: &ClientSettings) -> Result<(), MqttError> {
    Err(MqttError::NoTls(s.broker.address()))
}

/// `mqtt-net`: drives the event loop, sleeps the backoff after errors.
fn net_loop(
    mut connection: rumqttc::Connection,
    tx: mpsc::Sender<NetEvent>,
    mut backoff: Backoff,
    shared: Arc<Shared>,
) {
    loop {
        match connection.recv() {
            Ok(Ok(ev)) => {
                if matches!(ev, Event::Incoming(Packet::ConnAck(_))) {
                    backoff.reset();
                }
                let done = matches!(ev, Event::Outgoing(Outgoing::Disconnect));
                if tx.send(NetEvent::Event(ev)).is_err() || done {
                    return;
                }
            }
            Ok(Err(e)) => {
                let refused = match &e {
                    ConnectionError::ConnectionRefused(c) => Some(*c),
                    _ => None,
                };
                let message = match refused {
                    Some(c) => refusal_text(c).to_string(),
                    None => e.to_string(),
                };
                if tx.send(NetEvent::Error { message, refused }).is_err() {
                    return;
                }
                // sleep the backoff in slices so that a shutdown is not held up
                let until = Instant::now() + backoff.next_delay();
                while Instant::now() < until {
                    if shared.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
                }
            }
            Err(_) => return, // every Client handle is gone
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
    client: Client,
    shared: Arc<Shared>,
    settings: ClientSettings,
    control: Option<Arc<RunControl>>,
    node_id: String,
    connected: bool,
    /// Publishes handed to rumqttc, in order, until rumqttc reports them sent.
    fifo: VecDeque<(Kind, QoS)>,
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
                    self.settings.topics.available(),
                    b"offline".to_vec(),
                    QoS::AtLeastOnce,
                    self.settings.retain,
                    Kind::Other,
                );
                final_sent = true;
                stop_at = Some(Instant::now() + Duration::from_secs(2));
                continue;
            }
            if final_sent && ((self.fifo.is_empty() && self.awaiting.is_empty()) || late) {
                let _ = self.client.try_disconnect();
                // give the event loop a moment to send DISCONNECT
                let end = Instant::now() + Duration::from_secs(1);
                while Instant::now() < end {
                    match rx.recv_timeout(Duration::from_millis(20)) {
                        Ok(NetEvent::Event(Event::Outgoing(Outgoing::Disconnect))) => break,
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
            NetEvent::Event(Event::Incoming(Packet::ConnAck(ack))) => {
                self.connected = true;
                let mut g = self.shared.lock();
                if !ack.session_present {
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
                let qos = qos_of(self.settings.qos);
                let mut subs = vec![self.settings.topics.detect_set()];
                if self.settings.discovery {
                    subs.push(self.settings.topics.ha_status());
                }
                for t in subs {
                    if let Err(e) = self.client.try_subscribe(t.clone(), qos) {
                        tracing::warn!("MQTT: cannot subscribe to {t}: {e}");
                    }
                }
                self.need_discovery = self.settings.discovery;
                self.need_online = true;
            }
            NetEvent::Event(Event::Outgoing(Outgoing::Publish(pkid))) => {
                if let Some((kind, qos)) = self.fifo.pop_front() {
                    if qos == QoS::AtMostOnce {
                        self.delivered(kind);
                    } else {
                        self.awaiting.insert(pkid, kind);
                    }
                }
            }
            NetEvent::Event(Event::Incoming(Packet::PubAck(a))) => {
                if let Some(k) = self.awaiting.remove(&a.pkid) {
                    self.delivered(k);
                }
            }
            NetEvent::Event(Event::Incoming(Packet::PubComp(c))) => {
                if let Some(k) = self.awaiting.remove(&c.pkid) {
                    self.delivered(k);
                }
            }
            NetEvent::Event(Event::Incoming(Packet::Publish(p))) => self.on_message(&p),
            NetEvent::Event(_) => {}
            NetEvent::Error { message, refused } => {
                let mut g = self.shared.lock();
                if self.connected {
                    tracing::warn!(
                        "MQTT broker {}: connection lost ({message}); reconnecting",
                        self.settings.broker.address()
                    );
                } else if refused.is_some() {
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
                if refused.is_some() && g.first.is_none() {
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

    fn on_message(&mut self, p: &rumqttc::Publish) {
        let text = String::from_utf8_lossy(&p.payload);
        let text = text.trim();
        let topics = &self.settings.topics;
        if p.topic == topics.detect_set() {
            let on = match text.to_ascii_uppercase().as_str() {
                "ON" => true,
                "OFF" => false,
                other => {
                    tracing::warn!("MQTT {}: ignoring {other:?} (expected ON or OFF)", p.topic);
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
                    dirty: true,
                },
            );
        } else if p.topic == topics.ha_status() && text == "online" && self.settings.discovery {
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

    /// Hands a publish to rumqttc; false when its channel is full (try again later).
    fn hand(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
        kind: Kind,
    ) -> bool {
        match self.client.try_publish(topic, qos, retain, payload) {
            Ok(()) => {
                self.fifo.push_back((kind, qos));
                true
            }
            Err(e) => {
                tracing::debug!("MQTT: request channel full ({e}); retrying");
                false
            }
        }
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
            self.settings.topics.state(),
            payload,
            qos_of(self.settings.qos),
            self.settings.retain,
            Kind::Other,
        );
        if ok {
            self.shared.lock().state_dirty = false;
        }
        ok
    }

    /// Discovery, dirty retained values, `online` (once they are out), then queued events.
    fn hand_out(&mut self) {
        let qos = qos_of(self.settings.qos);
        let retain = self.settings.retain;
        if self.need_discovery {
            for (t, p) in discovery_configs(&self.settings.topics, &self.node_id, self.settings.qos)
            {
                if !self.hand(t, p.into_bytes(), qos, retain, Kind::Other) {
                    return;
                }
            }
            self.need_discovery = false;
        }
        let dirty: Vec<(String, Vec<u8>)> = {
            let g = self.shared.lock();
            g.retained
                .iter()
                .filter(|(_, r)| r.dirty)
                .map(|(t, r)| (t.clone(), r.payload.clone()))
                .collect()
        };
        for (t, p) in dirty {
            if !self.hand(t.clone(), p.clone(), qos, retain, Kind::Other) {
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
            if !self.hand(
                self.settings.topics.available(),
                b"online".to_vec(),
                QoS::AtLeastOnce,
                retain,
                Kind::Other,
            ) {
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
            if let Err(e) =
                self.client
                    .try_publish(self.settings.topics.events(), qos, false, payload)
            {
                let req = match e {
                    rumqttc::ClientError::TryRequest(r) | rumqttc::ClientError::Request(r) => r,
                };
                let mut g = self.shared.lock();
                g.in_flight -= 1;
                if let rumqttc::Request::Publish(p) = req {
                    g.queue.push_front(p.payload.to_vec());
                }
                break;
            }
            self.fifo.push_back((Kind::Event, qos));
        }
    }
}
