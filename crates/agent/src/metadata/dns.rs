//! The task resolver: DNS over UDP at `169.254.170.2:53` inside each task's network, on the
//! agent's endpoint port number (the task's NAT rules send its UDP port 53 traffic for
//! `169.254.170.2` there, beside TCP port 80).
//!
//! A query names a Cloud Map service (`SERVICE.NAMESPACE` of a DNS namespace, or the
//! `INSTANCE.SERVICE.NAMESPACE` target of its SRV records) or anything else. The resolver asks
//! the server ([`NameSource`]: `FlotillaAdmin.ResolveName`, signed as the agent's other calls)
//! and answers from what it says ([`respond`]: A, AAAA and SRV records, NXDOMAIN, NODATA), keeping
//! an answer at most [`CACHE_SECONDS`] so a deregistered instance disappears within a second
//! (plus the record's TTL in the client's own cache); a name outside every DNS namespace
//! (`NOT_OURS`) is forwarded as it came to the host's resolvers (its `/etc/resolv.conf`, read
//! when the agent starts), so tasks still resolve everything else. Without an answer from the
//! server the query is SERVFAIL, never a forwarded guess.
//!
//! Only the tasks the endpoint serves are answered ([`super::TaskEndpoint::is_task_address`]):
//! the port is no open resolver for the host's network.
//!
//! What this is not: the DNS answers themselves (`flotilla_servicediscovery::dns`, on the
//! server), nor TCP (a task's resolver retries over TCP only for answers over 512 bytes).

use flotilla_protocol::dns::{ResolveNameAnswer, ResolveNameRequest, ResolvedData, ResolvedRecord};
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tracing::debug;

/// How long an answer of the server is reused.
pub const CACHE_SECONDS: u64 = 1;
/// How long an upstream resolver is given to answer a forwarded query.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest UDP message read or answered.
pub const MAX_UDP: usize = 4096;

/// Where answers for names come from: the server.
#[async_trait::async_trait]
pub trait NameSource: Send + Sync + 'static {
    /// What `request` resolves to, or why the server could not say.
    async fn resolve(&self, request: &ResolveNameRequest) -> Result<ResolveNameAnswer, String>;
}

/// The server, through `FlotillaAdmin.ResolveName`.
pub struct ServerNames {
    /// The agent's API client.
    pub client: crate::client::EcsClient,
}

#[async_trait::async_trait]
impl NameSource for ServerNames {
    async fn resolve(&self, request: &ResolveNameRequest) -> Result<ResolveNameAnswer, String> {
        let body = serde_json::to_value(request).map_err(|e| e.to_string())?;
        let v = self
            .client
            .call_admin(flotilla_protocol::dns::RESOLVE_NAME, &body)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_value(v).map_err(|e| format!("the server's answer: {e}"))
    }
}

/// The name servers of a `resolv.conf` (port 53), in order.
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let ip: std::net::IpAddr = words.next()?.split('%').next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// What the resolver does with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer with this message.
    Answer(Message),
    /// Forward the query as it came to the upstream resolvers.
    Forward,
}

fn record(r: &ResolvedRecord) -> Option<Record> {
    let name = Name::from_ascii(format!("{}.", r.name)).ok()?;
    let data = match &r.data {
        ResolvedData::A { address } => RData::A(A(*address)),
        ResolvedData::Aaaa { address } => RData::AAAA(AAAA(*address)),
        ResolvedData::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(
            *priority,
            *weight,
            *port,
            Name::from_ascii(format!("{target}.")).ok()?,
        )),
    };
    Some(Record::from_rdata(name, r.ttl, data))
}

/// The answer to `query` from the server's `answer` (pure): its records (authoritative), NXDOMAIN,
/// or [`Reply::Forward`] for a name that is not Cloud Map's.
pub fn respond(query: &Message, answer: &ResolveNameAnswer) -> Reply {
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.queries = query.queries.clone();
    match answer {
        ResolveNameAnswer::NotOurs => return Reply::Forward,
        ResolveNameAnswer::NxDomain { .. } => {
            m.metadata.authoritative = true;
            m.metadata.response_code = ResponseCode::NXDomain;
        }
        ResolveNameAnswer::Records {
            answers,
            additionals,
        } => {
            m.metadata.authoritative = true;
            m.answers = answers.iter().filter_map(record).collect();
            m.additionals = additionals.iter().filter_map(record).collect();
        }
    }
    Reply::Answer(m)
}

