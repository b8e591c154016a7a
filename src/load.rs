//! `kube-lite load docker-image NAME[:TAG]...`: copies images from the local Docker into the
//! containerd of every node of a cluster started with `kube-lite up --runtime cri`, as
//! `kind load docker-image` does — so pods can run images that no registry serves.
//!
//! The nodes are the directories `<data-dir>/containerd/<node>/` whose containerd answers; the
//! images travel as one `docker save` archive, imported into each with `ctr images import` (see
//! `cri::image::import`), then checked through CRI `ImageStatus`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

#[derive(clap::Args)]
pub struct LoadArgs {
    #[command(subcommand)]
    what: LoadWhat,
}

#[derive(clap::Subcommand)]
enum LoadWhat {
    /// Copy images from the local Docker into every CRI node of the cluster.
    DockerImage(DockerImageArgs),
}

#[derive(clap::Args)]
struct DockerImageArgs {
    /// Images as Docker names them: NAME[:TAG] (the tag defaults to `latest`).
    #[arg(required = true, value_name = "NAME[:TAG]")]
    images: Vec<String>,
    /// The cluster's state directory (as given to `kube-lite up`).
    #[arg(long, default_value = ".kube-lite")]
    data_dir: PathBuf,
}

/// A node whose containerd answers.
struct CriNode {
    name: String,
    socket: PathBuf,
    client: cri::Client,
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    match args.what {
        LoadWhat::DockerImage(a) => load_docker_images(&a.images, &a.data_dir).await,
    }
}

/// The nodes of `data_dir` whose containerd answers CRI `Version`, by name.
async fn cri_nodes(data_dir: &Path) -> anyhow::Result<Vec<CriNode>> {
    let none = || {
        anyhow::anyhow!(
            "no CRI node found in {}: start the cluster with kube-lite up --runtime cri",
            data_dir.display()
        )
    };
    let root = data_dir.join("containerd");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Err(none());
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut nodes = Vec::new();
    for dir in dirs {
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let socket = cri::containerd::recorded_socket(&dir);
        let client = cri::Client::new(&format!("unix://{}", socket.display()))
            .map_err(anyhow::Error::msg)?
            .with_timeout(Duration::from_secs(3));
        match client.version().await {
            Ok(_) => nodes.push(CriNode {
                name,
                socket,
                client: client.with_timeout(cri::DEFAULT_TIMEOUT),
            }),
            Err(e) => tracing::warn!(
                node = %name,
                socket = %socket.display(),
                error = %cri::describe(&e),
                "skipping a node whose containerd does not answer"
            ),
        }
    }
    if nodes.is_empty() {
        return Err(none());
    }
    Ok(nodes)
}

/// Runs `docker ARGS`, returning its stdout, or its last line of stderr as the error.
async fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("docker")
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!("docker is not installed (kube-lite load docker-image reads images from the local Docker)")
            } else {
                anyhow::anyhow!("cannot run docker: {e}")
            }
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    bail!("docker {}: {}", args.join(" "), last.trim())
}

async fn load_docker_images(images: &[String], data_dir: &Path) -> anyhow::Result<()> {
    // Names as CRI will report them, checked before Docker is asked anything.
    let mut names = Vec::new();
    for image in images {
        if image.starts_with("sha256:") {
            bail!(
                "{image}: name an image by NAME[:TAG], not by ID (an image loaded by ID has no name in containerd)"
            );
        }
        names.push(cri::image::normalize_name(image).map_err(anyhow::Error::msg)?);
    }
    let nodes = cri_nodes(data_dir).await?;

    for image in images {
        if let Err(e) = docker(&["image", "inspect", "--format", "{{.Id}}", image]).await {
            let msg = format!("{e:#}");
            if msg.contains("No such image") || msg.contains("No such object") {
                bail!(
                    "image {image} is not present in docker: docker pull or docker build it first"
                );
            }
            return Err(e);
        }
    }
    let tmp = tempfile::Builder::new()
        .prefix("kube-lite-load-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let archive = tmp.path().join("images.tar");
    let archive_arg = archive.to_string_lossy().into_owned();
    let mut save = vec!["save", "-o", archive_arg.as_str()];
    save.extend(images.iter().map(String::as_str));
    docker(&save).await?;

    for node in &nodes {
        cri::image::import(&node.socket, &archive)
            .await
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("cannot load into node {}", node.name))?;
        cri::image::wait_for_images(&node.client, &names, Duration::from_secs(30))
            .await
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("node {}", node.name))?;
        for (image, name) in images.iter().zip(&names) {
            println!("Image {image} ({name}) loaded into node {}", node.name);
        }
    }
    Ok(())
}
