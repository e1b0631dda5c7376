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
    /// The caller of a function that has not touched the stack yet (a PLT
    /// stub): the return address is where the call instruction left it.
    fn frameless_caller(&self, regs: &Regs, mem: &dyn Memory) -> Result<Regs>;
    /// Classifies the instruction at the start of `code`.
    fn classify(&self, code: &[u8]) -> InsnKind;
    /// The instruction size of a fixed-width instruction set.
    fn fixed_insn_size(&self) -> Option<usize> {
        None
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