/// An error answer to `query` (FORMERR for what is not one standard query, SERVFAIL when the
/// server could not be asked).
pub fn error_reply(query: &Message, code: ResponseCode) -> Message {
    let mut m = Message::error_msg(query.metadata.id, query.metadata.op_code, code);
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.queries = query.queries.clone();
    m
}

/// The resolver (see the module docs).
pub struct Resolver {
    source: Arc<dyn NameSource>,
    upstreams: Vec<SocketAddr>,
    cache: Mutex<HashMap<(String, u16), (Instant, ResolveNameAnswer)>>,
}

impl Resolver {
    /// A resolver asking `source`, forwarding other names to `upstreams`.
    pub fn new(source: Arc<dyn NameSource>, upstreams: Vec<SocketAddr>) -> Resolver {
        Resolver {
            source,
            upstreams,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The upstream resolvers.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    async fn ask(&self, name: &str, code: u16) -> Result<ResolveNameAnswer, String> {
        let key = (name.to_ascii_lowercase(), code);
        let fresh = Duration::from_secs(CACHE_SECONDS);
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            cache.retain(|_, (at, _)| now.duration_since(*at) < fresh);
            if let Some((_, a)) = cache.get(&key) {
                return Ok(a.clone());
            }
        }
        let answer = self
            .source
            .resolve(&ResolveNameRequest::new(&key.0, code))
            .await?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (Instant::now(), answer.clone()));
        Ok(answer)
    }

    /// Answers one UDP query (`None`: nothing to send, e.g. not a DNS message).
    pub async fn handle(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let query = Message::from_vec(packet).ok()?;
        if query.metadata.message_type != MessageType::Query {
            return None;
        }
        let reply = match (query.metadata.op_code, query.queries.as_slice()) {
            (OpCode::Query, [q]) => {
                let name = q.name().to_ascii();
                let name = name.trim_end_matches('.');
                match self.ask(name, u16::from(q.query_type())).await {
                    Ok(answer) => respond(&query, &answer),
                    Err(e) => {
                        debug!(name = %name, error = %e, "the server did not resolve a task's query");
                        Reply::Answer(error_reply(&query, ResponseCode::ServFail))
                    }
                }
            }
            (OpCode::Query, _) => Reply::Answer(error_reply(&query, ResponseCode::FormErr)),
            _ => Reply::Answer(error_reply(&query, ResponseCode::NotImp)),
        };
        match reply {
            Reply::Answer(m) => m.to_vec().ok(),
            Reply::Forward => match self.forward(packet).await {
                Some(bytes) => Some(bytes),
                None => error_reply(&query, ResponseCode::ServFail).to_vec().ok(),
            },
        }
    }

    /// Sends `packet` to each upstream in turn; the first answer.
    async fn forward(&self, packet: &[u8]) -> Option<Vec<u8>> {
        for upstream in &self.upstreams {
            let bind: SocketAddr = if upstream.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let Ok(socket) = tokio::net::UdpSocket::bind(bind).await else {
                continue;
            };
            if socket.send_to(packet, upstream).await.is_err() {
                continue;
            }
            let mut buf = vec![0u8; MAX_UDP];
            let deadline = tokio::time::sleep(UPSTREAM_TIMEOUT);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    r = socket.recv_from(&mut buf) => match r {
                        Ok((n, from)) if from == *upstream => return Some(buf[..n].to_vec()),
                        Ok(_) => continue,
                        Err(_) => break,
                    },
                }
            }
            debug!(upstream = %upstream, "an upstream resolver did not answer");
        }
        None
    }
}

