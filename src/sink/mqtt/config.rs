//! The `[mqtt]` section of the config file ([`MqttConfig`]) and its resolution, with the broker
//! URL and the camera name, into the client's [`ClientSettings`] ([`resolve`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::protocol::Protocol;
use super::settings::ClientSettings;
use super::topics::{check_camera_name, check_topic_path, Topics};
use super::url::BrokerUrl;
use super::{InvalidSetting, MqttError};

/// `[mqtt]` section of the config file. MQTT is off unless `url` (or `--mqtt`) is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker, `mqtt://[user:pass@]host[:port][/prefix]` (port 1883) or `mqtts://…` (8883, needs
    /// the `mqtt-tls` feature). A path sets the topic prefix.
    pub url: Option<String>,
    /// MQTT protocol version: `"3.1.1"` (default) or `"5"`.
    pub protocol: Protocol,
    /// Topic prefix (default `c3n`); must be unique per device, like Frigate's `topic_prefix`.
    pub prefix: String,
    /// QoS of every publish and subscription: 0, 1 or 2.
    pub qos: u8,
    /// Publish the state topics (`available`, `state`, counts, snapshots, `detect/state`,
    /// discovery) retained.
    pub retain: bool,
    /// Capacity of the event queue (messages); when full the oldest is dropped and counted.
    pub queue_size: usize,
    /// MQTT client id; default `c3n-edge-<camera>`.
    pub client_id: Option<String>,
    /// Publish Home Assistant discovery configs.
    pub discovery: bool,
    /// Home Assistant discovery prefix (its birth topic is `<discovery_prefix>/status`).
    pub discovery_prefix: String,
    /// User name (the URL's user wins).
    pub username: Option<String>,
    /// Password (the URL's password wins).
    pub password: Option<String>,
    /// PEM CA certificate for `mqtts://` (default: the system roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for `mqtts://` (with `client_key`).
    pub client_cert: Option<PathBuf>,
    /// PEM PKCS#8 client key for `mqtts://`.
    pub client_key: Option<PathBuf>,
    /// MQTT keep-alive, s (≥ 5).
    pub keep_alive_s: u64,
    /// First reconnect delay, ms (doubles per failure, with jitter).
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, ms.
    pub reconnect_max_ms: u64,
    /// How long `run` waits at start for the first connection before going on without it, ms.
    /// Wrong credentials found in that time stop the run with an error.
    pub connect_wait_ms: u64,
    /// Publish overlay snapshots (JPEG).
    pub snapshots: bool,
    /// JPEG quality of the snapshots (1–100).
    pub snapshot_quality: u8,
    /// Start an embedded broker on `0.0.0.0:PORT` (cargo feature `mqtt-broker`, `broker`),
    /// speaking [`Self::protocol`]; without `url` the output publishes to it.
    pub embedded_port: Option<u16>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: None,
            protocol: Protocol::V311,
            prefix: "c3n".into(),
            qos: 0,
            retain: true,
            queue_size: 100,
            client_id: None,
            discovery: true,
            discovery_prefix: "homeassistant".into(),
            username: None,
            password: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            keep_alive_s: 30,
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
            connect_wait_ms: 5_000,
            snapshots: true,
            snapshot_quality: 80,
            embedded_port: None,
        }
    }
}

