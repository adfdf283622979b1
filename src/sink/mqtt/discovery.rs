//! Home Assistant MQTT discovery (docs/integration-conventions.md §4): the retained config
//! messages that make Home Assistant create c3n-edge's device and entities.

use serde_json::json;

use super::topics::{label_slug, Topics};

/// Home Assistant MQTT discovery configs (component-based, docs/integration-conventions.md
/// §4): `(topic, JSON payload)` for the sensors `fps`, `mask_rate` (masks/s) and
/// `inference_ms`, the diagnostic
/// counters `frames_bad`, `audio_gaps` and `frames_skipped` (from the state topic), the binary sensor
/// `sound` ("sound source present", from the `all` count), the event entity `event` (from the
/// events topic; attributes `label`, `sub_label`, `score`, `id` and `in_view`, null for a model
/// without that output), the image entity `snapshot` (`all/snapshot`), the switch `detect`, and per
/// category in `labels` a sensor `count_<label>` (active sounding objects of that category, from
/// `<prefix>/<camera>/<label>`; Frigate's per-object count sensors). `node_id` is the client id
/// reduced to `[A-Za-z0-9_-]`.
pub fn discovery_configs(
    topics: &Topics,
    node_id: &str,
    qos: u8,
    labels: &[String],
) -> Vec<(String, String)> {
    let device = json!({
        "ids": [node_id],
        "name": format!("c3n-edge {}", topics.camera),
        "mf": "c3n-edge",
        "mdl": "C3N sounding-object detector",
        "sw": env!("CARGO_PKG_VERSION"),
    });
    let origin = json!({ "name": "c3n-edge", "sw": env!("CARGO_PKG_VERSION") });
    let entity = |component: &str, key: &str, name: &str, extra: serde_json::Value| {
        let mut v = json!({
            "name": name,
            "uniq_id": format!("{node_id}_{key}"),
            "obj_id": format!("{node_id}_{key}"),
            "avty_t": topics.available(),
            "dev": device,
            "o": origin,
            "qos": qos,
        });
        if let (Some(m), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
            m.extend(e);
        }
        (
            format!(
                "{}/{component}/{node_id}/{key}/config",
                topics.discovery_prefix
            ),
            v.to_string(),
        )
    };
    let mut out = vec![
        entity(
            "sensor",
            "fps",
            "Analysed frame rate",
            json!({"stat_t": topics.state(), "val_tpl": "{{ value_json.fps | round(2) }}",
                   "unit_of_meas": "fps", "stat_cla": "measurement"}),
        ),
        entity(
            "sensor",
            "mask_rate",
            "Mask rate",
            json!({"stat_t": topics.state(), "val_tpl": "{{ value_json.mask_rate | round(2) }}",
                   "unit_of_meas": "masks/s", "stat_cla": "measurement"}),
        ),
        entity(
            "sensor",
            "inference_ms",
            "Inference latency",
            json!({"stat_t": topics.state(), "val_tpl": "{{ value_json.inference_ms | round(1) }}",
                   "unit_of_meas": "ms", "dev_cla": "duration", "stat_cla": "measurement"}),
        ),
        entity(
            "sensor",
            "frames_bad",
            "Bad input frames",
            json!({"stat_t": topics.state(), "val_tpl": "{{ value_json.frames_bad | int(0) }}",
                   "stat_cla": "total_increasing", "ent_cat": "diagnostic",
                   "ic": "mdi:image-broken-variant"}),
        ),
        entity(
            "sensor",
            "audio_gaps",
            "Audio input gaps",
            json!({"stat_t": topics.state(), "val_tpl": "{{ value_json.audio_gaps | int(0) }}",
                   "stat_cla": "total_increasing", "ent_cat": "diagnostic",
                   "ic": "mdi:volume-off"}),
        ),
        entity(
            "sensor",
            "frames_skipped",
            "Frames skipped (engine behind)",
            json!({"stat_t": topics.state(), "val_tpl": "{{ value_json.frames_skipped | int(0) }}",
                   "stat_cla": "total_increasing", "ent_cat": "diagnostic",
                   "ic": "mdi:debug-step-over"}),
        ),
        entity(
            "binary_sensor",
            "sound",
            "Sound source present",
            json!({"stat_t": topics.count("all"), "dev_cla": "sound",
                   "val_tpl": "{{ 'ON' if value | int(0) > 0 else 'OFF' }}"}),
        ),
        entity(
            "event",
            "event",
            "Sounding object",
            json!({"stat_t": topics.events(), "evt_typ": ["new", "update", "end"],
                   "val_tpl": "{{ {'event_type': value_json.type, 'label': value_json.after.label, \
                               'sub_label': value_json.after.sub_label, 'score': value_json.after.score, 'id': value_json.after.id, \
                               'in_view': value_json.after.in_view | default(none)} | tojson }}"}),
        ),
        entity(
            "image",
            "snapshot",
            "Sounding object snapshot",
            json!({"img_t": topics.snapshot("all"), "cont_type": "image/jpeg"}),
        ),
        entity(
            "switch",
            "detect",
            "Detection",
            json!({"cmd_t": topics.detect_set(), "stat_t": topics.detect_state(),
                   "pl_on": "ON", "pl_off": "OFF"}),
        ),
    ];
    for label in labels {
        let slug = label_slug(label);
        out.push(entity(
            "sensor",
            &format!("count_{slug}"),
            &format!("{} sound sources", label.replace('_', " ")),
            json!({"stat_t": topics.count(&slug), "val_tpl": "{{ value | int(0) }}",
                   "stat_cla": "measurement", "ic": "mdi:volume-high"}),
        ));
    }
    out
}

