//! The `qemu-user` backend: `qemu-aarch64 -L <sysroot>` runs the official
//! ARM64 Node.js on an x86 host. The guest core is `qemu_<prog>_*.core` in
//! the working directory; QEMU also dumps a host core of itself (`core`),
//! which is removed.

use std::path::PathBuf;

use anyhow::Result;

use super::api::{clear_cores, run_with_cores, Backend, BoxFuture, RunOutput, RunRequest};
use crate::provision::{have_command, AARCH64_SYSROOT, QEMU_CPU_ARGS};
use crate::target::TargetArch;

/// qemu-aarch64 user-mode emulation.
pub struct QemuUser;

impl Backend for QemuUser {
    fn name(&self) -> &'static str {
        "qemu-user"
    }

    fn unavailable(&self, arch: &str) -> Option<String> {
        if TargetArch::parse(arch) != Some(TargetArch::Arm64) {
            return Some(format!("qemu-user runs arm64 only, not {arch}"));
        }
        if !have_command("qemu-aarch64") {
            return Some(
                "qemu-aarch64 not found: run `just setup` (or `apt-get install qemu-user`)".into(),
            );
        }
        if !std::path::Path::new(AARCH64_SYSROOT).is_dir() {
            return Some(format!(
                "aarch64 sysroot {AARCH64_SYSROOT} missing: run `just setup` (or `apt-get install gcc-aarch64-linux-gnu`)"
            ));
        }
        None
    }

    fn sysroot(&self, _arch: &str) -> Option<PathBuf> {
        Some(PathBuf::from(AARCH64_SYSROOT))
    }

    fn run<'a>(&'a self, req: &'a RunRequest) -> BoxFuture<'a, Result<RunOutput>> {
        Box::pin(async move {
            clear_cores(&req.workdir)?;
            let mut args: Vec<String> = QEMU_CPU_ARGS.iter().map(|a| a.to_string()).collect();
            args.extend(["-L".to_string(), AARCH64_SYSROOT.to_string()]);
            args.push(req.node.node().display().to_string());
            args.extend(req.flags.iter().cloned());
            args.push(req.script.clone());
            let (stderr, status, timed_out) =
                run_with_cores("qemu-aarch64", &args, &req.workdir, req.timeout).await?;
            let _ = std::fs::remove_file(req.workdir.join("core"));
            let core = std::fs::read_dir(&req.workdir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("qemu_") && n.ends_with(".core"))
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
