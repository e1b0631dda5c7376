//! The unwinder's error type: every failure names the thing that was wrong.

use std::path::PathBuf;

/// Errors raised while reading cores, modules or process memory.
///
/// Every variant is caused by input (a core, a binary, a snapshot): callers
/// report them as "bad input" and exit with code 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an ELF file")]
    NotElf { path: PathBuf },
    #[error("{path}: malformed ELF: {what}")]
    BadElf { path: PathBuf, what: String },
    #[error("{path}: not a core file (ELF type is not ET_CORE)")]
    NotCore { path: PathBuf },
    #[error("{path}: core is for {core_arch} but {exe} is for {exe_arch}")]
    ArchMismatch {
        path: PathBuf,
        core_arch: String,
        exe: PathBuf,
        exe_arch: String,
    },
    #[error("{path}: unsupported architecture {arch}")]
    UnsupportedArch { path: PathBuf, arch: String },
    #[error("{path}: core is truncated: segment at {vaddr:#x} wants file bytes {offset:#x}..{end:#x}, file has {file_len:#x}")]
    Truncated {
        path: PathBuf,
        vaddr: u64,
        offset: u64,
        end: u64,
        file_len: u64,
    },
    #[error("{path}: core has no thread (no NT_PRSTATUS note)")]
    NoThreads { path: PathBuf },
    #[error("module {name}: file not found (looked in {looked})")]
    ModuleNotFound { name: String, looked: String },
    #[error("memory at {addr:#x} ({len} bytes) is not in the core or any module")]
    Unmapped { addr: u64, len: usize },
    #[error("{0}")]
    Other(String),
}

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
