//! Architecture knowledge behind one interface: register files, DWARF
//! register numbers, frame records, return-address rules and pointer
//! authentication. V8 code asks these modules; it never hard-codes registers.

pub mod aarch64;
pub mod x86_64;

use crate::error::Result;
use crate::memory::Memory;

/// The architectures crosswind unwinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchKind {
    /// 64-bit Arm.
    Aarch64,
    /// 64-bit x86.
    X86_64,
}

impl ArchKind {
    /// From an ELF `e_machine`.
    pub fn from_e_machine(machine: u16) -> Option<ArchKind> {
        match machine {
            object::elf::EM_AARCH64 => Some(ArchKind::Aarch64),
            object::elf::EM_X86_64 => Some(ArchKind::X86_64),
            _ => None,
        }
    }

    /// The implementation for this architecture.
    pub fn arch(self) -> &'static dyn Arch {
        match self {
            ArchKind::Aarch64 => &aarch64::Aarch64,
            ArchKind::X86_64 => &x86_64::X86_64,
        }
    }

    /// Name as used in JSON output and messages.
    pub fn name(self) -> &'static str {
        match self {
            ArchKind::Aarch64 => "aarch64",
            ArchKind::X86_64 => "x86_64",
        }
    }
}

/// Number of register slots in [`Regs`]; large enough for both
/// architectures (aarch64: x0..x30, sp, pc).
pub const MAX_REGS: usize = 34;

/// A register file indexed by DWARF register number (plus a pseudo number
/// for the program counter where DWARF has none). Registers whose value is
/// unknown are marked invalid rather than guessed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Regs {
    vals: [u64; MAX_REGS],
    valid: u64,
}

impl std::fmt::Debug for Regs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for i in 0..MAX_REGS {
            if let Some(v) = self.get(i as u16) {
                m.entry(&i, &format_args!("{v:#x}"));
            }
        }
        m.finish()
    }
}

impl Default for Regs {
    fn default() -> Self {
        Regs {
            vals: [0; MAX_REGS],
            valid: 0,
        }
    }
}

impl Regs {
    /// The value of register `r`, if known.
    pub fn get(&self, r: u16) -> Option<u64> {
        let i = r as usize;
        (i < MAX_REGS && self.valid & (1 << i) != 0).then(|| self.vals[i])
    }

    /// Sets register `r`; numbers out of range are ignored.
    pub fn set(&mut self, r: u16, v: u64) {
        let i = r as usize;
        if i < MAX_REGS {
            self.vals[i] = v;
            self.valid |= 1 << i;
        }
    }

    /// Marks register `r` unknown.
    pub fn clear(&mut self, r: u16) {
        let i = r as usize;
        if i < MAX_REGS {
            self.valid &= !(1 << i);
        }
    }
}

/// What an instruction does to the call depth, for emulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsnKind {
    /// A call: one level deeper.
    Call,
    /// A return: one level up.
    Return,
    /// A system call, whose effects cannot be emulated.
    Syscall,
    /// Anything else.
    Other,
}

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
    /// The architecture cannot tell.
    Unknown,
}

/// What an architecture module provides to the unwinder.
pub trait Arch: Sync {
    /// Which architecture this is.
    fn kind(&self) -> ArchKind;
    /// Register number of the program counter in [`Regs`].
    fn pc_reg(&self) -> u16;
    /// DWARF number of the stack pointer.
    fn sp_reg(&self) -> u16;
    /// DWARF number of the frame pointer.
    fn fp_reg(&self) -> u16;
    /// DWARF number of the column that holds the return address in CFI.
    fn ra_column(&self) -> u16;
    /// The link register, if return addresses live in a register on call
    /// (aarch64's x30); `None` where `call` pushes them (x86-64).
    fn link_reg(&self) -> Option<u16>;
    /// Callee-saved general registers, in DWARF numbers.
    fn callee_saved(&self) -> &'static [u16];
    /// Removes pointer-authentication bits from a code address.
    fn strip_code_ptr(&self, addr: u64) -> u64;
    /// Parses the `pr_reg` area of an `NT_PRSTATUS` note.
    fn regs_from_prstatus(&self, raw: &[u8]) -> Option<Regs>;
    /// Registers from a GDB remote `g` reply (the target description's
    /// core registers, in GDB's order).
    fn regs_from_gdb(&self, g: &[u8]) -> Option<Regs>;
    /// Steps through a frame record (saved fp, return address) at the frame
    /// pointer and returns the caller's registers.
    fn frame_record_caller(&self, regs: &Regs, mem: &dyn Memory) -> Result<Regs>;
    /// The caller of V8's JS entry frame whose frame pointer is `fp`: the
    /// entry stub saves the C++ caller's callee-saved registers next to its
    /// frame record, so the caller's SP and registers come from there.
    fn v8_entry_frame_caller(&self, fp: u64, mem: &dyn Memory) -> Result<Regs>;
    /// The caller of a function that has not touched the stack yet (a PLT
    /// stub): the return address is where the call instruction left it.
    fn frameless_caller(&self, regs: &Regs, mem: &dyn Memory) -> Result<Regs>;
    /// Whether the frame record is built at `pc`, from the function's code
    /// `before` the pc (from its start) and the code `after` it.
    fn leaf_frame(&self, before: &[u8], after: &[u8]) -> LeafFrame {
        let _ = (before, after);
        LeafFrame::Unknown
    }
    /// Register holding the JSFunction on entry to a V8 builtin, in this
    /// architecture's DWARF numbering (`v8dbg_JSFunctionRegister` is V8's
    /// own register code, which is the same number on arm64 and x64 only
    /// by accident, so the architecture maps it).
    fn v8_register(&self, v8_code: u16) -> Option<u16>;
    /// The register V8's interpreter keeps the bytecode offset in
    /// (`kInterpreterBytecodeOffsetRegister`), in DWARF numbering, where the
    /// C calling convention preserves it across calls; `None` where it does
    /// not, as a C callee may then have overwritten it.
    fn v8_preserved_bytecode_offset_register(&self) -> Option<u16> {
        None
    }
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
    /// Classifies the instruction at the start of `code`.
    fn classify(&self, code: &[u8]) -> InsnKind;
    /// The instruction size of a fixed-width instruction set.
    fn fixed_insn_size(&self) -> Option<usize> {
        None
    }
    /// In V8's deoptimization exits (a run of calls to the deoptimization
    /// builtins at the end of optimized code), the length of the
    /// instruction at the start of `code` and whether it is one of the
    /// exits' calls; `None` for an instruction the exits never hold.
    fn deopt_exit_insn(&self, code: &[u8]) -> Option<(usize, bool)> {
        let size = self.fixed_insn_size()?;
        Some((size, self.classify(code.get(..size)?) == InsnKind::Call))
    }
    /// Byte size of a frame record (saved fp plus return address).
    fn frame_record_size(&self) -> u64 {
        16
    }
}

impl Regs {
    /// Program counter.
    pub fn pc(&self, arch: &dyn Arch) -> Option<u64> {
        self.get(arch.pc_reg())
    }
    /// Stack pointer.
    pub fn sp(&self, arch: &dyn Arch) -> Option<u64> {
        self.get(arch.sp_reg())
    }
    /// Frame pointer.
    pub fn fp(&self, arch: &dyn Arch) -> Option<u64> {
        self.get(arch.fp_reg())
    }
}
