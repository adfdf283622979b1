//! The MQTT network side: two threads that never block the pipeline. The same logic serves MQTT
//! 3.1.1 and 5; what differs between them is behind the adapter in `connection`. The threads
//! are in `worker`, the state they share with [`MqttClient`] in `state`.
//!
//! * `mqtt-net` drives rumqttc's event loop (`Conn::recv`), which connects and, after an
//!   error, reconnects on the next call; between attempts it sleeps a jittered exponential
//!   [`Backoff`](crate::util::backoff::Backoff). It forwards every event to:
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
//! overflowed (drop-oldest), `rejected` when an MQTT 5 broker refused it in its PUBACK/PUBREC
//! (reason code ≥ 0x80, e.g. not authorised; an MQTT 3.1.1 broker cannot say so), `unconfirmed`
//! when it had been sent, was not acknowledged when the connection broke, and could not be queued
//! again (should not happen, see below), and `queued` while waiting or in flight. So
//! `queued + dropped + unconfirmed + rejected + published` = events enqueued.
//!
//! Outbox: events survive a broken connection and a broker restart. The sessions are clean
//! (a persistent session does not survive a broker restart without persistence), so rumqttc
//! would drop the publishes it holds at the next CONNACK; `connection::Conn` takes them out
//! instead, and `mqtt-pub` puts the events among them back at the front of the queue to be sent
//! on the next connection. Those that had been written are also counted `resent`: the broker may
//! have had them, so a subscriber that missed nothing received between `published` and
//! `published + resent + unconfirmed` event messages, each event at least once unless dropped.
//! Bound: at most `queue_size` events wait and at most `queue_size` more are in rumqttc's hands
//! (sent or about to be, not yet acknowledged); those come back to the front of the queue after a
//! break, and the queue drops its oldest past `queue_size` (counted `dropped`).
//! Retained states are not counted: the latest value of each is republished after every
//! reconnect.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::connection;
use super::protocol::Content;
use super::settings::ClientSettings;
use super::state::{First, Inner, Retained, Shared};
use super::topics::Topics;
use super::{worker, MqttError};
use crate::control::RunControl;
use crate::util::queue::DropOldest;

pub use super::state::MqttStats;

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
        let (link, conn) = connection::connect(&settings, 1024)?;
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
                resent: 0,
                rejected: 0,
                first: None,
                last_error: None,
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let handle = worker::spawn(link, conn, shared.clone(), &settings, control)?;
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
            Some(First::Connected) => {
                tracing::info!(
                    "MQTT: connected to {} (MQTT {})",
                    me.settings.broker.address(),
                    me.settings.protocol
                );
                Ok(me)
            }
            Some(First::Refused(reason)) => Err(MqttError::Refused {
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
