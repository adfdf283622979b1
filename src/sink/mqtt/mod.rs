//! MQTT output: configuration ([`config`]), broker URL ([`url`]), topic layout ([`topics`]),
//! Home Assistant discovery payloads ([`discovery`]), `detect/set` commands ([`command`]), the
//! network side ([`client`], its threads in `worker`, over the protocol adapter `connection`),
//! the optional embedded broker (`broker`, cargo feature `mqtt-broker`), and the pipeline output
//! [`MqttSink`] ([`sink`]) with the best frame of each object for its snapshot (`best`). The event queue and the reconnect back-off are the crate's
//! ([`crate::util::queue::DropOldest`], [`crate::util::backoff::Backoff`]).
//!
//! Topic layout (after Frigate, docs/integration-conventions.md §3.1; `<prefix>` default `c3n`):
//!
//! | topic | payload | retained |
//! |---|---|---|
//! | `<prefix>/available` | `online` / `offline` (last will `offline`; `online` only after the initial retained states of every (re)connect) | yes |
//! | `<prefix>/<camera>/events` | event JSON (`schema/event.schema.json`) | no |
//! | `<prefix>/<camera>/<label>` | count of active sounding objects with that label — a category of the model's vocabulary, e.g. `dog` (`all` = any label) | yes |
//! | `<prefix>/<camera>/<label>/snapshot` | JPEG of the overlay of the object's best frame (`all/snapshot` = latest of any label) | yes |
//! | `<prefix>/<camera>/state` | run state JSON (`schema/state.schema.json`) | yes |
//! | `<prefix>/<camera>/detect/set` | `ON` / `OFF` command (subscribed) | – |
//! | `<prefix>/<camera>/detect/state` | `ON` / `OFF` | yes |
//! | `<discovery_prefix>/<component>/<node_id>/<object_id>/config` | Home Assistant discovery (docs/integration-conventions.md §4) | yes |
//!
//! "Retained" follows [`MqttConfig::retain`] (default on); events are never retained.
//!
//! Protocol: MQTT 3.1.1 (default) or 5 ([`MqttConfig::protocol`]), with one publishing logic
//! ([`client`]) over a small adapter (`connection`). With MQTT 5 every message also carries its
//! content type (`application/json`, `text/plain`, `image/jpeg`) and payload format indicator.

mod best;
#[cfg(feature = "mqtt-broker")]
pub mod broker;
pub mod client;
pub mod command;
pub mod config;
mod connection;
pub mod discovery;
pub mod protocol;
pub mod settings;
pub mod sink;
mod state;
pub mod topics;
pub mod url;
mod worker;

use std::path::PathBuf;

pub use client::{MqttClient, MqttStats};
pub use config::{resolve, MqttConfig};
pub use discovery::{discovery_configs, node_id};
pub use protocol::{Content, Protocol};
pub use settings::ClientSettings;
pub use sink::MqttSink;
pub use topics::{check_camera_name, label_slug, Topics};
pub use url::BrokerUrl;

/// Version of the `state` payload schema (`schema/state.schema.json`, `$id` ends in it).
pub const STATE_SCHEMA_VERSION: &str = "1.5.0";

/// Errors of the MQTT output; each names the broker or the setting.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// A setting (URL, prefix, camera name, QoS, …) is unusable.
    #[error("invalid MQTT setting: {0}")]
    Config(String),
    /// A TLS file cannot be read.
    #[error("cannot read MQTT TLS file {path}: {source}")]
    TlsFile {
        /// File.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The broker refused the connection (bad credentials, not authorised, …).
    #[error("MQTT broker {broker} refused the connection: {reason}")]
    Refused {
        /// `host:port`.
        broker: String,
        /// The CONNACK return code, in words.
        reason: String,
    },
    /// TLS was asked for but this build has no TLS (cargo feature `mqtt-tls`).
    #[error("MQTT broker {0}: mqtts:// needs a build with the cargo feature `mqtt-tls`")]
    NoTls(String),
    /// The network thread could not be started.
    #[error("cannot start the MQTT thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// An `[mqtt]` setting or a part of the broker URL that is unusable; the text names the setting
/// and what is expected (e.g. `mqtt.qos = 3: expected 0, 1 or 2`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(pub String);
