//! `exec POD|TYPE/NAME [-c CONTAINER] [-i] [-t] -- COMMAND [ARGS...]`: run a command in a
//! container through `pods/NAME/exec`, which the API server passes through to the kubelet of
//! the pod's node, over a WebSocket ([`crate::remotecommand`]). As kubectl: the remote command's
//! exit code is kubectl-lite's (after `command terminated with exit code N` on stderr); `-i`
//! sends stdin (its end is the command's end of input); `-t` asks for a terminal and, when
//! stdin is one, puts it in raw mode and sends its size as it changes.

use api::remotecommand::Finished;
use api::resource::POD;

use crate::context::{Context, query};
use crate::errors::{Error, Result};
use crate::printer;
use crate::remotecommand::{self, Streams};
use crate::util::{map_get, name_of, str_of};
use crate::{pods, term};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  kubectl-lite exec web-1 -- date                        # the pod's only (or first) container
  kubectl-lite exec web-1 -c sidecar -- cat /etc/hosts
  echo hello | kubectl-lite exec -i web-1 -- cat        # stdin to the command
  kubectl-lite exec -it deploy/blog -- sh               # an interactive shell in a pod of blog")]
pub struct Exec {
    /// `POD`, `pod/NAME`, `deployment/NAME` or `replicaset/NAME` (a pod of theirs).
    #[arg(value_name = "POD | TYPE/NAME")]
    pub target: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    /// Container name (default: the `kubectl.kubernetes.io/default-container` annotation's, or
    /// the first container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Only print output from the remote session.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

impl Exec {
    pub async fn run(self, ctx: &Context) -> Result<()> {
        if self.command.is_empty() {
            return Err(Error::msg(
                "you must specify at least one command for the container",
            ));
        }
        let pod = pods::for_target(ctx, &self.target, "exec into").await?;
        let phase = str_of(&pod, "/status/phase");
        if phase == "Succeeded" || phase == "Failed" {
            return Err(Error::msg(format!(
                "cannot exec into a container in a completed pod; current phase is {phase}"
            )));
        }
        let container = match &self.container {
            Some(c) => c.clone(),
            None => self.default_container(&pod)?,
        };
        // kubectl's SetupTTY: a TTY only with stdin, and only when stdin is a terminal.
        let mut tty = self.tty && self.stdin;
        if tty && !term::stdin_is_terminal() {
            tty = false;
            if !self.quiet {
                printer::stderr(
                    "Unable to use a TTY - input is not a terminal or the right kind of file\n",
                );
            }
        }
        let mut q: Vec<(&str, String)> = vec![("container", container)];
        q.extend(self.command.iter().map(|c| ("command", c.clone())));
        q.push(("stdin", self.stdin.to_string()));
        q.push(("stdout", "true".into()));
        q.push(("stderr", (!tty).to_string()));
        q.push(("tty", tty.to_string()));
        let path = format!(
            "{}/exec{}",
            POD.object_path(Some(&ctx.namespace), name_of(&pod)),
            query(&q)
        );
        let url = remotecommand::websocket_url(ctx.server(), &path)?;
        let streams = Streams {
            stdin: self
                .stdin
                .then(|| Box::new(std::io::stdin()) as Box<dyn std::io::Read + Send>),
            stdout: Some(tokio::io::stdout()),
            stderr: (!tty).then(tokio::io::stderr),
            resize: tty.then(term::monitor_size),
        };
        let finished = {
            let _raw =
                if tty {
                    Some(term::RawMode::enable().map_err(|e| {
                        Error::msg(format!("cannot put the terminal in raw mode: {e}"))
                    })?)
                } else {
                    None
                };
            remotecommand::stream(&url, crate::context::USER_AGENT, streams).await
        }?;
        match finished {
            Finished::Exit(0) => Ok(()),
            Finished::Exit(code) => {
                printer::stderr(&format!("command terminated with exit code {code}\n"));
                Err(Error::Exit(i32::from(code)))
            }
            Finished::Error(message) => Err(Error::msg(message)),
        }
    }

    /// kubectl's `FindOrDefaultContainerByName`: the annotated default, else the first
    /// container — saying so when there was a choice.
    fn default_container(&self, pod: &serde_json::Value) -> Result<String> {
        let names: Vec<String> = pod["spec"]["containers"]
            .as_array()
            .map(|cs| cs.iter().map(|c| str_of(c, "/name").to_string()).collect())
            .unwrap_or_default();
        let annotated = map_get(
            pod,
            "/metadata/annotations",
            "kubectl.kubernetes.io/default-container",
        )
        .filter(|a| names.iter().any(|n| n == a))
        .map(String::from);
        let Some(chosen) = annotated.clone().or_else(|| names.first().cloned()) else {
            return Err(Error::msg(format!(
                "pod {} does not have any containers",
                name_of(pod)
            )));
        };
        if annotated.is_none() && names.len() > 1 && !self.quiet {
            printer::stderr(&format!(
                "Defaulted container {chosen:?} out of: {}\n",
                names.join(", ")
            ));
        }
        Ok(chosen)
    }
}
