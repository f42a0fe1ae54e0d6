//! DNS answers for the services of DNS namespaces: what a task's resolver answers for a name.
//!
//! [`answer`] is pure: given the namespaces, the services and the instances, a query name and
//! type, it answers as Route 53 answers for Cloud Map's records:
//! - `SERVICE.NAMESPACE` of a private (or public) DNS namespace: an A (AAAA) record per
//!   instance with an `AWS_INSTANCE_IPV4` (`AWS_INSTANCE_IPV6`) when the service has an A
//!   (AAAA) record, an SRV record `1 1 PORT INSTANCE.SERVICE.NAMESPACE` per instance when it has
//!   an SRV record (with the target's addresses as additional records), each with the TTL of its
//!   record in the service's DnsConfig; `INSTANCE.SERVICE.NAMESPACE`: that instance's addresses
//!   (the target of its SRV record);
//! - only instances the service's health says to answer: HEALTHY ones when the service has a
//!   custom health check, every one otherwise (Route 53 then has no health check either);
//! - MULTIVALUE routing answers every such instance; WEIGHTED one of them (`pick` chooses);
//! - a name inside a namespace that names no service or instance is [`Answer::NxDomain`]; a name
//!   that exists but has no record of the type asked is an empty [`Answer::Records`] (NODATA);
//! - a name outside every DNS namespace is [`Answer::NotOurs`] (the resolver forwards it).
//!
//! [`resolve`] reads what [`answer`] needs from the store (the namespaces, the services of the
//! namespace the name is in, and the instances of the services it may name).
//!
//! Known difference: Route 53 answers at most eight records of a MULTIVALUE name, and answers
//! unhealthy ones when none is healthy; Flotilla answers exactly the healthy instances.

use crate::error::SdError;
use crate::keys;
use crate::record::{dns_name, InstanceRecord, NamespaceRecord, ServiceRecord};
use crate::shapes::{RecordType, RoutingPolicy};
use flotilla_store::Store;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The record types a query may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryType {
    /// A.
    A,
    /// AAAA.
    Aaaa,
    /// SRV.
    Srv,
    /// Any other type (its number): names that exist answer no record of it.
    Other(u16),
}

impl QueryType {
    /// The type of a DNS type number.
    pub fn from_code(code: u16) -> QueryType {
        match code {
            1 => QueryType::A,
            28 => QueryType::Aaaa,
            33 => QueryType::Srv,
            n => QueryType::Other(n),
        }
    }

    /// Its DNS type number.
    pub fn code(self) -> u16 {
        match self {
            QueryType::A => 1,
            QueryType::Aaaa => 28,
            QueryType::Srv => 33,
            QueryType::Other(n) => n,
        }
    }
}

/// A record's data.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A service location.
    Srv {
        /// Priority (Cloud Map: 1).
        priority: u16,
        /// Weight (Cloud Map: 1).
        weight: u16,
        /// The instance's `AWS_INSTANCE_PORT`.
        port: u16,
        /// `INSTANCE.SERVICE.NAMESPACE`.
        target: String,
    },
}

/// One record of an answer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    /// The owner name, lower case, without the trailing dot.
    pub name: String,
    /// Seconds.
    pub ttl: u32,
    /// The data.
    pub data: RecordData,
}

/// What a name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name exists: its records of the type asked (none: NODATA), and additional records
    /// (an SRV target's addresses).
    Records {
        /// The answer section.
        answers: Vec<Record>,
        /// The additional section.
        additionals: Vec<Record>,
    },
    /// The name is inside the DNS namespace `zone` and names nothing there.
    NxDomain {
        /// The namespace's name.
        zone: String,
    },
    /// The name is outside every DNS namespace.
    NotOurs,
}

