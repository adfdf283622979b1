//! MQTT publishing: configuration, broker URL, topic layout, Home Assistant discovery payloads,
//! the bounded drop-oldest queue and the reconnect backoff. The network side is in [`client`],
//! the pipeline output in [`crate::sink::mqtt`].
//!
//! Topic layout (after Frigate, integration-conventions.md §3.1; `<prefix>` default `c3n`):
//!
//! | topic | payload | retained |
//! |---|---|---|
//! | `<prefix>/available` | `online` / `offline` (last will `offline`; `online` only after the initial retained states of every (re)connect) | yes |
//! | `<prefix>/<camera>/events` | event JSON (`schema/event.schema.json`) | no |
//! | `<prefix>/<camera>/<label>` | count of active sounding objects with that label — a category of the model's vocabulary, e.g. `dog` (`all` = any label) | yes |
//! | `<prefix>/<camera>/<label>/snapshot` | JPEG of the overlay of the object's best frame (`all/snapshot` = latest of any label) | yes |
//! | `<prefix>/<camera>/state` | run state JSON (`schema/state.schema.json`) | yes |
//! | `<prefix>/<camera>/detect/set` | `ON` / `OFF` command (subscribed) | – |
//! | `<prefix>/<camera>/detect/state` | `ON` / `OFF` | yes |
//! | `<discovery_prefix>/<component>/<node_id>/<object_id>/config` | Home Assistant discovery (integration-conventions.md §4) | yes |
//!
//! "Retained" follows [`MqttConfig::retain`] (default on); events are never retained.
//!
//! Protocol: MQTT 3.1.1 (default) or 5 ([`MqttConfig::protocol`]), with one publishing logic
//! ([`client`]) over a small adapter ([`protocol`]). With MQTT 5 every message also carries its
//! content type (`application/json`, `text/plain`, `image/jpeg`) and payload format indicator.

#[cfg(feature = "mqtt-broker")]
pub mod broker;
pub mod client;
pub mod command;
pub mod discovery;
pub mod protocol;

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use discovery::{discovery_configs, node_id};
pub use protocol::{Content, Protocol};

/// Version of the `state` payload schema (`schema/state.schema.json`, `$id` ends in it).
pub const STATE_SCHEMA_VERSION: &str = "1.1.0";

/// Errors of the MQTT output; each names the broker or the setting.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// A setting (URL, prefix, camera name, QoS, …) is unusable.
    #[error("invalid MQTT setting: {0}")]
    Config(String),
    /// A TLS file cannot be read.
    #[error("cannot read MQTT TLS file {path}: {source}")]
    TlsFile {
        /// File.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The broker refused the connection (bad credentials, not authorised, …).
    #[error("MQTT broker {broker} refused the connection: {reason}")]
    Refused {
        /// `host:port`.
        broker: String,
        /// The CONNACK return code, in words.
        reason: String,
    },
    /// TLS was asked for but this build has no TLS (cargo feature `mqtt-tls`).
    #[error("MQTT broker {0}: mqtts:// needs a build with the cargo feature `mqtt-tls`")]
    NoTls(String),
    /// The network thread could not be started.
    #[error("cannot start the MQTT thread: {0}")]
    Thread(#[source] std::io::Error),
}

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
    /// Start an embedded broker on `0.0.0.0:PORT` (cargo feature `mqtt-broker`, [`broker`]),
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
    /// Checks value ranges; returns a description of the first problem.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(u) = &self.url {
            BrokerUrl::parse(u).map_err(|e| e.to_string())?;
        }
        check_topic_path("mqtt.prefix", &self.prefix)?;
        check_topic_path("mqtt.discovery_prefix", &self.discovery_prefix)?;
        if self.qos > 2 {
            return Err(format!("mqtt.qos = {}: expected 0, 1 or 2", self.qos));
        }
        if self.queue_size == 0 {
            return Err("mqtt.queue_size must be >= 1".into());
        }
        if self.keep_alive_s < 5 {
            return Err(format!(
                "mqtt.keep_alive_s = {}: expected >= 5",
                self.keep_alive_s
            ));
        }
        if self.reconnect_min_ms == 0 || self.reconnect_max_ms < self.reconnect_min_ms {
            return Err(format!(
                "mqtt.reconnect_min_ms = {}, reconnect_max_ms = {}: expected 0 < min <= max",
                self.reconnect_min_ms, self.reconnect_max_ms
            ));
        }
        if !(1..=100).contains(&self.snapshot_quality) {
            return Err(format!(
                "mqtt.snapshot_quality = {}: expected 1..=100",
                self.snapshot_quality
            ));
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.len() > 128 {
                return Err(format!(
                    "mqtt.client_id = {id:?}: expected 1-128 characters"
                ));
            }
        }
        if self.embedded_port == Some(0) {
            return Err("mqtt.embedded_port must be 1-65535".into());
        }
        if self.embedded_port.is_some() && cfg!(not(feature = "mqtt-broker")) {
            return Err(
                "mqtt.embedded_port needs a build with the cargo feature `mqtt-broker`".into(),
            );
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err("mqtt.client_cert and mqtt.client_key go together".into());
        }
        Ok(())
    }
}

