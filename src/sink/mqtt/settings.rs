//! [`ClientSettings`]: everything the MQTT client needs, resolved from the `[mqtt]` section and
//! the command line ([`super::resolve`]).

use std::time::Duration;

use super::protocol::Protocol;
use super::topics::Topics;
use super::url::BrokerUrl;

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
    /// How long [`super::MqttClient::shutdown`] waits to deliver what is queued.
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
