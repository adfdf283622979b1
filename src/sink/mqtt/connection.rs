//! The MQTT protocol versions behind one small adapter, so that the publishing logic of
//! [`super::client`] (queue, counters, availability, discovery, `detect/set`, reconnects) exists
//! once: [`connect`] builds rumqttc's 3.1.1 (`rumqttc`) or 5 (`rumqttc::v5`) client from the
//! same settings, [`Link`] publishes, subscribes and disconnects, and [`Conn`] turns either
//! event loop's events into protocol-neutral [`NetEvent`]s.
//!
//! What MQTT 5 adds here (OASIS MQTT 5.0 §3.3.2.3, §3.1.3.2): every publish and the last will
//! carry their content type (`application/json`, `text/plain`, `image/jpeg`) and, for text, the
//! payload format indicator 1 (UTF-8); a refused connection names the CONNACK reason code
//! (§3.2.2.2), and a publish the broker refuses (PUBACK/PUBREC reason code ≥ 0x80, §3.4.2.1,
//! e.g. not authorised by an ACL) is reported as refused instead of delivered.

use std::collections::VecDeque;

use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::{mqttbytes::v4 as p4, Outgoing};

use super::protocol::{Content, Protocol};
use super::settings::ClientSettings;
use super::MqttError;

/// One publish request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// 0, 1 or 2.
    pub qos: u8,
    pub retain: bool,
    pub content: Content,
}

/// A protocol-neutral event of the network side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NetEvent {
    /// CONNACK with success.
    Connected { session_present: bool },
    /// A PUBLISH was written to the socket (`pkid` 0 for QoS 0).
    PublishSent { pkid: u16 },
    /// The end of an outgoing QoS ≥ 1 publish: PUBACK (QoS 1) or PUBCOMP (QoS 2) — or, with MQTT 5,
    /// a PUBACK/PUBREC whose reason code refuses it (`refused` gives the reason).
    Acked { pkid: u16, refused: Option<String> },
    /// An incoming PUBLISH (a subscribed command).
    Message { topic: String, payload: Vec<u8> },
    /// Our DISCONNECT was written.
    DisconnectSent,
    /// The connection failed or broke; `refused` when the broker refused it in its CONNACK.
    /// `lost`: the publishes rumqttc held at the break (see [`Conn::recv`]), in its order.
    Error {
        message: String,
        refused: bool,
        lost: Vec<Unsent>,
    },
    /// Anything else (pings, SUBACK, PUBREC, …).
    Other,
}

fn qos4(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS;
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// A publish rumqttc held when the connection broke: written but not acknowledged (`pkid` ≠ 0,
/// QoS ≥ 1), or still in its request channel (`pkid` 0). rumqttc keeps these for the next
/// connection and drops them at its CONNACK when the broker has no session for the client
/// (always so with our clean sessions, and after a broker restart without persistence), so
/// [`Conn::recv`] takes them out and the worker queues the events again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsent {
    pub pkid: u16,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A request rumqttc did not take (its request channel is full or its event loop is gone).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// From the MQTT 3.1.1 client (boxed: it holds the request).
    #[error(transparent)]
    V311(Box<rumqttc::ClientError>),
    /// From the MQTT 5 client (boxed: it holds the request).
    #[error(transparent)]
    V5(Box<rumqttc::v5::ClientError>),
}

impl From<rumqttc::ClientError> for RequestError {
    fn from(e: rumqttc::ClientError) -> Self {
        Self::V311(Box::new(e))
    }
}

impl From<rumqttc::v5::ClientError> for RequestError {
    fn from(e: rumqttc::v5::ClientError) -> Self {
        Self::V5(Box::new(e))
    }
}

/// The publishing half of a connection (rumqttc's `Client` of either version).
pub(crate) enum Link {
    V311(rumqttc::Client),
    V5(rumqttc::v5::Client),
}

/// The event-loop half of a connection (rumqttc's `Connection` of either version), with the
/// events it still has to yield after an error (see [`Conn::recv`]).
pub(crate) struct Conn {
    conn: Loop,
    held: VecDeque<NetEvent>,
}

