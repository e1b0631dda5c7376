//! aarch64: registers (DWARF 0..30 are x0..x30, 31 is sp; the pc gets the
//! pseudo number 32), AAPCS64 frame records, pointer authentication, and
//! V8's arm64 JS entry frame.

use super::{Arch, ArchKind, InsnKind, LeafFrame, Regs};
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

/// V8's arm64 entry frame (builtins-arm64.cc `Generate_JSEntryVariant`,
/// `MacroAssembler::PushCalleeSavedRegisters`, and
/// frame-constants-arm64.h `EntryFrameConstants`): the stub pushes
/// d8..d15 then x19..x28 in pairs, highest first, then the {fp, lr} pair,
/// and points fp at that pair. So above the record lie x19..x28 (10
/// slots) and d8..d15 (8 slots): 18 slots, `kCalleeSavedRegisterBytesPushedBeforeFpLrPair`.
const ENTRY_SAVED_X_REGS: u16 = 10;
const ENTRY_SAVED_SLOTS: u64 = 18;

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
    fn leaf_frame(&self, before: &[u8], after: &[u8]) -> LeafFrame {
        const EPILOGUE_WINDOW: usize = 16;
        let words = |b: &[u8]| -> Vec<u32> {
            b.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        // `mov x29, sp` / `add x29, sp, #imm` builds the record (ADD
        // immediate, Arm ARM C6.2.4); the prologues compilers and V8 emit
        // have one before any use of the frame.
        let sets_fp = |w: u32| w & 0xffc0_03ff == 0x9100_03fd;
        // `ldp x29, x30, [sp], #imm` (post-index) or `ldp x29, x30, [sp, #imm]`
        // reloads the caller's fp and lr.
        let restores_fp = |w: u32| w & 0xffc0_7fff == 0xa8c0_7bfd || w & 0xffc0_7fff == 0xa940_7bfd;
        let before = words(before);
        let Some(set_at) = before.iter().rposition(|&w| sets_fp(w)) else {
            // Still pushing (V8's JSEntry saves ten register pairs before
            // it sets fp): the caller's sp is above what was pushed.
            let pushed: i64 = before.iter().map(|&w| -sp_change(w).min(0)).sum();
            return LeafFrame::NotBuilt {
                sp_adjust: pushed.max(0) as u64,
            };
        };
        // In an epilogue: the next return comes before any reload of fp/lr
        // (the record is already torn down); whatever is popped on the way
        // is the caller's sp.
        let mut popped = 0i64;
        for w in words(after).into_iter().take(EPILOGUE_WINDOW) {
            if restores_fp(w) {
                break;
            }
            if self.classify(&w.to_le_bytes()) == InsnKind::Return {
                return LeafFrame::NotBuilt {
                    sp_adjust: popped.max(0) as u64,
                };
            }
            popped += sp_change(w).max(0);
        }
        // V8 pushes the frame's fixed slots (context, function) with a
        // pre-indexed `stp ..., [sp, #-imm]!` right after `mov fp, sp`.
        // When that push reserves more than the two slots below fp (V8
        // 12.4's TurboFan: `stp xzr, x0, [sp, #-32]!`), the slots are
        // written by a later `stp x1, cp, [sp, #imm - 16]`.
        let pushes_slots = |w: u32| w & 0xffc0_03e0 == 0xa980_03e0;
        let stores_at_sp = |w: u32| w & 0xffc0_03e0 == 0xa900_03e0;
        // STP's imm7 field, scaled to bytes.
        let stp_offset = |w: u32| ((((w >> 15) & 0x7f) as i64) << 57 >> 57) * 8;
        let after_fp = &before[set_at + 1..];
        let Some(push_at) = after_fp.iter().position(|&w| pushes_slots(w)) else {
            return LeafFrame::RecordOnly;
        };
        let reserved = -stp_offset(after_fp[push_at]);
        if reserved > 16
            && !after_fp[push_at + 1..]
                .iter()
                .any(|&w| stores_at_sp(w) && stp_offset(w) == reserved - 16)
        {
            return LeafFrame::RecordOnly;
        }
        LeafFrame::Built
    }
    fn v8_register(&self, v8_code: u16) -> Option<u16> {
        // V8's arm64 register codes are the x-register numbers.
        (v8_code <= 30).then_some(v8_code)
    }
    fn v8_preserved_bytecode_offset_register(&self) -> Option<u16> {
        // x19 in every supported line (src/codegen/arm64/register-arm64.h),
        // callee-saved in AAPCS64. On x64 it is r9, which C callees clobber.
        Some(19)
    }
    fn deoptimizer_on_stack(&self, sp: u64, mem: &dyn Memory) -> Option<(u64, u64)> {
        // `Push(padreg, x0)` right before the call (Generate_
        // DeoptimizationEntry, src/builtins/arm64/builtins-arm64.cc).
        Some((mem.read_u64(sp).ok()?, sp.wrapping_add(16)))
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
    fn v8_entry_frame_caller(&self, fp: u64, mem: &dyn Memory) -> Result<Regs> {
        let mut caller = Regs::default();
        caller.set(FP, mem.read_u64(fp)?);
        let ret = self.strip_code_ptr(mem.read_u64(fp.wrapping_add(8))?);
        caller.set(LR, ret);
        caller.set(PC, ret);
        for i in 0..ENTRY_SAVED_X_REGS {
            let slot = fp.wrapping_add(16 + 8 * i as u64);
            caller.set(X19 + i, mem.read_u64(slot)?);
        }
        caller.set(SP, fp.wrapping_add(16 + 8 * ENTRY_SAVED_SLOTS));
        Ok(caller)
    }
}

/// How an instruction moves sp, in bytes (negative for pushes): pre- and
/// post-indexed STP/LDP and STR/LDR with sp as the base, and `add`/`sub`
/// sp, sp, #imm. Encodings from the Arm ARM (C4.1.92, C6.2).
fn sp_change(w: u32) -> i64 {
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

    fn bytes(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// V8 12.4's TurboFan prologue on arm64, as swept in a live guest:
    /// `stp x29, x30, [sp, #-16]!; mov x29, sp; stp xzr, x0, [sp, #-32]!;
    /// stp x1, x27, [sp, #16]`.
    #[test]
    fn turbofan_slots_are_written_after_the_reserving_push() {
        let prologue = [0xa9bf7bfd, 0x910003fd, 0xa9be03ff, 0xa9016fe1];
        let after = bytes(&[0xf8520342]);
        let a = Aarch64;
        assert_eq!(
            a.leaf_frame(&bytes(&prologue[..1]), &after),
            LeafFrame::NotBuilt { sp_adjust: 16 }
        );
        assert_eq!(
            a.leaf_frame(&bytes(&prologue[..2]), &after),
            LeafFrame::RecordOnly
        );
        assert_eq!(
            a.leaf_frame(&bytes(&prologue[..3]), &after),
            LeafFrame::RecordOnly
        );
        assert_eq!(a.leaf_frame(&bytes(&prologue), &after), LeafFrame::Built);
    }

    /// The interpreter's prologue pushes context and function in one
    /// pre-indexed pair right below fp.
    #[test]
    fn one_pair_push_builds_the_slots() {
        // stp x29, x30, [sp, #-16]!; mov x29, sp; stp x27, x1, [sp, #-16]!
        let prologue = [0xa9bf7bfd, 0x910003fd, 0xa9bf07fb];
        let a = Aarch64;
        assert_eq!(
            a.leaf_frame(&bytes(&prologue), &bytes(&[0xd503201f])),
            LeafFrame::Built
        );
    }

    /// V8 12.4's JSEntry on arm64 pushes d8..d15, x19..x28 and fp/lr
    /// before `mov x29, sp`, and pops them all after reloading fp/lr.
    #[test]
    fn jsentry_pushes_and_pops_count_towards_the_callers_sp() {
        let a = Aarch64;
        // stp d14, d15, [sp, #-16]!; stp d12, d13, ...; stp x27, x28, ...
        let prologue = [0x6dbf3fee, 0x6dbf37ec, 0xa9bf73fb];
        assert_eq!(
            a.leaf_frame(&bytes(&prologue), &bytes(&[0xa9bf6bf9])),
            LeafFrame::NotBuilt { sp_adjust: 48 }
        );
        // After `ldp x29, x30, [sp], #16`: ldp x19, x20, [sp], #16;
        // ldp d8, d9, [sp], #16; ret.
        let before = [0xa9bf7bfd, 0x910003fd, 0xa9bf33ff, 0xa8c17bfd];
        let after = [0xa8c153f3, 0x6cc127e8, 0xd65f03c0];
        assert_eq!(
            a.leaf_frame(&bytes(&before), &bytes(&after)),
            LeafFrame::NotBuilt { sp_adjust: 32 }
        );
        // add sp, sp, #0x20 and sub sp, sp, #0x20.
        assert_eq!(sp_change(0x910083ff), 32);
        assert_eq!(sp_change(0xd10083ff), -32);
        // str x30, [sp, #-16]! and ldr x30, [sp], #16.
        assert_eq!(sp_change(0xf81f0ffe), -16);
        assert_eq!(sp_change(0xf84107fe), 16);
    }
}
