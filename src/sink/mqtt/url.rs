//! The broker URL, `mqtt://[user[:pass]@]host[:port][/prefix]` or `mqtts://…` ([`BrokerUrl`]).

use super::topics::check_topic_path;
use super::MqttError;

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
            check_topic_path("broker URL path", path).map_err(|e| bad(&e.0))?;
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
}
