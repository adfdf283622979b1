//! QoS 1 events survive a broker killed mid-run (issue 27): c3n-edge queues again what the broker
//! had not acknowledged and sends it after the reconnect, so a persistent QoS 1 subscriber
//! receives every event emitted, and receives twice at most the ones counted `resent`.
//!
//! To have events written but surely not acknowledged when the broker dies, the broker is first
//! frozen (SIGSTOP): c3n-edge keeps writing its events into the socket while no PUBACK comes.
//! Then it is killed (SIGKILL, no chance to save or answer) and started again from its
//! persistence file (saved every second, so the subscriber's session and subscriptions survive).
//! mosquitto never read the frozen events, so each of them reaches the subscriber only through
//! the resend.

use std::collections::{HashMap, HashSet};
use std::process::Child;
use std::time::{Duration, Instant};

use c3n_edge::sink::mqtt::Protocol;

use crate::common;
use crate::harness::*;
use crate::subscriber::*;

/// The lines of `path` that are complete (a reader may catch the writer mid-line).
fn complete_lines(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = text.rfind('\n').map_or("", |i| &text[..i]);
    whole.lines().map(str::to_string).collect()
}

#[test]
fn events_survive_a_killed_broker_mqtt311() {
    events_survive_a_killed_broker(Protocol::V311);
}

#[test]
fn events_survive_a_killed_broker_mqtt5() {
    events_survive_a_killed_broker(Protocol::V5);
}

fn events_survive_a_killed_broker(proto: Protocol) {
    let t = format!("events_survive_a_killed_broker (MQTT {proto})");
    let t = t.as_str();
    if !have_mosquitto(t) {
        return;
    }
    let started = Instant::now();
    let dir = common::tmp_dir(&format!("mqtt-outbox-{proto}"));
    let mut broker = Broker::start(
        &dir,
        &format!(
            "allow_anonymous true\npersistence true\npersistence_location {}/\n\
             autosave_interval 1\n",
            dir.display()
        ),
    );
    let port = broker.port;
    let events_topic = format!("c3n/{CAMERA}/events");
    let sub = Sub::start(proto, port, "test-outbox", true, None, &["c3n/#"]);
    let events_file = dir.join("events.jsonl");
    // keep-alive far away: the frozen broker must not be noticed before it is killed, so that
    // every event of the freeze is written and unacknowledged
    let mut child = spawn_run(
        &dir,
        &format!("mqtt://127.0.0.1:{port}"),
        Some(proto),
        "[mqtt]\nqos = 1\nqueue_size = 1000\nkeep_alive_s = 600\nreconnect_min_ms = 200\n\
         reconnect_max_ms = 1000\n",
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
    wait_for("online and a first event", Duration::from_secs(180), || {
        alive(&mut child);
        sub.count("c3n/available", "online") == 1 && !sub.on(&events_topic).is_empty()
    });
    // let the subscriber's session reach the persistence file
    std::thread::sleep(Duration::from_millis(2500));

    let broker_child = broker.child.as_ref().expect("broker running");
    signal(broker_child, "STOP");
    let before = complete_lines(&events_file).len();
    wait_for(
        "3 events written while the broker is frozen",
        Duration::from_secs(240),
        || {
            alive(&mut child);
            complete_lines(&events_file).len() >= before + 3
        },
    );
    let frozen: Vec<String> = complete_lines(&events_file)[before..].to_vec();
    // the events file and the MQTT client get each event at the same time: give the client a
    // moment to write the last of these into the socket (later ones are not asserted on)
    std::thread::sleep(Duration::from_secs(1));
    // SIGKILL ends a stopped process too
    if let Some(mut b) = broker.child.take() {
        b.kill().expect("SIGKILL the broker");
        b.wait().expect("wait for the broker");
    }
    broker.spawn();
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        alive(&mut child);
        let got: HashSet<String> = sub.on(&events_topic).iter().map(Msg::text).collect();
        let missing: Vec<&String> = frozen.iter().filter(|e| !got.contains(*e)).collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() > end {
            let file = complete_lines(&events_file);
            panic!(
                "{} of the {} frozen events not received 120 s after the restart ({} of them \
                 in the events file now); c3n-edge log:\n{}",
                missing.len(),
                frozen.len(),
                missing.iter().filter(|m| file.contains(m)).count(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = lines(&events_file).len();
    wait_for(
        "an event emitted after the restart",
        Duration::from_secs(180),
        || {
            alive(&mut child);
            lines(&events_file).len() > after
        },
    );

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
        sub.on("c3n/available")
            .last()
            .is_some_and(|m| m.text() == "offline")
    });
    std::thread::sleep(Duration::from_millis(500));

    let emitted = lines(&events_file);
    let received = sub.on(&events_topic);
    let mut copies: HashMap<String, u64> = HashMap::new();
    for m in &received {
        *copies.entry(m.text()).or_default() += 1;
    }
    let last_state = sub
        .on(&format!("c3n/{CAMERA}/state"))
        .last()
        .expect("a state message")
        .json();
    let mq = &last_state["mqtt"];
    let n = |k: &str| {
        mq[k]
            .as_u64()
            .unwrap_or_else(|| panic!("state.mqtt.{k}: {mq}"))
    };
    let extra: u64 = copies.values().map(|c| c - 1).sum();
    eprintln!(
        "{t}: {} events emitted ({} while frozen), {} deliveries of {} events; counters \
         published {} resent {} dropped {} unconfirmed {} queued {} connects {}",
        emitted.len(),
        frozen.len(),
        received.len(),
        copies.len(),
        n("published"),
        n("resent"),
        n("dropped"),
        n("unconfirmed"),
        n("queued"),
        n("connects")
    );
    // every event emitted reached the subscriber, and nothing else
    let emitted_set: HashSet<&str> = emitted.iter().map(String::as_str).collect();
    let received_set: HashSet<&str> = copies.keys().map(String::as_str).collect();
    assert_eq!(emitted.len(), emitted_set.len(), "event lines are unique");
    let missing: Vec<&&str> = emitted_set.difference(&received_set).collect();
    assert!(missing.is_empty(), "events never received: {missing:?}");
    assert!(received_set.is_subset(&emitted_set));
    // each emitted event published once: none dropped, lost or left behind
    assert_eq!(
        (n("dropped"), n("unconfirmed"), n("queued"), n("rejected")),
        (0, 0, 0, 0)
    );
    assert_eq!(n("published"), emitted.len() as u64);
    assert!(n("connects") >= 2);
    // the frozen events were written (at least 1 s before the kill), unacknowledged, and sent
    // again
    assert!(
        n("resent") >= frozen.len() as u64,
        "resent {} < {} events written while the broker was frozen",
        n("resent"),
        frozen.len()
    );
    // duplicates only where QoS 1 allows them: a resend, or the broker's own redelivery to the
    // subscriber (DUP set) after its restart
    let redelivered = received.iter().filter(|m| m.dup).count() as u64;
    assert!(
        extra <= n("resent") + redelivered,
        "{extra} extra copies, {} resent, {redelivered} redelivered by the broker",
        n("resent")
    );
    assert!(log_text.contains("queued to send again"), "{log_text}");
    eprintln!("{t}: wall time {:.1} s", started.elapsed().as_secs_f64());
}
