//! crosswind-unwinder: reads a stopped Node.js process (an ELF core, and
//! later snapshots and live processes) and returns every thread's mixed
//! stack: native C/C++ frames, V8 builtins and stubs, and JavaScript frames
//! named as V8 names them.
//!
//! The crate is a library with no process or I/O policy: callers choose
//! paths and output formats. Start from [`open_core`].

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
pub mod snapshot;
pub mod unwind;
pub mod v8;

pub use address::FrameAddress;
pub use error::{Error, Result};
pub use frame::{Frame, FrameKind, Method, StopReason, ThreadStack};
pub use process::{CoreProcess, ModuleResolver};
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
}

/// Everything read from one core: the process, and V8 if present.
pub struct CoreReport {
    /// Architecture of the process.
    pub arch: arch::ArchKind,
    /// Every thread's stack, crashed thread first.
    pub threads: Vec<ThreadStack>,
    /// V8 version found in the executable, if any.
    pub v8_version: Option<String>,
    /// Problems that did not stop the unwind (missing modules, no V8).
    pub warnings: Vec<String>,
}

/// Opens a core with its modules.
pub fn open_core(core: &std::path::Path, resolver: &ModuleResolver) -> Result<CoreProcess> {
    CoreProcess::open(core, resolver)
}

/// Unwinds every thread of an opened core, crashed thread first. `trace`,
/// when given, receives one line per unwind step.
pub fn unwind_core(process: &CoreProcess, trace: Option<TraceSink>) -> CoreReport {
    unwind_threads(
        process,
        process.executable(),
        &process.core.threads,
        process.missing.clone(),
        trace,
    )
}

/// Unwinds `threads` of any process (a core, a snapshot), crashed thread
/// first. `exe` is the executable whose V8 names the JavaScript frames;
/// `trace`, when given, receives one line per unwind step.
pub fn unwind_threads<P: Process>(
    process: &P,
    exe: Option<&Module>,
    threads: &[coredump::CoreThread],
    mut warnings: Vec<String>,
    trace: Option<TraceSink>,
) -> CoreReport {
    let v8 = match exe {
        Some(exe) => match v8::V8Runtime::new(exe, process) {
            Ok(v) => Some(v),
            Err(e) => {
                warnings.push(format!("no V8 frames: {e}"));
                None
            }
        },
        None => None,
    };
    let v8_version = v8.as_ref().map(|v| v.layout.version_string.clone());
    let mut unwinder = Unwinder::new(process, v8);
    #[cfg(feature = "unicorn")]
    {
        unwinder.emulator = Some(Box::new(emulate::Emulator {
            arch: process.arch().kind(),
            budget: emulate::DEFAULT_BUDGET,
        }));
    }
    unwinder.trace = trace;
    let crashed = coredump::crashed_index(threads);
    let mut order: Vec<usize> = (0..threads.len()).collect();
    order.sort_by_key(|&i| i != crashed);
    let stacks = order
        .into_iter()
        .map(|i| {
            let t = &threads[i];
            unwinder.unwind(t.tid, i == crashed, t.regs)
        })
        .collect();
    CoreReport {
        arch: process.arch().kind(),
        threads: stacks,
        v8_version,
        warnings,
    }
}
