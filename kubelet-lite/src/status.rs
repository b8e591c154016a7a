//! Pod status as the kubelet computes it, from what the worker knows of each container: the
//! phase (Kubernetes' `getPhase`), container statuses, and the conditions, whose
//! `lastTransitionTime` only moves when their status does. Pure, for unit tests; plus
//! [`merge_patch`], the smallest JSON merge patch from the stored status to the new one, so the
//! worker writes only what changed.

use api::core::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodIp, PodStatus,
};
use api::meta::Time;
use serde_json::{Map, Value};

/// What a container is doing now, as the worker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Current {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: Time,
        id: String,
    },
    /// Exited and not (yet) restarted: its state is the last termination.
    Exited,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    /// `imageID` as the runtime resolved it; empty: `kube-lite://<image>` (process runtime).
    pub image_id: String,
    pub restart_count: i32,
    pub current: Current,
    /// The latest termination.
    pub last_term: Option<ContainerStateTerminated>,
    /// The termination before that (the `lastState` of an exited container).
    pub prev_term: Option<ContainerStateTerminated>,
    /// Its probes say so (no readiness probe: ready once started); meaningful while running.
    pub ready: bool,
    /// Its startup probe passed (no startup probe: started once running).
    pub started: bool,
}

impl ContainerView {
    pub fn waiting(name: &str, image: &str, reason: &str, message: &str) -> Self {
        ContainerView {
            name: name.into(),
            image: image.into(),
            image_id: String::new(),
            restart_count: 0,
            current: Current::Waiting {
                reason: reason.into(),
                message: message.into(),
            },
            last_term: None,
            prev_term: None,
            ready: false,
            started: false,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.current, Current::Running { .. })
    }

    pub fn to_status(&self) -> ContainerStatus {
        let term = |t: &Option<ContainerStateTerminated>| ContainerState {
            terminated: t.clone(),
            ..Default::default()
        };
        let (state, last_state, container_id) = match &self.current {
            Current::Waiting { reason, message } => (
                ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: reason.clone(),
                        message: message.clone(),
                    }),
                    ..Default::default()
                },
                term(&self.last_term),
                self.last_term
                    .as_ref()
                    .map(|t| t.container_id.clone())
                    .unwrap_or_default(),
            ),
            Current::Running { started_at, id } => (
                ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(*started_at),
                    }),
                    ..Default::default()
                },
                term(&self.last_term),
                id.clone(),
            ),
            Current::Exited => (
                term(&self.last_term),
                term(&self.prev_term),
                self.last_term
                    .as_ref()
                    .map(|t| t.container_id.clone())
                    .unwrap_or_default(),
            ),
        };
        let running = self.is_running();
        ContainerStatus {
            name: self.name.clone(),
            state,
            last_state,
            ready: running && self.ready,
            restart_count: self.restart_count,
            image: self.image.clone(),
            image_id: if self.image_id.is_empty() {
                format!("kube-lite://{}", self.image)
            } else {
                self.image_id.clone()
            },
            container_id,
            started: Some(running && self.started),
        }
    }
}

/// The termination record of an exit; `id` is the container's id as the status shows it
/// (`<runtime>://<id>`).
pub fn termination(
    exit_code: i32,
    signal: i32,
    started_at: Option<Time>,
    finished_at: Time,
    id: &str,
) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code,
        signal,
        reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
        message: String::new(),
        started_at,
        finished_at: Some(finished_at),
        container_id: id.to_string(),
    }
}

/// Whether a container that exited with `exit_code` is restarted under `policy`.
pub fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

pub fn is_terminal(phase: &str) -> bool {
    phase == "Succeeded" || phase == "Failed"
}

