//! `kvstore ctl`: an etcdctl-like command line for a running cluster — membership, endpoint
//! status, and a few key-value commands for poking at it by hand.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use kvclient::KvClient;
use kvclient::proto::*;

/// Talk to a running kvstore cluster.
#[derive(Parser, Debug)]
#[command(name = "kvstore ctl", version)]
pub struct Ctl {
    /// Client URLs of members to talk to, comma-separated.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379",
        env = "KVSTORE_ENDPOINTS"
    )]
    endpoints: Vec<String>,
    /// Output format.
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        default_value = "table"
    )]
    write_out: Format,
    /// Give up on a request after this many seconds.
    #[arg(long, global = true, default_value_t = 10)]
    command_timeout: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Membership: list, add, remove, promote.
    #[command(subcommand)]
    Member(MemberCmd),
    /// Endpoint status.
    #[command(subcommand)]
    Endpoint(EndpointCmd),
    /// Write a key.
    Put { key: String, value: String },
    /// Read a key, a prefix, or [key, range-end).
    Get(GetArgs),
    /// Delete a key or a prefix.
    Del {
        key: String,
        #[arg(long)]
        prefix: bool,
    },
}

#[derive(Subcommand, Debug)]
enum MemberCmd {
    /// List the members.
    List,
    /// Add a member; start it afterwards with `--initial-cluster-state existing`.
    Add {
        /// The new member's name (its ID is derived from it).
        name: String,
        #[arg(long, value_delimiter = ',', required = true)]
        peer_urls: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        client_urls: Vec<String>,
        /// Add it as a non-voting learner (promote it once it has caught up).
        #[arg(long)]
        learner: bool,
    },
    /// Remove a member, by hex ID.
    Remove { id: String },
    /// Promote a learner to voter, by hex ID.
    Promote { id: String },
}

#[derive(Subcommand, Debug)]
enum EndpointCmd {
    /// Each endpoint's member, leader, term, Raft indexes, revision and database size.
    Status {
        /// Ask every member of the cluster (their client URLs from the member list).
        #[arg(long)]
        cluster: bool,
    },
}

#[derive(Args, Debug)]
struct GetArgs {
    key: String,
    #[arg(long)]
    prefix: bool,
    /// Read at this revision.
    #[arg(long, default_value_t = 0)]
    rev: i64,
    #[arg(long, default_value_t = 0)]
    limit: i64,
    #[arg(long)]
    keys_only: bool,
    #[arg(long)]
    count_only: bool,
    /// `l` (linearizable, the default) or `s` (serializable: this member's data).
    #[arg(long, default_value = "l")]
    consistency: String,
}

/// Run `kvstore ctl` with `args` (everything after `ctl`); returns the process exit code.
pub fn main(args: Vec<String>) -> std::process::ExitCode {
    let ctl = match Ctl::try_parse_from(std::iter::once("kvstore ctl".to_string()).chain(args)) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kvstore ctl: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(ctl)) {
        Ok(out) => {
            print!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kvstore ctl: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn hex_id(s: &str) -> anyhow::Result<u64> {
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16)
        .with_context(|| format!("{s:?} is not a hexadecimal member ID"))
}

/// Run one command; returns what to print.
pub async fn run(ctl: Ctl) -> anyhow::Result<String> {
    let timeout = Duration::from_secs(ctl.command_timeout.max(1));
    let client = KvClient::new(ctl.endpoints.clone())?
        .with_retry_for(timeout)
        .with_attempt_timeout(timeout);
    let json = ctl.write_out == Format::Json;
    let to_json = |v: &dyn erased::Json| -> anyhow::Result<String> { Ok(v.json()? + "\n") };
    Ok(match ctl.cmd {
        Cmd::Member(MemberCmd::List) => {
            let r = client.member_list().await?;
            if json {
                to_json(&r)?
            } else {
                member_table(&r.members)
            }
        }
        Cmd::Member(MemberCmd::Add {
            name,
            peer_urls,
            client_urls,
            learner,
        }) => {
            let r = client
                .member_add(&MemberAddRequest {
                    name: name.clone(),
                    peer_urls: peer_urls.clone(),
                    client_urls,
                    is_learner: learner,
                })
                .await?;
            if json {
                to_json(&r)?
            } else {
                let cluster: Vec<String> = r
                    .members
                    .iter()
                    .filter_map(|m| {
                        let n = if m.id == r.member.id {
                            name.as_str()
                        } else {
                            m.name.as_str()
                        };
                        Some(format!("{n}={}", m.peer_urls.first()?))
                    })
                    .collect();
                format!(
                    "Member {:x} added to cluster {:x}{}\n\nStart it with:\n  kvstore --name {name} --initial-cluster {} --initial-cluster-state existing --listen-peer-urls {} --listen-client-urls <URL> --data-dir <DIR>\n",
                    r.member.id,
                    r.header.cluster_id,
                    if learner { " as a learner" } else { "" },
                    cluster.join(","),
                    peer_urls.first().map(String::as_str).unwrap_or_default(),
                )
            }
        }
        Cmd::Member(MemberCmd::Remove { id }) => {
            let id = hex_id(&id)?;
            let r = client.member_remove(&MemberRemoveRequest { id }).await?;
            if json {
                to_json(&r)?
            } else {
                format!(
                    "Member {id:x} removed from cluster {:x}\n",
                    r.header.cluster_id
                )
            }
        }
        Cmd::Member(MemberCmd::Promote { id }) => {
            let id = hex_id(&id)?;
            let r = client.member_promote(&MemberPromoteRequest { id }).await?;
            if json {
                to_json(&r)?
            } else {
                format!(
                    "Member {id:x} promoted in cluster {:x}\n",
                    r.header.cluster_id
                )
            }
        }
        Cmd::Endpoint(EndpointCmd::Status { cluster }) => {
            let endpoints = if cluster {
                let list = client.member_list().await?;
                let urls: Vec<String> = list
                    .members
                    .iter()
                    .filter_map(|m| m.client_urls.first().cloned())
                    .collect();
                if urls.is_empty() {
                    bail!("no member has published client URLs yet");
                }
                urls
            } else {
                ctl.endpoints.clone()
            };
            let mut rows = Vec::new();
            for ep in endpoints {
                // One endpoint each, no failover: this is about that member.
                let c = KvClient::new(vec![ep.clone()])?
                    .with_retry_for(Duration::from_millis(500))
                    .with_attempt_timeout(timeout);
                rows.push((ep, c.status().await));
            }
            if json {
                let v: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(ep, r)| match r {
                        Ok(s) => serde_json::json!({"Endpoint": ep, "Status": s}),
                        Err(e) => serde_json::json!({"Endpoint": ep, "Error": e.to_string()}),
                    })
                    .collect();
                serde_json::to_string_pretty(&v)? + "\n"
            } else {
                status_table(&rows)
            }
        }
        Cmd::Put { key, value } => {
            let r = client
                .put(&PutRequest {
                    key,
                    value,
                    ..Default::default()
                })
                .await?;
            if json {
                to_json(&r)?
            } else {
                "OK\n".to_string()
            }
        }
        Cmd::Get(g) => {
            let serializable = match g.consistency.as_str() {
                "l" => false,
                "s" => true,
                other => bail!("--consistency must be l or s, not {other:?}"),
            };
            let r = client
                .range(&RangeRequest {
                    key: g.key,
                    prefix: g.prefix,
                    revision: g.rev,
                    limit: g.limit,
                    keys_only: g.keys_only,
                    count_only: g.count_only,
                    serializable,
                    ..Default::default()
                })
                .await?;
            if json {
                to_json(&r)?
            } else if g.count_only {
                format!("{}\n", r.count)
            } else {
                let mut out = String::new();
                for kv in &r.kvs {
                    out.push_str(&kv.key);
                    out.push('\n');
                    if !g.keys_only {
                        out.push_str(&kv.value);
                        out.push('\n');
                    }
                }
                out
            }
        }
        Cmd::Del { key, prefix } => {
            let r = client
                .delete_range(&DeleteRangeRequest {
                    key,
                    prefix,
                    ..Default::default()
                })
                .await?;
            if json {
                to_json(&r)?
            } else {
                format!("{}\n", r.deleted)
            }
        }
    })
}

