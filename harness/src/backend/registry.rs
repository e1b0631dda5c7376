//! The one registry of backends: every name `--backend` takes, what it
//! runs, the default for an architecture, and whether (and where) it
//! samples live.

use anyhow::{bail, Result};

use super::api::{host_arch, Backend, LiveBackend};
use super::docker::{self, Docker};
use super::native::Native;
use super::qemu_user::QemuUser;

/// One backend: its name, how to make it, and how it samples live.
struct Entry {
    /// The name `--backend` takes.
    name: &'static str,
    make: fn() -> Box<dyn Backend>,
    /// `crosswind sample --backend NAME`: where the live guest runs, if
    /// this backend can run one itself.
    live: Option<LiveBackend>,
    /// Where a sampling job run on this backend runs its guest (`native`
    /// included: QEMU's gdbstub is how crosswind stops a running thread).
    sampling_guest: LiveBackend,
    /// Why a sampling job for an architecture cannot run on it here.
    live_unavailable: fn(&str) -> Option<String>,
}

fn always_available(_arch: &str) -> Option<String> {
    None
}

const REGISTRY: &[Entry] = &[
    Entry {
        name: "qemu-user",
        make: || Box::new(QemuUser),
        live: Some(LiveBackend::QemuUser),
        sampling_guest: LiveBackend::QemuUser,
        live_unavailable: always_available,
    },
    Entry {
        name: "native",
        make: || Box::new(Native),
        live: None,
        sampling_guest: LiveBackend::QemuUser,
        live_unavailable: always_available,
    },
    Entry {
        name: "docker",
        make: || Box::new(Docker),
        live: Some(LiveBackend::Docker),
        sampling_guest: LiveBackend::Docker,
        live_unavailable: docker::live_unavailable,
    },
];

/// All backend names.
pub const NAMES: &[&str] = &["qemu-user", "native", "docker"];

fn entry(name: &str) -> Option<&'static Entry> {
    REGISTRY.iter().find(|e| e.name == name)
}

/// The backend called `name`.
pub fn by_name(name: &str) -> Result<Box<dyn Backend>> {
    match entry(name) {
        Some(e) => Ok((e.make)()),
        None if name == "qemu-system" => {
            bail!("backend '{name}' is not implemented yet (see the issues)")
        }
        None => bail!("unknown backend '{name}' (known: {})", NAMES.join(", ")),
    }
}

/// The default backend for `arch` on this host: native when the host is
/// that architecture, else qemu-user.
pub fn default_for(arch: &str) -> Box<dyn Backend> {
    if host_arch() == arch {
        Box::new(Native)
    } else {
        Box::new(QemuUser)
    }
}

/// The backend called `name`, if it can run a live guest itself
/// (`crosswind sample --backend`).
pub fn live_by_name(name: &str) -> Result<LiveBackend> {
    match entry(name).and_then(|e| e.live) {
        Some(live) => Ok(live),
        None => bail!(
            "live sampling runs through QEMU's gdbstub: backend qemu-user or docker, not {name}"
        ),
    }
}

/// Where a sampling job of the run backend `name` runs its guest: in a
/// container for `docker`, else under QEMU here.
pub fn sampling_guest(name: &str) -> LiveBackend {
    entry(name).map_or(LiveBackend::QemuUser, |e| e.sampling_guest)
}

/// Why a sampling job for `arch` cannot run on the backend `name` here.
pub fn live_unavailable(name: &str, arch: &str) -> Option<String> {
    entry(name).and_then(|e| (e.live_unavailable)(arch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_registry() {
        let names: Vec<&str> = REGISTRY.iter().map(|e| e.name).collect();
        assert_eq!(names, NAMES);
        for n in NAMES {
            assert_eq!(by_name(n).map(|b| b.name()).ok(), Some(*n));
        }
    }
}
