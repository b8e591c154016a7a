//! kube-dns-lite as a separate process against a real control plane: Service names (ClusterIP,
//! headless, SRV), answers that change with the Services, NXDOMAIN vs NODATA, TCP as well as
//! UDP, names outside the cluster forwarded upstream (here: a second kube-dns-lite serving
//! another domain), clients outside `--allow-cidr` refused, and the kube-dns Service with this
//! server's endpoint published and withdrawn on SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use api::core::Service;
use api::discovery::EndpointSlice;
use client::Api;
use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RData, RecordType};
use testkit::{ControlPlane, DEFAULT_TIMEOUT, free_port, wait_for};

fn query_bytes(name: &str, ty: RecordType) -> Vec<u8> {
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.queries
        .push(Query::query(Name::from_str(name).expect("name"), ty));
    m.to_vec().expect("encode")
}

/// One question over UDP; `None` if no (parsable) answer came within 2 s.
async fn ask(server: SocketAddr, name: &str, ty: RecordType) -> Option<Message> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.ok()?;
    sock.send_to(&query_bytes(name, ty), server).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    Message::from_vec(&buf[..n]).ok()
}

/// One question over TCP (two-byte length, then the message).
async fn ask_tcp(server: SocketAddr, name: &str, ty: RecordType) -> Option<Message> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(server).await.ok()?;
    let q = query_bytes(name, ty);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend(q);
    s.write_all(&framed).await.ok()?;
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.ok()?;
    Message::from_vec(&buf).ok()
}

fn addresses(m: &Message) -> Vec<Ipv4Addr> {
    let mut v: Vec<Ipv4Addr> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn svc(name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec
    }))
    .expect("service")
}

