//! Services and their EndpointSlices, watched together: what a node's service proxy
//! (kube-proxy-lite) and the cluster DNS (kube-dns-lite) read. Two informers, their caches, and
//! one notification for a change of either.

use std::sync::Arc;

use api::core::Service;
use api::discovery::EndpointSlice;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::runtime::informer::Informer;
use crate::runtime::reflector::Store;
use crate::{Api, Client, ListParams};

pub struct ServicesAndSlices {
    pub services: Store<Service>,
    pub slices: Store<EndpointSlice>,
    /// Notified at every change of a Service or an EndpointSlice.
    pub changed: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl ServicesAndSlices {
    /// Start watching every namespace's Services and EndpointSlices, until `shutdown` (or until
    /// this is dropped).
    pub fn start(client: &Client, shutdown: &CancellationToken) -> ServicesAndSlices {
        let svc_inf = Informer::new(Api::<Service>::all(client.clone()), ListParams::default());
        let slice_inf = Informer::new(
            Api::<EndpointSlice>::all(client.clone()),
            ListParams::default(),
        );
        let changed = Arc::new(Notify::new());
        let (c1, c2) = (changed.clone(), changed.clone());
        svc_inf.on_change(move |_| c1.notify_one());
        slice_inf.on_change(move |_| c2.notify_one());
        let services = svc_inf.store();
        let slices = slice_inf.store();
        let tasks = vec![
            tokio::spawn(svc_inf.run(shutdown.clone())),
            tokio::spawn(slice_inf.run(shutdown.clone())),
        ];
        ServicesAndSlices {
            services,
            slices,
            changed,
            tasks,
        }
    }

    /// Both caches hold a first full list.
    pub async fn ready(&self) {
        self.services.wait_ready().await;
        self.slices.wait_ready().await;
    }
}

impl Drop for ServicesAndSlices {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
