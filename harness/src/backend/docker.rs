//! The `docker` backend: the same scenarios inside `crosswind/node` images
//! (see `images.rs`), started with testcontainers. On an x86 host, arm64
//! containers run through the kernel's binfmt handler for aarch64. The
//! run's directory is bind-mounted at `/work`; the guest core lands there.
//! Every container is removed when its run ends, fails or times out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use testcontainers::core::wait::ExitWaitStrategy;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

use super::api::{clear_cores, host_arch, Backend, BoxFuture, RunOutput, RunRequest};
use crate::images;
use crate::provision::QEMU_CPU_ARGS;
use crate::target::TargetArch;

/// Containers run from `crosswind/node` images.
pub struct Docker;

/// The architecture each image was seen to run (`process.arch` inside),
/// checked once per image and run.
static CHECKED: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

/// Removes a container by name when dropped: a run that times out or is
/// interrupted while testcontainers is still starting it leaves no
/// container behind (testcontainers removes the ones it handed back).
struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

/// Whether an engine answers, and its API version.
pub fn engine_api() -> Option<String> {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The kernel's binfmt handler for aarch64: whether it is enabled, and
/// `NAME enabled|disabled (INTERPRETER)`; an enabled handler wins over a
/// disabled one, as the kernel uses it. `None` when there is none.
pub fn binfmt_aarch64() -> Option<(bool, String)> {
    let mut found: Option<(bool, String)> = None;
    for name in ["qemu-aarch64", "qemu-aarch64-static"] {
        let Ok(text) = std::fs::read_to_string(Path::new("/proc/sys/fs/binfmt_misc").join(name))
        else {
            continue;
        };
        let enabled = text.lines().next() == Some("enabled");
        let interpreter = text
            .lines()
            .find_map(|l| l.strip_prefix("interpreter "))
            .unwrap_or("?");
        let line = format!(
            "{name} {} ({interpreter})",
            if enabled { "enabled" } else { "disabled" }
        );
        if enabled || found.is_none() {
            found = Some((enabled, line));
        }
    }
    found
}

/// The QEMU CPU for the binfmt handler, as `QEMU_CPU` takes it.
fn qemu_cpu() -> &'static str {
    QEMU_CPU_ARGS[1]
}

/// The container that runs `args` (after the image's `node` entrypoint)
/// in `workdir`; `start()` waits for it to exit unless it exposes
/// `port`.
fn request(
    tag: &str,
    platform: &str,
    workdir: &Path,
    args: &[String],
    name: &str,
    timeout: Duration,
    port: Option<u16>,
) -> Result<testcontainers::ContainerRequest<GenericImage>> {
    let (repo, version) = tag
        .split_once(':')
        .with_context(|| format!("bad image tag {tag}"))?;
    let workdir = workdir
        .to_str()
        .with_context(|| format!("{}: not UTF-8", workdir.display()))?;
    let image = match port {
        Some(p) => GenericImage::new(repo, version)
            .with_exposed_port(testcontainers::core::ContainerPort::Tcp(p)),
        None => {
            GenericImage::new(repo, version).with_wait_for(WaitFor::exit(ExitWaitStrategy::new()))
        }
    };
    Ok(image
        // start() waits for the exit; its own limit (60 s by default) must
        // not cut a run short of the run's timeout, which is applied
        // around it.
        .with_startup_timeout(timeout + Duration::from_secs(30))
        .with_cmd(args.iter().cloned())
        .with_platform(platform)
        .with_env_var("QEMU_CPU", qemu_cpu())
        .with_mount(Mount::bind_mount(workdir, "/work"))
        .with_working_dir("/work")
        .with_ulimit("core", -1, Some(-1))
        .with_container_name(name)
        .with_label("crosswind", "run")
        // Node.js as PID 1 that aborts under QEMU hangs the container.
        .with_host_config_modifier(|h| h.init = Some(true)))
}

fn container_name() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("crosswind-{}-{n}", std::process::id())
}

/// Checks, once per image, that it really runs the architecture asked for:
/// testcontainers falls back to the host's platform when the image is
/// missing for the one requested.
async fn check_arch(tag: &str, platform: &str, arch: &str, scratch: &Path) -> Result<()> {
    if CHECKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(tag)
        .is_some_and(|a| a == arch)
    {
        return Ok(());
    }
    let name = container_name();
    let _cleanup = RemoveOnDrop(name.clone());
    let args = ["-p".to_string(), "process.arch".to_string()];
    let container = request(
        tag,
        platform,
        scratch,
        &args,
        &name,
        Duration::from_secs(120),
        None,
    )?
    .start()
    .await
    .with_context(|| format!("starting a container of {tag}"))?;
    let seen = String::from_utf8_lossy(&container.stdout_to_vec().await?)
        .trim()
        .to_string();
    if seen != arch {
        let stderr = String::from_utf8_lossy(&container.stderr_to_vec().await?).into_owned();
        let tail = stderr.lines().last().unwrap_or("").trim().to_string();
        bail!(
            "{tag} runs as '{seen}' inside the container, not {arch} (the image is not the {platform} one, or it did not start: {tail})"
        );
    }
    CHECKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(tag.to_string(), arch.to_string());
    Ok(())
}