fn dns_args(port: u16, domain: &str, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "--listen".to_string(),
        format!("127.0.0.1:{port}"),
        "--cluster-domain".into(),
        domain.into(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_have_names() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");

    // The upstream: another server, for another domain.
    let up_port = free_port();
    let _upstream = cp.start_component(
        "kube-dns-lite",
        "dns-upstream",
        &dns_args(up_port, "example.test", &[]),
    );
    let port = free_port();
    let upstream = format!("127.0.0.1:{up_port}");
    let mut dns = cp.start_component(
        "kube-dns-lite",
        "kube-dns-lite",
        &dns_args(
            port,
            "cluster.local",
            &[
                "--upstream",
                &upstream,
                "--publish-cluster-ip",
                "10.96.0.10",
                "--advertise-address",
                "127.0.0.1",
            ],
        ),
    );
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");

    let blog = services
        .create(&svc(
            "blog",
            serde_json::json!({"ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                "selector": {"app": "blog"}}),
        ))
        .await
        .expect("create blog");
    let vip: Ipv4Addr = blog.spec.cluster_ip.parse().expect("cluster ip");
    let m = wait_for("blog's name", DEFAULT_TIMEOUT, || async {
        let m = ask(server, "blog.default.svc.cluster.local.", RecordType::A).await?;
        (!m.answers.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(addresses(&m), [vip]);
    assert!(m.metadata.authoritative);
    // Over TCP too, any case.
    let m = ask_tcp(server, "BLOG.default.svc.Cluster.Local.", RecordType::A)
        .await
        .expect("a TCP answer");
    assert_eq!(addresses(&m), [vip]);
    // AAAA: the name exists without such records (NODATA), so resolvers keep the A answer.
    let m = ask(server, "blog.default.svc.cluster.local.", RecordType::AAAA)
        .await
        .expect("answer");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    // SRV for the named port.
    let m = ask(
        server,
        "_http._tcp.blog.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await
    .expect("answer");
    match m.answers.first().map(|r| &r.data) {
        Some(RData::SRV(s)) => {
            assert_eq!(s.port, 80);
            assert_eq!(s.target.to_string(), "blog.default.svc.cluster.local.");
        }
        other => panic!("not an SRV answer: {other:?}"),
    }
    // A name that does not exist: NXDOMAIN with the zone's SOA.
    let m = ask(server, "nope.default.svc.cluster.local.", RecordType::A)
        .await
        .expect("answer");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // Headless: the ready endpoints' addresses.
    services
        .create(&svc(
            "db",
            serde_json::json!({"clusterIP": "None", "ports": [{"port": 5432}]}),
        ))
        .await
        .expect("create db");
    let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "db-1", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.1.7"], "conditions": {"ready": true}, "hostname": "db-0"},
            {"addresses": ["10.244.2.9"], "conditions": {"ready": false}}
        ],
        "ports": [{"port": 5432, "protocol": "TCP"}]
    }))
    .expect("slice");
    slices.create(&slice).await.expect("create slice");
    let m = wait_for("db's endpoints", DEFAULT_TIMEOUT, || async {
        let m = ask(server, "db.default.svc.cluster.local.", RecordType::A).await?;
        (!m.answers.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(addresses(&m), [Ipv4Addr::new(10, 244, 1, 7)]);
    let m = ask(server, "db-0.db.default.svc.cluster.local.", RecordType::A)
        .await
        .expect("answer");
    assert_eq!(addresses(&m), [Ipv4Addr::new(10, 244, 1, 7)]);

    // A deleted Service's name goes.
    services
        .delete("blog", &Default::default())
        .await
        .expect("delete");
    wait_for("blog's name gone", DEFAULT_TIMEOUT, || async {
        let m = ask(server, "blog.default.svc.cluster.local.", RecordType::A).await?;
        (m.metadata.response_code == ResponseCode::NXDomain).then_some(())
    })
    .await;

    // Outside the cluster domain: forwarded to the upstream, which knows example.test.
    let web = services
        .create(&svc(
            "web",
            serde_json::json!({"ports": [{"port": 8080}], "selector": {"app": "web"}}),
        ))
        .await
        .expect("create web");
    let m = wait_for("a forwarded answer", DEFAULT_TIMEOUT, || async {
        let m = ask(server, "web.default.svc.example.test.", RecordType::A).await?;
        (!m.answers.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(
        addresses(&m),
        [web.spec.cluster_ip.parse::<Ipv4Addr>().expect("ip")]
    );

    // A server told whom to answer refuses everyone else (no open resolver on a node's address).
    let strict_port = free_port();
    let _strict = cp.start_component(
        "kube-dns-lite",
        "dns-strict",
        &dns_args(
            strict_port,
            "cluster.local",
            &["--allow-cidr", "10.1.0.0/16"],
        ),
    );
    let strict: SocketAddr = format!("127.0.0.1:{strict_port}").parse().expect("addr");
    let m = wait_for(
        "an answer from the strict server",
        DEFAULT_TIMEOUT,
        || async { ask(strict, "web.default.svc.cluster.local.", RecordType::A).await },
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());

    // Published: kube-system/kube-dns with the ClusterIP kubelets are told, and this server's
    // address as its endpoint; withdrawn when the server stops.
    let sys_svcs: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    let sys_slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    let kube_dns = wait_for("the kube-dns Service", DEFAULT_TIMEOUT, || async {
        sys_svcs.get("kube-dns").await.ok()
    })
    .await;
    assert_eq!(kube_dns.spec.cluster_ip, "10.96.0.10");
    let mine = |l: Vec<EndpointSlice>| {
        l.into_iter().find(|s| {
            s.metadata
                .labels
                .get("endpointslice.kubernetes.io/managed-by")
                .map(String::as_str)
                == Some("kube-dns-lite")
        })
    };
    let published = wait_for("this server's endpoint", DEFAULT_TIMEOUT, || async {
        mine(sys_slices.list(&Default::default()).await.ok()?.items)
    })
    .await;
    assert_eq!(published.endpoints[0].addresses, ["127.0.0.1"]);
    assert_eq!(published.ports[0].port, Some(i32::from(port)));
    assert!(
        dns.stop_within(Duration::from_secs(20)),
        "kube-dns-lite did not stop"
    );
    let left = mine(
        sys_slices
            .list(&Default::default())
            .await
            .expect("list")
            .items,
    );
    assert!(left.is_none(), "the endpoint was not withdrawn: {left:?}");
}
