//! Provisioning: official Node.js builds from the npm registry's
//! `node-linux-<arch>` packages (cached and integrity-checked under
//! `${XDG_CACHE_HOME:-~/.cache}/crosswind/`), and the Debian packages the
//! harness needs (QEMU user mode, the aarch64 cross toolchain and sysroot,
//! gdb-multiarch). Every step is idempotent.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use base64::Engine;
use sha2::{Digest, Sha512};

use crate::target::TargetArch;
pub use crate::target::{AARCH64_SYSROOT, QEMU_CPU_ARGS};

/// The Node.js versions crosswind supports, one per line. The first is the
/// default, the only one `just test` provisions and runs.
pub const NODE_VERSIONS: &[&str] = &["22.20.0", "18.20.8", "20.20.2", "24.21.0", "26.10.0"];

/// The default Node.js version.
pub const DEFAULT_NODE: &str = "22.20.0";

/// The versions the test binaries run: `CROSSWIND_NODE` (comma-separated,
/// as `just test-arm64` sets it from `crosswind node-path --list`), else
/// the default.
pub fn versions_under_test() -> Vec<String> {
    match std::env::var("CROSSWIND_NODE") {
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|s| s.trim().to_string()).collect(),
        _ => vec![DEFAULT_NODE.to_string()],
    }
}

/// Debian packages the harness uses, with the command that shows each is
/// present (`-`: ask dpkg). One list, shared with the justfile.
const APT_PACKAGES_TXT: &str = include_str!("../assets/apt-packages.txt");

/// The packages of `assets/apt-packages.txt` as (package, command).
pub fn apt_packages() -> Vec<(&'static str, &'static str)> {
    APT_PACKAGES_TXT
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(p, c)| (p.trim(), c.trim()))
        .collect()
}

/// How QEMU's user mode runs a guest of one architecture: its program, CPU
/// options and the sysroot it resolves the guest's libraries in (`-L`).
#[derive(Debug, Clone, Copy)]
pub struct QemuUserMode {
    pub program: &'static str,
    pub cpu_args: &'static [&'static str],
    pub sysroot: Option<&'static str>,
}

/// QEMU's user mode for `arch` (`arm64`, `x64`). An x64 guest runs on the
/// host's own libraries, with QEMU's default CPU for x86-64 user mode
/// (`max`).
pub fn qemu_user_mode(arch: &str) -> Result<QemuUserMode> {
    match TargetArch::parse(arch) {
        Some(a) => Ok(QemuUserMode {
            program: a.qemu_program(),
            cpu_args: a.qemu_cpu_args(),
            sysroot: a.sysroot(),
        }),
        None => bail!("no QEMU user mode for architecture {arch} (arm64 or x64)"),
    }
}

/// A provisioned Node.js package.
#[derive(Debug, Clone)]
pub struct NodePackage {
    pub version: String,
    /// `arm64` or `x64`, as the npm package names them.
    pub arch: String,
    /// The unpacked `package/` directory.
    pub root: PathBuf,
}

/// `${XDG_CACHE_HOME:-~/.cache}/crosswind`.
pub fn cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("crosswind");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache").join("crosswind")
}

impl NodePackage {
    /// The node binary.
    pub fn node(&self) -> PathBuf {
        self.root.join("bin/node")
    }

    /// The headers (`node_api.h`, ...).
    pub fn include_dir(&self) -> PathBuf {
        self.root.join("include/node")
    }

    /// The package if already provisioned and verified.
    pub fn cached(version: &str, arch: &str) -> Option<NodePackage> {
        let dir = cache_dir().join("node").join(format!("{arch}-{version}"));
        let root = dir.join("package");
        (dir.join("VERIFIED").is_file() && root.join("bin/node").is_file()).then(|| NodePackage {
            version: version.into(),
            arch: arch.into(),
            root,
        })
    }

