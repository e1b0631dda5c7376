//! The target architecture of a guest (`arm64`, `x64`, as Node.js names
//! them) and everything that follows from it: QEMU's user mode, the cross
//! compilers, Docker's platform, the sysroot, the npm package's name and
//! the unwinder's architecture.

use std::fmt;

use crosswind_unwinder::arch::ArchKind;

/// The aarch64 sysroot that `gcc-aarch64-linux-gnu` installs; QEMU's `-L`.
pub const AARCH64_SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// The CPU `qemu-aarch64` emulates. Its default (`max`) computes pointer
/// authentication codes with QARMA5, which makes PAC-signed builds crawl:
/// Node.js 18 took 19.7 s to start here, 3.1 s with `pauth-impdef=on`. The
/// IMPLEMENTATION DEFINED algorithm keeps pointer authentication on (return
/// addresses are still signed, so the unwinder's PAC stripping is still
/// exercised) at a fraction of the cost.
pub const QEMU_CPU_ARGS: [&str; 2] = ["-cpu", "max,pauth-impdef=on"];

/// A guest architecture, spelled as Node.js spells it (`arm64`, `x64`)
/// on the command line, in scenarios, reports and file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum TargetArch {
    Arm64,
    X64,
}

impl TargetArch {
    /// Both, in the order crosswind lists them.
    pub const ALL: [TargetArch; 2] = [TargetArch::Arm64, TargetArch::X64];

    /// `arm64` or `x64`.
    pub fn parse(name: &str) -> Option<TargetArch> {
        match name {
            "arm64" => Some(TargetArch::Arm64),
            "x64" => Some(TargetArch::X64),
            _ => None,
        }
    }

    /// The host's architecture, if it is one of these.
    pub fn host() -> Option<TargetArch> {
        match std::env::consts::ARCH {
            "aarch64" => Some(TargetArch::Arm64),
            "x86_64" => Some(TargetArch::X64),
            _ => None,
        }
    }

    /// Node.js's name (`process.arch`, `node-linux-<name>` on npm).
    pub const fn name(self) -> &'static str {
        match self {
            TargetArch::Arm64 => "arm64",
            TargetArch::X64 => "x64",
        }
    }

    /// The npm package of Node.js `version` for this architecture.
    pub fn npm_package(self, version: &str) -> String {
        format!("node-linux-{}@{version}", self.name())
    }

    /// QEMU's user-mode program for a guest of this architecture.
    pub fn qemu_program(self) -> &'static str {
        match self {
            TargetArch::Arm64 => "qemu-aarch64",
            TargetArch::X64 => "qemu-x86_64",
        }
    }

    /// The CPU options QEMU's user mode is given (x64: QEMU's default).
    pub fn qemu_cpu_args(self) -> &'static [&'static str] {
        match self {
            TargetArch::Arm64 => &QEMU_CPU_ARGS,
            TargetArch::X64 => &[],
        }
    }

    /// The directory that stands for `/` for a guest's libraries (QEMU's
    /// `-L`); x64 guests use the host's own.
    pub fn sysroot(self) -> Option<&'static str> {
        match self {
            TargetArch::Arm64 => Some(AARCH64_SYSROOT),
            TargetArch::X64 => None,
        }
    }

    /// The C and C++ compilers that build for it (addons).
    pub fn compilers(self) -> (&'static str, &'static str) {
        match self {
            TargetArch::Arm64 => ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++"),
            TargetArch::X64 => ("gcc", "g++"),
        }
    }

    /// The Debian packages of those compilers (C, C++).
    pub fn compiler_packages(self) -> (&'static str, &'static str) {
        match self {
            TargetArch::Arm64 => ("gcc-aarch64-linux-gnu", "g++-aarch64-linux-gnu"),
            TargetArch::X64 => ("gcc", "g++"),
        }
    }

    /// Docker's name for its platform.
    pub fn docker_platform(self) -> &'static str {
        match self {
            TargetArch::Arm64 => "linux/arm64",
            TargetArch::X64 => "linux/amd64",
        }
    }

    /// The unwinder's architecture.
    pub fn kind(self) -> ArchKind {
        match self {
            TargetArch::Arm64 => ArchKind::Aarch64,
            TargetArch::X64 => ArchKind::X86_64,
        }
    }
}

impl fmt::Display for TargetArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn spellings_are_nodes() {
        for a in TargetArch::ALL {
            assert_eq!(TargetArch::parse(a.name()), Some(a));
            assert_eq!(a.to_string(), a.name());
            let cli = a.to_possible_value().map(|v| v.get_name().to_string());
            assert_eq!(cli.as_deref(), Some(a.name()));
        }
        assert_eq!(TargetArch::parse("aarch64"), None);
    }
}
