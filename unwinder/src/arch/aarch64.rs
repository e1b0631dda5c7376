//! aarch64: registers (DWARF 0..30 are x0..x30, 31 is sp; the pc gets the
//! pseudo number 32), AAPCS64 frame records and pointer authentication.
//! V8's own arm64 conventions are in `v8/abi/aarch64.rs`.

use super::{Arch, ArchKind, InsnKind, Regs};
use crate::error::{Error, Result};
use crate::memory::Memory;

/// The aarch64 implementation of [`Arch`].
pub struct Aarch64;

/// DWARF number of x19, the first callee-saved register.
pub const X19: u16 = 19;
/// DWARF number of the frame pointer (x29).
pub const FP: u16 = 29;
/// DWARF number of the link register (x30).
pub const LR: u16 = 30;
/// DWARF number of the stack pointer.
pub const SP: u16 = 31;
/// Pseudo register number for the program counter (DWARF has none).
pub const PC: u16 = 32;

/// User-space virtual addresses are 48 bits wide on Linux/arm64 (and under
/// QEMU user mode). Anything above is a pointer-authentication code or a
/// tag; cores from QEMU record no PAC mask, so this is the mask we use.
const VA_MASK: u64 = (1 << 48) - 1;

const CALLEE_SAVED: [u16; 11] = [19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29];

impl Arch for Aarch64 {
    fn kind(&self) -> ArchKind {
        ArchKind::Aarch64
    }
    fn pc_reg(&self) -> u16 {
        PC
    }
    fn sp_reg(&self) -> u16 {
        SP
    }
    fn fp_reg(&self) -> u16 {
        FP
    }
    fn ra_column(&self) -> u16 {
        LR
    }
    fn link_reg(&self) -> Option<u16> {
        Some(LR)
    }
    fn callee_saved(&self) -> &'static [u16] {
        &CALLEE_SAVED
    }
    fn strip_code_ptr(&self, addr: u64) -> u64 {
        addr & VA_MASK
    }
    fn regs_from_prstatus(&self, raw: &[u8]) -> Option<Regs> {
        // struct user_pt_regs: x0..x30, sp, pc, pstate.
        let mut regs = Regs::default();
        for i in 0..33u16 {
            let at = i as usize * 8;
            let v = u64::from_le_bytes(raw.get(at..at + 8)?.try_into().ok()?);
            regs.set(i, v);
        }
        Some(regs)
    }
    fn regs_from_gdb(&self, g: &[u8]) -> Option<Regs> {
        // GDB's aarch64 core registers are x0..x30, sp, pc: the DWARF order.
        self.regs_from_prstatus(g.get(..33 * 8)?)
    }
    fn frame_record_caller(&self, regs: &Regs, mem: &dyn Memory) -> Result<Regs> {
        let fp = regs
            .get(FP)
            .ok_or_else(|| Error::Other("frame pointer unknown".into()))?;
        let mut caller = *regs;
        caller.set(FP, mem.read_u64(fp)?);
        let ret = self.strip_code_ptr(mem.read_u64(fp.wrapping_add(8))?);
        caller.set(LR, ret);
        caller.set(PC, ret);
        caller.set(SP, fp.wrapping_add(16));
        Ok(caller)
    }
    fn fixed_insn_size(&self) -> Option<usize> {
        Some(4)
    }
    fn classify(&self, code: &[u8]) -> InsnKind {
        let Some(w) = code
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
        else {
            return InsnKind::Other;
        };
        // Encodings from the Arm ARM (C6.2): RET/RETAA/RETAB and
        // `br x30` (returns), BL, BLR and its pointer-authenticating forms,
        // SVC.
        if w & 0xffff_fc1f == 0xd65f_0000
            || w == 0xd65f_0bff
            || w == 0xd65f_0fff
            || w == 0xd61f_03c0
        {
            InsnKind::Return
        } else if w & 0xfc00_0000 == 0x9400_0000
            || w & 0xffff_fc1f == 0xd63f_0000
            || w & 0xfeff_f800 == 0xd63f_0800
        {
            InsnKind::Call
        } else if w & 0xffe0_001f == 0xd400_0001 {
            InsnKind::Syscall
        } else {
            InsnKind::Other
        }
    }
    fn frameless_caller(&self, regs: &Regs, _mem: &dyn Memory) -> Result<Regs> {
        let lr = regs
            .get(LR)
            .ok_or_else(|| crate::error::Error::Other("link register unknown".into()))?;
        let mut caller = *regs;
        caller.set(PC, self.strip_code_ptr(lr));
        Ok(caller)
    }
}

/// How an instruction moves sp, in bytes (negative for pushes): pre- and
/// post-indexed STP/LDP and STR/LDR with sp as the base, and `add`/`sub`
/// sp, sp, #imm. Encodings from the Arm ARM (C4.1.92, C6.2).
pub fn sp_change(w: u32) -> i64 {
    let base_is_sp = (w >> 5) & 0x1f == 31;
    // Load/store pair: bits 29..27 = 101; bits 24..23: 01 post, 11 pre.
    if (w >> 27) & 7 == 0b101 && base_is_sp {
        let index = (w >> 23) & 3;
        let simd = (w >> 26) & 1 == 1;
        let scale = match ((w >> 30) & 3, simd) {
            (0b00, false) | (0b00, true) => 4,
            (0b10, true) => 16,
            _ => 8,
        };
        let imm7 = ((((w >> 15) & 0x7f) as i64) << 57) >> 57;
        if index == 0b01 || index == 0b11 {
            return imm7 * scale;
        }
        return 0;
    }
    // STR/LDR (immediate) 64-bit, pre (11) or post (01) indexed.
    if w & 0xffa0_0400 == 0xf800_0400 && base_is_sp {
        let imm9 = ((((w >> 12) & 0x1ff) as i64) << 55) >> 55;
        return imm9;
    }
    let imm12 = || (((w >> 10) & 0xfff) as i64) << if (w >> 22) & 1 == 1 { 12 } else { 0 };
    if w & 0xff80_03ff == 0xd100_03ff {
        return -imm12();
    }
    if w & 0xff80_03ff == 0x9100_03ff {
        return imm12();
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sp_changes() {
        // add sp, sp, #0x20 and sub sp, sp, #0x20.
        assert_eq!(sp_change(0x910083ff), 32);
        assert_eq!(sp_change(0xd10083ff), -32);
        // str x30, [sp, #-16]! and ldr x30, [sp], #16.
        assert_eq!(sp_change(0xf81f0ffe), -16);
        assert_eq!(sp_change(0xf84107fe), 16);
    }
}
