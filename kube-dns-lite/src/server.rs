//! The DNS front end, on hickory's server: each question is answered from the current
//! [`Records`] (authoritative for the cluster domain), and questions about other names are
//! forwarded to the upstream server (the host's resolver), as CoreDNS's `forward` plugin does.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Message, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, CNAME, SOA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::records::{Answer, Kind, Lookup, Records};

/// TTL of cluster records, in seconds (CoreDNS's `kubernetes` plugin default).
pub const TTL: u32 = 5;
/// How long an upstream server may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// Answers from the shared records; forwards the rest to `upstream`.
pub struct Handler {
    pub records: Arc<RwLock<Records>>,
    pub upstream: Option<SocketAddr>,
    /// Who may ask (empty: anyone). Others are REFUSED: a server that forwards must not be an
    /// open resolver for whoever reaches the node's address.
    pub allowed: Vec<api::net::Cidr>,
}

fn name(s: &str) -> Option<Name> {
    let mut n = Name::from_str(s).ok()?;
    n.set_fqdn(true);
    Some(n)
}

impl Handler {
    /// The zone's SOA, for negative answers (how long a resolver may cache "no such name").
    fn soa(&self, domain: &str) -> Option<Record> {
        let zone = name(domain)?;
        let soa = SOA::new(
            name(&format!("ns.dns.{domain}"))?,
            name(&format!("hostmaster.{domain}"))?,
            1,
            7200,
            1800,
            86400,
            TTL,
        );
        Some(Record::from_rdata(zone, TTL, RData::SOA(soa)))
    }

    /// Ask the upstream server `raw` (the client's own message) and return its reply.
    async fn forward(&self, raw: &[u8]) -> Result<Message, String> {
        let upstream = self.upstream.ok_or("no upstream server")?;
        let bind: SocketAddr = if upstream.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .map_err(|e| format!("{e}"))?;
        let sock = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| e.to_string())?;
        sock.connect(upstream).await.map_err(|e| e.to_string())?;
        sock.send(raw).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv(&mut buf))
            .await
            .map_err(|_| format!("{upstream} did not answer"))?
            .map_err(|e| e.to_string())?;
        Message::from_vec(buf.get(..n).unwrap_or_default()).map_err(|e| e.to_string())
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut meta = Metadata::response_from_request(&request.metadata);
        let allowed = self.allowed.is_empty()
            || match request.src().ip() {
                std::net::IpAddr::V4(ip) => self.allowed.iter().any(|c| c.contains(ip)),
                std::net::IpAddr::V6(ip) => ip.is_loopback(),
            };
        if !allowed {
            tracing::debug!(src = %request.src(), "query refused");
            meta.response_code = ResponseCode::Refused;
            return send(&mut response, builder.build_no_records(meta)).await;
        }
        let Some(query) = request.queries.queries().first() else {
            meta.response_code = ResponseCode::FormErr;
            return send(&mut response, builder.build_no_records(meta)).await;
        };
        let qname = query.name().to_string();
        let kind = match query.query_type() {
            RecordType::A => Kind::A,
            RecordType::SRV => Kind::Srv,
            _ => Kind::Other,
        };
        let (lookup, domain) = match self.records.read() {
            Ok(r) => (r.lookup(&qname, kind), r.domain().to_string()),
            Err(_) => (Lookup::NotOurs, String::new()),
        };
        tracing::debug!(name = %qname, qtype = %query.query_type(), answer = ?lookup, "query");
        match lookup {
            Lookup::NotOurs => match self.forward(request.as_slice()).await {
                Ok(reply) => {
                    meta.response_code = reply.metadata.response_code;
                    meta.recursion_available = reply.metadata.recursion_available;
                    let resp = builder.build(
                        meta,
                        reply.answers.iter(),
                        reply.authorities.iter(),
                        std::iter::empty(),
                        std::iter::empty(),
                    );
                    send(&mut response, resp).await
                }
                Err(e) => {
                    tracing::debug!(name = %qname, error = %e, "forwarding failed");
                    meta.response_code = ResponseCode::ServFail;
                    send(&mut response, builder.build_no_records(meta)).await
                }
            },
            Lookup::Answers(answers) => {
                meta.authoritative = true;
                let owner = query.original().name().clone();
                let records: Vec<Record> = answers
                    .iter()
                    .filter_map(|a| {
                        let rdata = match a {
                            Answer::A(ip) => RData::A(A(*ip)),
                            Answer::Srv { port, target } => {
                                RData::SRV(SRV::new(0, 100, *port, name(target)?))
                            }
                            Answer::Cname(target) => RData::CNAME(CNAME(name(target)?)),
                        };
                        Some(Record::from_rdata(owner.clone(), TTL, rdata))
                    })
                    .collect();
                let resp = builder.build(
                    meta,
                    records.iter(),
                    std::iter::empty(),
                    std::iter::empty(),
                    std::iter::empty(),
                );
                send(&mut response, resp).await
            }
            Lookup::NoData | Lookup::NxDomain => {
                meta.authoritative = true;
                if lookup == Lookup::NxDomain {
                    meta.response_code = ResponseCode::NXDomain;
                }
                let soa: Vec<Record> = self.soa(&domain).into_iter().collect();
                let resp = builder.build(
                    meta,
                    std::iter::empty(),
                    std::iter::empty(),
                    soa.iter(),
                    std::iter::empty(),
                );
                send(&mut response, resp).await
            }
        }
    }
}

async fn send<'a, R: ResponseHandler>(
    response: &mut R,
    msg: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> ResponseInfo {
    let meta = *msg.metadata();
    match response.send_response(msg).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "cannot send a DNS response");
            let mut m = meta;
            m.response_code = ResponseCode::ServFail;
            hickory_server::proto::op::Header {
                metadata: m,
                counts: Default::default(),
            }
            .into()
        }
    }
}
