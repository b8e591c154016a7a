//! `kube-lite load docker-image` end to end: an image `docker load`ed from one of kube-lite's own
//! archives (they carry Docker's `manifest.json` too) is copied into a node containerd of a data
//! directory laid out as `kube-lite up --runtime cri` lays it out (`<data-dir>/containerd/<node>/`),
//! and CRI then has it. Also its one-line errors.
//!
//! Needs root, containerd, ctr, a static busybox and a running Docker; without them it prints
//! `skipping: <reason>` and passes (unless `KUBE_LITE_REQUIRE_CRI` is set).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cri::containerd::{Config, Containerd};

fn prerequisites() -> bool {
    let r = cri::containerd::preflight().and_then(|()| {
        match Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
        {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "docker does not answer: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!("docker is not installed: {e}")),
        }
    });
    match r {
        Ok(()) => true,
        Err(e) if std::env::var_os("KUBE_LITE_REQUIRE_CRI").is_some() => {
            panic!("KUBE_LITE_REQUIRE_CRI is set but: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

fn kube_lite(args: &[&str], data_dir: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kube-lite"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Removes the test's image from Docker, also when the test fails.
struct DockerImage(String);

impl Drop for DockerImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_docker_image_copies_an_image_into_every_cri_node() {
    if !prerequisites() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("kl-load-")
        .tempdir()
        .unwrap();
    let data = tmp.path().join("data");

    // No node yet: a one-line error.
    std::fs::create_dir_all(&data).unwrap();
    let (ok, _, err) = kube_lite(&["load", "docker-image", "kube-lite/web:1"], &data);
    assert!(!ok);
    assert!(
        err.contains("no CRI node found in") && err.contains("kube-lite up --runtime cri"),
        "{err}"
    );

    // An image in Docker, made from one of kube-lite's archives.
    let name = format!("kube-lite/load-test-{}:1", std::process::id());
    let _cleanup = DockerImage(name.clone());
    let spec = cri::image::ImageSpec {
        name: name.clone(),
        cmd: vec!["sh".into(), "-c".into(), "echo loaded".into()],
        ..Default::default()
    };
    let image = cri::image::build(&spec, &cri::image::Busybox::find().unwrap()).unwrap();
    let archive = tmp.path().join("image.tar");
    cri::image::write_archive(&image, &archive).unwrap();
    let out = Command::new("docker")
        .arg("load")
        .arg("-i")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker load: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Two nodes, laid out as `kube-lite up --runtime cri` does.
    let mut nodes = Vec::new();
    for n in ["node-1", "node-2"] {
        let c = Containerd::start(Config::new(data.join("containerd").join(n)))
            .await
            .unwrap();
        nodes.push(c);
    }
    // A directory whose containerd is down is skipped.
    std::fs::create_dir_all(data.join("containerd/node-down")).unwrap();

    let (ok, out, err) = kube_lite(&["load", "docker-image", &name], &data);
    assert!(ok, "stdout: {out}\nstderr: {err}");
    for c in &nodes {
        let node = c.dir().file_name().unwrap().to_string_lossy().into_owned();
        assert!(out.contains(&format!("loaded into node {node}")), "{out}");
        let client = c.client().unwrap();
        cri::image::wait_for_images(
            &client,
            std::slice::from_ref(&name),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let status = client
            .image()
            .image_status(client.req(cri::v1::ImageStatusRequest {
                image: Some(cri::v1::ImageSpec {
                    image: name.clone(),
                    ..Default::default()
                }),
                verbose: false,
            }))
            .await
            .unwrap()
            .into_inner()
            .image
            .unwrap();
        assert_eq!(
            status.repo_tags,
            vec![format!("docker.io/{name}")],
            "normalized as CRI names it"
        );
        assert_eq!(status.id, image.id(), "the same image ID as Docker's");
    }
    assert!(!out.contains("node-down"), "{out}");

    // An image Docker does not have: a one-line error naming it.
    let absent = format!("kube-lite/absent-{}:1", std::process::id());
    let (ok, _, err) = kube_lite(&["load", "docker-image", &absent], &data);
    assert!(!ok);
    assert!(
        err.contains(&format!("image {absent} is not present in docker")),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    for c in nodes {
        c.stop().await.unwrap();
    }
    assert!(cri::containerd::mounts_under(tmp.path()).is_empty());
    tmp.close().unwrap();
}