impl Backend for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn unavailable(&self, arch: &str) -> Option<String> {
        if images::platform(arch).is_err() {
            return Some(format!("docker runs arm64 or x64, not {arch}"));
        }
        if engine_api().is_none() {
            return Some(
                "no Docker engine reachable: install docker.io and start dockerd (as root), or set DOCKER_HOST"
                    .into(),
            );
        }
        if TargetArch::parse(arch) == Some(TargetArch::Arm64)
            && TargetArch::host() != Some(TargetArch::Arm64)
            && !binfmt_aarch64().is_some_and(|(on, _)| on)
        {
            return Some(
                "no binfmt handler for aarch64: apt-get install qemu-user-static binfmt-support; \
                 mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64"
                    .into(),
            );
        }
        None
    }

    fn sysroot(&self, arch: &str) -> Option<PathBuf> {
        // The arm64 image's /lib holds the cross sysroot's own files; the
        // x64 image's libraries sit at the host's own paths.
        TargetArch::parse(arch)
            .and_then(TargetArch::sysroot)
            .map(PathBuf::from)
    }

    fn run<'a>(&'a self, req: &'a RunRequest) -> BoxFuture<'a, Result<RunOutput>> {
        Box::pin(async move {
            clear_cores(&req.workdir)?;
            let (version, arch) = (req.node.version.clone(), req.node.arch.clone());
            let platform = images::platform(&arch)?;
            let tag = tokio::task::spawn_blocking(move || images::ensure(&version, &arch, true))
                .await
                .context("building the image")??;
            check_arch(&tag, platform, &req.node.arch, &req.workdir).await?;

            let mut args = req.flags.clone();
            args.push(req.script.clone());
            let name = container_name();
            let _cleanup = RemoveOnDrop(name.clone());
            let start = request(
                &tag,
                platform,
                &req.workdir,
                &args,
                &name,
                req.timeout,
                None,
            )?
            .start();
            let (stderr, status, timed_out) = match tokio::time::timeout(req.timeout, start).await {
                Ok(container) => {
                    let container =
                        container.with_context(|| format!("running a container of {tag}"))?;
                    let stderr =
                        String::from_utf8_lossy(&container.stderr_to_vec().await?).into_owned();
                    let status = match container.exit_code().await? {
                        Some(code) => format!("exit status: {code}"),
                        None => "exit status unknown".to_string(),
                    };
                    (stderr, status, false)
                }
                Err(_) => (String::new(), "timed out".to_string(), true),
            };
            let emulated = TargetArch::parse(&req.node.arch) == Some(TargetArch::Arm64)
                && TargetArch::host() != Some(TargetArch::Arm64);
            if emulated {
                // QEMU (the binfmt handler) also dumps a host core of itself.
                let _ = std::fs::remove_file(req.workdir.join("core"));
            }
            let core = std::fs::read_dir(&req.workdir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        if emulated {
                            n.starts_with("qemu_") && n.ends_with(".core")
                        } else {
                            n == "core" || n.starts_with("core.")
                        }
                    })
                });
            Ok(RunOutput {
                core,
                stderr,
                status,
                timed_out,
            })
        })
    }
}

/// Why a live (gdbstub) guest of `arch` cannot run in a container here.
pub fn live_unavailable(arch: &str) -> Option<String> {
    if let Some(why) = Docker.unavailable(arch) {
        return Some(why);
    }
    if TargetArch::parse(arch) != Some(TargetArch::Arm64)
        || TargetArch::host() == Some(TargetArch::Arm64)
    {
        return Some(format!(
            "live sampling in a container needs QEMU's gdbstub, which is there only for arm64 guests on a non-arm64 host (here {} on {}): use --backend qemu-user",
            arch,
            host_arch()
        ));
    }
    None
}

/// The port QEMU's gdbstub listens on inside a container; Docker publishes
/// it on a free loopback port of the host.
const GDB_PORT: u16 = 1234;

/// How a guest in a container ended.
pub struct ContainerExit {
    /// The exit code; docker-init reports death by signal N as 128 + N.
    pub code: i64,
}

/// A container whose `node` runs under the binfmt handler's gdbstub
/// (`QEMU_GDB`), for live sampling: the same images as [`Docker::run`],
/// the node process only (docker-init is a host binary, and `QEMU_GDB` is
/// unset for the guest so that a child it spawns does not listen too).
/// Removed when dropped.
pub struct GdbContainer {
    runtime: RuntimeRef,
    container: Option<testcontainers::ContainerAsync<GenericImage>>,
    docker: testcontainers::bollard::Docker,
    name: String,
    _cleanup: RemoveOnDrop,
    /// Where the gdbstub is published on the host.
    pub addr: std::net::SocketAddr,
}

/// The Tokio runtime a [`GdbContainer`] drives Docker with: the caller's
/// when it has one (the scenario runner), else one of its own (the CLI).
enum RuntimeRef {
    Borrowed(tokio::runtime::Handle),
    Owned(tokio::runtime::Runtime),
}