/// Serializing any response without naming its type.
mod erased {
    pub trait Json {
        fn json(&self) -> serde_json::Result<String>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> serde_json::Result<String> {
            serde_json::to_string(self)
        }
    }
}

fn member_table(members: &[Member]) -> String {
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                format!("{:x}", m.id),
                if m.name.is_empty() {
                    "unstarted".into()
                } else {
                    "started".into()
                },
                m.name.clone(),
                m.peer_urls.join(","),
                m.client_urls.join(","),
                m.is_learner.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATUS",
            "NAME",
            "PEER ADDRS",
            "CLIENT ADDRS",
            "IS LEARNER",
        ],
        &rows,
    )
}

fn status_table(rows: &[(String, Result<StatusResponse, kvclient::KvError>)]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(ep, r)| match r {
            Ok(s) => vec![
                ep.clone(),
                format!("{:x}", s.header.member_id),
                s.version.clone(),
                human_size(s.db_size),
                (s.leader != 0 && s.leader == s.header.member_id).to_string(),
                s.is_learner.to_string(),
                format!("{:x}", s.leader),
                s.raft_term.to_string(),
                s.raft_index.to_string(),
                s.raft_applied_index.to_string(),
                s.header.revision.to_string(),
                s.errors.join(", "),
            ],
            Err(e) => {
                let mut row = vec![ep.clone()];
                row.extend(std::iter::repeat_n(String::new(), 10));
                row.push(e.to_string());
                row
            }
        })
        .collect();
    table(
        &[
            "ENDPOINT",
            "ID",
            "VERSION",
            "DB SIZE",
            "IS LEADER",
            "IS LEARNER",
            "LEADER",
            "RAFT TERM",
            "RAFT INDEX",
            "RAFT APPLIED INDEX",
            "REVISION",
            "ERRORS",
        ],
        &rows,
    )
}

fn human_size(bytes: i64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.0} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// etcdctl's `-w table` look: a ruled grid with centered headers.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let rule: String = widths
        .iter()
        .map(|w| "-".repeat(w + 2))
        .collect::<Vec<_>>()
        .join("+");
    let rule = format!("+{rule}+\n");
    let line = |cells: Vec<String>| -> String { format!("|{}|\n", cells.join("|")) };
    let mut out = rule.clone();
    out.push_str(&line(
        header
            .iter()
            .zip(&widths)
            .map(|(h, w)| format!(" {h:^w$} "))
            .collect(),
    ));
    out.push_str(&rule);
    for r in rows {
        out.push_str(&line(
            r.iter()
                .zip(&widths)
                .map(|(c, w)| format!(" {c:<w$} "))
                .collect(),
        ));
    }
    out.push_str(&rule);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_look_like_etcdctl() {
        let t = table(
            &["ID", "NAME"],
            &[vec!["8e9e05c52164694d".into(), "n1".into()]],
        );
        assert_eq!(
            t,
            "+------------------+------+\n|        ID        | NAME |\n+------------------+------+\n| 8e9e05c52164694d | n1   |\n+------------------+------+\n"
        );
        assert_eq!(hex_id("8e9e05c52164694d").unwrap(), 0x8e9e05c52164694d);
        assert!(hex_id("zz").is_err());
    }
}