/// Kubernetes' `getPhase` for a pod's (non-init) containers. `terminating`: the pod is being
/// deleted and nothing will be restarted, so exited containers decide the phase as with `Never`.
pub fn phase(
    restart_policy: &str,
    containers: &[ContainerView],
    terminating: bool,
) -> &'static str {
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.current {
            Current::Running { .. } => running += 1,
            Current::Exited => {
                stopped += 1;
                if c.last_term.as_ref().is_some_and(|t| t.exit_code == 0) {
                    succeeded += 1;
                }
            }
            Current::Waiting { .. } => {
                if c.last_term.is_some() {
                    stopped += 1;
                    if terminating && c.last_term.as_ref().is_some_and(|t| t.exit_code == 0) {
                        succeeded += 1;
                    }
                } else {
                    waiting += 1;
                }
            }
        }
    }
    let policy = if terminating { "Never" } else { restart_policy };
    if waiting > 0 && !(terminating && running == 0) {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if policy == "Always" || policy.is_empty() {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    if terminating {
        return "Failed";
    }
    "Pending"
}

/// Everything the worker knows that goes into a pod's status.
#[derive(Clone, Debug, Default)]
pub struct PodFactsForStatus {
    pub pod_ip: String,
    pub host_ip: String,
    /// The sandbox (directory and IP) is ready.
    pub sandbox_ready: bool,
    pub start_time: Option<Time>,
    pub terminating: bool,
}

fn condition(
    old: Option<&PodStatus>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: Time,
) -> PodCondition {
    let status = if status { "True" } else { "False" }.to_string();
    let prev = old.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_));
    let last_transition_time = match prev {
        Some(p) if p.status == status => p.last_transition_time.or(Some(now)),
        _ => Some(now),
    };
    PodCondition {
        type_: type_.into(),
        status,
        last_probe_time: None,
        last_transition_time,
        reason: reason.into(),
        message: message.into(),
    }
}

/// The pod's new status. Fields the kubelet does not own (`qosClass`, `nominatedNodeName`, …)
/// are kept from `old`; a terminal phase is never left.
pub fn pod_status(
    pod: &Pod,
    old: Option<&PodStatus>,
    containers: &[ContainerView],
    facts: &PodFactsForStatus,
    now: Time,
) -> PodStatus {
    let mut s = old.cloned().unwrap_or_default();
    let computed = phase(&pod.spec.restart_policy, containers, facts.terminating);
    let old_phase = old.map(|o| o.phase.as_str()).unwrap_or("");
    s.phase = if is_terminal(old_phase) {
        old_phase.to_string()
    } else {
        computed.to_string()
    };
    s.host_ip = facts.host_ip.clone();
    s.host_ips = vec![PodIp {
        ip: facts.host_ip.clone(),
    }];
    if !facts.pod_ip.is_empty() {
        s.pod_ip = facts.pod_ip.clone();
        s.pod_ips = vec![PodIp {
            ip: facts.pod_ip.clone(),
        }];
    }
    s.start_time = old
        .and_then(|o| o.start_time)
        .or(facts.start_time)
        .or(Some(now));
    s.container_statuses = containers.iter().map(ContainerView::to_status).collect();

    let unready: Vec<&str> = containers
        .iter()
        .filter(|c| !(c.is_running() && c.ready))
        .map(|c| c.name.as_str())
        .collect();
    let completed = s.phase == "Succeeded";
    let (ready, reason, message) = if completed {
        (false, "PodCompleted".to_string(), String::new())
    } else if unready.is_empty() {
        (true, String::new(), String::new())
    } else {
        (
            false,
            "ContainersNotReady".to_string(),
            format!("containers with unready status: [{}]", unready.join(" ")),
        )
    };
    let scheduled = old
        .and_then(|o| o.conditions.iter().find(|c| c.type_ == "PodScheduled"))
        .cloned()
        .unwrap_or_else(|| condition(None, "PodScheduled", true, "", "", now));
    s.conditions = vec![
        condition(
            old,
            "PodReadyToStartContainers",
            facts.sandbox_ready && !is_terminal(&s.phase),
            "",
            "",
            now,
        ),
        condition(old, "Initialized", true, "", "", now),
        condition(old, "Ready", ready, &reason, &message, now),
        condition(old, "ContainersReady", ready, &reason, &message, now),
        scheduled,
    ];
    s
}

