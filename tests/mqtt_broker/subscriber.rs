//! The test subscriber ([`Sub`], MQTT 3.1.1 or 5 through rumqttc) and the checks on what it
//! received: protocol version in mosquitto's log, MQTT 5 content types, JSON schemas.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use c3n_edge::sink::mqtt::Protocol;

use crate::harness::root;

#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    /// Redelivery (DUP flag): QoS 1 is at-least-once, and the broker restart resends what the
    /// test subscriber had not acknowledged.
    pub dup: bool,
    /// MQTT 5 content type property (None with MQTT 3.1.1).
    pub content_type: Option<String>,
    /// MQTT 5 payload format indicator (None with MQTT 3.1.1).
    pub format: Option<u8>,
}

impl Msg {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("{} payload is not JSON: {e}", self.topic))
    }
}

/// The test subscriber's client, of either protocol (rumqttc's own clients).
pub enum SubClient {
    V311(rumqttc::Client),
    V5(rumqttc::v5::Client),
}

/// A rumqttc subscriber (MQTT 3.1.1 or 5) on its own thread collecting every message;
/// resubscribes when the broker has no session for it. Stops when dropped.
pub struct Sub {
    pub msgs: Arc<Mutex<Vec<Msg>>>,
    pub client: SubClient,
}

impl Sub {
    pub fn start(
        proto: Protocol,
        port: u16,
        id: &str,
        persistent: bool,
        creds: Option<(&str, &str)>,
        filters: &[&str],
    ) -> Sub {
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let m = msgs.clone();
        let f: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let client = match proto {
            Protocol::V311 => {
                use rumqttc::{Event, Packet, QoS};
                let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
                o.set_clean_session(!persistent);
                o.set_max_packet_size(16 * 1024 * 1024, 64 * 1024);
                o.set_keep_alive(Duration::from_secs(5));
                if let Some((u, p)) = creds {
                    o.set_credentials(u, p);
                }
                let (client, mut conn) = rumqttc::Client::new(o, 64);
                let c = client.clone();
                std::thread::spawn(move || loop {
                    match conn.recv() {
                        Ok(Ok(Event::Incoming(Packet::ConnAck(a)))) if !a.session_present => {
                            for t in &f {
                                c.subscribe(t.clone(), QoS::AtLeastOnce).expect("subscribe");
                            }
                        }
                        Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                            let _ = ready_tx.send(());
                        }
                        Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                            m.lock().unwrap().push(Msg {
                                topic: p.topic.clone(),
                                payload: p.payload.to_vec(),
                                retain: p.retain,
                                dup: p.dup,
                                content_type: None,
                                format: None,
                            })
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                        Err(_) => return,
                    }
                });
                SubClient::V311(client)
            }
            Protocol::V5 => {
                use rumqttc::v5::mqttbytes::QoS;
                use rumqttc::v5::{Event, Incoming};
                let mut o = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
                o.set_clean_start(!persistent);
                if persistent {
                    // MQTT 5 sessions end with the connection unless they have an expiry
                    o.set_session_expiry_interval(Some(3600));
                }
                o.set_max_packet_size(Some(16 * 1024 * 1024));
                o.set_keep_alive(Duration::from_secs(5));
                if let Some((u, p)) = creds {
                    o.set_credentials(u, p);
                }
                let (client, mut conn) = rumqttc::v5::Client::new(o, 64);
                let c = client.clone();
                std::thread::spawn(move || loop {
                    match conn.recv() {
                        Ok(Ok(Event::Incoming(Incoming::ConnAck(a)))) if !a.session_present => {
                            for t in &f {
                                c.subscribe(t.clone(), QoS::AtLeastOnce).expect("subscribe");
                            }
                        }
                        Ok(Ok(Event::Incoming(Incoming::SubAck(_)))) => {
                            let _ = ready_tx.send(());
                        }
                        Ok(Ok(Event::Incoming(Incoming::Publish(p)))) => {
                            let props = p.properties.clone().unwrap_or_default();
                            m.lock().unwrap().push(Msg {
                                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                                payload: p.payload.to_vec(),
                                retain: p.retain,
                                dup: p.dup,
                                content_type: props.content_type,
                                format: props.payload_format_indicator,
                            })
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                        Err(_) => return,
                    }
                });
                SubClient::V5(client)
            }
        };
        for _ in filters {
            ready_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("test subscriber: SUBACK");
        }
        Sub { msgs, client }
    }

    /// Publishes `payload` on `topic` (QoS 1, not retained).
    pub fn publish(&self, topic: &str, payload: &str) {
        let p = payload.as_bytes().to_vec();
        let r = match &self.client {
            SubClient::V311(c) => c
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, p)
                .map_err(|e| e.to_string()),
            SubClient::V5(c) => c
                .publish(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, p)
                .map_err(|e| e.to_string()),
        };
        r.expect("test publish");
    }

    pub fn all(&self) -> Vec<Msg> {
        self.msgs.lock().unwrap().clone()
    }
    pub fn on(&self, topic: &str) -> Vec<Msg> {
        self.all()
            .into_iter()
            .filter(|m| m.topic == topic)
            .collect()
    }
    /// Messages on `topic` with `payload`, redeliveries not counted.
    pub fn count(&self, topic: &str, payload: &str) -> usize {
        self.on(topic)
            .iter()
            .filter(|m| m.text() == payload && !m.dup)
            .count()
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = match &self.client {
            SubClient::V311(c) => c.disconnect().map_err(|e| e.to_string()),
            SubClient::V5(c) => c.disconnect().map_err(|e| e.to_string()),
        };
    }
}

/// mosquitto's log shows `client` connecting with `proto` (its protocol numbers: 2 = MQTT 3.1.1,
/// 5 = MQTT 5): the connection really is that version, not just the option asked for.
pub fn assert_broker_saw_protocol(broker_log: &Path, client: &str, proto: Protocol) {
    let p = match proto {
        Protocol::V311 => "p2",
        Protocol::V5 => "p5",
    };
    let log = std::fs::read_to_string(broker_log).unwrap_or_default();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("New client connected") && l.contains(&format!(" as {client} (")))
        .collect();
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.contains(&format!("({p}, "))),
        "mosquitto did not log {client} connecting with MQTT {proto} ({p}):\n{}",
        lines.join("\n")
    );
}

/// The content type c3n-edge gives the payloads of `topic`.
pub fn mime_of(topic: &str) -> &'static str {
    if topic.ends_with("/snapshot") {
        "image/jpeg"
    } else if topic.ends_with("/events")
        || (topic.ends_with("/state") && !topic.ends_with("/detect/state"))
        || topic.ends_with("/config")
    {
        "application/json"
    } else {
        "text/plain"
    }
}

/// With MQTT 5 each message carries the content type of its payload (and UTF-8 text the payload
/// format indicator 1); with MQTT 3.1.1 there are no properties.
pub fn assert_content_type(proto: Protocol, m: &Msg, mime: &str) {
    match proto {
        Protocol::V311 => assert_eq!((&m.content_type, m.format), (&None, None), "{}", m.topic),
        Protocol::V5 => {
            assert_eq!(m.content_type.as_deref(), Some(mime), "{}", m.topic);
            if mime != "image/jpeg" {
                assert_eq!(m.format, Some(1), "{}: payload format indicator", m.topic);
            }
        }
    }
}

pub fn validator(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schema").join(name)).expect("read schema");
    let v: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&v).expect("valid JSON Schema")
}

pub fn assert_valid(v: &jsonschema::Validator, what: &str, doc: &serde_json::Value) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} fails its schema: {errors:?}\n{doc}"
    );
}
