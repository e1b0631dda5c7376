//! `crosswind doctor`: an account of what this machine can run — each
//! backend and why it cannot run an architecture, QEMU's version, the
//! binfmt handler for aarch64, the Docker engine and its API version, the
//! tools the harness calls, and which supported Node.js builds are
//! provisioned. It only looks; it installs and starts nothing.

use std::path::Path;
use std::process::Command;

use crate::backend;
use crate::provision::{self, NodePackage, NODE_VERSIONS};
use crate::target::TargetArch;

/// One line of the account: what, its state, and (when not ready) how to
/// get it.
struct Check {
    what: String,
    ok: bool,
    detail: String,
}

/// The first line a command prints (stdout, else stderr), if it ran and
/// succeeded.
fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

/// The binfmt handler for aarch64 (what Docker needs to run arm64 images
/// on x86), or how to get one.
fn binfmt_aarch64() -> (bool, String) {
    if !Path::new("/proc/sys/fs/binfmt_misc/status").exists() {
        return (
            false,
            "binfmt_misc is not mounted (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc)"
                .into(),
        );
    }
    backend::binfmt_aarch64().unwrap_or((
        false,
        "no aarch64 handler (apt-get install qemu-user-static binfmt-support; update-binfmts --enable qemu-aarch64)"
            .into(),
    ))
}

fn docker() -> (bool, String) {
    // `docker version` fails as a whole when the engine is unreachable, so
    // the client is asked on its own.
    let Some(client) = first_line("docker", &["--version"]) else {
        return (false, "no docker client (apt-get install docker.io)".into());
    };
    match backend::engine_api() {
        Some(api) => (true, format!("client {client}, engine API {api}")),
        None => (
            false,
            format!(
                "client {client}, but no engine reachable (start dockerd, or check DOCKER_HOST)"
            ),
        ),
    }
}

fn checks() -> Vec<Check> {
    let mut out = Vec::new();
    out.push(Check {
        what: "host".into(),
        ok: true,
        detail: format!("{} ({})", backend::host_arch(), std::env::consts::OS),
    });
    for name in backend::NAMES {
        let Ok(b) = backend::by_name(name) else {
            continue;
        };
        for arch in TargetArch::ALL.map(TargetArch::name) {
            let why = b.unavailable(arch);
            out.push(Check {
                what: format!("backend {name} / {arch}"),
                ok: why.is_none(),
                detail: why.unwrap_or_else(|| "can run".into()),
            });
        }
    }
    let qemu = first_line("qemu-aarch64", &["--version"]);
    out.push(Check {
        what: "qemu-aarch64".into(),
        ok: qemu.is_some(),
        detail: qemu.unwrap_or_else(|| "missing (just setup)".into()),
    });
    let (ok, detail) = binfmt_aarch64();
    out.push(Check {
        what: "binfmt aarch64".into(),
        ok,
        detail,
    });
    let (ok, detail) = docker();
    out.push(Check {
        what: "docker".into(),
        ok,
        detail,
    });
    for tool in ["gdb-multiarch", "aarch64-linux-gnu-gcc", "npm"] {
        let version = first_line(tool, &["--version"]);
        out.push(Check {
            what: tool.into(),
            ok: version.is_some(),
            detail: version.unwrap_or_else(|| "missing (just setup)".into()),
        });
    }
    out.push(Check {
        what: "node cache".into(),
        ok: true,
        detail: provision::cache_dir().display().to_string(),
    });
    for version in NODE_VERSIONS {
        for arch in TargetArch::ALL.map(TargetArch::name) {
            let have = NodePackage::cached(version, arch).is_some();
            out.push(Check {
                what: format!("Node.js {version} {arch}"),
                ok: have,
                detail: if have {
                    "provisioned".into()
                } else {
                    format!("not provisioned (crosswind node-path --node {version} --arch {arch})")
                },
            });
        }
    }
    out
}

/// Prints the account; always exit code 0 (it reports, it does not judge).
pub fn run() -> u8 {
    for c in checks() {
        let mark = if c.ok { "ok " } else { "-- " };
        println!("{mark} {:<26} {}", c.what, c.detail);
    }
    0
}
