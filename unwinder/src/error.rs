//! The unwinder's error type: every failure names the thing that was wrong.

use std::path::PathBuf;

/// Errors raised while reading cores, modules or process memory.
///
/// Every variant is caused by input (a core, a binary, a snapshot): callers
/// report them as "bad input" and exit with code 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// A file is not ELF.
    #[error("{path}: not an ELF file")]
    NotElf {
        /// The file.
        path: PathBuf,
    },
    /// An ELF file's headers or notes do not parse.
    #[error("{path}: malformed ELF: {what}")]
    BadElf {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// An ELF file that is not a core was given as one.
    #[error("{path}: not a core file (ELF type is not ET_CORE)")]
    NotCore {
        /// The file.
        path: PathBuf,
    },
    /// A process (a core, a running process) and one of its modules are
    /// for different architectures.
    #[error("{path} is for {core_arch} but {exe} is for {exe_arch}")]
    ArchMismatch {
        /// The core.
        path: PathBuf,
        /// The core's architecture.
        core_arch: String,
        /// The executable.
        exe: PathBuf,
        /// The executable's architecture.
        exe_arch: String,
    },
    /// A file is for an architecture crosswind does not unwind.
    #[error("{path}: unsupported architecture {arch}")]
    UnsupportedArch {
        /// The file.
        path: PathBuf,
        /// Its architecture.
        arch: String,
    },
    /// A core segment claims file bytes past the end of the core.
    #[error("{path}: core is truncated: segment at {vaddr:#x} wants file bytes {offset:#x}..{end:#x}, file has {file_len:#x}")]
    Truncated {
        /// The core.
        path: PathBuf,
        /// Address of the segment.
        vaddr: u64,
        /// Where its bytes start in the file.
        offset: u64,
        /// Where they end.
        end: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A core with no thread in it.
    #[error("{path}: core has no thread (no NT_PRSTATUS note)")]
    NoThreads {
        /// The core.
        path: PathBuf,
    },
    /// A running process could not be attached to, stopped or read.
    #[error("process {pid}: {what}")]
    Process {
        /// The process id.
        pid: u32,
        /// What failed, and what to do about it.
        what: String,
    },
    /// A module the core names could not be found.
    #[error("module {name}: file not found (looked in {looked})")]
    ModuleNotFound {
        /// The module's name in the core.
        name: String,
        /// Where it was looked for.
        looked: String,
    },
    /// An address the process does not have.
    #[error("memory at {addr:#x} ({len} bytes) is not in the core or any module")]
    Unmapped {
        /// The address read.
        addr: u64,
        /// Bytes wanted there.
        len: usize,
    },
    /// Any other problem with the input, described.
    #[error("{0}")]
    Other(String),
}

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
