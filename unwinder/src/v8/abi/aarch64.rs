//! V8 on arm64: its JS entry frame, its register codes, the deoptimizer's
//! stack, and the prologues and epilogues of its code.

use super::{LeafFrame, V8Abi};
use crate::arch::aarch64::{sp_change, Aarch64, FP, LR, PC, SP, X19};
use crate::arch::{Arch, InsnKind, Regs};
use crate::error::Result;
use crate::memory::Memory;

/// V8's arm64 ABI.
pub struct Arm64Abi;

/// V8's arm64 entry frame (builtins-arm64.cc `Generate_JSEntryVariant`,
/// `MacroAssembler::PushCalleeSavedRegisters`, and
/// frame-constants-arm64.h `EntryFrameConstants`): the stub pushes
/// d8..d15 then x19..x28 in pairs, highest first, then the {fp, lr} pair,
/// and points fp at that pair. So above the record lie x19..x28 (10
/// slots) and d8..d15 (8 slots): 18 slots, `kCalleeSavedRegisterBytesPushedBeforeFpLrPair`.
const ENTRY_SAVED_X_REGS: u16 = 10;
const ENTRY_SAVED_SLOTS: u64 = 18;

impl V8Abi for Arm64Abi {
    fn entry_frame_caller(&self, fp: u64, mem: &dyn Memory) -> Result<Regs> {
        let mut caller = Regs::default();
        caller.set(FP, mem.read_u64(fp)?);
        let ret = Aarch64.strip_code_ptr(mem.read_u64(fp.wrapping_add(8))?);
        caller.set(LR, ret);
        caller.set(PC, ret);
        for i in 0..ENTRY_SAVED_X_REGS {
            let slot = fp.wrapping_add(16 + 8 * i as u64);
            caller.set(X19 + i, mem.read_u64(slot)?);
        }
        caller.set(SP, fp.wrapping_add(16 + 8 * ENTRY_SAVED_SLOTS));
        Ok(caller)
    }
    fn register(&self, v8_code: u16) -> Option<u16> {
        // V8's arm64 register codes are the x-register numbers.
        (v8_code <= 30).then_some(v8_code)
    }
    fn preserved_bytecode_offset_register(&self) -> Option<u16> {
        // x19 in every supported line (src/codegen/arm64/register-arm64.h),
        // callee-saved in AAPCS64. On x64 it is r9, which C callees clobber.
        Some(19)
    }
    fn handler_bytecode_offset_register(&self) -> u16 {
        19
    }
    fn deoptimizer_on_stack(&self, sp: u64, mem: &dyn Memory) -> Option<(u64, u64)> {
        // `Push(padreg, x0)` right before the call (Generate_
        // DeoptimizationEntry, src/builtins/arm64/builtins-arm64.cc).
        Some((mem.read_u64(sp).ok()?, sp.wrapping_add(16)))
    }
    fn deopt_exit_insn(&self, code: &[u8]) -> Option<(usize, bool)> {
        // Fixed-width instructions: each exit is one call.
        let size = Aarch64.fixed_insn_size()?;
        Some((size, Aarch64.classify(code.get(..size)?) == InsnKind::Call))
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
            if Aarch64.classify(&w.to_le_bytes()) == InsnKind::Return {
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
        let a = Arm64Abi;
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
        let a = Arm64Abi;
        assert_eq!(
            a.leaf_frame(&bytes(&prologue), &bytes(&[0xd503201f])),
            LeafFrame::Built
        );
    }

    /// V8 12.4's JSEntry on arm64 pushes d8..d15, x19..x28 and fp/lr
    /// before `mov x29, sp`, and pops them all after reloading fp/lr.
    #[test]
    fn jsentry_pushes_and_pops_count_towards_the_callers_sp() {
        let a = Arm64Abi;
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
    }
}
