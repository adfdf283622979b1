//! Embedded MQTT broker (rumqttd, cargo feature `mqtt-broker`): `[mqtt] embedded_port` or
//! `--mqtt-embedded PORT` starts an MQTT broker on `0.0.0.0:PORT` inside the process (speaking
//! the configured protocol, 3.1.1 or 5: rumqttd listens for one version per port), and
//! the MQTT output then publishes to it (`mqtt://127.0.0.1:PORT`) unless another broker is
//! given, so an integration (Home Assistant, `mosquitto_sub`) can subscribe to the camera
//! directly. No TLS and no authentication: use it on a trusted network only.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use super::protocol::Protocol;
use super::MqttError;

/// Starts the broker for `protocol` on its own threads (it runs until the process exits).
/// Errors: the port is taken or not allowed (checked by binding it first: rumqttd itself only
/// logs such errors).
pub fn start(port: u16, protocol: Protocol) -> Result<(), MqttError> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    drop(TcpListener::bind(addr).map_err(|e| {
        MqttError::Config(format!(
            "embedded MQTT broker: cannot listen on {addr}: {e}"
        ))
    })?);
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        // whole-frame JPEG snapshots
        max_payload_size: 16 * 1024 * 1024,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: format!("c3n-embedded-mqtt-{protocol}"),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 256,
            max_outgoing_packet_count: 200,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 4,
            ..Default::default()
        },
        ..Default::default()
    };
    let servers = Some(HashMap::from([("1".to_string(), server)]));
    let config = match protocol {
        Protocol::V311 => rumqttd::Config {
            v4: servers,
            ..config
        },
        Protocol::V5 => rumqttd::Config {
            v5: servers,
            ..config
        },
    };
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!("embedded MQTT broker on {addr}: {e}");
            }
        })
        .map_err(MqttError::Thread)?;
    // no readiness probe (rumqttd logs an error for a connection without CONNECT): the client's
    // first connection attempts are retried with backoff within `connect_wait_ms`
    tracing::info!("embedded MQTT {protocol} broker listening on {addr}");
    Ok(())
}
