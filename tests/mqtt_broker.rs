//! `c3n-edge run --mqtt` against a real mosquitto (Debian `mosquitto` 2.0.11, started here on
//! 127.0.0.1 with a free port and a generated config, killed at the end) while the binary runs
//! the real clip `assets/clips/bbb-bird` with the shipped model. Every scenario runs once per
//! protocol, MQTT 3.1.1 and MQTT 5 (`*_mqtt311` / `*_mqtt5`); the test subscriber speaks the
//! same version, and each run checks in mosquitto's log (`log_type all`) that the camera's
//! connection really was that version (`New client connected … (p2, …)` for 3.1.1, `(p5, …)` for
//! 5), and, with MQTT 5, the content type of every message:
//!
//! * `events_states_discovery_and_broker_restart`: topics, retained flags, payloads validated
//!   against `schema/{event,state,ha-discovery}.schema.json`, `online` only after the states of
//!   each connection, a broker restart mid-run (the process keeps running, reconnects,
//!   republishes availability and discovery, and the events lost are exactly those its counters
//!   report), `detect/set`, and `offline` after SIGTERM.
//! * `auth_acl_and_will`: a broker with a password file refuses wrong credentials with a
//!   clear error (MQTT 5: from the CONNACK reason code); an ACL that denies the events topic
//!   makes MQTT 5 count every event `rejected` (the broker says so in its PUBACK) while MQTT 3.1.1
//!   cannot know (`published`: the broker drops them silently); with the right credentials,
//!   SIGKILL gives the last will `offline` (MQTT 5: with its content type).
//! * `events_survive_a_killed_broker`: a broker frozen, then killed and restarted mid-run; the
//!   events it had not acknowledged are sent again, and a persistent QoS 1 subscriber receives
//!   every event emitted (duplicates only of those counted `resent`).
//! * `tls_with_client_certificate` (feature `mqtt-tls`) and `embedded_broker_serves_the_camera`
//!   (feature `mqtt-broker`).
//!
//! Without mosquitto: loud SKIP, or FAIL when `CI=true` (tests/setup.sh installs it).
//!
//! The scenarios are in `tests/mqtt_broker/` (one module each: `restart`, `outbox`, `auth`,
//! `tls`, `embedded`), over the broker and process helpers of `harness` and the test subscriber of
//! `subscriber`; one test binary.

mod common;

#[path = "mqtt_broker/auth.rs"]
mod auth;
#[cfg(feature = "mqtt-broker")]
#[path = "mqtt_broker/embedded.rs"]
mod embedded;
#[path = "mqtt_broker/harness.rs"]
mod harness;
#[path = "mqtt_broker/outbox.rs"]
mod outbox;
#[path = "mqtt_broker/restart.rs"]
mod restart;
#[path = "mqtt_broker/subscriber.rs"]
mod subscriber;
#[cfg(feature = "mqtt-tls")]
#[path = "mqtt_broker/tls.rs"]
mod tls;
