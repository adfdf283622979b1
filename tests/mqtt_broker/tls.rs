//! `mqtts://` with a CA and a client certificate (cargo feature `mqtt-tls`).

use std::process::Command;
use std::time::{Duration, Instant};

use c3n_edge::sink::mqtt::Protocol;

use crate::common;
use crate::harness::*;
use crate::subscriber::*;

#[cfg(feature = "mqtt-tls")]
#[test]
fn tls_with_client_certificate_mqtt311() {
    tls_with_client_certificate(Protocol::V311);
}

#[cfg(feature = "mqtt-tls")]
#[test]
fn tls_with_client_certificate_mqtt5() {
    tls_with_client_certificate(Protocol::V5);
}

/// `mqtts://` with a CA and a client certificate, all made here with `openssl`, against a
/// mosquitto TLS listener that requires client certificates (build with `--features mqtt-tls`).
/// The protocol comes from the config file (`[mqtt] protocol`).
#[cfg(feature = "mqtt-tls")]
fn tls_with_client_certificate(proto: Protocol) {
    let t = format!("tls_with_client_certificate (MQTT {proto})");
    if !have_mosquitto(&t) {
        return;
    }
    let started = Instant::now();
    let dir = common::tmp_dir(&format!("mqtt-tls-{proto}"));
    let sh = |script: &str| {
        let out = Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(&dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "{script}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // CA, server certificate for 127.0.0.1 / localhost, client certificate; PKCS#8 keys
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=c3n-test-ca
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext
        openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=c3n-edge
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2
        chmod 644 server.key  # mosquitto started as root reads it as user mosquitto");
    let d = dir.display();
    let broker = Broker::start(
        &dir,
        &format!(
            "allow_anonymous true\npersistence false\ncafile {d}/ca.pem\ncertfile {d}/server.pem\n\
             keyfile {d}/server.key\nrequire_certificate true\n"
        ),
    );
    let port = broker.port;
    let events = dir.join("events.jsonl");
    let config = format!(
        "[mqtt]\nprotocol = \"{proto}\"\nca_file = \"{d}/ca.pem\"\nclient_cert = \"{d}/client.pem\"\n\
         client_key = \"{d}/client.key\"\n"
    );
    // the broker's own log shows the TLS client connecting and its will firing
    let url = format!("mqtts://127.0.0.1:{port}");
    let mut child = spawn_run(&dir, &url, None, &config, &events);
    let log = dir.join("c3n-edge.log");
    wait_for("TLS connection", Duration::from_secs(60), || {
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!(
                "c3n-edge exited ({st}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("MQTT: connected to")
    });
    // received by the broker: it logs the client's PUBLISH of `online`
    let blog = dir.join("mosquitto.log");
    wait_for("online at the broker", Duration::from_secs(20), || {
        let b = std::fs::read_to_string(&blog).unwrap_or_default();
        b.contains("Received PUBLISH from c3n-edge-bird") && b.contains("'c3n/available'")
    });
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_broker_saw_protocol(&blog, "c3n-edge-bird", proto);

    // without the client certificate the broker refuses the TLS handshake: a clear error
    let config = format!(
        "[mqtt]\nprotocol = \"{proto}\"\nca_file = \"{d}/ca.pem\"\nconnect_wait_ms = 3000\n"
    );
    let mut child = spawn_run(&dir, &url, None, &config, &events);
    wait_for("a TLS warning", Duration::from_secs(30), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(&format!("MQTT broker 127.0.0.1:{port}: not connected"))
    });
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    drop(broker);
    eprintln!("{t}: wall time {:.1} s", started.elapsed().as_secs_f64());
}