    /// Provisions `node-linux-<arch>@<version>` if not cached: `npm pack`,
    /// check the tarball's sha512 against the registry's integrity, unpack.
    pub fn ensure(version: &str, arch: &str) -> Result<NodePackage> {
        validate_version(version)?;
        let Some(target) = TargetArch::parse(arch) else {
            bail!("unknown Node.js architecture '{arch}' (expected arm64 or x64)");
        };
        if let Some(p) = Self::cached(version, arch) {
            return Ok(p);
        }
        let spec = target.npm_package(version);
        let dir = cache_dir().join("node").join(format!("{arch}-{version}"));
        let tmp = cache_dir()
            .join("tmp")
            .join(format!("{arch}-{version}-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        eprintln!("crosswind: fetching {spec} from the npm registry (about 50 MB)...");
        let expected = npm_integrity(&spec)?;
        let out = Command::new("npm")
            .args(["pack", &spec, "--silent", "--pack-destination"])
            .arg(&tmp)
            .output()
            .context("running npm (is Node.js/npm installed? `apt-get install npm`)")?;
        if !out.status.success() {
            bail!(
                "npm pack {spec} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let tarball = tmp.join(format!("node-linux-{arch}-{version}.tgz"));
        let bytes =
            std::fs::read(&tarball).with_context(|| format!("reading {}", tarball.display()))?;
        let actual = format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(Sha512::digest(&bytes))
        );
        if actual != expected {
            bail!("{spec}: integrity mismatch: registry says {expected}, download is {actual}");
        }
        let unpack = tmp.join("unpack");
        std::fs::create_dir_all(&unpack)?;
        let status = Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpack)
            .status()
            .context("running tar")?;
        if !status.success() {
            bail!("unpacking {} failed", tarball.display());
        }
        std::fs::write(unpack.join("VERIFIED"), format!("{expected}\n"))?;
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Another process may have won the race; either copy is verified.
        if std::fs::rename(&unpack, &dir).is_err() && Self::cached(version, arch).is_none() {
            bail!("could not move the unpacked package to {}", dir.display());
        }
        let _ = std::fs::remove_dir_all(&tmp);
        Self::cached(version, arch).with_context(|| format!("{spec}: package has no bin/node"))
    }
}

fn validate_version(v: &str) -> Result<()> {
    let ok = v.split('.').count() == 3
        && v.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if !ok {
        bail!("'{v}' is not a Node.js version (expected MAJOR.MINOR.PATCH, e.g. {DEFAULT_NODE})");
    }
    Ok(())
}

fn npm_integrity(spec: &str) -> Result<String> {
    let out = Command::new("npm")
        .args(["view", spec, "dist.integrity"])
        .output()
        .context("running npm (is Node.js/npm installed? `apt-get install npm`)")?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !s.starts_with("sha512-") {
        bail!(
            "npm view {spec} dist.integrity failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(s)
}

/// Whether a command is on PATH.
pub fn have_command(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// The Debian packages not yet installed.
pub fn missing_apt_packages() -> Vec<&'static str> {
    apt_packages()
        .into_iter()
        .filter(|(pkg, cmd)| {
            if *cmd == "-" {
                !dpkg_installed(pkg)
            } else {
                !have_command(cmd)
            }
        })
        .map(|(pkg, _)| pkg)
        .collect()
}

/// Installs missing Debian packages with apt-get (as root, or via sudo).
/// apt's output is kept unless it fails, when it is returned in the error.
pub fn install_apt_packages(pkgs: &[&str]) -> Result<()> {
    if pkgs.is_empty() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    let mut prefix: Vec<&str> = Vec::new();
    if !is_root {
        if !have_command("sudo") {
            bail!(
                "need root to install {}: run `sudo apt-get install {}`",
                pkgs.join(" "),
                pkgs.join(" ")
            );
        }
        prefix.push("sudo");
    }
    eprintln!("crosswind: installing {}", pkgs.join(" "));
    // `env` carries the settings through sudo, which drops the caller's.
    prefix.extend([
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "DEBCONF_NOWARNINGS=yes",
    ]);
    let run = |args: &[&str]| -> Result<()> {
        let mut all = prefix.clone();
        all.extend_from_slice(args);
        let out = Command::new(all[0])
            .args(&all[1..])
            .output()
            .with_context(|| format!("running {}", all.join(" ")))?;
        if !out.status.success() {
            bail!(
                "`{}` failed:\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    run(&["apt-get", "update", "-qq"])?;
    let mut args = vec!["apt-get", "install", "-y", "-qq", "--no-install-recommends"];
    args.extend_from_slice(pkgs);
    run(&args)
}

/// `crosswind setup`: the missing Debian packages (unless `no_apt`), then
/// the Node.js builds of `versions` for `arches`. With `check`, installs
/// nothing and returns 1 when something is missing.
pub fn setup_command(
    versions: &[String],
    arches: &[&str],
    check: bool,
    no_apt: bool,
) -> Result<u8> {
    let missing = missing_apt_packages();
    if !no_apt {
        if check {
            if !missing.is_empty() {
                println!("missing packages: {}", missing.join(" "));
            }
        } else {
            install_apt_packages(&missing)?;
        }
    }
    let mut ok = no_apt || missing.is_empty() || !check;
    for v in versions {
        for &arch in arches {
            if check {
                match NodePackage::cached(v, arch) {
                    Some(p) => println!("node-linux-{arch}@{v}: {}", p.root.display()),
                    None => {
                        println!("node-linux-{arch}@{v}: not provisioned");
                        ok = false;
                    }
                }
            } else {
                let p = NodePackage::ensure(v, arch)?;
                println!("node-linux-{arch}@{v}: {}", p.root.display());
            }
        }
    }
    if check && !Path::new(AARCH64_SYSROOT).is_dir() {
        println!("aarch64 sysroot {AARCH64_SYSROOT} is missing");
        ok = false;
    }
    Ok(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_list_parses() {
        let p = apt_packages();
        assert!(p.contains(&("qemu-user", "qemu-aarch64")));
        assert!(p.contains(&("libclang-dev", "-")));
        assert!(p
            .iter()
            .all(|(pkg, cmd)| !pkg.is_empty() && !cmd.is_empty()));
    }

    #[test]
    fn versions_are_checked() {
        assert!(validate_version("22.20.0").is_ok());
        assert!(validate_version("22.x").is_err());
        assert!(validate_version("../../etc").is_err());
    }
}
