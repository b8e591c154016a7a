//! The cluster's names, as the Kubernetes DNS specification defines them (what CoreDNS's
//! `kubernetes` plugin serves), computed from Services and EndpointSlices. Pure: no sockets, no
//! API calls; [`Records::lookup`] is what the server asks.
//!
//! - `<service>.<namespace>.svc.<domain>` A: the ClusterIP; for a headless Service
//!   (`clusterIP: None`), the addresses of its ready endpoints.
//! - `<hostname>.<service>.<namespace>.svc.<domain>` A: a headless Service's endpoint that has a
//!   hostname (a StatefulSet's pods).
//! - `_<port>._<protocol>.<service>.<namespace>.svc.<domain>` SRV: each named port.
//! - `<service>.<namespace>.svc.<domain>` CNAME for an `ExternalName` Service.
//! - `<a-b-c-d>.<namespace>.pod.<domain>` A: `a.b.c.d` (pod names by address).
//!
//! Other names under the domain do not exist (NXDOMAIN); names outside it are not ours (the
//! server forwards them). A name that exists but has no record of the asked type is NODATA
//! (an empty answer, not NXDOMAIN — resolvers ask for AAAA next to A and must not give up).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use api::core::Service;
use api::discovery::{EndpointSlice, LABEL_SERVICE_NAME};

/// What a question asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    A,
    Srv,
    /// Anything else (AAAA, TXT, …): cluster names have none.
    Other,
}

/// One answer record (the server adds the name's class and TTL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    A(Ipv4Addr),
    /// `priority weight port target` (target a fully qualified name).
    Srv {
        port: u16,
        target: String,
    },
    Cname(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Answers(Vec<Answer>),
    /// The name exists, with no record of this type.
    NoData,
    /// The name is in the cluster domain and does not exist.
    NxDomain,
    /// The name is outside the cluster domain.
    NotOurs,
}

/// One Service's names.
#[derive(Clone, Debug, Default)]
struct Entry {
    cluster_ip: Option<Ipv4Addr>,
    headless: bool,
    external_name: Option<String>,
    /// Ready endpoint addresses (headless Services), sorted, no duplicates.
    endpoints: Vec<Ipv4Addr>,
    /// Endpoint hostnames → addresses (headless Services).
    hostnames: BTreeMap<String, Vec<Ipv4Addr>>,
    /// `(port name, protocol lower-case, port)` of named ports.
    ports: Vec<(String, String, u16)>,
}

/// Every cluster name, by `(namespace, service)`.
#[derive(Clone, Debug, Default)]
pub struct Records {
    domain: String,
    services: BTreeMap<(String, String), Entry>,
}