// one per client, owned by its thread: the size difference of the variants costs nothing
#[allow(clippy::large_enum_variant)]
enum Loop {
    V311(rumqttc::Connection),
    V5(rumqttc::v5::Connection),
}

impl Conn {
    fn new(conn: Loop) -> Self {
        Self {
            conn,
            held: VecDeque::new(),
        }
    }
}

/// Builds the client for `s.protocol`: client id, keep-alive, clean session, credentials, the last
/// will `offline` on `<prefix>/available` (QoS 1, retained per `s.retain`), packet sizes (64 KiB
/// in for commands; out, for whole-frame snapshots: 16 MiB with 3.1.1, with MQTT 5 the broker's
/// Maximum Packet Size from its CONNACK), TLS for `mqtts://`. Nothing is sent
/// until [`Conn::recv`] runs. Errors: TLS files or settings, `mqtts://` without the `mqtt-tls`
/// feature.
pub(crate) fn connect(s: &ClientSettings, cap: usize) -> Result<(Link, Conn), MqttError> {
    const MAX_IN: usize = 64 * 1024;
    const MAX_OUT: usize = 16 * 1024 * 1024;
    let transport = if s.broker.tls {
        Some(tls_transport(s)?)
    } else {
        None
    };
    let (host, port) = (s.broker.host.clone(), s.broker.port);
    let will = (s.topics.available(), b"offline".to_vec());
    Ok(match s.protocol {
        Protocol::V311 => {
            let mut o = rumqttc::MqttOptions::new(s.client_id.clone(), host, port);
            o.set_keep_alive(s.keep_alive);
            // a clean session on purpose: a persistent one survives neither a broker restart
            // without persistence nor a SIGKILL between autosaves, so the worker resends the
            // unacknowledged events itself (`NetEvent::Error::lost`) and rumqttc never does
            o.set_clean_session(true);
            o.set_max_packet_size(MAX_IN, MAX_OUT);
            o.set_last_will(rumqttc::LastWill::new(will.0, will.1, qos4(1), s.retain));
            if let Some(u) = &s.username {
                o.set_credentials(u.clone(), s.password.clone().unwrap_or_default());
            }
            if let Some(t) = transport {
                o.set_transport(t);
            }
            let (c, conn) = rumqttc::Client::new(o, cap);
            (Link::V311(c), Conn::new(Loop::V311(conn)))
        }
        Protocol::V5 => {
            let mut o = rumqttc::v5::MqttOptions::new(s.client_id.clone(), host, port);
            o.set_keep_alive(s.keep_alive);
            // clean start, session expiry 0: the 3.1.1 clean session (see above)
            o.set_clean_start(true);
            o.set_max_packet_size(Some(MAX_IN as u32));
            let props = p5::LastWillProperties {
                delay_interval: None,
                payload_format_indicator: Some(Content::Text.format_indicator()),
                message_expiry_interval: None,
                content_type: Some(Content::Text.mime().into()),
                response_topic: None,
                correlation_data: None,
                user_properties: Vec::new(),
            };
            o.set_last_will(p5::LastWill::new(
                will.0,
                will.1,
                qos5(1),
                s.retain,
                Some(props),
            ));
            if let Some(u) = &s.username {
                o.set_credentials(u.clone(), s.password.clone().unwrap_or_default());
            }
            if let Some(t) = transport {
                o.set_transport(t);
            }
            let (c, conn) = rumqttc::v5::Client::new(o, cap);
            (Link::V5(c), Conn::new(Loop::V5(conn)))
        }
    })
}