/// The RFC 7386 merge patch that turns `old` into `new`: changed and new keys, `null` for
/// removed ones; arrays are replaced whole. `None` when nothing changed.
pub fn merge_patch(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(p) = merge_patch(ov, nv) {
                            out.insert(k.clone(), p);
                        }
                    }
                    None => {
                        out.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: i64) -> Time {
        Time(chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap())
    }

    fn running(name: &str) -> ContainerView {
        ContainerView {
            current: Current::Running {
                started_at: t(1),
                id: "kube-lite://42".into(),
            },
            ready: true,
            started: true,
            ..ContainerView::waiting(name, "img", "", "")
        }
    }

    fn exited(name: &str, code: i32) -> ContainerView {
        ContainerView {
            current: Current::Exited,
            last_term: Some(termination(code, 0, Some(t(1)), t(2), "kube-lite://42")),
            ..ContainerView::waiting(name, "img", "", "")
        }
    }

    fn crashlooping(name: &str) -> ContainerView {
        ContainerView {
            current: Current::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: "back-off".into(),
            },
            restart_count: 2,
            last_term: Some(termination(1, 0, Some(t(1)), t(2), "kube-lite://42")),
            ..ContainerView::waiting(name, "img", "", "")
        }
    }

    #[test]
    fn phases_follow_get_phase() {
        let w = ContainerView::waiting("a", "img", "ContainerCreating", "");
        let cases: Vec<(&str, Vec<ContainerView>, bool, &str)> = vec![
            ("Always", vec![w.clone()], false, "Pending"),
            ("Always", vec![running("a"), w.clone()], false, "Pending"),
            ("Always", vec![running("a"), running("b")], false, "Running"),
            (
                "Always",
                vec![running("a"), exited("b", 1)],
                false,
                "Running",
            ),
            ("Always", vec![crashlooping("a")], false, "Running"),
            ("Always", vec![exited("a", 0)], false, "Running"),
            (
                "OnFailure",
                vec![exited("a", 0), exited("b", 0)],
                false,
                "Succeeded",
            ),
            (
                "OnFailure",
                vec![exited("a", 0), crashlooping("b")],
                false,
                "Running",
            ),
            ("Never", vec![exited("a", 0)], false, "Succeeded"),
            (
                "Never",
                vec![exited("a", 0), exited("b", 2)],
                false,
                "Failed",
            ),
            (
                "Never",
                vec![running("a"), exited("b", 2)],
                false,
                "Running",
            ),
            ("Always", vec![exited("a", 0)], true, "Succeeded"),
            ("Always", vec![exited("a", 137)], true, "Failed"),
            ("Always", vec![w.clone()], true, "Failed"),
            ("", vec![exited("a", 1)], false, "Running"),
        ];
        for (policy, cs, terminating, want) in cases {
            assert_eq!(phase(policy, &cs, terminating), want, "{policy} {cs:?}");
        }
        assert!(should_restart("Always", 0));
        assert!(should_restart("", 0));
        assert!(should_restart("OnFailure", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(!should_restart("Never", 1));
    }

    fn pod(policy: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = "web".into();
        p.spec.restart_policy = policy.into();
        p
    }

    fn facts() -> PodFactsForStatus {
        PodFactsForStatus {
            pod_ip: "127.11.0.2".into(),
            host_ip: "127.0.0.1".into(),
            sandbox_ready: true,
            start_time: Some(t(0)),
            terminating: false,
        }
    }

    fn cond<'a>(s: &'a PodStatus, type_: &str) -> &'a PodCondition {
        s.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn running_pod_status() {
        let old = PodStatus {
            phase: "Pending".into(),
            qos_class: "BestEffort".into(),
            ..Default::default()
        };
        let s = pod_status(
            &pod("Always"),
            Some(&old),
            &[running("web")],
            &facts(),
            t(5),
        );
        assert_eq!(s.phase, "Running");
        assert_eq!(
            s.qos_class, "BestEffort",
            "fields the kubelet does not own are kept"
        );
        assert_eq!(s.pod_ip, "127.11.0.2");
        assert_eq!(s.pod_ips[0].ip, "127.11.0.2");
        assert_eq!(s.host_ip, "127.0.0.1");
        assert_eq!(s.start_time, Some(t(0)));
        let c = &s.container_statuses[0];
        assert!(c.ready);
        assert_eq!(c.started, Some(true));
        assert_eq!(c.container_id, "kube-lite://42");
        assert_eq!(c.image_id, "kube-lite://img");
        assert_eq!(c.state.running.as_ref().unwrap().started_at, Some(t(1)));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "ContainersReady").status, "True");
        assert_eq!(cond(&s, "Initialized").status, "True");
        assert_eq!(cond(&s, "PodScheduled").status, "True");
        assert_eq!(cond(&s, "Ready").last_transition_time, Some(t(5)));

        // Nothing changed: transition times stay put, so the status is equal.
        let again = pod_status(&pod("Always"), Some(&s), &[running("web")], &facts(), t(9));
        assert_eq!(again, s);

        // The container crashes: Ready flips (new transition time), lastState recorded.
        let s2 = pod_status(
            &pod("Always"),
            Some(&s),
            &[crashlooping("web")],
            &facts(),
            t(20),
        );
        assert_eq!(s2.phase, "Running");
        let r = cond(&s2, "Ready");
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "ContainersNotReady")
        );
        assert_eq!(r.message, "containers with unready status: [web]");
        assert_eq!(r.last_transition_time, Some(t(20)));
        assert_eq!(cond(&s2, "Initialized").last_transition_time, Some(t(5)));
        let c = &s2.container_statuses[0];
        assert_eq!(c.restart_count, 2);
        assert_eq!(c.state.waiting.as_ref().unwrap().reason, "CrashLoopBackOff");
        let last = c.last_state.terminated.as_ref().unwrap();
        assert_eq!((last.exit_code, last.reason.as_str()), (1, "Error"));
        assert_eq!(c.container_id, "kube-lite://42");
        assert!(!c.ready);
    }

    #[test]
    fn completed_pods_stay_completed() {
        let s = pod_status(&pod("Never"), None, &[exited("job", 0)], &facts(), t(5));
        assert_eq!(s.phase, "Succeeded");
        assert_eq!(cond(&s, "Ready").reason, "PodCompleted");
        assert_eq!(cond(&s, "PodReadyToStartContainers").status, "False");
        let t0 = &s.container_statuses[0].state.terminated.as_ref().unwrap();
        assert_eq!((t0.exit_code, t0.reason.as_str()), (0, "Completed"));
        // A terminal phase is never left, whatever the containers look like.
        let s2 = pod_status(&pod("Never"), Some(&s), &[running("job")], &facts(), t(6));
        assert_eq!(s2.phase, "Succeeded");
    }

    #[test]
    fn merge_patches_are_minimal() {
        let old = json!({"phase": "Pending", "qosClass": "BestEffort", "conditions": [1, 2], "x": {"a": 1, "b": 2}});
        let new = json!({"phase": "Running", "qosClass": "BestEffort", "conditions": [1, 2, 3], "x": {"a": 1}, "podIP": "1"});
        assert_eq!(
            merge_patch(&old, &new),
            Some(
                json!({"phase": "Running", "conditions": [1, 2, 3], "x": {"b": null}, "podIP": "1"})
            )
        );
        assert_eq!(merge_patch(&old, &old), None);
        assert_eq!(
            merge_patch(&json!(null), &json!({"a": 1})),
            Some(json!({"a": 1}))
        );
    }
}