impl Answer {
    fn empty() -> Answer {
        Answer::Records {
            answers: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

/// The DNS namespace a name is in (the longest whose name is the name or a suffix of it), and
/// the labels before it (empty for the namespace's own name).
pub fn zone_of<'a>(
    namespaces: &'a [NamespaceRecord],
    qname: &str,
) -> Option<(&'a NamespaceRecord, String)> {
    let q = dns_name(qname);
    namespaces
        .iter()
        .filter(|n| n.is_dns())
        .filter_map(|n| {
            let zone = n.dns_name();
            if q == zone {
                Some((n, String::new(), zone.len()))
            } else {
                q.strip_suffix(&zone)
                    .and_then(|rest| rest.strip_suffix('.'))
                    .filter(|rest| !rest.is_empty())
                    .map(|rest| (n, rest.to_string(), zone.len()))
            }
        })
        .max_by_key(|(_, _, len)| *len)
        .map(|(n, rest, _)| (n, rest))
}

/// Whether `rest` (the labels before a namespace) may name `service` or one of its instances.
pub fn may_name(rest: &str, service: &ServiceRecord) -> bool {
    let name = service.name.to_ascii_lowercase();
    rest == name || rest.ends_with(&format!(".{name}"))
}

fn address_records(
    name: &str,
    service: &ServiceRecord,
    i: &InstanceRecord,
    want: QueryType,
    srv_ttl: u32,
) -> Vec<Record> {
    let Some(dns) = &service.dns else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if matches!(want, QueryType::A) {
        if let (Some(ip), Some(ttl)) = (i.ipv4(), dns.ttl(RecordType::A).or(Some(srv_ttl))) {
            out.push(Record {
                name: name.to_string(),
                ttl,
                data: RecordData::A(ip),
            });
        }
    }
    if matches!(want, QueryType::Aaaa) {
        if let (Some(ip), Some(ttl)) = (i.ipv6(), dns.ttl(RecordType::Aaaa).or(Some(srv_ttl))) {
            out.push(Record {
                name: name.to_string(),
                ttl,
                data: RecordData::Aaaa(ip),
            });
        }
    }
    out
}

/// Answers `qname` of type `qtype` (see the module docs). `services` and `instances` may hold
/// more than the namespace's (they are matched by id); `pick` chooses the instance a WEIGHTED
/// service answers.
pub fn answer(
    namespaces: &[NamespaceRecord],
    services: &[ServiceRecord],
    instances: &[InstanceRecord],
    qname: &str,
    qtype: QueryType,
    pick: u64,
) -> Answer {
    let Some((zone, rest)) = zone_of(namespaces, qname) else {
        return Answer::NotOurs;
    };
    if rest.is_empty() {
        return Answer::empty();
    }
    let nx = || Answer::NxDomain {
        zone: zone.dns_name(),
    };
    let ours: Vec<&ServiceRecord> = services
        .iter()
        .filter(|s| s.namespace_id == zone.id && s.dns.is_some())
        .collect();
    let of = |s: &ServiceRecord| -> Vec<&InstanceRecord> {
        instances
            .iter()
            .filter(|i| i.service_id == s.id && s.answers(i))
            .collect()
    };
    let qname = dns_name(qname);
    // The service itself.
    if let Some(s) = ours.iter().find(|s| s.name.to_ascii_lowercase() == rest) {
        let Some(dns) = &s.dns else { return nx() };
        let mut healthy = of(s);
        if dns.routing == RoutingPolicy::Weighted && !healthy.is_empty() {
            let n = u64::try_from(healthy.len()).unwrap_or(1);
            let chosen = healthy.swap_remove(usize::try_from(pick % n).unwrap_or(0));
            healthy = vec![chosen];
        }
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        match qtype {
            QueryType::A | QueryType::Aaaa => {
                let t = if qtype == QueryType::A {
                    RecordType::A
                } else {
                    RecordType::Aaaa
                };
                if let Some(ttl) = dns.ttl(t) {
                    for i in &healthy {
                        answers.extend(address_records(&qname, s, i, qtype, ttl));
                    }
                }
            }
            QueryType::Srv => {
                if let Some(ttl) = dns.ttl(RecordType::Srv) {
                    for i in &healthy {
                        let Some(port) = i.port() else { continue };
                        let target = format!("{}.{qname}", i.id.to_ascii_lowercase());
                        answers.push(Record {
                            name: qname.clone(),
                            ttl,
                            data: RecordData::Srv {
                                priority: 1,
                                weight: 1,
                                port,
                                target: target.clone(),
                            },
                        });
                        additionals.extend(address_records(&target, s, i, QueryType::A, ttl));
                        additionals.extend(address_records(&target, s, i, QueryType::Aaaa, ttl));
                    }
                }
            }
            QueryType::Other(_) => {}
        }
        return Answer::Records {
            answers,
            additionals,
        };
    }
    // An instance of a service with SRV records (the target of its SRV record).
    for s in &ours {
        let name = s.name.to_ascii_lowercase();
        let Some(label) = rest.strip_suffix(&format!(".{name}")) else {
            continue;
        };
        let Some(dns) = &s.dns else { continue };
        let Some(srv_ttl) = dns.ttl(RecordType::Srv) else {
            continue;
        };
        if let Some(i) = of(s)
            .into_iter()
            .find(|i| i.id.to_ascii_lowercase() == label)
        {
            return Answer::Records {
                answers: address_records(&qname, s, i, qtype, srv_ttl),
                additionals: Vec::new(),
            };
        }
    }
    nx()
}

/// Resolves `qname` from the store: reads the namespaces, the services of the one the name is
/// in and the instances of those it may name, then [`answer`]s.
pub async fn resolve(store: &dyn Store, qname: &str, qtype: QueryType) -> Result<Answer, SdError> {
    let namespaces: Vec<NamespaceRecord> = keys::all(store, keys::NAMESPACES).await?;
    let Some((zone, rest)) = zone_of(&namespaces, qname) else {
        return Ok(Answer::NotOurs);
    };
    let services: Vec<ServiceRecord> = keys::all::<ServiceRecord>(store, keys::SERVICES)
        .await?
        .into_iter()
        .filter(|s| s.namespace_id == zone.id)
        .collect();
    let mut instances = Vec::new();
    for s in services.iter().filter(|s| may_name(&rest, s)) {
        instances.extend(keys::instances_of(store, &s.id).await?);
    }
    Ok(answer(
        &namespaces,
        &services,
        &instances,
        qname,
        qtype,
        rand::random(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::DnsSettings;
    use crate::shapes::{CustomHealthStatus, NamespaceType};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn ns(id: &str, name: &str, kind: NamespaceType) -> NamespaceRecord {
        NamespaceRecord {
            id: id.into(),
            arn: format!("arn:{id}"),
            name: name.into(),
            kind,
            description: None,
            created: 0.0,
            creator_request_id: None,
            vpc: None,
            soa_ttl: Some(15),
            service_count: 1,
            tags: BTreeMap::new(),
        }
    }

    fn svc(
        id: &str,
        ns: &str,
        name: &str,
        records: &[(RecordType, u32)],
        custom: bool,
    ) -> ServiceRecord {
        ServiceRecord {
            id: id.into(),
            arn: format!("arn:{id}"),
            name: name.into(),
            namespace_id: ns.into(),
            description: None,
            created: 0.0,
            creator_request_id: None,
            dns: Some(DnsSettings {
                routing: RoutingPolicy::Multivalue,
                records: records.to_vec(),
            }),
            custom_health: custom.then(crate::shapes::HealthCheckCustomConfig::default),
            instance_count: 0,
            instances_revision: 0,
            tags: BTreeMap::new(),
        }
    }

    fn inst(service: &str, id: &str, ip: Ipv4Addr, port: u16, healthy: bool) -> InstanceRecord {
        InstanceRecord {
            id: id.into(),
            service_id: service.into(),
            attributes: [
                ("AWS_INSTANCE_IPV4".to_string(), ip.to_string()),
                ("AWS_INSTANCE_PORT".to_string(), port.to_string()),
            ]
            .into_iter()
            .collect(),
            health: if healthy {
                CustomHealthStatus::Healthy
            } else {
                CustomHealthStatus::Unhealthy
            },
            creator_request_id: None,
        }
    }

    fn world() -> (
        Vec<NamespaceRecord>,
        Vec<ServiceRecord>,
        Vec<InstanceRecord>,
    ) {
        let namespaces = vec![
            ns("ns-1", "corp.local", NamespaceType::DnsPrivate),
            ns("ns-2", "local", NamespaceType::DnsPrivate),
            ns("ns-3", "api", NamespaceType::Http),
        ];
        let services = vec![
            svc(
                "srv-1",
                "ns-1",
                "web",
                &[(RecordType::A, 30), (RecordType::Srv, 20)],
                true,
            ),
            svc("srv-2", "ns-2", "db", &[(RecordType::A, 5)], false),
        ];
        let instances = vec![
            inst("srv-1", "t1", Ipv4Addr::new(10, 0, 0, 1), 8080, true),
            inst("srv-1", "t2", Ipv4Addr::new(10, 0, 0, 2), 8081, false),
            inst("srv-1", "t3", Ipv4Addr::new(10, 0, 0, 3), 8082, true),
            inst("srv-2", "d1", Ipv4Addr::new(10, 0, 1, 1), 5432, false),
        ];
        (namespaces, services, instances)
    }

    fn a_records(a: &Answer) -> Vec<(String, u32, Ipv4Addr)> {
        match a {
            Answer::Records { answers, .. } => answers
                .iter()
                .filter_map(|r| match r.data {
                    RecordData::A(ip) => Some((r.name.clone(), r.ttl, ip)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn services_answer_their_healthy_instances_with_their_ttls() {
        let (n, s, i) = world();
        let a = answer(&n, &s, &i, "web.corp.local.", QueryType::A, 0);
        assert_eq!(
            a_records(&a),
            vec![
                ("web.corp.local".to_string(), 30, Ipv4Addr::new(10, 0, 0, 1)),
                ("web.corp.local".to_string(), 30, Ipv4Addr::new(10, 0, 0, 3)),
            ]
        );
        // Upper case and the longest namespace: corp.local, not local.
        let a = answer(&n, &s, &i, "WEB.Corp.Local", QueryType::A, 0);
        assert_eq!(a_records(&a).len(), 2);
        // Without a custom health check every instance is answered.
        let a = answer(&n, &s, &i, "db.local", QueryType::A, 0);
        assert_eq!(
            a_records(&a),
            vec![("db.local".to_string(), 5, Ipv4Addr::new(10, 0, 1, 1))]
        );
    }

    #[test]
    fn srv_records_name_each_instance_and_carry_its_address() {
        let (n, s, i) = world();
        let Answer::Records {
            answers,
            additionals,
        } = answer(&n, &s, &i, "web.corp.local", QueryType::Srv, 0)
        else {
            panic!("records expected")
        };
        assert_eq!(answers.len(), 2);
        assert_eq!(
            answers[0].data,
            RecordData::Srv {
                priority: 1,
                weight: 1,
                port: 8080,
                target: "t1.web.corp.local".into()
            }
        );
        assert_eq!(answers[0].ttl, 20);
        assert_eq!(additionals[0].name, "t1.web.corp.local");
        assert_eq!(
            additionals[0].data,
            RecordData::A(Ipv4Addr::new(10, 0, 0, 1))
        );
        // The target resolves; an unhealthy instance's does not.
        let a = answer(&n, &s, &i, "t3.web.corp.local", QueryType::A, 0);
        assert_eq!(a_records(&a).len(), 1);
        assert_eq!(
            answer(&n, &s, &i, "t2.web.corp.local", QueryType::A, 0),
            Answer::NxDomain {
                zone: "corp.local".into()
            }
        );
    }

    #[test]
    fn unknown_names_inside_are_nxdomain_and_outside_not_ours() {
        let (n, s, i) = world();
        assert_eq!(
            answer(&n, &s, &i, "nope.corp.local", QueryType::A, 0),
            Answer::NxDomain {
                zone: "corp.local".into()
            }
        );
        assert_eq!(
            answer(&n, &s, &i, "nope.local", QueryType::A, 0),
            Answer::NxDomain {
                zone: "local".into()
            }
        );
        assert_eq!(
            answer(&n, &s, &i, "example.com", QueryType::A, 0),
            Answer::NotOurs
        );
        // HTTP namespaces are not DNS.
        assert_eq!(
            answer(&n, &s, &i, "x.api", QueryType::A, 0),
            Answer::NotOurs
        );
        // The namespace's own name and a type the service has not: NODATA.
        assert_eq!(
            answer(&n, &s, &i, "corp.local", QueryType::A, 0),
            Answer::empty()
        );
        assert_eq!(
            answer(&n, &s, &i, "db.local", QueryType::Srv, 0),
            Answer::empty()
        );
        assert_eq!(
            answer(&n, &s, &i, "db.local", QueryType::Other(16), 0),
            Answer::empty()
        );
    }

    #[test]
    fn weighted_services_answer_one_instance() {
        let (n, mut s, i) = world();
        if let Some(d) = s[0].dns.as_mut() {
            d.routing = RoutingPolicy::Weighted;
        }
        let first = a_records(&answer(&n, &s, &i, "web.corp.local", QueryType::A, 0));
        let second = a_records(&answer(&n, &s, &i, "web.corp.local", QueryType::A, 1));
        assert_eq!(first.len(), 1);
        assert_eq!(second.len(), 1);
        assert_ne!(first, second);
    }

    proptest! {
        #[test]
        fn answers_hold_exactly_the_healthy_instances(
            health in proptest::collection::vec(any::<bool>(), 0..12),
            custom in any::<bool>(),
        ) {
            let namespaces = vec![ns("ns-1", "corp.local", NamespaceType::DnsPrivate)];
            let services = vec![svc("srv-1", "ns-1", "web", &[(RecordType::A, 30), (RecordType::Srv, 30)], custom)];
            let instances: Vec<InstanceRecord> = health
                .iter()
                .enumerate()
                .map(|(n, h)| inst("srv-1", &format!("t{n}"), Ipv4Addr::new(10, 0, 0, u8::try_from(n).unwrap_or(0)), 8000, *h))
                .collect();
            let expected: Vec<Ipv4Addr> = instances
                .iter()
                .filter(|i| !custom || i.health == CustomHealthStatus::Healthy)
                .filter_map(InstanceRecord::ipv4)
                .collect();
            let got: Vec<Ipv4Addr> = a_records(&answer(&namespaces, &services, &instances, "web.corp.local", QueryType::A, 7))
                .into_iter()
                .map(|(_, _, ip)| ip)
                .collect();
            prop_assert_eq!(&got, &expected);
            let Answer::Records { answers, .. } = answer(&namespaces, &services, &instances, "web.corp.local", QueryType::Srv, 7) else {
                return Err(TestCaseError::fail("records expected"));
            };
            prop_assert_eq!(answers.len(), expected.len());
        }
    }
}
