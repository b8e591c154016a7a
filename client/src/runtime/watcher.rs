//! List, then watch from the list's resourceVersion; resume after a broken stream, relist after
//! 410 Gone. An explicit state machine, as kube-runtime's watcher, exposed as a stream of
//! [`Event`]s that never ends and never errors (failures are retried with backoff and logged).

use std::time::Duration;

use api::Resource;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::api::{Api, Event as ApiEvent, ListParams};
use crate::error::Result;

/// What a consumer sees.
#[derive(Debug, Clone)]
pub enum Event<K> {
    /// A full (re)list: the complete current set of objects. Anything not in it is gone.
    Restarted(Vec<K>),
    /// An object was added or modified.
    Applied(K),
    Deleted(K),
}

enum State<K: Resource> {
    /// Need a list.
    Empty,
    /// Listed (or last saw) `rv`; need to open a watch.
    Listed { rv: String },
    /// A watch is open.
    Watching {
        rv: String,
        stream: BoxStream<'static, Result<ApiEvent<K>>>,
    },
}

/// How long a single watch request lasts before the server ends it and we resume.
const WATCH_TIMEOUT_SECS: u32 = 290;

pub fn watcher<K: Resource>(
    api: Api<K>,
    params: ListParams,
) -> impl Stream<Item = Event<K>> + Send {
    futures::stream::unfold(
        (State::<K>::Empty, api, params, Backoff::default()),
        |(mut state, api, params, mut backoff)| async move {
            loop {
                let (next, out) = step(state, &api, &params, &mut backoff).await;
                state = next;
                if let Some(ev) = out {
                    return Some((ev, (state, api, params, backoff)));
                }
            }
        },
    )
}

/// One transition. Returns the next state and maybe an event to emit.
async fn step<K: Resource>(
    state: State<K>,
    api: &Api<K>,
    params: &ListParams,
    backoff: &mut Backoff,
) -> (State<K>, Option<Event<K>>) {
    match state {
        State::Empty => match api.list(params).await {
            Ok(list) => {
                backoff.reset();
                let rv = list.metadata.resource_version.clone();
                (State::Listed { rv }, Some(Event::Restarted(list.items)))
            }
            Err(e) => {
                tracing::warn!(kind = K::INFO.kind, error = %e, "list failed; retrying");
                backoff.wait().await;
                (State::Empty, None)
            }
        },
        State::Listed { rv } => {
            match api.watch(params, &rv, Some(WATCH_TIMEOUT_SECS), true).await {
                Ok(stream) => (
                    State::Watching {
                        rv,
                        stream: stream.boxed(),
                    },
                    None,
                ),
                Err(e) if e.is_gone() => (State::Empty, None),
                Err(e) => {
                    tracing::warn!(kind = K::INFO.kind, error = %e, "watch failed; retrying");
                    backoff.wait().await;
                    (State::Listed { rv }, None)
                }
            }
        }
        State::Watching { rv, mut stream } => match stream.next().await {
            Some(Ok(ev)) => {
                backoff.reset();
                let rv_of = |k: &K| k.meta().resource_version.clone();
                match ev {
                    ApiEvent::Added(k) | ApiEvent::Modified(k) => {
                        let rv = rv_of(&k);
                        (State::Watching { rv, stream }, Some(Event::Applied(k)))
                    }
                    ApiEvent::Deleted(k) => {
                        let rv = rv_of(&k);
                        (State::Watching { rv, stream }, Some(Event::Deleted(k)))
                    }
                    ApiEvent::Bookmark(new_rv) => {
                        let rv = if new_rv.is_empty() { rv } else { new_rv };
                        (State::Watching { rv, stream }, None)
                    }
                    ApiEvent::Error(status) if status.code == 410 => {
                        tracing::debug!(kind = K::INFO.kind, "watch expired; relisting");
                        (State::Empty, None)
                    }
                    ApiEvent::Error(status) => {
                        tracing::warn!(kind = K::INFO.kind, message = %status.message, "watch error; resuming");
                        backoff.wait().await;
                        (State::Listed { rv }, None)
                    }
                }
            }
            Some(Err(e)) => {
                tracing::debug!(kind = K::INFO.kind, error = %e, "watch stream broke; resuming");
                backoff.wait().await;
                (State::Listed { rv }, None)
            }
            None => (State::Listed { rv }, None),
        },
    }
}

/// Exponential backoff from 100 ms to 5 s.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    async fn wait(&mut self) {
        let ms = 100u64.saturating_mul(1 << self.failures.min(6)).min(5000);
        self.failures += 1;
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    fn reset(&mut self) {
        self.failures = 0;
    }
}
