//! `FlotillaAdmin.ResolveName`: how an agent asks the server what a task's DNS query for a Cloud
//! Map name answers (the agent's resolver at `169.254.170.2:53` turns it into a DNS message).
//!
//! Request `{"name": "web.corp.local", "type": "A"}` (`A`, `AAAA`, `SRV`, or the type's number
//! as text for any other); answer one of
//! - `{"outcome": "ANSWER", "answers": [RECORD...], "additionals": [RECORD...]}` (no answers:
//!   the name exists without records of that type, NODATA),
//! - `{"outcome": "NXDOMAIN", "zone": "corp.local"}`,
//! - `{"outcome": "NOT_OURS"}`: outside every DNS namespace (the agent forwards the query to the
//!   host's resolvers),
//!
//! where a RECORD is `{"name", "ttl", "type": "A", "address"}`, `{..., "type": "AAAA",
//! "address"}` or `{..., "type": "SRV", "priority", "weight", "port", "target"}`.

use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The admin operation's name (`FlotillaAdmin.ResolveName`).
pub const RESOLVE_NAME: &str = "ResolveName";

/// A ResolveName request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveNameRequest {
    /// The name asked, as in the query (any case, trailing dot or not).
    pub name: String,
    /// `A`, `AAAA`, `SRV`, or another type's number.
    #[serde(rename = "type")]
    pub record_type: String,
}

impl ResolveNameRequest {
    /// The request for a query of DNS type number `code`.
    pub fn new(name: &str, code: u16) -> ResolveNameRequest {
        ResolveNameRequest {
            name: name.to_string(),
            record_type: type_name(code),
        }
    }

    /// The DNS type number asked, if the type is readable.
    pub fn type_code(&self) -> Option<u16> {
        match self.record_type.to_ascii_uppercase().as_str() {
            "A" => Some(1),
            "AAAA" => Some(28),
            "SRV" => Some(33),
            other => other.parse().ok(),
        }
    }
}

/// The text of a DNS type number in a request.
pub fn type_name(code: u16) -> String {
    match code {
        1 => "A".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        n => n.to_string(),
    }
}

/// One record of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedRecord {
    /// The owner name (lower case, no trailing dot).
    pub name: String,
    /// Seconds.
    pub ttl: u32,
    /// The data.
    #[serde(flatten)]
    pub data: ResolvedData,
}

/// A record's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ResolvedData {
    /// An IPv4 address.
    A {
        /// The address.
        address: Ipv4Addr,
    },
    /// An IPv6 address.
    #[serde(rename = "AAAA")]
    Aaaa {
        /// The address.
        address: Ipv6Addr,
    },
    /// A service location.
    #[serde(rename = "SRV")]
    Srv {
        /// Priority.
        priority: u16,
        /// Weight.
        weight: u16,
        /// Port.
        port: u16,
        /// Target host name.
        target: String,
    },
}

/// What ResolveName answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome")]
pub enum ResolveNameAnswer {
    /// The name exists (no answers: no records of that type).
    #[serde(rename = "ANSWER")]
    Records {
        /// The answer section.
        answers: Vec<ResolvedRecord>,
        /// The additional section.
        additionals: Vec<ResolvedRecord>,
    },
    /// The name is inside the DNS namespace `zone` and names nothing.
    #[serde(rename = "NXDOMAIN")]
    NxDomain {
        /// The namespace.
        zone: String,
    },
    /// The name is outside every DNS namespace.
    #[serde(rename = "NOT_OURS")]
    NotOurs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_have_their_documented_wire_shape() {
        let a = ResolveNameAnswer::Records {
            answers: vec![ResolvedRecord {
                name: "web.corp.local".into(),
                ttl: 10,
                data: ResolvedData::Srv {
                    priority: 1,
                    weight: 1,
                    port: 80,
                    target: "t1.web.corp.local".into(),
                },
            }],
            additionals: vec![ResolvedRecord {
                name: "t1.web.corp.local".into(),
                ttl: 10,
                data: ResolvedData::A {
                    address: Ipv4Addr::new(10, 0, 0, 1),
                },
            }],
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"outcome": "ANSWER",
                "answers": [{"name": "web.corp.local", "ttl": 10, "type": "SRV", "priority": 1, "weight": 1, "port": 80, "target": "t1.web.corp.local"}],
                "additionals": [{"name": "t1.web.corp.local", "ttl": 10, "type": "A", "address": "10.0.0.1"}]})
        );
        assert_eq!(serde_json::from_value::<ResolveNameAnswer>(v).unwrap(), a);
        assert_eq!(
            serde_json::to_value(ResolveNameAnswer::NotOurs).unwrap(),
            serde_json::json!({"outcome": "NOT_OURS"})
        );
        let r = ResolveNameRequest::new("x", 33);
        assert_eq!(r.record_type, "SRV");
        assert_eq!(r.type_code(), Some(33));
        assert_eq!(ResolveNameRequest::new("x", 16).type_code(), Some(16));
    }
}
