//! V8's per-architecture ABI: how V8's own frames and calling conventions
//! look on each instruction set (its JS entry frame, its register codes,
//! the deoptimizer's stack, the prologues of its code). The [`crate::arch`]
//! modules keep what any code shares; this is what only V8 code does.

pub mod aarch64;
pub mod x86_64;

use crate::arch::{ArchKind, Regs};
use crate::error::Result;
use crate::memory::Memory;

/// Whether a leaf function has its frame record in place at the pc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafFrame {
    /// The frame record is built: the frame pointer is this function's.
    Built,
    /// The frame record is built (fp is this function's) but the slots
    /// below it are not yet written: name the function from registers.
    RecordOnly,
    /// Prologue before the record is built, or epilogue after it is torn
    /// down (or no record at all): the return address is still (or again)
    /// in the link register and fp is the caller's; the caller's sp is
    /// this sp plus `sp_adjust` (what the prologue has pushed so far, or
    /// what the epilogue has still to pop).
    NotBuilt {
        /// Bytes from this sp up to the caller's.
        sp_adjust: u64,
    },
    /// The frame is torn down and the return address is on its way back
    /// through registers or a stack adjustment only known at run time
    /// (x64's argument drop before `ret`): emulate the frame forward.
    Emulate,
    /// The architecture cannot tell.
    Unknown,
}

/// What V8 does differently on one architecture.
pub trait V8Abi: Sync {
    /// The caller of V8's JS entry frame whose frame pointer is `fp`: the
    /// entry stub saves the C++ caller's callee-saved registers next to its
    /// frame record, so the caller's SP and registers come from there.
    fn entry_frame_caller(&self, fp: u64, mem: &dyn Memory) -> Result<Regs>;
    /// Register holding the JSFunction on entry to a V8 builtin, in this
    /// architecture's DWARF numbering (`v8dbg_JSFunctionRegister` is V8's
    /// own register code, which is the same number on arm64 and x64 only
    /// by accident, so the architecture maps it).
    fn register(&self, v8_code: u16) -> Option<u16>;
    /// The register V8's interpreter keeps the bytecode offset in
    /// (`kInterpreterBytecodeOffsetRegister`), in DWARF numbering, where the
    /// C calling convention preserves it across calls; `None` where it does
    /// not, as a C callee may then have overwritten it.
    fn preserved_bytecode_offset_register(&self) -> Option<u16> {
        None
    }
    /// The register V8's bytecode handlers receive the current bytecode
    /// offset in (`kInterpreterBytecodeOffsetRegister`, the dispatch's
    /// fixed register), in DWARF numbering: a leaf inside a handler may
    /// still hold it there.
    fn handler_bytecode_offset_register(&self) -> u16;
    /// In V8's deoptimization entry builtin, at its call of
    /// `Deoptimizer::ComputeOutputFrames` whose return leaves the builtin's
    /// stack pointer at `sp`: the Deoptimizer object the builtin saved for
    /// the call, and the top of the deoptimized frame's caller (the
    /// builtin has popped the deoptimized frame into the Deoptimizer's input
    /// by then). Unchecked: the caller validates against the object.
    fn deoptimizer_on_stack(&self, sp: u64, mem: &dyn Memory) -> Option<(u64, u64)> {
        let _ = (sp, mem);
        None
    }
    /// In V8's deoptimization exits (a run of calls to the deoptimization
    /// builtins at the end of optimized code), the length of the
    /// instruction at the start of `code` and whether it is one of the
    /// exits' calls; `None` for an instruction the exits never hold.
    fn deopt_exit_insn(&self, code: &[u8]) -> Option<(usize, bool)>;
    /// Whether the frame record is built at `pc`, from the function's code
    /// `before` the pc (from its start) and the code `after` it.
    fn leaf_frame(&self, before: &[u8], after: &[u8]) -> LeafFrame {
        let _ = (before, after);
        LeafFrame::Unknown
    }
}

/// V8's ABI on `arch`.
pub fn abi(arch: ArchKind) -> &'static dyn V8Abi {
    match arch {
        ArchKind::Aarch64 => &aarch64::Arm64Abi,
        ArchKind::X86_64 => &x86_64::X64Abi,
    }
}