impl Link {
    /// Hands `m` to the event loop without blocking; gives it back when the request channel is
    /// full (try again later). (The payload is copied into rumqttc's request: a few KB for
    /// events, a JPEG for snapshots, at most a few times per second.)
    pub fn publish(&self, m: Message) -> Result<(), Message> {
        let sent = match self {
            Self::V311(c) => c
                .try_publish(m.topic.clone(), qos4(m.qos), m.retain, m.payload.clone())
                .is_ok(),
            Self::V5(c) => {
                let props = p5::PublishProperties {
                    payload_format_indicator: Some(m.content.format_indicator()),
                    content_type: Some(m.content.mime().into()),
                    ..Default::default()
                };
                c.try_publish_with_properties(
                    m.topic.clone(),
                    qos5(m.qos),
                    m.retain,
                    m.payload.clone(),
                    props,
                )
                .is_ok()
            }
        };
        if sent {
            Ok(())
        } else {
            Err(m)
        }
    }

    /// Subscribes to `topic` (no wait for the SUBACK). Errors: the request channel is full.
    pub fn subscribe(&self, topic: &str, qos: u8) -> Result<(), RequestError> {
        match self {
            Self::V311(c) => Ok(c.try_subscribe(topic, qos4(qos))?),
            Self::V5(c) => Ok(c.try_subscribe(topic, qos5(qos))?),
        }
    }

    /// Asks the event loop to send DISCONNECT (best effort).
    pub fn disconnect(&self) {
        let sent: Result<(), RequestError> = match self {
            Self::V311(c) => c.try_disconnect().map_err(Into::into),
            Self::V5(c) => c.try_disconnect().map_err(Into::into),
        };
        if let Err(e) = sent {
            tracing::debug!("MQTT: DISCONNECT not sent: {e}");
        }
    }
}

impl Conn {
    /// Runs the event loop to its next event (connecting or reconnecting first when needed).
    /// `None` when every [`Link`] is gone.
    ///
    /// After an error, rumqttc has moved every unacknowledged publish and the rest of its request
    /// channel to its `pending` list, and may still hold events it did not yield (e.g. the
    /// `Outgoing::Publish` of the write that failed). Those events come first, one per call, and
    /// then the [`NetEvent::Error`] with the pending publishes in `lost`: so the caller has seen
    /// every publish rumqttc reported written before it learns which ones were not acknowledged.
    pub fn recv(&mut self) -> Option<NetEvent> {
        if let Some(ev) = self.held.pop_front() {
            return Some(ev);
        }
        let ev = match &mut self.conn {
            Loop::V311(c) => c.recv().ok().map(|r| match r {
                Ok(ev) => event4(ev),
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => NetEvent::Error {
                    message: refusal4(code).into(),
                    refused: true,
                    lost: Vec::new(),
                },
                Err(e) => NetEvent::Error {
                    message: e.to_string(),
                    refused: false,
                    lost: Vec::new(),
                },
            }),
            Loop::V5(c) => c.recv().ok().map(|r| match r {
                Ok(ev) => event5(ev),
                Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => NetEvent::Error {
                    message: refusal5(code),
                    refused: true,
                    lost: Vec::new(),
                },
                Err(e) => NetEvent::Error {
                    message: e.to_string(),
                    refused: false,
                    lost: Vec::new(),
                },
            }),
        }?;
        let NetEvent::Error {
            message,
            refused,
            lost,
        } = ev
        else {
            return Some(ev);
        };
        self.held = self.take_held();
        let lost = lost.into_iter().chain(self.take_pending()).collect();
        self.held.push_back(NetEvent::Error {
            message,
            refused,
            lost,
        });
        self.held.pop_front()
    }

    /// The events rumqttc buffered but did not yield before its error.
    fn take_held(&mut self) -> VecDeque<NetEvent> {
        match &mut self.conn {
            Loop::V311(c) => c.eventloop.state.events.drain(..).map(event4).collect(),
            Loop::V5(c) => c.eventloop.state.events.drain(..).map(event5).collect(),
        }
    }