/// Resolves the client settings from the `[mqtt]` section, the broker URL (`--mqtt` or
/// `mqtt.url`) and the camera name (`--camera-name` / `[events] camera`). The URL's credentials
/// and path (prefix) win over the section's. Errors: an invalid URL, prefix or camera name, or
/// client certificate without key.
pub fn resolve(
    cfg: &MqttConfig,
    url: &str,
    camera: &str,
) -> Result<client::ClientSettings, MqttError> {
    cfg.validate().map_err(MqttError::Config)?;
    check_camera_name(camera)?;
    let broker = BrokerUrl::parse(url)?;
    let prefix = broker.prefix.clone().unwrap_or_else(|| cfg.prefix.clone());
    Ok(client::ClientSettings {
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

/// A topic prefix: non-empty, no wildcards, no empty levels, no leading/trailing `/`.
fn check_topic_path(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.split('/').any(str::is_empty)
        || s.contains(['+', '#', '\0'])
        || s.starts_with('$')
    {
        return Err(format!(
            "{what} = {s:?}: expected topic levels without wildcards (e.g. c3n or site/c3n)"
        ));
    }
    Ok(())
}

/// A camera name usable as one topic level and in Home Assistant ids: `[A-Za-z0-9_-]+`
/// (Frigate's rule for camera names).
pub fn check_camera_name(name: &str) -> Result<(), MqttError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(MqttError::Config(format!(
            "camera name {name:?}: expected letters, digits, '_' or '-' (it is a topic level)"
        )));
    }
    Ok(())
}

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `mqtts://`.
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// TCP port (default 1883, or 8883 with TLS).
    pub port: u16,
    /// User name from the URL (percent-decoded).
    pub username: Option<String>,
    /// Password from the URL (percent-decoded).
    pub password: Option<String>,
    /// Topic prefix from the URL path (`mqtt://host/site/c3n` → `site/c3n`).
    pub prefix: Option<String>,
}

impl BrokerUrl {
    /// Parses `mqtt://[user[:pass]@]host[:port][/prefix]` or `mqtts://…`; IPv6 hosts in `[…]`.
    pub fn parse(s: &str) -> Result<Self, MqttError> {
        let bad = |why: &str| {
            MqttError::Config(format!(
                "broker URL {:?}: {why} (expected mqtt://[user:pass@]host[:port][/prefix])",
                redact(s)
            ))
        };
        let (tls, rest) = if let Some(r) = s.strip_prefix("mqtt://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("mqtts://") {
            (true, r)
        } else {
            return Err(bad("scheme must be mqtt:// or mqtts://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((n, p)) => (Some(percent_decode(n)), Some(percent_decode(p))),
                None => (Some(percent_decode(u)), None),
            },
        };
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, after) = h.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("port must be 1-65535"))?,
            None if tls => 8883,
            None => 1883,
        };
        let path = path.trim_end_matches('/');
        let prefix = if path.is_empty() {
            None
        } else {
            check_topic_path("broker URL path", path).map_err(|e| bad(&e))?;
            Some(path.to_string())
        };
        Ok(Self {
            tls,
            host: host.to_string(),
            port,
            username,
            password,
            prefix,
        })
    }

    /// `host:port` (for messages; never the credentials).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The URL with its password replaced by `***` (for error messages).
