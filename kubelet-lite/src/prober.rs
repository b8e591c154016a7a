//! Container probes, as the kubelet's `prober` runs them: startup, liveness and readiness, each
//! an exec, httpGet or tcpSocket check on its own period with failure and success thresholds.
//!
//! [`Probes`] is one container's probe state; the pod worker asks it what is due
//! ([`Probes::next_due`]), runs the checks ([`check`]) and feeds the results back
//! ([`Probes::record`]), which says what follows: nothing, a readiness change, or a restart.
//! Until the startup probe succeeds the others do not run; without a readiness probe a started
//! container is ready; liveness starts out healthy.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use api::core::{Container, ContainerPort, Probe};
use api::meta::IntOrString;

use crate::runtime::{ExecTarget, Runtime};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    /// As Kubernetes words it in events: "Liveness probe failed: …".
    pub fn title(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// What a probe's result leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    /// Readiness changed to this.
    Ready(bool),
    /// The container failed its liveness or startup probe: kill it (and restart per policy).
    Restart,
}

struct ProbeState {
    kind: Kind,
    probe: Probe,
    next_at: Instant,
    successes: i32,
    failures: i32,
}

impl ProbeState {
    fn new(kind: Kind, probe: &Probe, started: Instant) -> Self {
        ProbeState {
            kind,
            probe: probe.clone(),
            next_at: started + secs(probe.initial_delay_seconds, 0),
            successes: 0,
            failures: 0,
        }
    }

    fn period(&self) -> Duration {
        secs(self.probe.period_seconds, 10)
    }

    fn success_threshold(&self) -> i32 {
        positive(self.probe.success_threshold, 1)
    }

    fn failure_threshold(&self) -> i32 {
        positive(self.probe.failure_threshold, 3)
    }
}

fn positive(v: i32, default: i32) -> i32 {
    if v > 0 { v } else { default }
}

fn secs(v: i32, default: i32) -> Duration {
    Duration::from_secs(if v > 0 { v } else { default }.max(0) as u64)
}

/// One running container's probes.
pub struct Probes {
    probes: Vec<ProbeState>,
    started: bool,
    ready: bool,
}

impl Probes {
    /// The probes of `spec`, for a container that started at `started`.
    pub fn new(spec: &Container, started: Instant) -> Probes {
        let mut probes = Vec::new();
        for (kind, p) in [
            (Kind::Startup, &spec.startup_probe),
            (Kind::Liveness, &spec.liveness_probe),
            (Kind::Readiness, &spec.readiness_probe),
        ] {
            if let Some(p) = p {
                probes.push(ProbeState::new(kind, p, started));
            }
        }
        let has = |k| probes.iter().any(|p: &ProbeState| p.kind == k);
        let started = !has(Kind::Startup);
        let ready = started && !has(Kind::Readiness);
        Probes {
            probes,
            started,
            ready,
        }
    }

    pub fn started(&self) -> bool {
        self.started
    }

    pub fn ready(&self) -> bool {
        self.ready
    }

    /// The container is being killed (it failed its liveness or startup probe): it is no
    /// longer ready, and no probe of it runs any more.
    pub fn stop(&mut self) {
        self.ready = false;
        self.probes.clear();
    }

    fn active(&self, kind: Kind) -> bool {
        match kind {
            Kind::Startup => !self.started,
            Kind::Liveness | Kind::Readiness => self.started,
        }
    }

    /// The probes due at `now`, in the order they should run.
    pub fn due(&self, now: Instant) -> Vec<(Kind, Probe)> {
        self.probes
            .iter()
            .filter(|p| self.active(p.kind) && p.next_at <= now)
            .map(|p| (p.kind, p.probe.clone()))
            .collect()
    }

    /// When the next probe is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.probes
            .iter()
            .filter(|p| self.active(p.kind))
            .map(|p| p.next_at)
            .min()
    }

    /// Count a result of `kind`'s probe, taken at `now`.
    pub fn record(&mut self, kind: Kind, ok: bool, now: Instant) -> Action {
        let Some(p) = self.probes.iter_mut().find(|p| p.kind == kind) else {
            return Action::None;
        };
        p.next_at = now + p.period();
        if ok {
            p.successes += 1;
            p.failures = 0;
        } else {
            p.failures += 1;
            p.successes = 0;
        }
        let (passed, failed) = (
            p.successes >= p.success_threshold(),
            p.failures >= p.failure_threshold(),
        );
        match kind {
            Kind::Startup if passed => {
                self.started = true;
                // The others start now (or after their own initial delay, counted from the
                // container's start, whichever is later).
                for q in &mut self.probes {
                    if q.kind != Kind::Startup {
                        q.next_at = q.next_at.max(now);
                    }
                }
                if !self.probes.iter().any(|q| q.kind == Kind::Readiness) {
                    self.ready = true;
                    return Action::Ready(true);
                }
                Action::None
            }
            Kind::Startup | Kind::Liveness if failed => {
                p.failures = 0;
                Action::Restart
            }
            Kind::Readiness if passed && !self.ready => {
                self.ready = true;
                Action::Ready(true)
            }
            Kind::Readiness if failed && self.ready => {
                self.ready = false;
                Action::Ready(false)
            }
            _ => Action::None,
        }
    }
}

