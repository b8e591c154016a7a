//! `kvstore`: run one member of the store, with etcd's flags; `kvstore ctl …` is the
//! etcdctl-like client (see [`ctl`]).

mod ctl;

use std::net::{TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use url::Url;

/// mimalloc instead of glibc's malloc: a group-commit batch is a large allocation (hundreds of
/// KiB at 256 clients) that glibc serves with fresh `mmap`ed pages, so the log writer spent ~10%
/// of all CPU in page faults zeroing them (`perf`, 2026-12-05); mimalloc reuses its pages.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Run a kvstore member: a Raft-replicated key-value store with etcd v3 semantics.
#[derive(Parser, Debug)]
#[command(name = "kvstore", version)]
struct Cli {
    /// This member's name.
    #[arg(long, default_value = "default")]
    name: String,
    /// Where the member keeps its data [default: <name>.kvstore].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The URL to serve clients on (one http://host:port).
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    listen_client_urls: String,
    /// The URL to serve other members on (one http://host:port).
    #[arg(long, default_value = "http://127.0.0.1:2380")]
    listen_peer_urls: String,
    /// The client URL to tell others about [default: the listen URL, with its bound port].
    #[arg(long)]
    advertise_client_urls: Option<String>,
    /// The peer URL to tell others about [default: the listen URL, with its bound port].
    #[arg(long)]
    initial_advertise_peer_urls: Option<String>,
    /// Every initial member: name=peer-url,... [default: <name>=<advertised peer URL>].
    #[arg(long)]
    initial_cluster: Option<String>,
    /// `new` to bootstrap a new cluster; `existing` to join a running one (after
    /// `kvstore ctl member add`).
    #[arg(long, default_value = "new", value_parser = ["new", "existing"])]
    initial_cluster_state: String,
}

fn main() -> ExitCode {
    let mut args = std::env::args();
    if args.nth(1).as_deref() == Some("ctl") {
        return ctl::main(args.collect());
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help or --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("kvstore: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match serve(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvstore: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(cli: Cli) -> anyhow::Result<()> {
    let options = kvstore::Options {
        initial_cluster_state: if cli.initial_cluster_state == "existing" {
            kvstore::ClusterState::Existing
        } else {
            kvstore::ClusterState::New
        },
    };
    let config = config(cli)?;
    // One thread for all tasks: a write hops between many tasks (HTTP, proposer, Raft core,
    // replication, apply), and on one thread each hop is a queue push instead of waking another
    // worker. Waits for the disk have their own threads (the log writer's fsync; snapshots and
    // scans on the blocking pool); applying an entry, which changes only memory, runs inline.
    // Measured with `bench kvstore`, alternating runs: ~10-15% more puts and gets per second
    // and a lower single-client put latency than the default multi-thread runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let token = CancellationToken::new();
        let signals = token.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::error!("cannot install signal handlers");
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
            signals.cancel();
        });
        kvstore::run_with(config, options, token).await
    })
}

fn config(cli: Cli) -> anyhow::Result<kvstore::Config> {
    // Every flag is checked before anything is bound.
    let client_url = one_url("--listen-client-urls", &cli.listen_client_urls)?;
    let peer_url = one_url("--listen-peer-urls", &cli.listen_peer_urls)?;
    let advertise_client = cli
        .advertise_client_urls
        .as_deref()
        .map(|l| first_url("--advertise-client-urls", l))
        .transpose()?;
    let advertise_peer = cli
        .initial_advertise_peer_urls
        .as_deref()
        .map(|l| first_url("--initial-advertise-peer-urls", l))
        .transpose()?;
    let cluster = cli
        .initial_cluster
        .as_deref()
        .map(parse_cluster)
        .transpose()?;

    let client_listener = bind(&client_url)?;
    let peer_listener = bind(&peer_url)?;
    let advertise_client_url = match advertise_client {
        Some(u) => u,
        None => bound_url("--advertise-client-urls", &client_url, &client_listener)?,
    };
    let advertise_peer_url = match advertise_peer {
        Some(u) => u,
        None => bound_url("--initial-advertise-peer-urls", &peer_url, &peer_listener)?,
    };
    let initial_cluster =
        cluster.unwrap_or_else(|| vec![(cli.name.clone(), advertise_peer_url.clone())]);
    Ok(kvstore::Config {
        data_dir: cli
            .data_dir
            .unwrap_or_else(|| PathBuf::from(format!("{}.kvstore", cli.name))),
        name: cli.name,
        client_listener,
        peer_listener,
        advertise_client_url,
        advertise_peer_url,
        initial_cluster,
    })
}

/// An `http://host:port` URL, with nothing after the authority.
fn parse_url(flag: &str, s: &str) -> anyhow::Result<Url> {
    let u = Url::parse(s.trim()).with_context(|| format!("{flag}: invalid URL {s:?}"))?;
    if u.scheme() != "http" {
        bail!("{flag}: {s:?}: only http:// URLs are supported");
    }
    if u.host_str().is_none_or(str::is_empty) {
        bail!("{flag}: {s:?} has no host");
    }
    if u.port().is_none() {
        bail!("{flag}: {s:?} has no port");
    }
    if !(u.path().is_empty() || u.path() == "/") || u.query().is_some() {
        bail!("{flag}: {s:?} must not have a path or query");
    }
    Ok(u)
}

fn one_url(flag: &str, list: &str) -> anyhow::Result<Url> {
    let urls: Vec<&str> = list.split(',').filter(|s| !s.trim().is_empty()).collect();
    match urls.as_slice() {
        [one] => parse_url(flag, one),
        [] => bail!("{flag}: no URL given"),
        _ => bail!("{flag}: only one URL is supported, got {}", urls.len()),
    }
}

fn first_url(flag: &str, list: &str) -> anyhow::Result<String> {
    let mut first = None;
    for s in list.split(',').filter(|s| !s.trim().is_empty()) {
        let u = parse_url(flag, s)?;
        first.get_or_insert(origin(&u));
    }
    first.with_context(|| format!("{flag}: no URL given"))
}

fn origin(u: &Url) -> String {
    format!(
        "http://{}:{}",
        u.host_str().unwrap_or_default(),
        u.port().unwrap_or_default()
    )
}

fn bind(u: &Url) -> anyhow::Result<TcpListener> {
    let host = u.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = u.port().unwrap_or_default();
    let addr = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {u}"))?
        .next()
        .with_context(|| format!("{u} resolves to no address"))?;
    TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))
}

/// The listen URL as others should use it: with the port actually bound.
fn bound_url(flag: &str, u: &Url, l: &TcpListener) -> anyhow::Result<String> {
    let addr = l.local_addr()?;
    if addr.ip().is_unspecified() {
        bail!("{flag} is required when listening on {}", addr.ip());
    }
    Ok(format!(
        "http://{}:{}",
        u.host_str().unwrap_or_default(),
        addr.port()
    ))
}

fn parse_cluster(spec: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in spec.split(',').filter(|s| !s.trim().is_empty()) {
        let Some((name, url)) = part.split_once('=') else {
            bail!("--initial-cluster: {part:?} is not name=url");
        };
        let name = name.trim();
        if name.is_empty() {
            bail!("--initial-cluster: {part:?} has no member name");
        }
        let u = parse_url("--initial-cluster", url)?;
        out.push((name.to_string(), origin(&u)));
    }
    if out.is_empty() {
        bail!("--initial-cluster: no members given");
    }
    Ok(out)
}