fn redact(s: &str) -> String {
    match (s.find("://"), s.rfind('@')) {
        (Some(a), Some(b)) if b > a => {
            let user = &s[a + 3..b];
            match user.split_once(':') {
                Some((n, _)) => format!("{}{n}:***{}", &s[..a + 3], &s[b..]),
                None => s.to_string(),
            }
        }
        _ => s.to_string(),
    }
}

/// `%XX` decoding (invalid escapes are kept as they are).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A label as one topic level: lower case, runs of anything but `[a-z0-9-]` become one `_`
/// (`"goldfinch, Carduelis carduelis"` → `goldfinch_carduelis_carduelis`); empty → `unknown`.
pub fn label_slug(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for c in label.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let t = out.trim_matches('_');
    if t.is_empty() {
        "unknown".into()
    } else {
        t.to_string()
    }
}

/// Topic names of one camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Topic prefix (`c3n`).
    pub prefix: String,
    /// Camera name (one topic level).
    pub camera: String,
    /// Home Assistant discovery prefix (`homeassistant`).
    pub discovery_prefix: String,
}

impl Topics {
    /// `<prefix>/available`.
    pub fn available(&self) -> String {
        format!("{}/available", self.prefix)
    }
    fn cam(&self, rest: &str) -> String {
        format!("{}/{}/{rest}", self.prefix, self.camera)
    }
    /// `<prefix>/<camera>/events`.
    pub fn events(&self) -> String {
        self.cam("events")
    }
    /// `<prefix>/<camera>/state`.
    pub fn state(&self) -> String {
        self.cam("state")
    }
    /// `<prefix>/<camera>/<slug>` (count); `slug` from [`label_slug`] or `all`.
    pub fn count(&self, slug: &str) -> String {
        self.cam(slug)
    }
    /// `<prefix>/<camera>/<slug>/snapshot`.
    pub fn snapshot(&self, slug: &str) -> String {
        self.cam(&format!("{slug}/snapshot"))
    }
    /// `<prefix>/<camera>/detect/set`.
    pub fn detect_set(&self) -> String {
        self.cam("detect/set")
    }
    /// `<prefix>/<camera>/detect/state`.
    pub fn detect_state(&self) -> String {
        self.cam("detect/state")
    }
    /// `<discovery_prefix>/status` (Home Assistant's birth/will topic).
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }
}

/// Bounded FIFO that drops its oldest item when full.
#[derive(Debug)]
pub struct DropOldest<T> {
    items: VecDeque<T>,
    cap: usize,
    dropped: u64,
}