/// Where and how a probe runs: the pod's IP, the container's ports, environment and directory.
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// The runtime's id of the container (exec probes run in it).
    pub container_id: String,
    pub pod_ip: String,
    pub ports: Vec<ContainerPort>,
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
}

fn http() -> &'static reqwest::Client {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::limited(10))
            .user_agent("kube-probe/1.37")
            .build()
            .unwrap_or_default()
    })
}

fn port(p: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    let n = match p {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => ports
                .iter()
                .find(|cp| cp.name == *name)
                .map(|cp| cp.container_port)
                .ok_or_else(|| format!("unable to find port {name:?} in the container's ports"))?,
        },
    };
    u16::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid port {n}"))
}

/// Run one check; exec probes run in the container through `runtime`. `Err` carries the
/// failure as Kubernetes words it (the event's message).
pub async fn check(probe: &Probe, t: &Target, runtime: &dyn Runtime) -> Result<(), String> {
    let timeout = secs(probe.timeout_seconds, 1);
    if let Some(exec) = &probe.exec {
        if exec.command.is_empty() {
            return Err("exec probe has no command".into());
        }
        let target = ExecTarget {
            container_id: t.container_id.clone(),
            env: t.env.clone(),
            working_dir: t.working_dir.clone(),
            ..Default::default()
        };
        let out = runtime.exec_sync(&target, &exec.command, timeout).await?;
        if out.exit_code == 0 {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let text = text.trim();
        return Err(if text.is_empty() {
            format!("command {:?} exited with {}", exec.command, out.exit_code)
        } else {
            text.to_string()
        });
    }
    if let Some(h) = &probe.http_get {
        let port = port(&h.port, &t.ports)?;
        let host = if h.host.is_empty() {
            &t.pod_ip
        } else {
            &h.host
        };
        let scheme = if h.scheme.eq_ignore_ascii_case("https") {
            "https"
        } else {
            "http"
        };
        let path = if h.path.starts_with('/') {
            h.path.clone()
        } else {
            format!("/{}", h.path)
        };
        let url = format!("{scheme}://{host}:{port}{path}");
        let mut req = http().get(&url).timeout(timeout);
        for hd in &h.http_headers {
            req = req.header(hd.name.as_str(), hd.value.as_str());
        }
        return match req.send().await {
            Ok(r) if (200..400).contains(&r.status().as_u16()) => Ok(()),
            Ok(r) => Err(format!(
                "HTTP probe failed with statuscode: {}",
                r.status().as_u16()
            )),
            Err(e) if e.is_timeout() => Err(format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )),
            Err(e) if e.is_connect() => Err(format!(
                "Get \"{url}\": dial tcp {host}:{port}: connect: {}",
                go_error(&root_cause(&e))
            )),
            Err(e) => Err(format!("Get \"{url}\": {}", go_error(&root_cause(&e)))),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = port(&tcp.port, &t.ports)?;
        let host = if tcp.host.is_empty() {
            &t.pod_ip
        } else {
            &tcp.host
        };
        let addr = format!("{host}:{port}");
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "dial tcp {addr}: connect: {}",
                go_error(&e.to_string())
            )),
            Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
        };
    }
    if probe.grpc.is_some() {
        return Err("grpc probes are not supported by kube-lite".into());
    }
    Err("probe has no handler (exec, httpGet or tcpSocket)".into())
}

