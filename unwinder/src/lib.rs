//! crosswind-unwinder: reads a stopped Node.js process (an ELF core, and
//! later snapshots and live processes) and returns every thread's mixed
//! stack: native C/C++ frames, V8 builtins and stubs, and JavaScript frames
//! named as V8 names them.
//!
//! The crate is a library with no process or I/O policy: callers choose
//! paths and output formats. Start from [`open_core`]; [`Session`]
//! unwinds any stopped process the same way.

#![deny(missing_docs)]

// What a caller names is re-exported below; these modules are the
// library's insides.
mod address;
mod cfi;
mod coredump;
mod error;
mod frame;
mod memory;
mod module;
mod recorded;
mod session;
mod unwind;

// Namespaces a caller uses as such: the architecture interface, process
// access (link maps, executables and libraries of a live process), the
// snapshot format, V8's tiers and runtime, and the frame emulator.
pub mod arch;
#[cfg(feature = "unicorn")]
pub mod emulate;
pub mod process;
pub mod snapshot;
pub mod v8;

pub use address::FrameAddress;
pub use coredump::{CoreFile, CoreSegment, FileMapping};
pub use error::{Error, Result};
pub use frame::{Frame, FrameKind, Method, StopReason, ThreadStack};
pub use memory::{Memory, PAGE};
pub use module::{demangle, module_containing, FileBytes, LoadSegment, Module, SymbolHit};
pub use process::{CoreProcess, ModuleResolver};
pub use recorded::ModuleAnswers;
pub use session::{crashed_index, Session, StackReport, StoppedThread};
pub use unwind::{FrameEmulator, Process, TraceSink, Unwinder, DEFAULT_MAX_FRAMES};

/// Opens a core with its modules.
pub fn open_core(core: &std::path::Path, resolver: &ModuleResolver) -> Result<CoreProcess> {
    CoreProcess::open(core, resolver)
}

/// Unwinds every thread of an opened core, crashed thread first. `trace`,
/// when given, receives one line per unwind step.
pub fn unwind_core(process: &CoreProcess, trace: Option<TraceSink>) -> StackReport {
    let mut report = Session::new(process)
        .with_trace(trace)
        .unwind_all(&process.core.threads);
    report
        .warnings
        .splice(0..0, process.missing.iter().cloned());
    report
}
