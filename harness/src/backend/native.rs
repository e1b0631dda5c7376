//! The `native` backend: runs Node.js of the host's own architecture
//! directly. The kernel writes the core as `core` or `core.<pid>` in the
//! working directory, which needs `kernel.core_pattern` to be a plain file
//! name (not a pipe to systemd-coredump or apport).

use std::path::PathBuf;

use anyhow::Result;

use super::api::{
    clear_cores, host_arch, run_with_cores, Backend, BoxFuture, RunOutput, RunRequest,
};

/// The host itself.
pub struct Native;

fn core_pattern() -> String {
    std::fs::read_to_string("/proc/sys/kernel/core_pattern")
        .unwrap_or_default()
        .trim()
        .to_string()
}

impl Backend for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn unavailable(&self, arch: &str) -> Option<String> {
        if arch != host_arch() {
            return Some(format!(
                "native runs {} only (this host), not {arch}",
                host_arch()
            ));
        }
        let pattern = core_pattern();
        if pattern.starts_with('|') || pattern.contains('/') {
            return Some(format!(
                "kernel.core_pattern is '{pattern}', so cores do not land in the working directory: `sysctl kernel.core_pattern=core` (as root)"
            ));
        }
        None
    }

    fn sysroot(&self, _arch: &str) -> Option<PathBuf> {
        None
    }

    fn run<'a>(&'a self, req: &'a RunRequest) -> BoxFuture<'a, Result<RunOutput>> {
        Box::pin(async move {
            clear_cores(&req.workdir)?;
            let mut args: Vec<String> = req.flags.clone();
            args.push(req.script.clone());
            let node = req.node.node().display().to_string();
            let (stderr, status, timed_out) =
                run_with_cores(&node, &args, &req.workdir, req.timeout).await?;
            let core = std::fs::read_dir(&req.workdir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n == "core" || n.starts_with("core."))
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
