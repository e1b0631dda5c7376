//! V8 on x64: its JS entry frame, its register codes, the deoptimizer's
//! stack, and the calls of its deoptimization exits.

use super::V8Abi;
use crate::arch::x86_64::{R12, R13, R14, R15, RBP, RBX, RIP, RSP};
use crate::arch::Regs;
use crate::error::Result;
use crate::memory::Memory;

/// V8's x64 ABI.
pub struct X64Abi;

/// V8's x64 entry frame (builtins-x64.cc `Generate_JSEntryVariant`,
/// frame-constants-x64.h `EntryFrameConstants`, System V ABI): after
/// `push rbp; mov rbp, rsp` it pushes two markers and then r12..r15 and
/// rbx. The callee-saved slots lie below rbp at these offsets (checked on
/// the cores of every supported line's official x64 build).
const ENTRY_SAVED: [(u16, i64); 5] = [(R12, -24), (R13, -32), (R14, -40), (R15, -48), (RBX, -56)];

impl V8Abi for X64Abi {
    fn entry_frame_caller(&self, fp: u64, mem: &dyn Memory) -> Result<Regs> {
        let mut caller = Regs::default();
        caller.set(RBP, mem.read_u64(fp)?);
        caller.set(RIP, mem.read_u64(fp.wrapping_add(8))?);
        caller.set(RSP, fp.wrapping_add(16));
        for (reg, off) in ENTRY_SAVED {
            caller.set(reg, mem.read_u64(fp.wrapping_add_signed(off))?);
        }
        Ok(caller)
    }
    fn register(&self, v8_code: u16) -> Option<u16> {
        // V8's x64 register codes follow the hardware encoding (rax=0,
        // rcx=1, rdx=2, rbx=3, rsp=4, rbp=5, rsi=6, rdi=7, r8..r15); DWARF
        // numbers them rax, rdx, rcx, rbx, rsi, rdi, rbp, rsp, r8..r15.
        const TO_DWARF: [u16; 16] = [0, 2, 1, 3, 7, 6, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15];
        TO_DWARF.get(v8_code as usize).copied()
    }
    fn deoptimizer_on_stack(&self, sp: u64, mem: &dyn Memory) -> Option<(u64, u64)> {
        // `pushq(rax)`, then PrepareCallCFunction aligns rsp and keeps the
        // unaligned rsp in the slot at the aligned one (Generate_
        // DeoptimizationEntry, src/builtins/x64/builtins-x64.cc;
        // MacroAssembler::PrepareCallCFunction).
        let pushed_at = mem.read_u64(sp).ok()?;
        if pushed_at < sp || pushed_at - sp > 32 {
            return None;
        }
        Some((mem.read_u64(pushed_at).ok()?, pushed_at.wrapping_add(8)))
    }
    fn deopt_exit_insn(&self, code: &[u8]) -> Option<(usize, bool)> {
        // V8's x64 exits call the deoptimization builtins through the
        // builtin table in r13 (src/codegen/x64/macro-assembler-x64.cc
        // CallForDeoptimization: `call [r13 + disp]`); a near call and nops
        // (alignment) are accepted too.
        match code {
            [0x41, 0xff, 0x55, _, ..] => Some((4, true)),
            [0x41, 0xff, 0x95, _, _, _, _, ..] => Some((7, true)),
            [0xe8, _, _, _, _, ..] => Some((5, true)),
            [0x90, ..] => Some((1, false)),
            _ => None,
        }
    }
}