/// An OS error as Go prints it: "connection refused", not "Connection refused (os error 111)".
fn go_error(msg: &str) -> String {
    let msg = msg.split(" (os error").next().unwrap_or(msg);
    let mut c = msg.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(json: serde_json::Value) -> Container {
        serde_json::from_value(json).expect("container")
    }

    #[test]
    fn without_probes_a_container_is_started_and_ready() {
        let c = container(serde_json::json!({"name": "c"}));
        let p = Probes::new(&c, Instant::now());
        assert!(p.started() && p.ready());
        assert_eq!(p.next_due(), None);
    }

    #[test]
    fn readiness_needs_its_success_threshold_and_falls_after_failures() {
        let c = container(serde_json::json!({"name": "c", "readinessProbe": {
            "tcpSocket": {"port": 80}, "initialDelaySeconds": 5, "periodSeconds": 2,
            "successThreshold": 2, "failureThreshold": 2}}));
        let t0 = Instant::now();
        let mut p = Probes::new(&c, t0);
        assert!(p.started() && !p.ready());
        assert!(p.due(t0).is_empty(), "nothing before the initial delay");
        assert_eq!(p.next_due(), Some(t0 + Duration::from_secs(5)));
        let t = t0 + Duration::from_secs(5);
        assert_eq!(p.due(t).len(), 1);
        assert_eq!(p.record(Kind::Readiness, true, t), Action::None);
        assert_eq!(p.next_due(), Some(t + Duration::from_secs(2)));
        assert_eq!(p.record(Kind::Readiness, true, t), Action::Ready(true));
        assert_eq!(p.record(Kind::Readiness, false, t), Action::None);
        assert_eq!(p.record(Kind::Readiness, false, t), Action::Ready(false));
        assert!(!p.ready());
    }

    #[test]
    fn startup_gates_liveness_and_failures_restart() {
        let c = container(serde_json::json!({"name": "c",
            "startupProbe": {"exec": {"command": ["true"]}, "failureThreshold": 2, "periodSeconds": 1},
            "livenessProbe": {"exec": {"command": ["true"]}, "failureThreshold": 1}}));
        let t0 = Instant::now();
        let mut p = Probes::new(&c, t0);
        assert!(!p.started() && !p.ready());
        let due: Vec<Kind> = p.due(t0).into_iter().map(|(k, _)| k).collect();
        assert_eq!(due, [Kind::Startup], "liveness waits for startup");
        assert_eq!(p.record(Kind::Startup, false, t0), Action::None);
        assert_eq!(p.record(Kind::Startup, false, t0), Action::Restart);
        assert_eq!(p.record(Kind::Startup, true, t0), Action::Ready(true));
        assert!(p.started() && p.ready());
        let due: Vec<Kind> = p.due(t0).into_iter().map(|(k, _)| k).collect();
        assert_eq!(due, [Kind::Liveness]);
        assert_eq!(p.record(Kind::Liveness, false, t0), Action::Restart);
        // Being killed: not ready, and nothing more to probe.
        p.stop();
        assert!(!p.ready());
        assert_eq!(p.next_due(), None);
    }

    #[test]
    fn named_ports_resolve_from_the_container() {
        let ports = vec![ContainerPort {
            name: "http".into(),
            container_port: 8080,
            ..Default::default()
        }];
        assert_eq!(port(&IntOrString::String("http".into()), &ports), Ok(8080));
        assert_eq!(port(&IntOrString::Int(81), &ports), Ok(81));
        assert!(port(&IntOrString::String("nope".into()), &ports).is_err());
    }

    #[tokio::test]
    async fn checks_report_like_kubernetes() {
        let t = Target {
            pod_ip: "127.0.0.1".into(),
            working_dir: std::env::temp_dir(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            ..Default::default()
        };
        let probe = |v: serde_json::Value| -> Probe { serde_json::from_value(v).expect("probe") };
        let rt = crate::runtime::fake::FakeRuntime::default();
        assert_eq!(
            check(
                &probe(serde_json::json!({"exec": {"command": ["true"]}})),
                &t,
                &rt
            )
            .await,
            Ok(())
        );
        let e = check(
            &probe(serde_json::json!({"exec": {"command": ["sh", "-c", "echo not yet; exit 1"]}})),
            &t,
            &rt,
        )
        .await;
        assert_eq!(e, Err("not yet".into()));
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let open = free.local_addr().expect("addr").port();
        assert_eq!(
            check(
                &probe(serde_json::json!({"tcpSocket": {"port": open}})),
                &t,
                &rt
            )
            .await,
            Ok(())
        );
        drop(free);
        // Port 1 (tcpmux) is never served here; a just-freed port could be taken by another test.
        let e = check(
            &probe(serde_json::json!({"tcpSocket": {"port": 1}})),
            &t,
            &rt,
        )
        .await;
        assert_eq!(
            e,
            Err("dial tcp 127.0.0.1:1: connect: connection refused".into())
        );
    }
}
