//! Process access: the stopped processes the walker reads, each a
//! [`Process`](crate::Process) of memory and modules. [`CoreProcess`] is
//! an ELF core with the module files it maps; [`PtraceProcess`] is a
//! running process on this host, stopped a thread at a time. The helpers
//! of [`modules`] (module resolution, the dynamic linker's list,
//! executables loaded at their auxv address) serve those and the harness's
//! live guests.

mod core;
mod modules;
#[cfg(target_os = "linux")]
mod ptrace;

pub use self::core::CoreProcess;
pub use self::modules::{
    link_map_entries, open_executable, open_library, r_debug_address, ModuleResolver, AUXV_PHDR,
};
#[cfg(target_os = "linux")]
pub use self::ptrace::{LiveCapture, PtraceProcess, ThreadStop};
