//! Container images for the docker backend: `crosswind/node:<ver>-<arch>`,
//! built with no registry from `images/Dockerfile.scratch` and a rootfs of
//! the provisioned Node.js package plus the target's C and C++ runtime.
//! Builds are idempotent: an image whose `crosswind.inputs` label matches
//! the inputs' digest is kept.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::provision::{NodePackage, AARCH64_SYSROOT};
use crate::target::TargetArch;

/// The Dockerfile, kept in the repository and compiled in so the binary
/// builds images from anywhere.
const DOCKERFILE: &str = include_str!("../../images/Dockerfile.scratch");

/// Libraries the official Node.js binaries need (their DT_NEEDED entries)
/// and the addons crosswind builds (libstdc++, libgcc_s).
const LIBRARIES: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libatomic.so.1",
];

/// One image build at a time: parallel jobs wanting the same image wait.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// The tag of the image for a Node.js version and architecture.
pub fn tag(version: &str, arch: &str) -> String {
    format!("crosswind/node:{version}-{arch}")
}

/// Docker's name for the platform of a crosswind architecture.
pub fn platform(arch: &str) -> Result<&'static str> {
    match TargetArch::parse(arch) {
        Some(a) => Ok(a.docker_platform()),
        None => bail!("unknown architecture '{arch}' (expected arm64 or x64)"),
    }
}

/// Where the target's runtime libraries and dynamic loader come from,
/// where the loader goes in the image (its PT_INTERP path), and the
/// image's library directory. The libraries sit where the unwinder finds
/// the same files on the host: under the aarch64 sysroot's `lib/` for
/// arm64, at the host's own multiarch path for x64.
fn runtime_sources(arch: &str) -> Result<(Vec<PathBuf>, PathBuf, &'static str, &'static str)> {
    match TargetArch::parse(arch) {
        Some(TargetArch::Arm64) => {
            let lib = Path::new(AARCH64_SYSROOT).join("lib");
            Ok((
                vec![lib.clone()],
                lib.join("ld-linux-aarch64.so.1"),
                "lib/ld-linux-aarch64.so.1",
                "lib",
            ))
        }
        Some(TargetArch::X64) => Ok((
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu"),
                PathBuf::from("/usr/lib/x86_64-linux-gnu"),
            ],
            PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            "lib64/ld-linux-x86-64.so.2",
            "lib/x86_64-linux-gnu",
        )),
        None => bail!("unknown architecture '{arch}' (expected arm64 or x64)"),
    }
}

fn find_library(dirs: &[PathBuf], name: &str) -> Result<PathBuf> {
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .with_context(|| {
            format!(
                "{name} not found in {} (run `just setup`)",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The label an existing image carries, if the image exists.
fn image_inputs_label(tag: &str) -> Option<String> {
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"crosswind.inputs\"}}",
            tag,
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Builds (or keeps) the image for `version` and `arch`; returns its tag.
pub fn ensure(version: &str, arch: &str, quiet: bool) -> Result<String> {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let platform = platform(arch)?;
    let node = NodePackage::ensure(version, arch)?;
    let (lib_dirs, loader, loader_in_image, lib_in_image) = runtime_sources(arch)?;
    let mut sources = vec![(loader, loader_in_image.to_string())];
    for lib in LIBRARIES {
        sources.push((
            find_library(&lib_dirs, lib)?,
            format!("{lib_in_image}/{lib}"),
        ));
    }
    // The digest covers what goes in: the Dockerfile, the package's
    // integrity-checked version, and each library's size and path.
    let mut digest = Sha256::new();
    digest.update(DOCKERFILE.as_bytes());
    digest.update(format!("{version} {arch}\n").as_bytes());
    for (src, dst) in &sources {
        let len = std::fs::metadata(src)
            .with_context(|| format!("reading {}", src.display()))?
            .len();
        digest.update(format!("{} {len} {dst}\n", src.display()).as_bytes());
    }
    let inputs = format!("{:x}", digest.finalize());
    let tag = tag(version, arch);
    if image_inputs_label(&tag).as_deref() == Some(inputs.as_str()) {
        if !quiet {
            println!("{tag}: up to date");
        }
        return Ok(tag);
    }

    let context = std::env::temp_dir().join(format!(
        "crosswind-image-{version}-{arch}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&context);
    let rootfs = context.join("rootfs");
    for dir in ["lib", "lib64", "work", "tmp", "node", lib_in_image] {
        std::fs::create_dir_all(rootfs.join(dir))
            .with_context(|| format!("creating {}", rootfs.join(dir).display()))?;
    }
    copy_tree(&node.root, &rootfs.join("node"))?;
    for (src, dst) in &sources {
        std::fs::copy(src, rootfs.join(dst))
            .with_context(|| format!("copying {} into the image", src.display()))?;
    }
    std::fs::write(context.join("Dockerfile"), DOCKERFILE)?;
    eprintln!(
        "crosswind: building {tag} ({platform}) from {}",
        node.root.display()
    );
    let out = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "--platform", platform, "--label"])
        .arg(format!("crosswind.inputs={inputs}"))
        .args(["-t", &tag])
        .arg(&context)
        .output()
        .context("running `docker build` (is docker installed?)")?;
    let _ = std::fs::remove_dir_all(&context);
    if !out.status.success() {
        bail!(
            "docker build of {tag} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if !quiet {
        println!("{tag}: built");
    }
    Ok(tag)
}

/// Copies a directory tree (regular files, directories and symlinks).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    // Symlinks are copied as links, never followed; the bound only caps
    // the work a damaged or hostile package directory can cause.
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    let mut entries = 0usize;
    while let Some((src, dst)) = stack.pop() {
        for entry in
            std::fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))?
        {
            entries += 1;
            if entries > 200_000 {
                bail!("{}: too many files to copy into an image", from.display());
            }
            let entry = entry?;
            let kind = entry.file_type()?;
            let target = dst.join(entry.file_name());
            if kind.is_dir() {
                std::fs::create_dir_all(&target)?;
                stack.push((entry.path(), target));
            } else if kind.is_symlink() {
                let link = std::fs::read_link(entry.path())?;
                std::os::unix::fs::symlink(&link, &target)
                    .with_context(|| format!("linking {}", target.display()))?;
            } else {
                std::fs::copy(entry.path(), &target)
                    .with_context(|| format!("copying {}", entry.path().display()))?;
            }
        }
    }
    Ok(())
}
