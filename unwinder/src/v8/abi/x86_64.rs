//! V8 on x64: its JS entry frame, its register codes, the deoptimizer's
//! stack, the calls of its deoptimization exits, and whether a leaf's
//! frame is built (its prologue and epilogue read with iced-x86's
//! decoder, since x86-64 instructions have no fixed length).

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use super::{LeafFrame, V8Abi};
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
    fn handler_bytecode_offset_register(&self) -> u16 {
        // r9 (src/codegen/x64/register-x64.h), DWARF 9.
        9
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
    fn leaf_frame(&self, before: &[u8], after: &[u8]) -> LeafFrame {
        // V8's x64 frames (MacroAssembler::Prologue, StubPrologue,
        // EnterFrame in macro-assembler-x64.cc): `push rbp; mov rbp, rsp`,
        // then the context and the JSFunction (or a frame-type marker);
        // torn down by `leave` or `mov rsp, rbp; pop rbp` before `ret`.
        let Some(before) = decode_all(before) else {
            return LeafFrame::Unknown;
        };
        let Some(set_at) = before.iter().rposition(sets_frame_pointer) else {
            return prologue(&before);
        };
        if let Some(state) = epilogue(after) {
            return state;
        }
        // The context and the function (two pushes) sit below the record
        // once built; a frame-type marker is one.
        let pushes = before[set_at + 1..]
            .iter()
            .take_while(|i| i.mnemonic() == Mnemonic::Push)
            .count();
        if pushes >= 2
            || before[set_at + 1..]
                .iter()
                .any(|i| i.mnemonic() != Mnemonic::Push)
        {
            LeafFrame::Built
        } else {
            LeafFrame::RecordOnly
        }
    }
}

/// How many instructions after the pc are read looking for an epilogue's
/// return.
const EPILOGUE_WINDOW: usize = 16;

/// Every instruction of `code`, which must end on an instruction
/// boundary; `None` if anything in it does not decode.
fn decode_all(code: &[u8]) -> Option<Vec<Instruction>> {
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut out = Vec::new();
    let mut insn = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.is_invalid() {
            return None;
        }
        out.push(insn);
    }
    (decoder.position() == code.len()).then_some(out)
}

/// `mov rbp, rsp`: the frame record is built.
fn sets_frame_pointer(i: &Instruction) -> bool {
    i.mnemonic() == Mnemonic::Mov
        && i.op0_kind() == OpKind::Register
        && i.op0_register() == Register::RBP
        && i.op1_kind() == OpKind::Register
        && i.op1_register() == Register::RSP
}

/// `leave`, `pop rbp` or a load into rbp: the caller's frame pointer is
/// being restored, so the record is still there.
fn restores_frame_pointer(i: &Instruction) -> bool {
    i.mnemonic() == Mnemonic::Leave
        || (matches!(i.mnemonic(), Mnemonic::Pop | Mnemonic::Mov)
            && i.op0_kind() == OpKind::Register
            && i.op0_register() == Register::RBP)
}

/// Bytes an instruction pushes onto the stack (negative for pops and
/// `add rsp`), or `None` when its effect on rsp is not a constant.
fn stack_growth(i: &Instruction) -> Option<i64> {
    let writes_rsp = i.op0_kind() == OpKind::Register && i.op0_register() == Register::RSP;
    match i.mnemonic() {
        // 64-bit pushes and pops (V8 and compilers emit no 16-bit ones).
        Mnemonic::Push => Some(8),
        Mnemonic::Pop => Some(-8),
        Mnemonic::Sub | Mnemonic::Add if writes_rsp => {
            let imm = match i.op1_kind() {
                OpKind::Immediate8to64 | OpKind::Immediate32to64 | OpKind::Immediate8 => {
                    i.immediate64() as i64
                }
                _ => return None,
            };
            Some(if i.mnemonic() == Mnemonic::Sub {
                imm
            } else {
                -imm
            })
        }
        Mnemonic::Cmp | Mnemonic::Test => Some(0),
        _ if writes_rsp => None,
        _ => Some(0),
    }
}

/// Before `mov rbp, rsp`: not built, with the return address at the
/// stack pointer or right above a just-pushed rbp. Anything else (other
/// pushes, which a linear read cannot tell from a slow path's, or a call,
/// which may have built the frame out of line as Sparkplug's prologue
/// does) is left to the frame pointer.
fn prologue(before: &[Instruction]) -> LeafFrame {
    let stack_ops: Vec<&Instruction> = before
        .iter()
        .filter(|i| i.mnemonic() == Mnemonic::Call || stack_growth(i) != Some(0))
        .collect();
    let pushes_rbp = |i: &Instruction| {
        i.mnemonic() == Mnemonic::Push
            && i.op0_kind() == OpKind::Register
            && i.op0_register() == Register::RBP
    };
    match (stack_ops.as_slice(), before.last()) {
        ([], _) => LeafFrame::NotBuilt { sp_adjust: 0 },
        ([only], Some(last)) if pushes_rbp(only) && pushes_rbp(last) => {
            LeafFrame::NotBuilt { sp_adjust: 8 }
        }
        _ => LeafFrame::Unknown,
    }
}

