//! x86-64: registers in DWARF numbering (rax=0 .. r15=15, return address
//! column 16 doubling as rip) and rbp frame records. V8's own x64
//! conventions are in `v8/abi/x86_64.rs`.

use super::{Arch, ArchKind, InsnKind, Regs};
use crate::error::{Error, Result};
use crate::memory::Memory;

/// The x86-64 implementation of [`Arch`].
pub struct X86_64;

/// DWARF number of rbx.
pub const RBX: u16 = 3;
/// DWARF number of rbp, the frame pointer.
pub const RBP: u16 = 6;
/// DWARF number of rsp, the stack pointer.
pub const RSP: u16 = 7;
/// DWARF number of r12.
pub const R12: u16 = 12;
/// DWARF number of r13.
pub const R13: u16 = 13;
/// DWARF number of r14.
pub const R14: u16 = 14;
/// DWARF number of r15.
pub const R15: u16 = 15;
/// DWARF number of the return-address column, which doubles as rip.
pub const RIP: u16 = 16;

const CALLEE_SAVED: [u16; 6] = [RBX, RBP, R12, R13, R14, R15];

/// `struct user_regs_struct` order (linux/arch/x86/include/asm/user_64.h)
/// mapped to DWARF numbers; `None` for slots we do not track.
const PRSTATUS_ORDER: [Option<u16>; 21] = [
    Some(15), // r15
    Some(14), // r14
    Some(13), // r13
    Some(12), // r12
    Some(6),  // rbp
    Some(3),  // rbx
    Some(11), // r11
    Some(10), // r10
    Some(9),  // r9
    Some(8),  // r8
    Some(0),  // rax
    Some(2),  // rcx
    Some(1),  // rdx
    Some(4),  // rsi
    Some(5),  // rdi
    None,     // orig_rax
    Some(16), // rip
    None,     // cs
    None,     // eflags
    Some(7),  // rsp
    None,     // ss
];

/// GDB's x86-64 core registers (gdb/features/i386/64bit-core.xml: rax,
/// rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15, rip; 8 bytes each, before
/// eflags and the segment registers) in DWARF numbers.
const GDB_ORDER: [u16; 17] = [0, 3, 2, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

impl Arch for X86_64 {
    fn kind(&self) -> ArchKind {
        ArchKind::X86_64
    }
    fn pc_reg(&self) -> u16 {
        RIP
    }
    fn sp_reg(&self) -> u16 {
        RSP
    }
    fn fp_reg(&self) -> u16 {
        RBP
    }
    fn ra_column(&self) -> u16 {
        RIP
    }
    fn link_reg(&self) -> Option<u16> {
        None
    }
    fn callee_saved(&self) -> &'static [u16] {
        &CALLEE_SAVED
    }
    fn strip_code_ptr(&self, addr: u64) -> u64 {
        addr
    }
    fn regs_from_prstatus(&self, raw: &[u8]) -> Option<Regs> {
        let mut regs = Regs::default();
        for (i, dw) in PRSTATUS_ORDER.iter().enumerate() {
            let at = i * 8;
            let v = u64::from_le_bytes(raw.get(at..at + 8)?.try_into().ok()?);
            if let Some(r) = dw {
                regs.set(*r, v);
            }
        }
        Some(regs)
    }
    fn regs_from_gdb(&self, g: &[u8]) -> Option<Regs> {
        let mut regs = Regs::default();
        for (i, dw) in GDB_ORDER.iter().enumerate() {
            let at = i * 8;
            regs.set(*dw, u64::from_le_bytes(g.get(at..at + 8)?.try_into().ok()?));
        }
        Some(regs)
    }
    fn frame_record_caller(&self, regs: &Regs, mem: &dyn Memory) -> Result<Regs> {
        let fp = regs
            .get(RBP)
            .ok_or_else(|| Error::Other("frame pointer unknown".into()))?;
        let mut caller = *regs;
        caller.set(RBP, mem.read_u64(fp)?);
        caller.set(RIP, mem.read_u64(fp.wrapping_add(8))?);
        caller.set(RSP, fp.wrapping_add(16));
        Ok(caller)
    }
    fn classify(&self, code: &[u8]) -> InsnKind {
        // Skip legacy and REX prefixes (Intel SDM vol. 2, 2.1.1).
        let mut i = 0;
        while let Some(&b) = code.get(i) {
            if matches!(b, 0x66 | 0x67 | 0xf2 | 0xf3 | 0x2e | 0x3e) || (0x40..=0x4f).contains(&b) {
                i += 1;
            } else {
                break;
            }
        }
        match (code.get(i), code.get(i + 1)) {
            (Some(0xc3), _) | (Some(0xc2), _) => InsnKind::Return,
            (Some(0xe8), _) => InsnKind::Call,
            // FF /2 and FF /3: indirect near and far calls.
            (Some(0xff), Some(&modrm)) if matches!((modrm >> 3) & 7, 2 | 3) => InsnKind::Call,
            (Some(0x0f), Some(0x05)) => InsnKind::Syscall,
            _ => InsnKind::Other,
        }
    }
    fn frameless_caller(&self, regs: &Regs, mem: &dyn Memory) -> Result<Regs> {
        let sp = regs
            .get(RSP)
            .ok_or_else(|| crate::error::Error::Other("stack pointer unknown".into()))?;
        let mut caller = *regs;
        caller.set(RIP, mem.read_u64(sp)?);
        caller.set(RSP, sp.wrapping_add(8));
        Ok(caller)
    }
}