impl<T> DropOldest<T> {
    /// Empty queue of capacity `cap` (≥ 1).
    pub fn new(cap: usize) -> Self {
        Self {
            items: VecDeque::with_capacity(cap.min(4096)),
            cap: cap.max(1),
            dropped: 0,
        }
    }
    /// Appends `item`; returns the item dropped to make room, if any (also counted).
    pub fn push(&mut self, item: T) -> Option<T> {
        let old = if self.items.len() >= self.cap {
            self.dropped += 1;
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        old
    }
    /// Puts an item back at the front (it was taken but could not be handed on). Never drops:
    /// the queue may exceed its capacity by the items put back until they are taken again.
    pub fn push_front(&mut self, item: T) {
        self.items.push_front(item);
    }
    /// Oldest item.
    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }
    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Items dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Exponential reconnect backoff with jitter: the n-th delay (n from 0) is drawn uniformly from
/// `[d/2, d]` with `d = min(max, min·2^n)` ("equal jitter"), so many devices that lost the same
/// broker do not reconnect in lockstep. [`Backoff::reset`] after a successful connection.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// Delays between `min`/2 and `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        Self {
            min,
            max: max.max(min),
            attempt: 0,
            rng: h.finish() | 1,
        }
    }
    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let d = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let unit = (r >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        d.mul_f64(0.5 + 0.5 * unit)
    }
    /// Back to the first delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let u = BrokerUrl::parse("mqtt://10.0.0.2").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("10.0.0.2", 1883, false));
        let u = BrokerUrl::parse("mqtts://us%40r:p%3Ass@broker.lan/site/c3n/").unwrap();
        assert_eq!((u.port, u.tls), (8883, true));
        assert_eq!(u.username.as_deref(), Some("us@r"));
        assert_eq!(u.password.as_deref(), Some("p:ss"));
        assert_eq!(u.prefix.as_deref(), Some("site/c3n"));
        let u = BrokerUrl::parse("mqtt://[::1]:1999").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1999));
        assert_eq!(u.address(), "[::1]:1999");
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://h:0",
            "mqtt://h:99999",
            "mqtt://h/a/+",
        ] {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
        }
        let e = BrokerUrl::parse("ftp://u:secret@h")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret") && e.contains("u:***@h"), "{e}");
    }

    #[test]
    fn topics_and_slugs() {
        let t = Topics {
            prefix: "c3n".into(),
            camera: "porch".into(),
            discovery_prefix: "homeassistant".into(),
        };
        assert_eq!(t.available(), "c3n/available");
        assert_eq!(t.events(), "c3n/porch/events");
        assert_eq!(t.count("all"), "c3n/porch/all");
        assert_eq!(t.snapshot("dog"), "c3n/porch/dog/snapshot");
        assert_eq!(t.detect_set(), "c3n/porch/detect/set");
        assert_eq!(t.ha_status(), "homeassistant/status");
        assert_eq!(
            label_slug("goldfinch, Carduelis carduelis"),
            "goldfinch_carduelis_carduelis"
        );
        assert_eq!(label_slug("Great/Dane #1+"), "great_dane_1");
        assert_eq!(label_slug(" , "), "unknown");
        assert!(check_camera_name("porch-1_a").is_ok());
        assert!(check_camera_name("porch 1").is_err());
        assert!(check_camera_name("a/b").is_err());
        assert_eq!(node_id("c3n-edge.porch"), "c3n-edge_porch");
        let cfgs = discovery_configs(&t, "c3n-edge-porch", 1, &[]);
        assert_eq!(cfgs.len(), 6);
        let labels = ["dog".to_string(), "musical_instrument".to_string()];
        let cfgs = discovery_configs(&t, "c3n-edge-porch", 1, &labels);
        assert_eq!(cfgs.len(), 8);
        let (topic, payload) = &cfgs[7];
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

    #[test]
    fn queue_drops_oldest_and_counts() {
        let mut q = DropOldest::new(3);
        for i in 0..3 {
            assert_eq!(q.push(i), None);
        }
        assert_eq!(q.push(3), Some(0));
        assert_eq!(q.push(4), Some(1));
        assert_eq!((q.len(), q.dropped()), (3, 2));
        assert_eq!(q.pop(), Some(2));
        q.push_front(2);
        assert_eq!(
            std::iter::from_fn(|| q.pop()).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn backoff_grows_with_jitter_within_bounds() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(1600));
        let mut b = Backoff::new(min, max);
        let mut distinct = std::collections::HashSet::new();
        for round in 0..50 {
            for n in 0..8u32 {
                let d = b.next_delay();
                let cap = (min * (1 << n)).min(max);
                assert!(
                    d >= cap / 2 && d <= cap,
                    "attempt {n}: {d:?} not in [{:?}, {cap:?}]",
                    cap / 2
                );
                distinct.insert((round, n, d));
            }
            b.reset();
        }
        // jitter: the 50 draws of the capped delay are not all equal
        let capped: std::collections::HashSet<_> = distinct
            .iter()
            .filter(|(_, n, _)| *n == 7)
            .map(|x| x.2)
            .collect();
        assert!(capped.len() > 10);
    }

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