    /// The publishes of rumqttc's `pending` list (emptied: rumqttc sends none of them again).
    fn take_pending(&mut self) -> Vec<Unsent> {
        match &mut self.conn {
            Loop::V311(c) => c
                .eventloop
                .pending
                .drain(..)
                .filter_map(|r| match r {
                    rumqttc::Request::Publish(p) => Some(Unsent {
                        pkid: p.pkid,
                        topic: p.topic,
                        payload: p.payload.to_vec(),
                    }),
                    _ => None,
                })
                .collect(),
            Loop::V5(c) => c
                .eventloop
                .pending
                .drain(..)
                .filter_map(|r| match r {
                    rumqttc::v5::Request::Publish(p) => Some(Unsent {
                        pkid: p.pkid,
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                    }),
                    _ => None,
                })
                .collect(),
        }
    }
}

fn event4(ev: rumqttc::Event) -> NetEvent {
    use rumqttc::{Event, Packet};
    match ev {
        Event::Incoming(Packet::ConnAck(a)) => NetEvent::Connected {
            session_present: a.session_present,
        },
        Event::Incoming(Packet::PubAck(a)) => NetEvent::Acked {
            pkid: a.pkid,
            refused: None,
        },
        Event::Incoming(Packet::PubComp(c)) => NetEvent::Acked {
            pkid: c.pkid,
            refused: None,
        },
        Event::Incoming(Packet::Publish(p)) => NetEvent::Message {
            topic: p.topic,
            payload: p.payload.to_vec(),
        },
        Event::Outgoing(o) => outgoing(o),
        _ => NetEvent::Other,
    }
}

fn event5(ev: rumqttc::v5::Event) -> NetEvent {
    use p5::{PubAckReason, PubRecReason};
    use rumqttc::v5::{Event, Incoming};
    match ev {
        Event::Incoming(Incoming::ConnAck(a)) => NetEvent::Connected {
            session_present: a.session_present,
        },
        Event::Incoming(Incoming::PubAck(a)) => NetEvent::Acked {
            pkid: a.pkid,
            refused: match a.reason {
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                r => Some(format!("{r:?}")),
            },
        },
        // QoS 2: a refusing PUBREC ends the exchange (no PUBREL/PUBCOMP follows)
        Event::Incoming(Incoming::PubRec(r)) => match r.reason {
            PubRecReason::Success | PubRecReason::NoMatchingSubscribers => NetEvent::Other,
            reason => NetEvent::Acked {
                pkid: r.pkid,
                refused: Some(format!("{reason:?}")),
            },
        },
        Event::Incoming(Incoming::PubComp(c)) => NetEvent::Acked {
            pkid: c.pkid,
            refused: None,
        },
        Event::Incoming(Incoming::Publish(p)) => NetEvent::Message {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload.to_vec(),
        },
        Event::Incoming(Incoming::Disconnect(d)) => {
            tracing::warn!("MQTT: the broker disconnects: {:?}", d.reason_code);
            NetEvent::Other
        }
        Event::Outgoing(o) => outgoing(o),
        _ => NetEvent::Other,
    }
}

fn outgoing(o: Outgoing) -> NetEvent {
    match o {
        Outgoing::Publish(pkid) => NetEvent::PublishSent { pkid },
        Outgoing::Disconnect => NetEvent::DisconnectSent,
        _ => NetEvent::Other,
    }
}

/// MQTT 3.1.1 CONNACK return code in words (§3.2.2.3).
fn refusal4(code: p4::ConnectReturnCode) -> &'static str {
    use p4::ConnectReturnCode as C;
    match code {
        C::BadUserNamePassword => "bad user name or password",
        C::NotAuthorized => "not authorised (check the user name and password)",
        C::BadClientId => "client id rejected",
        C::RefusedProtocolVersion => "MQTT protocol version 3.1.1 not supported",
        C::ServiceUnavailable => "service unavailable",
        C::Success => "success",
    }
}

