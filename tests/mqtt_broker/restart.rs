//! A broker restart mid-run: topics, retained flags, schemas, `online` ordering, reconnect and
//! republication, event accounting, `detect/set`, and `offline` after SIGTERM.

use std::collections::HashSet;
use std::process::Child;
use std::time::{Duration, Instant};

use c3n_edge::sink::mqtt::Protocol;

use crate::common;
use crate::harness::*;
use crate::subscriber::*;

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
    let (published, dropped, unconfirmed, rejected, queued, resent) = (
        mq["published"].as_u64().unwrap(),
        mq["dropped"].as_u64().unwrap(),
        mq["unconfirmed"].as_u64().unwrap(),
        mq["rejected"].as_u64().unwrap(),
        mq["queued"].as_u64().unwrap(),
        mq["resent"].as_u64().unwrap(),
    );
    eprintln!(
        "{t}: {} events emitted, {} received; counters published {published} dropped {dropped} \
         unconfirmed {unconfirmed} resent {resent} rejected {rejected} queued {queued} connects {}",
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
    // unconfirmed and resent ones besides (written, but the broker stopped before acknowledging;
    // a resent one may have been dropped from the full queue before its second send)
    assert_eq!(
        published + dropped + unconfirmed,
        emitted.len() as u64,
        "every emitted event is counted once"
    );
    let received = seen.len() as u64;
    assert!(
        (published..=published + unconfirmed + resent).contains(&received),
        "received {received}, published {published}, unconfirmed {unconfirmed}, resent {resent}"
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
