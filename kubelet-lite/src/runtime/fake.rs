//! The fake runtime (`--runtime fake`), kwok-style: a container "runs" without any process, so
//! one kubelet-lite can stand in for hundreds of nodes in scale tests and benchmarks. It starts
//! at once, never exits on its own, and ends when signalled (143 after SIGTERM, 137 after
//! SIGKILL). Its log is empty. Nothing survives the kubelet, so there is nothing to stop after
//! a restart.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use api::meta::Time;
use tokio::sync::{Notify, watch};

use super::{ContainerSpec, ExitInfo, Recovered, Running, Runtime, StartRequest, StopSignal};
use crate::logs::LogHandle;
use crate::state::ProcRecord;

type Exits = std::collections::HashMap<String, (watch::Sender<Option<ExitInfo>>, Arc<Notify>)>;

#[derive(Default)]
pub struct FakeRuntime {
    next: AtomicU64,
    running: Mutex<Exits>,
}

impl Runtime for FakeRuntime {
    fn version(&self) -> String {
        "kube-lite-fake://0.1".into()
    }

    fn needs_command(&self) -> bool {
        false
    }

    fn start<'a>(
        &'a self,
        req: &'a StartRequest,
        wake: Arc<Notify>,
    ) -> Pin<Box<dyn Future<Output = Result<Running, String>> + Send + 'a>> {
        let spec = &req.spec;
        Box::pin(std::future::ready(Ok(self.start_now(spec, wake))))
    }

    fn signal(&self, c: &Running, sig: StopSignal) {
        self.stop(c, sig)
    }

    fn recover<'a>(
        &'a self,
        _record: &'a ProcRecord,
    ) -> Pin<Box<dyn Future<Output = Recovered> + Send + 'a>> {
        Box::pin(std::future::ready(Recovered::Gone { stopped: false }))
    }
}

impl FakeRuntime {
    fn start_now(&self, spec: &ContainerSpec, wake: Arc<Notify>) -> Running {
        let id = format!("fake-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let (tx, rx) = watch::channel(None);
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), (tx, wake));
        Running {
            id,
            // No process: pid and group 0 are never signalled (only this runtime signals).
            pid: 0,
            pgid: 0,
            start_ticks: 0,
            started_at: Time::now(),
            started: Instant::now(),
            exit: rx,
            log: LogHandle::closed(spec.log_path.clone()),
            reaped: Arc::new(std::sync::Mutex::new(false)),
            shim: None,
            cgroup: None,
        }
    }

    fn stop(&self, c: &Running, sig: StopSignal) {
        let Some((tx, wake)) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&c.id)
        else {
            return;
        };
        let signal = match sig {
            StopSignal::Term => 15,
            StopSignal::Kill => 9,
        };
        *c.reaped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        let _ = tx.send(Some(ExitInfo {
            exit_code: 128 + signal,
            signal,
            finished_at: Time::now(),
            finished: Instant::now(),
            reason: None,
        }));
        wake.notify_one();
    }
}