/// MQTT 5 CONNACK reason code in words, with its number (§3.2.2.2).
fn refusal5(code: p5::ConnectReturnCode) -> String {
    use p5::ConnectReturnCode as C;
    let (n, text) = match code {
        C::Success => (0x00, "success"),
        C::UnspecifiedError => (0x80, "unspecified error"),
        C::MalformedPacket => (0x81, "malformed packet"),
        C::ProtocolError => (0x82, "protocol error"),
        C::ImplementationSpecificError => (0x83, "implementation specific error"),
        C::UnsupportedProtocolVersion | C::RefusedProtocolVersion => (
            0x84,
            "MQTT protocol version 5 not supported (try protocol = \"3.1.1\")",
        ),
        C::ClientIdentifierNotValid | C::BadClientId => (0x85, "client id rejected"),
        C::BadUserNamePassword => (0x86, "bad user name or password"),
        C::NotAuthorized => (0x87, "not authorised (check the user name and password)"),
        C::ServerUnavailable | C::ServiceUnavailable => (0x88, "server unavailable"),
        C::ServerBusy => (0x89, "server busy"),
        C::Banned => (0x8A, "banned"),
        C::BadAuthenticationMethod => (0x8C, "bad authentication method"),
        C::TopicNameInvalid => (0x90, "topic name invalid"),
        C::PacketTooLarge => (0x95, "packet too large"),
        C::QuotaExceeded => (0x97, "quota exceeded"),
        C::PayloadFormatInvalid => (0x99, "payload format invalid"),
        C::RetainNotSupported => (0x9A, "retain not supported"),
        C::QoSNotSupported => (0x9B, "QoS not supported"),
        C::UseAnotherServer => (0x9C, "use another server"),
        C::ServerMoved => (0x9D, "server moved"),
        C::ConnectionRateExceeded => (0x9F, "connection rate exceeded"),
    };
    format!("{text} (reason code 0x{n:02X})")
}

#[cfg(feature = "mqtt-tls")]
fn tls_transport(s: &ClientSettings) -> Result<rumqttc::Transport, MqttError> {
    use rumqttc::tokio_native_tls::native_tls;
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|source| MqttError::TlsFile {
            path: p.to_path_buf(),
            source,
        })
    };
    let bad = |what: &str, e: native_tls::Error| {
        MqttError::Config(format!(
            "TLS for broker {}: {what}: {e}",
            s.broker.address()
        ))
    };
    let mut b = native_tls::TlsConnector::builder();
    if let Some(ca) = &s.ca_file {
        let cert = native_tls::Certificate::from_pem(&read(ca)?)
            .map_err(|e| bad(&format!("CA file {}", ca.display()), e))?;
        b.add_root_certificate(cert);
    }
    if let Some((cert, key)) = &s.client_auth {
        let id = native_tls::Identity::from_pkcs8(&read(cert)?, &read(key)?).map_err(|e| {
            bad(
                &format!(
                    "client certificate {} / key {}",
                    cert.display(),
                    key.display()
                ),
                e,
            )
        })?;
        b.identity(id);
    }
    let connector = b.build().map_err(|e| bad("connector", e))?;
    Ok(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::NativeConnector(connector),
    ))
}

#[cfg(not(feature = "mqtt-tls"))]
fn tls_transport(s: &ClientSettings) -> Result<rumqttc::Transport, MqttError> {
    Err(MqttError::NoTls(s.broker.address()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v5_events_map_reason_codes() {
        use rumqttc::v5::{Event, Incoming};
        let ack = |reason| {
            event5(Event::Incoming(Incoming::PubAck(p5::PubAck {
                pkid: 7,
                reason,
                properties: None,
            })))
        };
        assert_eq!(
            ack(p5::PubAckReason::NoMatchingSubscribers),
            NetEvent::Acked {
                pkid: 7,
                refused: None
            }
        );
        assert_eq!(
            ack(p5::PubAckReason::NotAuthorized),
            NetEvent::Acked {
                pkid: 7,
                refused: Some("NotAuthorized".into())
            }
        );
        let e = refusal5(p5::ConnectReturnCode::BadUserNamePassword);
        assert!(
            e.contains("bad user name or password") && e.contains("0x86"),
            "{e}"
        );
        assert!(refusal5(p5::ConnectReturnCode::NotAuthorized).contains("not authorised"));
    }
}
