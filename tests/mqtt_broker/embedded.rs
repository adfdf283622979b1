//! `--mqtt-embedded PORT`: the process's own broker (cargo feature `mqtt-broker`).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use c3n_edge::sink::mqtt::Protocol;

use crate::common;
use crate::harness::*;
use crate::subscriber::*;

#[cfg(feature = "mqtt-broker")]
#[test]
fn embedded_broker_serves_the_camera_mqtt311() {
    embedded_broker_serves_the_camera(Protocol::V311);
}

#[cfg(feature = "mqtt-broker")]
#[test]
fn embedded_broker_serves_the_camera_mqtt5() {
    embedded_broker_serves_the_camera(Protocol::V5);
}

/// `--mqtt-embedded PORT` (build with `--features mqtt-broker`): the process runs its own broker
/// (rumqttd, speaking `--mqtt-protocol`) and publishes to it; a client of that protocol
/// subscribes to the camera directly.
#[cfg(feature = "mqtt-broker")]
fn embedded_broker_serves_the_camera(proto: Protocol) {
    let started = Instant::now();
    let dir = common::tmp_dir(&format!("mqtt-embedded-{proto}"));
    let port = free_port();
    let events = dir.join("events.jsonl");
    let log = std::fs::File::create(dir.join("c3n-edge.log")).expect("log");
    let mut child = run_cmd(
        &events,
        &[
            "--input-loop",
            "-1",
            "--camera-name",
            CAMERA,
            "--log",
            "info",
            "--mqtt-embedded",
            &port.to_string(),
            "--mqtt-protocol",
            &proto.to_string(),
        ],
    )
    .stderr(log)
    .spawn()
    .expect("spawn c3n-edge");
    wait_for("the embedded broker", Duration::from_secs(30), || {
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!(
                "c3n-edge exited ({st}):\n{}",
                std::fs::read_to_string(dir.join("c3n-edge.log")).unwrap_or_default()
            );
        }
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let s = Sub::start(proto, port, "test-embedded", false, None, &["c3n/#"]);
    let ev = validator("event.schema.json");
    let topic = format!("c3n/{CAMERA}/events");
    wait_for("events and a state", Duration::from_secs(180), || {
        !s.on(&topic).is_empty() && !s.on(&format!("c3n/{CAMERA}/state")).is_empty()
    });
    for m in s.on(&topic) {
        assert_valid(&ev, "event", &m.json());
        assert_content_type(proto, &m, "application/json");
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    eprintln!(
        "embedded_broker_serves_the_camera (MQTT {proto}): wall time {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
