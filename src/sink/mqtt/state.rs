//! The state the MQTT client's pipeline side ([`super::MqttClient`]) and its publishing thread
//! (`mqtt-pub`) share: the event queue, the retained values, the run state and the counters
//! ([`MqttStats`]).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Condvar, Mutex, MutexGuard};

use serde::Serialize;

use super::protocol::Content;
use crate::util::queue::DropOldest;

/// Delivery counters of the event messages (see [`super::client`]), reported in `state.mqtt`.
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
    /// Events dropped from the full queue (drop-oldest) while the broker was unreachable (never
    /// sent, or `resent` ones whose second send never came).
    pub dropped: u64,
    /// Events sent but unacknowledged when the connection broke that the client could not
    /// queue again (delivery unknown). The unacknowledged events come back from rumqttc and are
    /// `resent`, so this stays 0 unless rumqttc loses one.
    pub unconfirmed: u64,
    /// Events written but unacknowledged when the connection broke, queued again and sent on a
    /// later connection (unless dropped from the full queue first): a subscriber may receive
    /// these twice (QoS 1 is at least once).
    pub resent: u64,
    /// Events the broker refused (MQTT 5 PUBACK/PUBREC reason code ≥ 0x80, e.g. not authorised
    /// to publish on the topic): never delivered. Always 0 with MQTT 3.1.1.
    pub rejected: u64,
    /// Events the broker has (QoS 0: written to the socket; QoS ≥ 1: acknowledged).
    pub published: u64,
}

/// The latest value of a retained topic.
#[derive(Debug)]
pub(super) struct Retained {
    pub payload: Vec<u8>,
    pub content: Content,
    /// Not yet published on the current connection.
    pub dirty: bool,
}

/// How the first connection attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum First {
    /// CONNACK with success.
    Connected,
    /// The broker refused the connection; the reason in words.
    Refused(String),
}

/// What the pipeline side and `mqtt-pub` share, under [`Shared::lock`].
#[derive(Debug)]
pub(super) struct Inner {
    pub queue: DropOldest<Vec<u8>>,
    pub retained: BTreeMap<String, Retained>,
    /// Pipeline state JSON (an object), merged with `mqtt` counters when published.
    pub run_state: Option<serde_json::Map<String, serde_json::Value>>,
    pub state_dirty: bool,
    pub stats: MqttStats,
    /// Events handed to rumqttc, not yet published.
    pub in_flight: u64,
    /// Events unacknowledged at disconnections and not queued again.
    pub unconfirmed: u64,
    /// Events written, unacknowledged at a disconnection, and queued again.
    pub resent: u64,
    /// Events refused by the broker (MQTT 5).
    pub rejected: u64,
    /// How the first connection attempt ended (`None`: not yet).
    pub first: Option<First>,
    pub last_error: Option<String>,
}

impl Inner {
    /// The counters, with the queue's and the worker's figures.
    pub fn stats(&self) -> MqttStats {
        MqttStats {
            queued: self.queue.len() as u64 + self.in_flight,
            dropped: self.queue.dropped(),
            unconfirmed: self.unconfirmed,
            resent: self.resent,
            rejected: self.rejected,
            ..self.stats
        }
    }
}

/// The state shared by [`super::MqttClient`], `mqtt-net` and `mqtt-pub`.
#[derive(Debug)]
pub(super) struct Shared {
    pub inner: Mutex<Inner>,
    /// Signalled when the first connection attempt ended.
    pub changed: Condvar,
    /// Set by [`super::MqttClient::shutdown`].
    pub stop: AtomicBool,
}

impl Shared {
    /// The state, locked.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::control::{RunControl, RunState};

    fn keys(v: &serde_json::Value) -> BTreeSet<String> {
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn strings(v: &serde_json::Value) -> BTreeSet<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn the_state_payload_has_exactly_the_fields_of_its_schema_version() {
        let schema: serde_json::Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/state.schema.json"
        )))
        .expect("schema/state.schema.json is JSON");
        let id = schema["$id"].as_str().unwrap_or_default();
        assert!(
            id.ends_with(&format!(":{}", crate::sink::mqtt::STATE_SCHEMA_VERSION)),
            "{id}"
        );
        assert_eq!(
            schema["properties"]["version"]["const"],
            crate::sink::mqtt::STATE_SCHEMA_VERSION
        );
        // the worker adds `version`, `camera` and `mqtt` to the run state
        let state = RunState::snapshot(&RunControl::default(), "tract", 1.0, 2.0, 3, 4, -20.0);
        let mut fields = keys(&serde_json::to_value(state).expect("state JSON"));
        fields.extend(["version", "camera", "mqtt"].map(String::from));
        assert_eq!(fields, strings(&schema["required"]));
        assert_eq!(fields, keys(&schema["properties"]));
        let mqtt = keys(&serde_json::to_value(MqttStats::default()).expect("stats JSON"));
        assert_eq!(mqtt, strings(&schema["properties"]["mqtt"]["required"]));
        assert_eq!(mqtt, keys(&schema["properties"]["mqtt"]["properties"]));
    }
}
