//! `logs POD|TYPE/NAME [-c CONTAINER]`: a container's output through `pods/NAME/log`, which
//! the API server proxies to the kubelet of the pod's node. `deploy/NAME` and `rs/NAME` pick a
//! pod of theirs (a running one first, as kubectl's `GetFirstPod`); `-l` reads every matching
//! pod. With `-f` the stream stays open and lines are printed as the container writes them.

use std::time::Duration;

use api::resource::POD;
use futures::StreamExt;
use serde_json::Value;

use crate::context::{Context, query};
use crate::errors::{Error, Result};
use crate::pods;
use crate::printer;
use crate::util::{map_get, name_of, parse_duration, str_of};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite logs web-1                      # the pod's only (or first) container
  kubectl-lite logs deploy/blog -f --tail=10   # a pod of the Deployment, then follow
  kubectl-lite logs web-1 -c sidecar --previous
  kubectl-lite logs -l app=blog --prefix       # every matching pod")]
pub struct Logs {
    /// `POD`, `pod/NAME`, `deployment/NAME` or `replicaset/NAME` (a pod of theirs).
    #[arg(value_name = "POD | TYPE/NAME")]
    pub target: Option<String>,
    /// The container (same as -c).
    #[arg(value_name = "CONTAINER")]
    pub container_arg: Option<String>,
    /// The container whose logs to print (default: the pod's only or first container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Every container of the pod.
    #[arg(long)]
    pub all_containers: bool,
    /// Keep streaming as new lines are written.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The previous instance of the container (before its last restart).
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only the last N lines (-1: all; 10 with -l).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Only lines newer than this (`5s`, `2m`, `3h`).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub since: Option<Duration>,
    /// Only lines after this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub since_time: Option<String>,
    /// Prefix each line with its RFC 3339 timestamp.
    #[arg(long)]
    pub timestamps: bool,
    /// At most this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub limit_bytes: Option<i64>,
    /// Prefix each line with `[pod/NAME/CONTAINER]`.
    #[arg(long)]
    pub prefix: bool,
    /// Every pod matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

/// One container's log to read.
struct Source {
    pod: String,
    container: String,
}

impl Logs {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        if self.container.is_some() && self.container_arg.is_some() {
            return Err(Error::msg(
                "only one of -c or an inline [CONTAINER] arg is allowed",
            ));
        }
        if self.since.is_some() && self.since_time.is_some() {
            return Err(Error::msg(
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            ));
        }
        let pods = self.pods(ctx).await?;
        let container = self.container.clone().or(self.container_arg.clone());
        let mut sources = Vec::new();
        for pod in &pods {
            let names: Vec<String> = pod["spec"]["containers"]
                .as_array()
                .map(|cs| cs.iter().map(|c| str_of(c, "/name").to_string()).collect())
                .unwrap_or_default();
            let chosen: Vec<String> = if self.all_containers {
                names.clone()
            } else if let Some(c) = &container {
                vec![c.clone()]
            } else {
                let default = map_get(
                    pod,
                    "/metadata/annotations",
                    "kubectl.kubernetes.io/default-container",
                )
                .map(String::from)
                .or_else(|| names.first().cloned())
                .unwrap_or_default();
                if names.len() > 1 && pods.len() == 1 {
                    printer::stderr(&format!(
                        "Defaulted container {default:?} out of: {}\n",
                        names.join(", ")
                    ));
                }
                vec![default]
            };
            sources.extend(chosen.into_iter().map(|c| Source {
                pod: name_of(pod).to_string(),
                container: c,
            }));
        }
        let prefix = self.prefix;
        if self.follow && sources.len() > 1 {
            // Every stream at once, lines as they come.
            let mut streams = Vec::new();
            for s in &sources {
                let resp = ctx.stream(&self.path(ctx, s)).await?;
                let label = format!("[pod/{}/{}] ", s.pod, s.container);
                streams.push(lines(resp, prefix.then_some(label)).boxed());
            }
            let mut all = futures::stream::select_all(streams);
            while let Some(chunk) = all.next().await {
                printer::stdout(&chunk?);
            }
            return Ok(());
        }
        for s in &sources {
            let resp = ctx.stream(&self.path(ctx, s)).await?;
            let label = format!("[pod/{}/{}] ", s.pod, s.container);
            let mut stream = lines(resp, prefix.then_some(label)).boxed();
            while let Some(chunk) = stream.next().await {
                printer::stdout(&chunk?);
            }
        }
        Ok(())
    }

