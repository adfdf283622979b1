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
//! * `tls_with_client_certificate` (feature `mqtt-tls`) and `embedded_broker_serves_the_camera`
//!   (feature `mqtt-broker`).
//!
//! Without mosquitto: loud SKIP, or FAIL when `CI=true` (tests/setup.sh installs it).

mod common;

use std::collections::HashSet;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use c3n_edge::sink::mqtt::Protocol;

const BIN: &str = env!("CARGO_BIN_EXE_c3n-edge");
const CAMERA: &str = "bird";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether mosquitto can run here; prints SKIP (or panics under CI=true) when it cannot.
fn have_mosquitto(test: &str) -> bool {
    let ok = Command::new("mosquitto")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
        && Command::new("mosquitto_passwd")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
    common::require(
        test,
        ok,
        "mosquitto / mosquitto_passwd is not installed (apt-get install mosquitto; \
         tests/setup.sh installs Debian's mosquitto)",
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < end,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A mosquitto process with its generated config; killed on drop.
struct Broker {
    conf: PathBuf,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Broker {
    fn start(dir: &Path, extra: &str) -> Broker {
        // mosquitto started as root drops to the user `mosquitto`, which must be able to write
        // its persistence file here (else the restart test loses the subscriber's session)
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
            .expect("chmod the broker's directory");
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\n{extra}\nlog_type all\n"),
        )
        .expect("write mosquitto.conf");
        let mut b = Broker {
            conf,
            port,
            child: None,
            log: dir.join("mosquitto.log"),
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("broker log");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let port = self.port;
        wait_for("mosquitto to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// SIGTERM (mosquitto saves its persistence file) and wait.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, "TERM");
            let end = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(c: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(c.id().to_string())
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} {}", c.id());
}

#[derive(Debug, Clone)]
struct Msg {
    topic: String,
    payload: Vec<u8>,
    retain: bool,
    /// Redelivery (DUP flag): QoS 1 is at-least-once, and the broker restart resends what the
    /// test subscriber had not acknowledged.
    dup: bool,
    /// MQTT 5 content type property (None with MQTT 3.1.1).
    content_type: Option<String>,
    /// MQTT 5 payload format indicator (None with MQTT 3.1.1).
    format: Option<u8>,
}

impl Msg {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("{} payload is not JSON: {e}", self.topic))
    }
}

/// The test subscriber's client, of either protocol (rumqttc's own clients).
enum SubClient {
    V311(rumqttc::Client),
    V5(rumqttc::v5::Client),
}

/// A rumqttc subscriber (MQTT 3.1.1 or 5) on its own thread collecting every message;
/// resubscribes when the broker has no session for it. Stops when dropped.
struct Sub {
    msgs: Arc<Mutex<Vec<Msg>>>,
    client: SubClient,
}

impl Sub {
    fn start(
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
    fn publish(&self, topic: &str, payload: &str) {
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

    fn all(&self) -> Vec<Msg> {
        self.msgs.lock().unwrap().clone()
    }
    fn on(&self, topic: &str) -> Vec<Msg> {
        self.all()
            .into_iter()
            .filter(|m| m.topic == topic)
            .collect()
    }
    /// Messages on `topic` with `payload`, redeliveries not counted.
    fn count(&self, topic: &str, payload: &str) -> usize {
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
fn assert_broker_saw_protocol(broker_log: &Path, client: &str, proto: Protocol) {
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
fn mime_of(topic: &str) -> &'static str {
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
fn assert_content_type(proto: Protocol, m: &Msg, mime: &str) {
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

fn validator(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schema").join(name)).expect("read schema");
    let v: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&v).expect("valid JSON Schema")
}

fn assert_valid(v: &jsonschema::Validator, what: &str, doc: &serde_json::Value) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} fails its schema: {errors:?}\n{doc}"
    );
}

/// `c3n-edge run` on the bbb-bird clip, events to `events`, plus `extra` arguments.
fn run_cmd(events: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(root())
        .args([
            "run",
            "file://assets/clips/bbb-bird/frames/%05d.png",
            "--audio",
            "file://assets/clips/bbb-bird/audio.wav",
        ])
        .args(extra)
        .arg("--events")
        .arg(events);
    c
}

/// `c3n-edge run` on the bbb-bird clip (looped forever) publishing to `url` with protocol
/// `proto` (`--mqtt-protocol`; `None`: the config's `[mqtt] protocol` decides).
fn spawn_run(dir: &Path, url: &str, proto: Option<Protocol>, config: &str, events: &Path) -> Child {
    let cfg = dir.join("c3n.toml");
    std::fs::write(&cfg, config).expect("write config");
    let log = std::fs::File::create(dir.join("c3n-edge.log")).expect("log");
    let p = proto.map(|p| p.to_string());
    let mut args = vec![
        "--input-loop",
        "-1",
        "--camera-name",
        CAMERA,
        "--mqtt",
        url,
        "--log",
        "info",
    ];
    if let Some(p) = &p {
        args.extend(["--mqtt-protocol", p.as_str()]);
    }
    run_cmd(events, &args)
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn c3n-edge")
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

const DISCOVERY: [&str; 6] = [
    "homeassistant/sensor/c3n-edge-bird/fps/config",
    "homeassistant/sensor/c3n-edge-bird/inference_ms/config",
    "homeassistant/binary_sensor/c3n-edge-bird/sound/config",
    "homeassistant/event/c3n-edge-bird/event/config",
    "homeassistant/image/c3n-edge-bird/snapshot/config",
    "homeassistant/switch/c3n-edge-bird/detect/config",
];

#[test]
fn events_states_discovery_and_broker_restart_mqtt311() {
    events_states_discovery_and_broker_restart(Protocol::V311);
}

#[test]
fn events_states_discovery_and_broker_restart_mqtt5() {
    events_states_discovery_and_broker_restart(Protocol::V5);
}

fn events_states_discovery_and_broker_restart(proto: Protocol) {
    let t = format!("events_states_discovery_and_broker_restart (MQTT {proto})");
    let t = t.as_str();
    if !have_mosquitto(t) {
        return;
    }
    let started = Instant::now();
    let dir = common::tmp_dir(&format!("mqtt-restart-{proto}"));
    // persistence keeps the test subscriber's session (and its queued QoS 1 messages) across
    // the restart, so it sees every event the broker accepted
    let mut broker = Broker::start(
        &dir,
        &format!(
            "allow_anonymous true\npersistence true\npersistence_location {}/\n",
            dir.display()
        ),
    );
    let port = broker.port;
    let s1 = Sub::start(
        proto,
        port,
        "test-s1",
        true,
        None,
        &["c3n/#", "homeassistant/#"],
    );
    let events_file = dir.join("events.jsonl");
    let mut child = spawn_run(
        &dir,
        &format!("mqtt://127.0.0.1:{port}"),
        Some(proto),
        "[mqtt]\nqos = 1\nqueue_size = 3\nreconnect_min_ms = 200\nreconnect_max_ms = 1000\n",
        &events_file,
    );
    let log = dir.join("c3n-edge.log");
    let alive = |c: &mut Child| {
        if let Some(st) = c.try_wait().expect("try_wait") {
            panic!(
                "c3n-edge exited ({st}) during the test:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    };
    let events_topic = format!("c3n/{CAMERA}/events");
    wait_for("online and a first event", Duration::from_secs(180), || {
        alive(&mut child);
        s1.count("c3n/available", "online") == 1 && !s1.on(&events_topic).is_empty()
    });

    // broker down while the pipeline produces more events than the queue holds
    broker.stop();
    let before = lines(&events_file).len();
    wait_for(
        "8 more events while the broker is down",
        Duration::from_secs(240),
        || {
            alive(&mut child);
            lines(&events_file).len() >= before + 8
        },
    );
    broker.spawn();
    wait_for(
        "reconnect: online and discovery again",
        Duration::from_secs(60),
        || {
            alive(&mut child);
            s1.count("c3n/available", "online") == 2
                && DISCOVERY.iter().all(|t| s1.on(t).len() >= 2)
        },
    );
    let after_reconnect = s1.on(&events_topic).len();
    wait_for(
        "an event after the reconnect",
        Duration::from_secs(180),
        || {
            alive(&mut child);
            s1.on(&events_topic).len() > after_reconnect
        },
    );

    // detect/set OFF reaches the pipeline and is echoed
    let cmd = Sub::start(proto, port, "test-cmd", false, None, &["c3n/available"]);
    cmd.publish(&format!("c3n/{CAMERA}/detect/set"), "OFF");
    let state_topic = format!("c3n/{CAMERA}/state");
    wait_for(
        "detect/state OFF and a state with detect=false",
        Duration::from_secs(180),
        || {
            alive(&mut child);
            s1.count(&format!("c3n/{CAMERA}/detect/state"), "OFF") >= 1
                && s1
                    .on(&state_topic)
                    .iter()
                    .any(|m| m.json()["detect"] == false)
        },
    );

    // clean stop
    signal(&child, "TERM");
    let end = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        assert!(Instant::now() < end, "c3n-edge did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "c3n-edge failed: {status}\n{log_text}");
    wait_for("offline after SIGTERM", Duration::from_secs(10), || {
        s1.on("c3n/available")
            .last()
            .is_some_and(|m| m.text() == "offline")
    });
    std::thread::sleep(Duration::from_millis(500));
    let all = s1.all();

    // payloads against their schemas
    let (ev_schema, st_schema, ha_schema) = (
        validator("event.schema.json"),
        validator("state.schema.json"),
        validator("ha-discovery.schema.json"),
    );
    let mut seen = HashSet::new();
    for m in all.iter().filter(|m| m.topic == events_topic) {
        let v = m.json();
        assert_valid(&ev_schema, "event", &v);
        assert_eq!(v["after"]["camera"], CAMERA);
        seen.insert(m.payload.clone());
    }
    for m in all.iter().filter(|m| m.topic == state_topic) {
        assert_valid(&st_schema, "state", &m.json());
    }
    for t in DISCOVERY {
        for m in all.iter().filter(|m| m.topic == t) {
            assert_valid(&ha_schema, t, &m.json());
        }
    }
    // MQTT 5: every message of c3n-edge with its content type (detect/set is the test's); the
    // connections were of that version
    for m in all.iter().filter(|m| !m.topic.ends_with("/detect/set")) {
        assert_content_type(proto, m, mime_of(&m.topic));
    }
    assert_broker_saw_protocol(&broker.log, "c3n-edge-bird", proto);
    assert_broker_saw_protocol(&broker.log, "test-s1", proto);

    // `online` only after the discovery configs and the states of its connection (the first
    // connection is made before the pipeline has a state)
    let mut since_avail: Vec<&Msg> = Vec::new();
    let mut onlines = 0;
    for m in all.iter().filter(|m| !m.dup) {
        if m.topic == "c3n/available" {
            if m.text() == "online" {
                onlines += 1;
                let state = (onlines > 1).then_some(state_topic.as_str());
                let detect = format!("c3n/{CAMERA}/detect/state");
                for t in DISCOVERY
                    .iter()
                    .copied()
                    .chain(state)
                    .chain([detect.as_str()])
                {
                    assert!(
                        since_avail.iter().any(|x| x.topic == t),
                        "online #{onlines} published before {t}; since the previous availability \
                         message: {:?}; availability messages: {:?}",
                        since_avail.iter().map(|m| &m.topic).collect::<Vec<_>>(),
                        all.iter()
                            .filter(|m| m.topic == "c3n/available")
                            .map(Msg::text)
                            .collect::<Vec<_>>()
                    );
                }
            }
            since_avail.clear();
        } else {
            since_avail.push(m);
        }
    }

    // counters: exactly the events lost, none left queued
    let emitted = lines(&events_file);
    let last_state = all
        .iter()
        .rev()
        .find(|m| m.topic == state_topic)
        .expect("a state message")
        .json();
    let mq = &last_state["mqtt"];
    let (published, dropped, unconfirmed, rejected, queued) = (
        mq["published"].as_u64().unwrap(),
        mq["dropped"].as_u64().unwrap(),
        mq["unconfirmed"].as_u64().unwrap(),
        mq["rejected"].as_u64().unwrap(),
        mq["queued"].as_u64().unwrap(),
    );
    eprintln!(
        "{t}: {} events emitted, {} received; counters published {published} dropped {dropped} \
         unconfirmed {unconfirmed} rejected {rejected} queued {queued} connects {}",
        emitted.len(),
        seen.len(),
        mq["connects"]
    );
    assert_eq!((queued, rejected), (0, 0));
    assert!(
        dropped >= 1,
        "the queue (3) overflowed while the broker was down"
    );
    assert!(mq["connects"].as_u64().unwrap() >= 2);
    // exact: every event emitted is published, dropped or unconfirmed; the subscriber (which
    // missed nothing: QoS 1, persistent session) got all the published ones and at most the
    // unconfirmed ones (sent, but the broker died before acknowledging)
    assert_eq!(
        published + dropped + unconfirmed,
        emitted.len() as u64,
        "every emitted event is counted once"
    );
    let received = seen.len() as u64;
    assert!(
        (published..=published + unconfirmed).contains(&received),
        "received {received}, published {published}, unconfirmed {unconfirmed}"
    );
    // the events received are a subset of those emitted, in the same text
    let emitted_set: HashSet<Vec<u8>> = emitted.iter().map(|l| l.as_bytes().to_vec()).collect();
    assert!(seen.is_subset(&emitted_set));
    assert!(log_text.contains("reconnected to"), "{log_text}");

    // retained values as a late subscriber sees them
    let s2 = Sub::start(
        proto,
        port,
        "test-s2",
        false,
        None,
        &["c3n/#", "homeassistant/#"],
    );
    std::thread::sleep(Duration::from_millis(800));
    let retained = s2.all();
    let get = |t: &str| {
        retained
            .iter()
            .find(|m| m.topic == t)
            .unwrap_or_else(|| panic!("no retained {t}"))
    };
    assert!(retained.iter().all(|m| m.retain));
    assert!(retained.iter().all(|m| m.topic != events_topic));
    // the broker keeps the MQTT 5 properties with the retained messages
    for m in &retained {
        assert_content_type(proto, m, mime_of(&m.topic));
    }
    assert_eq!(get("c3n/available").text(), "offline");
    assert_eq!(get(&format!("c3n/{CAMERA}/detect/state")).text(), "OFF");
    assert_eq!(get(&format!("c3n/{CAMERA}/all")).text(), "0");
    assert_valid(&st_schema, "retained state", &get(&state_topic).json());
    for t in DISCOVERY {
        assert_valid(&ha_schema, t, &get(t).json());
    }
    let snap = get(&format!("c3n/{CAMERA}/all/snapshot"));
    let img = image::load_from_memory_with_format(&snap.payload, image::ImageFormat::Jpeg)
        .expect("all/snapshot is a JPEG");
    let frame = image::open(root().join("assets/clips/bbb-bird/frames/00001.png")).expect("frame");
    assert_eq!((img.width(), img.height()), (frame.width(), frame.height()));
    // one count and one snapshot per label seen in the events
    let labels: HashSet<String> = emitted
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            c3n_edge::sink::mqtt::label_slug(v["after"]["label"].as_str().unwrap())
        })
        .collect();
    for l in &labels {
        assert_eq!(
            get(&format!("c3n/{CAMERA}/{l}")).text(),
            "0",
            "count of {l}"
        );
    }
    assert!(labels.iter().any(|l| retained
        .iter()
        .any(|m| m.topic == format!("c3n/{CAMERA}/{l}/snapshot"))));
    // labels are categories of the model's vocabulary (issue 15): every category is tracked by
    // default, so each has a count (0 if never seen) and a Home Assistant count sensor
    for l in labels
        .iter()
        .chain(["weapon".to_string(), "person".to_string()].iter())
    {
        assert!(
            !l.contains("__") && l.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "label {l} is not a category"
        );
        assert_eq!(
            get(&format!("c3n/{CAMERA}/{l}")).text(),
            "0",
            "count of {l}"
        );
        let t = format!("homeassistant/sensor/c3n-edge-bird/count_{l}/config");
        let cfg = get(&t).json();
        assert_valid(&ha_schema, &t, &cfg);
        assert_eq!(cfg["stat_t"], format!("c3n/{CAMERA}/{l}"));
    }
    let counts = retained
        .iter()
        .filter(|m| {
            m.topic
                .starts_with("homeassistant/sensor/c3n-edge-bird/count_")
        })
        .count();
    assert_eq!(
        counts, 26,
        "one count sensor per category of the vocabulary"
    );
    eprintln!("{t}: wall time {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn auth_acl_and_will_mqtt311() {
    auth_acl_and_will(Protocol::V311);
}

#[test]
fn auth_acl_and_will_mqtt5() {
    auth_acl_and_will(Protocol::V5);
}

fn auth_acl_and_will(proto: Protocol) {
    let t = format!("auth_acl_and_will (MQTT {proto})");
    if !have_mosquitto(&t) {
        return;
    }
    let started = Instant::now();
    let dir = common::tmp_dir(&format!("mqtt-auth-{proto}"));
    let pw = dir.join("passwd");
    let ok = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&pw)
        .args(["c3n", "s3cret"])
        .status()
        .expect("mosquitto_passwd")
        .success();
    assert!(ok, "mosquitto_passwd failed");
    // user c3n may do everything but publish events
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "user c3n\ntopic deny c3n/+/events\ntopic readwrite #\n",
    )
    .expect("acl");
    let broker = Broker::start(
        &dir,
        &format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\npersistence false\n",
            pw.display(),
            acl.display()
        ),
    );
    let port = broker.port;
    let p = proto.to_string();

    // wrong password: a clear error naming the broker, quickly, without the password
    let t0 = Instant::now();
    let out = run_cmd(
        &dir.join("events-refused.jsonl"),
        &[
            "--max-clips",
            "1",
            "--mqtt",
            &format!("mqtt://c3n:wrong-pw@127.0.0.1:{port}"),
            "--mqtt-protocol",
            &p,
        ],
    )
    .output()
    .expect("run c3n-edge");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "wrong credentials accepted:\n{err}");
    assert!(
        err.contains(&format!(
            "MQTT broker 127.0.0.1:{port} refused the connection"
        )) && (err.contains("not authorised") || err.contains("bad user name or password")),
        "unclear error:\n{err}"
    );
    if proto == Protocol::V5 {
        // MQTT 5 CONNACK reason code: 0x86 bad user name or password / 0x87 not authorised
        assert!(
            err.contains("(reason code 0x86)") || err.contains("(reason code 0x87)"),
            "no reason code:\n{err}"
        );
    }
    assert!(!err.contains("wrong-pw"), "password in the error:\n{err}");
    assert!(t0.elapsed() < Duration::from_secs(30));

    let s = Sub::start(
        proto,
        port,
        "test-auth",
        false,
        Some(("c3n", "s3cret")),
        &["c3n/available", &format!("c3n/{CAMERA}/state")],
    );
    let url = format!("mqtt://c3n:s3cret@127.0.0.1:{port}");

    // the ACL denies the events: MQTT 5 learns it from the PUBACK reason code (`rejected`),
    // MQTT 3.1.1 cannot (the broker drops them silently and acknowledges: `published`)
    let events = dir.join("events-acl.jsonl");
    let cfg = dir.join("qos1.toml");
    std::fs::write(&cfg, "[mqtt]\nqos = 1\n").expect("config");
    let out = run_cmd(
        &events,
        &[
            "--max-clips",
            "1",
            "--camera-name",
            CAMERA,
            "--mqtt",
            &url,
            "--mqtt-protocol",
            &p,
        ],
    )
    .arg("--config")
    .arg(&cfg)
    .output()
    .expect("run c3n-edge");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "c3n-edge failed:\n{log}");
    let emitted = lines(&events).len() as u64;
    assert!(emitted > 0, "no events from one clip:\n{log}");
    let state_topic = format!("c3n/{CAMERA}/state");
    // the final state goes out before the clean `offline` (in order, QoS 1)
    wait_for("offline after the run", Duration::from_secs(10), || {
        s.on("c3n/available")
            .last()
            .is_some_and(|a| a.text() == "offline")
    });
    let last = s.on(&state_topic).last().expect("a state").json();
    let mq = &last["mqtt"];
    let n = |k: &str| mq[k].as_u64().unwrap_or_else(|| panic!("mqtt.{k} in {mq}"));
    eprintln!("{t}: {emitted} events emitted behind the ACL; counters {mq}");
    let expect = match proto {
        Protocol::V5 => (0, emitted),
        Protocol::V311 => (emitted, 0),
    };
    assert_eq!((n("published"), n("rejected")), expect, "{mq}");
    assert_eq!((n("dropped"), n("unconfirmed"), n("queued")), (0, 0, 0));
    let blog = std::fs::read_to_string(&broker.log).unwrap_or_default();
    assert!(
        blog.contains("Denied PUBLISH from c3n-edge-bird"),
        "the broker denied nothing:\n{blog}"
    );
    if proto == Protocol::V5 {
        assert!(
            log.contains("refused a publish (NotAuthorized)"),
            "no refusal warning:\n{log}"
        );
    }

    // right password: online, then SIGKILL -> the broker publishes the will `offline`
    let onlines = s.count("c3n/available", "online");
    let mut child = spawn_run(&dir, &url, Some(proto), "", &dir.join("events-will.jsonl"));
    wait_for("online", Duration::from_secs(60), || {
        if let Some(st) = child.try_wait().expect("try_wait") {
            panic!(
                "c3n-edge exited ({st}):\n{}",
                std::fs::read_to_string(dir.join("c3n-edge.log")).unwrap_or_default()
            );
        }
        s.count("c3n/available", "online") == onlines + 1
    });
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    wait_for("last will offline", Duration::from_secs(15), || {
        s.on("c3n/available")
            .last()
            .is_some_and(|m| m.text() == "offline")
    });
    // MQTT 5: the will has its properties too
    let will = s.on("c3n/available").last().cloned().expect("will");
    assert_content_type(proto, &will, "text/plain");
    assert_broker_saw_protocol(&broker.log, "c3n-edge-bird", proto);
    drop(broker);
    eprintln!("{t}: wall time {:.1} s", started.elapsed().as_secs_f64());
}

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
