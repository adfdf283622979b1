//! The MQTT client's two threads (see [`super::client`]): `mqtt-net` drives rumqttc's event
//! loop and sleeps the reconnect back-off; `mqtt-pub` ([`Worker`]) publishes discovery, retained
//! states, `online` and the queued events, counts their delivery, and handles the subscribed
//! commands.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::command::parse_detect;
use super::connection::{Conn, Link, Message, NetEvent, Unsent};
use super::discovery::{discovery_configs, node_id};
use super::protocol::Content;
use super::settings::ClientSettings;
use super::state::{First, Retained, Shared};
use super::{MqttError, STATE_SCHEMA_VERSION};
use crate::control::RunControl;
use crate::util::backoff::Backoff;

/// Starts `mqtt-net` (over `connection`, sleeping a [`Backoff`] between attempts) and `mqtt-pub`
/// (over `link`); returns `mqtt-pub`'s handle. Errors: a thread cannot be started.
pub(super) fn spawn(
    link: Link,
    connection: Conn,
    shared: Arc<Shared>,
    settings: &ClientSettings,
    control: Option<Arc<RunControl>>,
) -> Result<JoinHandle<()>, MqttError> {
    let (tx, rx) = mpsc::channel::<NetEvent>();
    let backoff = Backoff::new(settings.reconnect_min, settings.reconnect_max);
    let stop = shared.clone();
    std::thread::Builder::new()
        .name("mqtt-net".into())
        .spawn(move || net_loop(connection, tx, backoff, stop))
        .map_err(MqttError::Thread)?;
    let mut worker = Worker {
        client: link,
        shared,
        settings: settings.clone(),
        control,
        node_id: node_id(&settings.client_id),
        connected: false,
        fifo: VecDeque::new(),
        awaiting: HashMap::new(),
        need_discovery: false,
        need_online: false,
    };
    std::thread::Builder::new()
        .name("mqtt-pub".into())
        .spawn(move || worker.run(rx))
        .map_err(MqttError::Thread)
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
pub(super) struct Worker {
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
                if !session_present && !self.awaiting.is_empty() {
                    // every unacknowledged publish came back in the last `Error::lost`; what is
                    // still here rumqttc no longer has: its delivery is unknown
                    let lost = self
                        .awaiting
                        .values()
                        .filter(|k| **k == Kind::Event)
                        .count();
                    g.unconfirmed += lost as u64;
                    g.in_flight = g.in_flight.saturating_sub(lost as u64);
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
                g.first.get_or_insert(First::Connected);
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
            NetEvent::Error {
                message,
                refused,
                lost,
            } => {
                self.take_back(lost);
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
                    g.first = Some(First::Refused(message.clone()));
                }
                g.last_error = Some(message);
                drop(g);
                self.shared.changed.notify_all();
            }
        }
    }

    /// The publishes rumqttc held when the connection broke (in its order: the unacknowledged
    /// ones, then the unsent rest of its channel) leave the bookkeeping; the events among them
    /// go back to the front of the queue, to be sent again on the next connection (a new
    /// PUBLISH with a new packet id, DUP 0: MQTT 3.1.1 §3.3.1.1 sets DUP only on a redelivery of
    /// the same packet in the same session). Those that had been written count as `resent`: a
    /// subscriber may get them twice, as QoS 1 allows. Past `queue_size` the queue drops its
    /// oldest, as always. The other publishes (discovery, retained values, `online`) are
    /// published again anyway after the reconnect.
    fn take_back(&mut self, lost: Vec<Unsent>) {
        let events = self.settings.topics.events();
        let mut back = Vec::new();
        let mut written = 0u64;
        for u in lost {
            // a written one is awaited by its packet id; an unsent one is the oldest handed out
            if u.pkid == 0 || self.awaiting.remove(&u.pkid).is_none() {
                self.fifo.pop_front();
            }
            if u.topic == events {
                written += u64::from(u.pkid != 0);
                back.push(u.payload);
            }
        }
        if back.is_empty() {
            return;
        }
        let mut g = self.shared.lock();
        g.in_flight = g.in_flight.saturating_sub(back.len() as u64);
        g.resent += written;
        let n = back.len();
        g.queue.put_back(back);
        drop(g);
        tracing::info!(
            "MQTT: {n} events unacknowledged or unsent at the break ({written} written): \
             queued to send again"
        );
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
            let on = match parse_detect(payload) {
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
            serde_json::Value::String(STATE_SCHEMA_VERSION.into()),
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
        // at most `queue_size` events in rumqttc's hands: what a broken connection gives back
        // to the queue is bounded too
        let in_flight_max = self.settings.queue_size as u64;
        loop {
            let payload = {
                let mut g = self.shared.lock();
                if g.in_flight >= in_flight_max {
                    break;
                }
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