/// What the instructions from the pc say when they return before
/// restoring rbp: the record is already torn down. `None` when they
/// restore rbp first, or leave the window without a return.
fn epilogue(after: &[u8]) -> Option<LeafFrame> {
    let mut decoder = Decoder::with_ip(64, after, 0, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    let mut popped = Some(0i64);
    for _ in 0..EPILOGUE_WINDOW {
        if !decoder.can_decode() {
            return None;
        }
        decoder.decode_out(&mut insn);
        if insn.is_invalid() || restores_frame_pointer(&insn) {
            return None;
        }
        match insn.mnemonic() {
            Mnemonic::Ret => {
                // A return address moved through a register (V8's
                // DropArguments: `pop rcx; lea rsp, [...]; push rcx`) or
                // a dynamic drop: only running it forward finds the caller.
                return Some(match popped {
                    Some(p) if p >= 0 => LeafFrame::NotBuilt {
                        sp_adjust: p as u64,
                    },
                    _ => LeafFrame::Emulate,
                });
            }
            Mnemonic::Call | Mnemonic::Jmp => return None,
            _ => {}
        }
        popped = popped.zip(stack_growth(&insn)).map(|(p, g)| p - g);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUSH_RBP: &[u8] = &[0x55];
    const MOV_RBP_RSP: &[u8] = &[0x48, 0x89, 0xe5];
    const PUSH_RSI: &[u8] = &[0x56];
    const PUSH_RDI: &[u8] = &[0x57];
    const LEAVE: &[u8] = &[0xc9];
    const RET: &[u8] = &[0xc3];

    fn code(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// V8's JavaScript prologue on x64: `push rbp; mov rbp, rsp; push rsi;
    /// push rdi` (context, then function).
    #[test]
    fn prologue_states() {
        let a = X64Abi;
        let after = code(&[PUSH_RSI]);
        assert_eq!(
            a.leaf_frame(&[], &after),
            LeafFrame::NotBuilt { sp_adjust: 0 }
        );
        assert_eq!(
            a.leaf_frame(PUSH_RBP, &after),
            LeafFrame::NotBuilt { sp_adjust: 8 }
        );
        assert_eq!(
            a.leaf_frame(&code(&[PUSH_RBP, MOV_RBP_RSP]), &after),
            LeafFrame::RecordOnly
        );
        assert_eq!(
            a.leaf_frame(&code(&[PUSH_RBP, MOV_RBP_RSP, PUSH_RSI, PUSH_RDI]), RET),
            LeafFrame::NotBuilt { sp_adjust: 0 }
        );
        assert_eq!(
            a.leaf_frame(
                &code(&[PUSH_RBP, MOV_RBP_RSP, PUSH_RSI, PUSH_RDI]),
                &code(&[LEAVE, RET])
            ),
            LeafFrame::Built
        );
    }

    /// Pushes other than a final `push rbp`, or a call (Sparkplug's
    /// out-of-line prologue), leave the frame to the frame pointer.
    #[test]
    fn unclear_prologues_are_unknown() {
        let a = X64Abi;
        let call = [0xe8, 0, 0, 0, 0];
        assert_eq!(a.leaf_frame(&call, PUSH_RSI), LeafFrame::Unknown);
        assert_eq!(
            a.leaf_frame(&code(&[PUSH_RSI, PUSH_RBP]), PUSH_RSI),
            LeafFrame::Unknown
        );
        // Cut inside an instruction: no boundary at the pc.
        assert_eq!(a.leaf_frame(&MOV_RBP_RSP[..2], RET), LeafFrame::Unknown);
    }

    /// V8's argument drop after `leave` moves the return address through
    /// rcx (`pop rcx; lea rsp, [rsp + rbx*8]; push rcx; ret`).
    #[test]
    fn dynamic_argument_drop_is_emulated() {
        let a = X64Abi;
        let before = code(&[PUSH_RBP, MOV_RBP_RSP, PUSH_RSI, PUSH_RDI, LEAVE]);
        let drop = [0x59, 0x48, 0x8d, 0x24, 0xdc, 0x51, 0xc3];
        assert_eq!(a.leaf_frame(&before, &drop), LeafFrame::Emulate);
    }
}
