//! Topic names of one camera ([`Topics`], the layout in [`super`]) and the rules for their
//! levels: label slugs, camera names, prefixes.

use super::{InvalidSetting, MqttError};

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

/// A topic prefix: non-empty, no wildcards, no empty levels, no leading/trailing `/`.
pub(super) fn check_topic_path(what: &str, s: &str) -> Result<(), InvalidSetting> {
    if s.is_empty()
        || s.split('/').any(str::is_empty)
        || s.contains(['+', '#', '\0'])
        || s.starts_with('$')
    {
        return Err(InvalidSetting(format!(
            "{what} = {s:?}: expected topic levels without wildcards (e.g. c3n or site/c3n)"
        )));
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
