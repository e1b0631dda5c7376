//! crosswind-unwinder: reads a stopped Node.js process (an ELF core, and
//! later snapshots and live processes) and returns every thread's mixed
//! stack: native C/C++ frames, V8 builtins and stubs, and JavaScript frames
//! named as V8 names them.
//!
//! The crate is a library with no process or I/O policy: callers choose
//! paths and output formats. Start from [`open_core`]; [`Session`]
//! unwinds any stopped process the same way.

#![deny(missing_docs)]

pub mod address;
pub mod arch;
pub mod cfi;
pub mod coredump;
#[cfg(feature = "unicorn")]
pub mod emulate;
pub mod error;
pub mod frame;
pub mod memory;
pub mod module;
pub mod process;
pub mod recorded;
pub mod session;
pub mod snapshot;
pub mod unwind;
pub mod v8;

pub use address::FrameAddress;
pub use error::{Error, Result};
pub use frame::{Frame, FrameKind, Method, StopReason, ThreadStack};
pub use process::{CoreProcess, ModuleResolver};
pub use session::{Session, StackReport, StoppedThread};
pub use unwind::{Process, TraceSink, Unwinder};

use arch::Arch;
use module::Module;

impl Process for CoreProcess {
    fn arch(&self) -> &'static dyn Arch {
        self.core.arch.arch()
    }
    fn module_at(&self, addr: u64) -> Option<&Module> {
        self.module_for(addr)
    }
    fn modules(&self) -> &[Module] {
        &self.modules
    }
    fn executable(&self) -> Option<&Module> {
        CoreProcess::executable(self)
    }
}

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