/// `[A-Za-z0-9_-]` only (other characters become `_`): a Home Assistant `node_id`.
pub fn node_id(client_id: &str) -> String {
    client_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_configs_per_label() {
        let t = Topics {
            prefix: "c3n".into(),
            camera: "porch".into(),
            discovery_prefix: "homeassistant".into(),
        };
        assert_eq!(node_id("c3n-edge.porch"), "c3n-edge_porch");
        let cfgs = discovery_configs(&t, "c3n-edge-porch", 1, &[]);
        assert_eq!(cfgs.len(), 10);
        let (topic, payload) = &cfgs[1];
        assert_eq!(
            topic,
            "homeassistant/sensor/c3n-edge-porch/mask_rate/config"
        );
        let v: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(v["stat_t"], "c3n/porch/state");
        assert_eq!(v["val_tpl"], "{{ value_json.mask_rate | round(2) }}");
        assert_eq!(
            (&v["unit_of_meas"], &v["stat_cla"]),
            (&"masks/s".into(), &"measurement".into())
        );
        let (topic, payload) = &cfgs[3];
        assert_eq!(
            topic,
            "homeassistant/sensor/c3n-edge-porch/frames_bad/config"
        );
        let v: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(v["stat_t"], "c3n/porch/state");
        assert_eq!(v["val_tpl"], "{{ value_json.frames_bad | int(0) }}");
        assert_eq!(v["stat_cla"], "total_increasing");
        let (topic, payload) = &cfgs[5];
        assert_eq!(
            topic,
            "homeassistant/sensor/c3n-edge-porch/frames_skipped/config"
        );
        let v: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(v["val_tpl"], "{{ value_json.frames_skipped | int(0) }}");
        assert_eq!(v["ent_cat"], "diagnostic");
        let labels = ["dog".to_string(), "musical_instrument".to_string()];
        let cfgs = discovery_configs(&t, "c3n-edge-porch", 1, &labels);
        assert_eq!(cfgs.len(), 12);
        let (topic, payload) = &cfgs[11];
        assert_eq!(
            topic,
            "homeassistant/sensor/c3n-edge-porch/count_musical_instrument/config"
        );
        let v: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(v["stat_t"], "c3n/porch/musical_instrument");
        assert_eq!(v["name"], "musical instrument sound sources");
        for (topic, payload) in &cfgs {
            assert!(topic.starts_with("homeassistant/") && topic.ends_with("/config"));
            let v: serde_json::Value = serde_json::from_str(payload).unwrap();
            assert_eq!(v["avty_t"], "c3n/available");
            assert_eq!(v["dev"]["ids"][0], "c3n-edge-porch");
        }
    }
}