fn ipv4(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

impl Records {
    /// The names of `services`, with the endpoints of `slices`, under `domain` (e.g.
    /// `cluster.local`).
    pub fn build(domain: &str, services: &[&Service], slices: &[&EndpointSlice]) -> Records {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut map: BTreeMap<(String, String), Entry> = BTreeMap::new();
        for svc in services {
            let spec = &svc.spec;
            let headless = spec.cluster_ip == "None";
            let external_name = (spec.type_ == "ExternalName" && !spec.external_name.is_empty())
                .then(|| {
                    spec.external_name
                        .trim_end_matches('.')
                        .to_ascii_lowercase()
                });
            let ports = spec
                .ports
                .iter()
                .filter(|p| !p.name.is_empty())
                .filter_map(|p| {
                    let proto = if p.protocol.is_empty() {
                        "tcp".to_string()
                    } else {
                        p.protocol.to_ascii_lowercase()
                    };
                    Some((
                        p.name.to_ascii_lowercase(),
                        proto,
                        u16::try_from(p.port).ok()?,
                    ))
                })
                .collect();
            map.insert(
                (svc.metadata.namespace.clone(), svc.metadata.name.clone()),
                Entry {
                    cluster_ip: ipv4(&spec.cluster_ip),
                    headless,
                    external_name,
                    ports,
                    ..Entry::default()
                },
            );
        }
        for slice in slices {
            let Some(svc) = slice.metadata.labels.get(LABEL_SERVICE_NAME) else {
                continue;
            };
            let Some(e) = map.get_mut(&(slice.metadata.namespace.clone(), svc.clone())) else {
                continue;
            };
            if !e.headless {
                continue;
            }
            for ep in &slice.endpoints {
                // As CoreDNS: ready endpoints only (publishNotReadyAddresses aside).
                if ep.conditions.ready == Some(false) {
                    continue;
                }
                for a in ep.addresses.iter().filter_map(|a| ipv4(a)) {
                    e.endpoints.push(a);
                    if let Some(h) = ep.hostname.as_deref().filter(|h| !h.is_empty()) {
                        e.hostnames
                            .entry(h.to_ascii_lowercase())
                            .or_default()
                            .push(a);
                    }
                }
            }
        }
        for e in map.values_mut() {
            e.endpoints.sort();
            e.endpoints.dedup();
        }
        Records {
            domain,
            services: map,
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// How many Services have names.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// The answer to `name` (with or without the final dot, any case) for `kind`.
    pub fn lookup(&self, name: &str, kind: Kind) -> Lookup {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let Some(rest) = name.strip_suffix(self.domain.as_str()).and_then(|r| {
            if r.is_empty() {
                Some(r)
            } else {
                r.strip_suffix('.')
            }
        }) else {
            return Lookup::NotOurs;
        };
        // Labels from the left, without the domain: e.g. ["web", "default", "svc"].
        let labels: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('.').collect()
        };
        match labels.as_slice() {
            // The domain itself, `svc.<domain>`, `pod.<domain>`, `<ns>.svc.<domain>`: names
            // that exist (they have names below them) without records.
            [] | ["svc"] | ["pod"] | [_, "svc"] | [_, "pod"] => Lookup::NoData,
            [ip, _ns, "pod"] => match ip.replace('-', ".").parse::<Ipv4Addr>() {
                Ok(a) if kind == Kind::A => Lookup::Answers(vec![Answer::A(a)]),
                Ok(_) => Lookup::NoData,
                Err(_) => Lookup::NxDomain,
            },
            [svc, ns, "svc"] => self.service(ns, svc, kind),
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                self.srv(ns, svc, &port[1..], &proto[1..], kind)
            }
            [host, svc, ns, "svc"] => {
                let Some(e) = self.services.get(&(ns.to_string(), svc.to_string())) else {
                    return Lookup::NxDomain;
                };
                match e.hostnames.get(*host) {
                    Some(addrs) if kind == Kind::A => {
                        Lookup::Answers(addrs.iter().map(|a| Answer::A(*a)).collect())
                    }
                    Some(_) => Lookup::NoData,
                    None => Lookup::NxDomain,
                }
            }
            _ => Lookup::NxDomain,
        }
    }

    fn service(&self, ns: &str, svc: &str, kind: Kind) -> Lookup {
        let Some(e) = self.services.get(&(ns.to_string(), svc.to_string())) else {
            return Lookup::NxDomain;
        };
        if let Some(target) = &e.external_name {
            // A CNAME answers every type; the resolver follows it.
            return Lookup::Answers(vec![Answer::Cname(target.clone())]);
        }
        let fqdn = format!("{svc}.{ns}.svc.{}", self.domain);
        match kind {
            Kind::A if e.headless => {
                if e.endpoints.is_empty() {
                    Lookup::NoData
                } else {
                    Lookup::Answers(e.endpoints.iter().map(|a| Answer::A(*a)).collect())
                }
            }
            Kind::A => match e.cluster_ip {
                Some(ip) => Lookup::Answers(vec![Answer::A(ip)]),
                None => Lookup::NoData,
            },
            Kind::Srv if !e.ports.is_empty() => Lookup::Answers(
                e.ports
                    .iter()
                    .map(|(_, _, port)| Answer::Srv {
                        port: *port,
                        target: fqdn.clone(),
                    })
                    .collect(),
            ),
            _ => Lookup::NoData,
        }
    }

    fn srv(&self, ns: &str, svc: &str, port: &str, proto: &str, kind: Kind) -> Lookup {
        let Some(e) = self.services.get(&(ns.to_string(), svc.to_string())) else {
            return Lookup::NxDomain;
        };
        let Some((_, _, p)) = e
            .ports
            .iter()
            .find(|(name, pr, _)| name == port && pr == proto)
        else {
            return Lookup::NxDomain;
        };
        if kind != Kind::Srv {
            return Lookup::NoData;
        }
        Lookup::Answers(vec![Answer::Srv {
            port: *p,
            target: format!("{svc}.{ns}.svc.{}", self.domain),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ns: &str, name: &str, spec: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": name}, "spec": spec
        }))
        .expect("service")
    }

    fn slice(ns: &str, svc: &str, eps: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": format!("{svc}-abcde"),
                "labels": {LABEL_SERVICE_NAME: svc}},
            "addressType": "IPv4", "endpoints": eps
        }))
        .expect("slice")
    }

    fn records() -> Records {
        let blog = svc(
            "default",
            "blog",
            serde_json::json!({"clusterIP": "10.96.0.20",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
        );
        let db = svc(
            "shop",
            "db",
            serde_json::json!({"clusterIP": "None", "ports": [{"port": 5432}]}),
        );
        let ext = svc(
            "default",
            "search",
            serde_json::json!({"type": "ExternalName", "externalName": "example.com"}),
        );
        let db_eps = slice(
            "shop",
            "db",
            serde_json::json!([
                {"addresses": ["10.244.1.7"], "conditions": {"ready": true}, "hostname": "db-0"},
                {"addresses": ["10.244.2.9"], "conditions": {"ready": false}, "hostname": "db-1"},
                {"addresses": ["10.244.0.3"], "conditions": {}}
            ]),
        );
        Records::build("cluster.local", &[&blog, &db, &ext], &[&db_eps])
    }

    fn a(s: &str) -> Answer {
        Answer::A(s.parse().unwrap())
    }

    #[test]
    fn a_service_name_is_its_cluster_ip() {
        let r = records();
        let want = Lookup::Answers(vec![a("10.96.0.20")]);
        assert_eq!(r.lookup("blog.default.svc.cluster.local.", Kind::A), want);
        assert_eq!(r.lookup("Blog.Default.SVC.cluster.local", Kind::A), want);
        // AAAA for a name that exists: no data, never NXDOMAIN.
        assert_eq!(
            r.lookup("blog.default.svc.cluster.local", Kind::Other),
            Lookup::NoData
        );
        assert_eq!(
            r.lookup("blog.other.svc.cluster.local", Kind::A),
            Lookup::NxDomain
        );
        assert_eq!(
            r.lookup("nope.default.svc.cluster.local", Kind::Other),
            Lookup::NxDomain
        );
    }

    #[test]
    fn a_headless_service_is_its_ready_endpoints() {
        let r = records();
        assert_eq!(
            r.lookup("db.shop.svc.cluster.local", Kind::A),
            Lookup::Answers(vec![a("10.244.0.3"), a("10.244.1.7")])
        );
        assert_eq!(
            r.lookup("db-0.db.shop.svc.cluster.local", Kind::A),
            Lookup::Answers(vec![a("10.244.1.7")])
        );
        // Not ready: not published.
        assert_eq!(
            r.lookup("db-1.db.shop.svc.cluster.local", Kind::A),
            Lookup::NxDomain
        );
    }

    #[test]
    fn named_ports_have_srv_records() {
        let r = records();
        let want = Lookup::Answers(vec![Answer::Srv {
            port: 80,
            target: "blog.default.svc.cluster.local".into(),
        }]);
        assert_eq!(
            r.lookup("_http._tcp.blog.default.svc.cluster.local", Kind::Srv),
            want
        );
        assert_eq!(r.lookup("blog.default.svc.cluster.local", Kind::Srv), want);
        assert_eq!(
            r.lookup("_http._udp.blog.default.svc.cluster.local", Kind::Srv),
            Lookup::NxDomain
        );
    }

    #[test]
    fn pods_by_address_external_names_and_names_that_are_not_ours() {
        let r = records();
        assert_eq!(
            r.lookup("10-244-1-7.shop.pod.cluster.local", Kind::A),
            Lookup::Answers(vec![a("10.244.1.7")])
        );
        assert_eq!(
            r.lookup("x-y.shop.pod.cluster.local", Kind::A),
            Lookup::NxDomain
        );
        assert_eq!(
            r.lookup("search.default.svc.cluster.local", Kind::A),
            Lookup::Answers(vec![Answer::Cname("example.com".into())])
        );
        assert_eq!(r.lookup("example.com", Kind::A), Lookup::NotOurs);
        assert_eq!(r.lookup("notcluster.local", Kind::A), Lookup::NotOurs);
        assert_eq!(r.lookup("cluster.local", Kind::A), Lookup::NoData);
        assert_eq!(
            r.lookup("default.svc.cluster.local", Kind::A),
            Lookup::NoData
        );
        assert_eq!(
            r.lookup("a.b.c.d.e.f.cluster.local", Kind::A),
            Lookup::NxDomain
        );
    }
}