impl RuntimeRef {
    fn new() -> Result<RuntimeRef> {
        Ok(match tokio::runtime::Handle::try_current() {
            Ok(h) => RuntimeRef::Borrowed(h),
            Err(_) => RuntimeRef::Owned(
                // One worker, so that the log copies run between calls.
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .context("starting a Tokio runtime for Docker")?,
            ),
        })
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match self {
            RuntimeRef::Borrowed(h) => h.block_on(f),
            RuntimeRef::Owned(rt) => rt.block_on(f),
        }
    }
}

impl GdbContainer {
    /// Starts `node args` of version `version` for `arch` in `workdir`
    /// (mounted at `/work`), stopped at its first instruction until a
    /// debugger connects to [`Self::addr`]. Its stdout and stderr are
    /// copied as they come to `log`, or to this process's stderr. Must not
    /// be called from an async context (it blocks).
    pub fn start(
        version: &str,
        arch: &str,
        workdir: &Path,
        args: &[String],
        every_insn: bool,
        log: Option<&Path>,
    ) -> Result<GdbContainer> {
        if let Some(why) = live_unavailable(arch) {
            bail!("{why}");
        }
        let platform = images::platform(arch)?;
        let tag = images::ensure(version, arch, true)?;
        let runtime = RuntimeRef::new()?;
        runtime.block_on(check_arch(&tag, platform, arch, workdir))?;
        let name = container_name();
        let cleanup = RemoveOnDrop(name.clone());
        let mut req = request(
            &tag,
            platform,
            workdir,
            args,
            &name,
            STUB_START,
            Some(GDB_PORT),
        )?
        .with_env_var("QEMU_GDB", GDB_PORT.to_string())
        .with_env_var("QEMU_UNSET_ENV", "QEMU_GDB")
        .with_host_config_modifier(|h| {
            h.init = Some(true);
            // Loopback only: the stub hands out the guest's memory.
            h.publish_all_ports = Some(false);
            h.port_bindings = Some(HashMap::from([(
                format!("{GDB_PORT}/tcp"),
                Some(vec![testcontainers::bollard::models::PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )]));
        });
        if every_insn {
            // QEMU 8.1 renamed -singlestep; each version ignores the other's.
            req = req
                .with_env_var("QEMU_SINGLESTEP", "1")
                .with_env_var("QEMU_ONE_INSN_PER_TB", "1");
        }
        let (container, docker, port) = runtime.block_on(async {
            let container = req
                .start()
                .await
                .with_context(|| format!("starting a container of {tag}"))?;
            let port = container
                .get_host_port_ipv4(testcontainers::core::ContainerPort::Tcp(GDB_PORT))
                .await
                .context("finding the gdbstub's published port")?;
            let docker = testcontainers::core::client::docker_client_instance()
                .await
                .context("connecting to the Docker engine")?;
            anyhow::Ok((container, docker, port))
        })?;
        let log_file = match log {
            Some(log) => Some(
                std::fs::File::create(log)
                    .with_context(|| format!("creating {}", log.display()))?,
            ),
            None => None,
        };
        let log_file = std::sync::Arc::new(Mutex::new(log_file));
        for stream in [container.stdout(true), container.stderr(true)] {
            let log_file = log_file.clone();
            runtime.block_on(async {
                tokio::spawn(copy_lines(stream, log_file));
            });
        }
        Ok(GdbContainer {
            runtime,
            container: Some(container),
            docker,
            name,
            _cleanup: cleanup,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    /// Sends `signal` (`SIGUSR2`) to the guest: docker-init passes it on
    /// to node's QEMU.
    pub fn signal(&self, signal: &str) -> Result<()> {
        let options = testcontainers::bollard::query_parameters::KillContainerOptions {
            signal: signal.to_string(),
        };
        self.runtime
            .block_on(self.docker.kill_container(&self.name, Some(options)))
            .with_context(|| format!("signalling container {}", self.name))
    }

    /// How the guest ended, once it has.
    pub fn exited(&self) -> Option<ContainerExit> {
        let state = self
            .runtime
            .block_on(self.docker.inspect_container(&self.name, None))
            .ok()?
            .state?;
        if state.running == Some(true) {
            return None;
        }
        Some(ContainerExit {
            code: state.exit_code.unwrap_or(-1),
        })
    }
}

impl Drop for GdbContainer {
    fn drop(&mut self) {
        if let Some(c) = self.container.take() {
            let _ = self.runtime.block_on(c.rm());
        }
    }
}

/// How long a container may take to start (its node waits for the
/// debugger, so this is the engine's time only).
const STUB_START: Duration = Duration::from_secs(60);

/// Appends each line of a container's log stream to `log`, or to stderr.
async fn copy_lines(
    stream: std::pin::Pin<Box<dyn tokio::io::AsyncBufRead + Send>>,
    log: std::sync::Arc<Mutex<Option<std::fs::File>>>,
) {
    use std::io::Write;
    use tokio::io::AsyncBufReadExt;
    let mut lines = stream.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
        let _ = match f.as_mut() {
            Some(f) => writeln!(f, "{line}"),
            None => writeln!(std::io::stderr(), "{line}"),
        };
    }
}