impl MqttConfig {
    /// Checks value ranges. Errors: the first problem found, naming the setting.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let bad = |m: String| Err(InvalidSetting(m));
        if let Some(u) = &self.url {
            BrokerUrl::parse(u).map_err(|e| InvalidSetting(e.to_string()))?;
        }
        check_topic_path("mqtt.prefix", &self.prefix)?;
        check_topic_path("mqtt.discovery_prefix", &self.discovery_prefix)?;
        if self.qos > 2 {
            return bad(format!("mqtt.qos = {}: expected 0, 1 or 2", self.qos));
        }
        if self.queue_size == 0 {
            return bad("mqtt.queue_size must be >= 1".into());
        }
        if self.keep_alive_s < 5 {
            return bad(format!(
                "mqtt.keep_alive_s = {}: expected >= 5",
                self.keep_alive_s
            ));
        }
        if self.reconnect_min_ms == 0 || self.reconnect_max_ms < self.reconnect_min_ms {
            return bad(format!(
                "mqtt.reconnect_min_ms = {}, reconnect_max_ms = {}: expected 0 < min <= max",
                self.reconnect_min_ms, self.reconnect_max_ms
            ));
        }
        if !(1..=100).contains(&self.snapshot_quality) {
            return bad(format!(
                "mqtt.snapshot_quality = {}: expected 1..=100",
                self.snapshot_quality
            ));
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.len() > 128 {
                return bad(format!(
                    "mqtt.client_id = {id:?}: expected 1-128 characters"
                ));
            }
        }
        if self.embedded_port == Some(0) {
            return bad("mqtt.embedded_port must be 1-65535".into());
        }
        if self.embedded_port.is_some() && cfg!(not(feature = "mqtt-broker")) {
            return bad(
                "mqtt.embedded_port needs a build with the cargo feature `mqtt-broker`".into(),
            );
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return bad("mqtt.client_cert and mqtt.client_key go together".into());
        }
        Ok(())
    }
}

/// Resolves the client settings from the `[mqtt]` section, the broker URL (`--mqtt` or
/// `mqtt.url`) and the camera name (`--camera-name` / `[events] camera`). The URL's credentials
/// and path (prefix) win over the section's. Errors: an invalid URL, prefix or camera name, or
/// client certificate without key.
pub fn resolve(cfg: &MqttConfig, url: &str, camera: &str) -> Result<ClientSettings, MqttError> {
    cfg.validate().map_err(|e| MqttError::Config(e.0))?;
    check_camera_name(camera)?;
    let broker = BrokerUrl::parse(url)?;
    let prefix = broker.prefix.clone().unwrap_or_else(|| cfg.prefix.clone());
    Ok(ClientSettings {
        protocol: cfg.protocol,
        client_id: cfg
            .client_id
            .clone()
            .unwrap_or_else(|| format!("c3n-edge-{camera}")),
        username: broker.username.clone().or_else(|| cfg.username.clone()),
        password: broker.password.clone().or_else(|| cfg.password.clone()),
        topics: Topics {
            prefix,
            camera: camera.to_string(),
            discovery_prefix: cfg.discovery_prefix.clone(),
        },
        qos: cfg.qos,
        retain: cfg.retain,
        queue_size: cfg.queue_size,
        discovery: cfg.discovery,
        keep_alive: Duration::from_secs(cfg.keep_alive_s),
        reconnect_min: Duration::from_millis(cfg.reconnect_min_ms),
        reconnect_max: Duration::from_millis(cfg.reconnect_max_ms),
        connect_wait: Duration::from_millis(cfg.connect_wait_ms),
        flush_wait: Duration::from_millis(cfg.connect_wait_ms.max(1000)),
        ca_file: cfg.ca_file.clone(),
        client_auth: cfg.client_cert.clone().zip(cfg.client_key.clone()),
        labels: Vec::new(),
        broker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        assert!(MqttConfig::default().validate().is_ok());
        let bad = |f: &dyn Fn(&mut MqttConfig)| {
            let mut c = MqttConfig::default();
            f(&mut c);
            c.validate().is_err()
        };
        assert!(bad(&|c| c.qos = 3));
        assert!(bad(&|c| c.queue_size = 0));
        assert!(bad(&|c| c.prefix = "c3n/".into()));
        assert!(bad(&|c| c.prefix = "a/#".into()));
        assert!(bad(&|c| c.url = Some("tcp://x".into())));
        assert!(bad(&|c| c.client_cert = Some("c.pem".into())));
        assert!(bad(&|c| c.reconnect_max_ms = 1));
    }
}