/// Serves `socket` until the endpoint is gone: each query from a task of the endpoint is
/// answered on a task of its own.
pub(super) async fn serve_udp(
    socket: tokio::net::UdpSocket,
    resolver: Arc<Resolver>,
    endpoint: std::sync::Weak<super::TaskEndpoint>,
) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, "task resolver receive failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(ep) = endpoint.upgrade() else {
            return;
        };
        let packet = buf[..n].to_vec();
        let (socket, resolver) = (socket.clone(), resolver.clone());
        tokio::spawn(async move {
            if !ep.is_task_address(peer.ip()).await {
                debug!(peer = %peer, "DNS query from outside the endpoint's tasks ignored");
                return;
            }
            if let Some(reply) = resolver.handle(&packet).await {
                let _ = socket.send_to(&reply, peer).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::RecordType;
    use std::net::Ipv4Addr;

    fn query(name: &str, t: RecordType) -> Message {
        let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m
    }

    fn a(name: &str, ip: [u8; 4]) -> ResolvedRecord {
        ResolvedRecord {
            name: name.into(),
            ttl: 10,
            data: ResolvedData::A {
                address: Ipv4Addr::from(ip),
            },
        }
    }

    #[test]
    fn answers_become_dns_messages() {
        let q = query("web.corp.local.", RecordType::SRV);
        let answer = ResolveNameAnswer::Records {
            answers: vec![ResolvedRecord {
                name: "web.corp.local".into(),
                ttl: 20,
                data: ResolvedData::Srv {
                    priority: 1,
                    weight: 1,
                    port: 8080,
                    target: "t1.web.corp.local".into(),
                },
            }],
            additionals: vec![a("t1.web.corp.local", [10, 0, 0, 1])],
        };
        let Reply::Answer(m) = respond(&q, &answer) else {
            panic!("an answer expected")
        };
        let wire = Message::from_vec(&m.to_vec().unwrap()).unwrap();
        assert_eq!(wire.metadata.id, 4242);
        assert_eq!(wire.metadata.message_type, MessageType::Response);
        assert!(wire.metadata.authoritative && wire.metadata.recursion_desired);
        assert_eq!(wire.queries, q.queries);
        assert_eq!(wire.answers.len(), 1);
        assert_eq!(wire.answers[0].ttl, 20);
        match &wire.answers[0].data {
            RData::SRV(srv) => {
                assert_eq!(srv.port, 8080);
                assert_eq!(srv.target.to_ascii(), "t1.web.corp.local.");
            }
            other => panic!("SRV expected, got {other:?}"),
        }
        assert_eq!(
            wire.additionals[0].data,
            RData::A(A(Ipv4Addr::new(10, 0, 0, 1)))
        );

        let nx = respond(
            &q,
            &ResolveNameAnswer::NxDomain {
                zone: "corp.local".into(),
            },
        );
        let Reply::Answer(nx) = nx else {
            panic!("an answer expected")
        };
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(respond(&q, &ResolveNameAnswer::NotOurs), Reply::Forward);
    }

    #[test]
    fn upstreams_come_from_resolv_conf() {
        let text = "# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver bad\noptions ndots:2\n";
        assert_eq!(
            upstreams_from_resolv_conf(text),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse::<SocketAddr>().unwrap()
            ]
        );
    }

    struct Counting {
        calls: Mutex<u32>,
        answer: ResolveNameAnswer,
    }

    #[async_trait::async_trait]
    impl NameSource for Counting {
        async fn resolve(&self, r: &ResolveNameRequest) -> Result<ResolveNameAnswer, String> {
            assert_eq!(r.name, "web.corp.local");
            *self.calls.lock().unwrap() += 1;
            Ok(self.answer.clone())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_kept_at_most_a_second() {
        let source = Arc::new(Counting {
            calls: Mutex::new(0),
            answer: ResolveNameAnswer::Records {
                answers: vec![a("web.corp.local", [10, 0, 0, 1])],
                additionals: vec![],
            },
        });
        let r = Resolver::new(source.clone(), vec![]);
        let packet = query("WEB.corp.local.", RecordType::A).to_vec().unwrap();
        let first = Message::from_vec(&r.handle(&packet).await.unwrap()).unwrap();
        assert_eq!(first.answers.len(), 1);
        r.handle(&packet).await.unwrap();
        assert_eq!(*source.calls.lock().unwrap(), 1);
        tokio::time::advance(Duration::from_millis(1001)).await;
        r.handle(&packet).await.unwrap();
        assert_eq!(*source.calls.lock().unwrap(), 2);
        // A name not ours with no upstream: SERVFAIL, not silence.
        let other = Resolver::new(
            Arc::new(Counting {
                calls: Mutex::new(0),
                answer: ResolveNameAnswer::NotOurs,
            }),
            vec![],
        );
        let reply = Message::from_vec(&other.handle(&packet).await.unwrap()).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
        // Not a DNS message: nothing.
        assert_eq!(r.handle(b"GET / HTTP/1.1").await, None);
    }
}
