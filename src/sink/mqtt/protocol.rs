//! The MQTT protocol versions ([`Protocol`]) and what a payload is ([`Content`], told to MQTT 5
//! receivers). The connection of either version is in `connection`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// MQTT protocol version (`[mqtt] protocol`, `--mqtt-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Protocol {
    /// MQTT 3.1.1 (OASIS standard 2014; protocol level 4).
    #[default]
    #[serde(rename = "3.1.1")]
    V311,
    /// MQTT 5.0 (OASIS standard 2019; protocol level 5).
    #[serde(rename = "5")]
    V5,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V311 => "3.1.1",
            Self::V5 => "5",
        })
    }
}

/// A protocol version other than `3.1.1` or `5` (the text as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MQTT protocol {0:?}: expected 3.1.1 or 5")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;
    /// `3.1.1` or `5` (the config file's spelling).
    fn from_str(s: &str) -> Result<Self, UnknownProtocol> {
        match s {
            "3.1.1" => Ok(Self::V311),
            "5" => Ok(Self::V5),
            other => Err(UnknownProtocol(other.to_string())),
        }
    }
}

/// What a payload is; MQTT 5 tells the receivers (content type and payload format indicator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// JSON (events, state, discovery configs): `application/json`, UTF-8.
    Json,
    /// Plain text (`online`, counts, `ON`/`OFF`): `text/plain`, UTF-8.
    Text,
    /// JPEG image (snapshots): `image/jpeg`, binary.
    Jpeg,
}

impl Content {
    /// MIME type (MQTT 5 content type property).
    pub fn mime(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Text => "text/plain",
            Self::Jpeg => "image/jpeg",
        }
    }
    /// MQTT 5 payload format indicator: 1 = UTF-8 text, 0 = bytes (MQTT 5.0 §3.3.2.3.2).
    pub fn format_indicator(self) -> u8 {
        match self {
            Self::Json | Self::Text => 1,
            Self::Jpeg => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names() {
        assert_eq!("3.1.1".parse::<Protocol>(), Ok(Protocol::V311));
        assert_eq!(
            "4".parse::<Protocol>().unwrap_err().to_string(),
            "MQTT protocol \"4\": expected 3.1.1 or 5"
        );
        assert_eq!("5".parse::<Protocol>(), Ok(Protocol::V5));
        assert!("3.1".parse::<Protocol>().is_err());
        assert_eq!(Protocol::V5.to_string(), "5");
        #[derive(Deserialize)]
        struct T {
            p: Protocol,
        }
        let t: T = toml::from_str("p = \"5\"").unwrap();
        assert_eq!(t.p, Protocol::V5);
        let t: T = toml::from_str("p = \"3.1.1\"").unwrap();
        assert_eq!(t.p, Protocol::V311);
        assert!(toml::from_str::<T>("p = \"4\"").is_err());
    }
}