    fn path(&self, ctx: &Context, s: &Source) -> String {
        let mut q = vec![("container", s.container.clone())];
        if self.follow {
            q.push(("follow", "true".into()));
        }
        if self.previous {
            q.push(("previous", "true".into()));
        }
        let tail = if self.tail < 0 && self.selector.is_some() {
            10
        } else {
            self.tail
        };
        if tail >= 0 {
            q.push(("tailLines", tail.to_string()));
        }
        if let Some(d) = self.since {
            q.push(("sinceSeconds", d.as_secs().max(1).to_string()));
        }
        if let Some(t) = &self.since_time {
            q.push(("sinceTime", t.clone()));
        }
        if self.timestamps {
            q.push(("timestamps", "true".into()));
        }
        if let Some(b) = self.limit_bytes {
            q.push(("limitBytes", b.to_string()));
        }
        format!(
            "{}/log{}",
            POD.object_path(Some(&ctx.namespace), &s.pod),
            query(&q)
        )
    }

    /// The pods to read: the one named, one of a controller's, or all matching `-l`.
    async fn pods(&self, ctx: &Context) -> Result<Vec<Value>> {
        if let Some(sel) = &self.selector {
            if self.target.is_some() {
                return Err(Error::msg("only a selector (-l) or a POD name is allowed"));
            }
            let pods = ctx
                .list(
                    &POD.collection_path(Some(&ctx.namespace)),
                    &[("labelSelector", sel.clone())],
                )
                .await?;
            if pods.is_empty() {
                printer::stderr(&printer::no_resources(Some(&ctx.namespace)));
            }
            return Ok(pods);
        }
        let Some(target) = &self.target else {
            return Err(Error::msg(
                "expected POD or TYPE/NAME is a required argument for the logs command\nSee 'kubectl-lite logs -h' for help and examples",
            ));
        };
        Ok(vec![
            pods::for_target(ctx, target, "get the logs from").await?,
        ])
    }
}

/// The body as text as it arrives; whole lines at a time when prefixed.
fn lines(
    resp: reqwest::Response,
    prefix: Option<String>,
) -> impl futures::Stream<Item = Result<String>> + Send {
    let body = resp.bytes_stream();
    futures::stream::unfold(
        (body.boxed(), Vec::<u8>::new(), prefix, false),
        |(mut body, mut buf, prefix, done)| async move {
            if done {
                return None;
            }
            loop {
                match body.next().await {
                    Some(Ok(chunk)) => {
                        buf.extend_from_slice(&chunk);
                        let Some(prefix) = &prefix else {
                            let text = String::from_utf8_lossy(&buf).into_owned();
                            buf.clear();
                            return Some((Ok(text), (body, buf, None, false)));
                        };
                        if let Some(pos) = buf.iter().rposition(|b| *b == b'\n') {
                            let complete: Vec<u8> = buf.drain(..=pos).collect();
                            let text: String = String::from_utf8_lossy(&complete)
                                .lines()
                                .map(|l| format!("{prefix}{l}\n"))
                                .collect();
                            return Some((Ok(text), (body, buf, Some(prefix.clone()), false)));
                        }
                    }
                    Some(Err(e)) => {
                        return Some((
                            Err(Error::Unreachable(e.to_string())),
                            (body, buf, prefix, true),
                        ));
                    }
                    None => {
                        if buf.is_empty() {
                            return None;
                        }
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        let text = match &prefix {
                            Some(p) => format!("{p}{text}\n"),
                            None => text,
                        };
                        return Some((Ok(text), (body, Vec::new(), prefix, true)));
                    }
                }
            }
        },
    )
}
