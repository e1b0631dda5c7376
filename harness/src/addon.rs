//! Native addons: N-API sources built for the target architecture with the
//! cross compiler, against the headers shipped in the same Node.js package,
//! and cached by content hash under `~/.cache/crosswind/addons/`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::provision::{cache_dir, have_command, NodePackage};
use crate::scenario::AddonSpec;
use crate::target::TargetArch;

/// The C and C++ compilers for an architecture.
pub fn compilers(arch: &str) -> (&'static str, &'static str) {
    TargetArch::parse(arch).map_or(("gcc", "g++"), TargetArch::compilers)
}

/// Builds (or finds in the cache) `<name>.node` for `arch`.
pub fn build(spec: &AddonSpec, node: &NodePackage, arch: &str) -> Result<PathBuf> {
    let cpp = spec
        .sources
        .keys()
        .any(|s| s.ends_with(".cc") || s.ends_with(".cpp"));
    let (cc, cxx) = compilers(arch);
    let compiler = if cpp { cxx } else { cc };
    if !have_command(compiler) {
        let (c_pkg, cpp_pkg) =
            TargetArch::parse(arch).map_or(("gcc", "g++"), TargetArch::compiler_packages);
        let pkg = if cpp { cpp_pkg } else { c_pkg };
        bail!(
            "addon '{}': {compiler} not found: run `just setup` (or `apt-get install {pkg}`)",
            spec.name
        );
    }
    let mut hash = Sha256::new();
    for part in [compiler, arch, &node.version, &spec.name] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    for f in &spec.cflags {
        hash.update(f.as_bytes());
        hash.update([0]);
    }
    for (name, text) in &spec.sources {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update([0]);
    }
    let key: String = hash
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache_dir().join("addons").join(&key);
    let out = dir.join(format!("{}.node", spec.name));
    if out.is_file() {
        return Ok(out);
    }
    let tmp = cache_dir().join("tmp").join(format!(
        "addon-{key}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut units = Vec::new();
    for (name, text) in &spec.sources {
        let p = tmp.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        if !name.ends_with(".h") {
            units.push(p);
        }
    }
    let built = tmp.join(format!("{}.node", spec.name));
    let output = Command::new(compiler)
        .args(["-shared", "-fPIC", "-g"])
        .arg("-I")
        .arg(node.include_dir())
        .args(&spec.cflags)
        .args(&units)
        .arg("-o")
        .arg(&built)
        .output()
        .with_context(|| format!("running {compiler}"))?;
    if !output.status.success() {
        bail!(
            "addon '{}': {compiler} failed:\n{}",
            spec.name,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    std::fs::create_dir_all(&dir)?;
    // Rename is atomic: a concurrent build of the same key wins or loses whole.
    std::fs::rename(&built, &out).or_else(|e| if out.is_file() { Ok(()) } else { Err(e) })?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(out)
}
