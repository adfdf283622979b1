//! A broker with a password file and an ACL: refused credentials, events rejected by the ACL
//! (MQTT 5) or silently dropped (MQTT 3.1.1), and the last will after SIGKILL.

use std::process::Command;
use std::time::{Duration, Instant};

use c3n_edge::sink::mqtt::Protocol;

use crate::common;
use crate::harness::*;
use crate::subscriber::*;

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
