//! Memory limits: where the node can use cgroups (its `MemoryLimitsEnforced` condition is
//! True) a container that goes over its limit is OOM-killed and reported `OOMKilled`; where it
//! cannot, the node and an event say the limit is not enforced.

mod common;

use api::core::Node;
use client::Api;
use common::*;
use testkit::{ControlPlane, DEFAULT_TIMEOUT, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limits_are_enforced_or_said_not_to_be() {
    let cp = ControlPlane::start().await;
    let _k = start_kubelet(&cp, "node-m", 57, &[]);
    let client = cp.client();
    let nodes: Api<Node> = Api::all(client.clone());
    let cond = wait_for(
        "the MemoryLimitsEnforced condition",
        DEFAULT_TIMEOUT,
        || async {
            let n = nodes.get_opt("node-m").await.ok().flatten()?;
            let s = n.status?;
            s.conditions
                .into_iter()
                .find(|c| c.type_ == "MemoryLimitsEnforced")
        },
    )
    .await;

    eprintln!("node-m: {cond:?}");

    // 256 MiB of memory against a 32 MiB limit.
    let mut pod = sh_pod(
        "hog",
        "python3 -c 'import time; b = bytearray(256 << 20); time.sleep(60)'",
    );
    pod["spec"]["restartPolicy"] = "Never".into();
    pod["spec"]["containers"][0]["resources"] = serde_json::json!({"limits": {"memory": "32Mi"}});
    create_pod(&client, "node-m", pod).await;

    if cond.status == "True" {
        assert!(
            ["CgroupV1", "CgroupV2"].contains(&cond.reason.as_str()),
            "{cond:?}"
        );
        let p = wait_pod(&client, "hog", "OOM-killed", |p| {
            p.status.as_ref().is_some_and(|s| s.phase == "Failed")
        })
        .await;
        let t = container_status(&p, "hog")
            .and_then(|s| s.state.terminated.clone())
            .expect("terminated");
        assert_eq!(t.reason, "OOMKilled", "{t:?}");
        assert_eq!(t.exit_code, 137);
        wait_event(&client, "hog", "OOMKilled").await;
        // Its cgroup went with it.
        let cg = cond
            .message
            .rsplit(" under ")
            .next()
            .map(std::path::PathBuf::from)
            .expect("cgroup base in the message");
        let prefix = format!("{}_", p.metadata.uid);
        wait_for(
            "the container's cgroup to be removed",
            DEFAULT_TIMEOUT,
            || async {
                let left = std::fs::read_dir(&cg)
                    .map(|rd| {
                        rd.flatten()
                            .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    })
                    .unwrap_or(false);
                (!left).then_some(())
            },
        )
        .await;
        // Within its limit a container runs as usual.
        let mut ok = sh_pod("small", "exec sleep 3600");
        ok["spec"]["containers"][0]["resources"] =
            serde_json::json!({"limits": {"memory": "64Mi"}});
        create_pod(&client, "node-m", ok).await;
        wait_pod(&client, "small", "Running", running_with_ip).await;
    } else {
        assert_eq!(cond.reason, "CgroupsUnavailable", "{cond:?}");
        assert!(cond.message.contains("not enforced"), "{cond:?}");
        wait_event(&client, "hog", "MemoryLimitNotEnforced").await;
        wait_pod(&client, "hog", "Running despite its limit", running_with_ip).await;
    }
}
