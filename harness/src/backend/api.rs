//! What every backend is: the [`Backend`] trait, what is asked of a run
//! and what comes of it, where a live guest runs, and the process helpers
//! the backends share.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::AsyncReadExt;

use crate::provision::NodePackage;
use crate::target::TargetArch;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub node: NodePackage,
    /// A directory of its own; the script and its files are in it.
    pub workdir: PathBuf,
    pub script: String,
    pub flags: Vec<String>,
    pub timeout: Duration,
}

/// What came of it.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The core the program left, if any.
    pub core: Option<PathBuf>,
    pub stderr: String,
    /// Exit status as text (`exit status: 134`, `signal: 6`, ...).
    pub status: String,
    pub timed_out: bool,
}

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A place to run Node.js.
pub trait Backend: Send + Sync {
    /// The name `--backend` takes.
    fn name(&self) -> &'static str;
    /// Why this backend cannot run `arch` (`arm64`, `x64`) here, if it cannot.
    fn unavailable(&self, arch: &str) -> Option<String>;
    /// The directory that stands for `/` when resolving the library paths
    /// of an `arch` guest.
    fn sysroot(&self, arch: &str) -> Option<PathBuf>;
    /// Runs the request to its end (or timeout) and collects the core.
    fn run<'a>(&'a self, req: &'a RunRequest) -> BoxFuture<'a, Result<RunOutput>>;
}

/// The host's architecture in Node.js's naming.
pub fn host_arch() -> &'static str {
    TargetArch::host().map_or(std::env::consts::ARCH, TargetArch::name)
}

/// Makes the child `cmd` starts die with the thread that starts it
/// (PR_SET_PDEATHSIG): however crosswind ends, even by SIGKILL, a live
/// guest (which would otherwise run on once its debugger is gone) does not
/// keep running. Runs to a core end by themselves, within their timeout. std and tokio have no portable way to
/// ask for this, hence libc.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe, and the closure touches nothing
    // else between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Removes cores a previous run left in `workdir`.
pub(super) fn clear_cores(workdir: &Path) -> Result<()> {
    for e in std::fs::read_dir(workdir).with_context(|| format!("listing {}", workdir.display()))? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "core" || name.starts_with("core.") || name.ends_with(".core") {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

/// Runs `program args` in `workdir` with core dumps enabled, killing it
/// (and so every thread it has) on timeout or when the future is dropped
/// (Ctrl-C): no process outlives the run.
pub(super) async fn run_with_cores(
    program: &str,
    args: &[String],
    workdir: &Path,
    timeout: Duration,
) -> Result<(String, String, bool)> {
    // `ulimit -c` is a shell builtin; `exec` makes the program the child
    // itself, so killing the child kills it.
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -c unlimited; exec \"$@\"")
        .arg("sh")
        .arg(program)
        .args(args)
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let mut stderr_pipe = child.stderr.take().context("no stderr pipe")?;
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf).await;
        String::from_utf8_lossy(&buf).into_owned()
    });
    let (status, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(s) => (s.context("waiting for the run")?.to_string(), false),
        Err(_) => {
            let _ = child.kill().await;
            ("killed after timeout".to_string(), true)
        }
    };
    let stderr = reader.await.unwrap_or_default();
    Ok((stderr, status, timed_out))
}

/// Where a live guest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LiveBackend {
    /// `qemu-aarch64 -g` as a child of this process.
    #[default]
    QemuUser,
    /// A `crosswind/node` container whose node runs under the binfmt
    /// handler with `QEMU_GDB`.
    Docker,
}

impl LiveBackend {
    /// The name `--backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            LiveBackend::QemuUser => "qemu-user",
            LiveBackend::Docker => "docker",
        }
    }
}
