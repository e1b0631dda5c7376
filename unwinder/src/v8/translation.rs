//! V8's deoptimization translations (src/deoptimizer/frame-translation-
//! builder.cc, translated-state.cc): for each deoptimization point of
//! optimized code, the interpreter frames it stands for, outermost first,
//! each with its bytecode offset. V8 summarizes an optimized frame at a
//! call from them (OptimizedJSFrame::Summarize), so the frames of inlined
//! functions are placed by bytecode offset rather than by the position
//! table's inlining positions.
//!
//! A translation is a byte opcode followed by VLQ operands per
//! instruction, starting with BEGIN (distance back to its basis
//! translation, frame count, JS frame count). Instructions equal to the
//! basis translation's at the same index are replaced by a run count:
//! MATCH_PREVIOUS_TRANSLATION, or a single byte past the last opcode.

use super::versions::TranslationOpcodes;

/// One interpreter frame of a translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslatedFrame {
    /// The bytecode offset the frame is at.
    pub bytecode_offset: i64,
    /// Index of the frame's SharedFunctionInfo in the literal array.
    pub shared_info: i64,
}

/// Bound on instructions decoded for one translation.
const MAX_INSTRUCTIONS: usize = 1 << 16;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Instruction {
    opcode: u8,
    operands: Vec<u32>,
}

/// Reads an unsigned VLQ (src/base/vlq.h: 7 bits a byte, low first).
fn unsigned(bytes: &[u8], at: &mut usize) -> Option<u32> {
    let mut value: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= u32::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// A signed operand as VLQConvertToUnsigned stores it: magnitude, then
/// the sign in the lowest bit.
fn signed(raw: u32) -> i64 {
    let magnitude = i64::from(raw >> 1);
    if raw & 1 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// The instruction at `at` (not a match run), or `None` on a malformed
/// byte.
fn instruction(bytes: &[u8], at: &mut usize, ops: &TranslationOpcodes) -> Option<Instruction> {
    let opcode = *bytes.get(*at)?;
    *at += 1;
    let count = *ops.operand_counts.get(usize::from(opcode))?;
    let operands = (0..count)
        .map(|_| unsigned(bytes, at))
        .collect::<Option<Vec<_>>>()?;
    Some(Instruction { opcode, operands })
}

/// The instructions of the translation starting at `start`, with match
/// runs resolved against its basis (`depth` bounds the chain of bases,
/// though V8 never makes a basis of a translation that has runs).
fn instructions(
    bytes: &[u8],
    start: usize,
    ops: &TranslationOpcodes,
    depth: usize,
) -> Option<(Vec<Instruction>, usize)> {
    let mut at = start;
    let begin = instruction(bytes, &mut at, ops)?;
    if !ops.is_begin(begin.opcode) {
        return None;
    }
    let distance = *begin.operands.first()? as usize;
    let frame_count = usize::try_from(signed(*begin.operands.get(1)?)).ok()?;
    let basis = if distance > 0 && depth > 0 {
        Some(instructions(bytes, start.checked_sub(distance)?, ops, depth - 1)?.0)
    } else {
        None
    };
    let mut out = Vec::new();
    while at < bytes.len() && out.len() < MAX_INSTRUCTIONS {
        let byte = *bytes.get(at)?;
        let run = if byte >= ops.count() {
            at += 1;
            Some(usize::from(byte - ops.count()))
        } else if byte == ops.match_previous {
            at += 1;
            Some(unsigned(bytes, &mut at)? as usize)
        } else if ops.is_begin(byte) {
            break;
        } else {
            None
        };
        match run {
            Some(n) => {
                let basis = basis.as_ref()?;
                let from = out.len();
                out.extend_from_slice(basis.get(from..from.checked_add(n)?)?);
            }
            None => out.push(instruction(bytes, &mut at, ops)?),
        }
    }
    Some((out, frame_count))
}

/// The interpreter frames of the translation at `start`, outermost first.
/// `None` when it holds another kind of frame (builtin continuations,
/// construct stubs), which crosswind leaves to the position table.
pub fn interpreted_frames(
    bytes: &[u8],
    start: usize,
    ops: &TranslationOpcodes,
) -> Option<Vec<TranslatedFrame>> {
    let (instructions, frame_count) = instructions(bytes, start, ops, 4)?;
    let mut frames = Vec::new();
    for i in &instructions {
        if i.opcode == ops.interpreted_with_return || i.opcode == ops.interpreted_without_return {
            frames.push(TranslatedFrame {
                bytecode_offset: signed(*i.operands.first()?),
                shared_info: signed(*i.operands.get(1)?),
            });
        } else if ops.is_other_frame(i.opcode) {
            return None;
        }
    }
    (frames.len() == frame_count && !frames.is_empty()).then_some(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> TranslationOpcodes {
        super::super::versions::translation_opcodes((13, 6)).expect("13.6 row")
    }

    /// Encodes an unsigned operand.
    fn vlq(mut v: u32, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn sign(v: i32) -> u32 {
        ((v.unsigned_abs()) << 1) | u32::from(v < 0)
    }

    fn push(out: &mut Vec<u8>, opcode: u8, operands: &[u32]) {
        out.push(opcode);
        for &o in operands {
            vlq(o, out);
        }
    }

    #[test]
    fn frames_outermost_first_through_a_basis() {
        let o = ops();
        let mut b = Vec::new();
        // Basis: two frames, outer at bytecode 42 (literal 1), inner at 7
        // (literal 2), each followed by a stack slot.
        push(&mut b, o.begin_with_feedback, &[0, sign(2), sign(2)]);
        push(
            &mut b,
            o.interpreted_without_return,
            &[sign(42), sign(1), sign(3), 4],
        );
        push(&mut b, o.tagged_stack_slot, &[sign(-2)]);
        push(
            &mut b,
            o.interpreted_with_return,
            &[sign(7), sign(2), sign(4), 1, sign(0), sign(1)],
        );
        let second = b.len();
        // Second translation: the first two instructions match the basis.
        push(
            &mut b,
            o.begin_without_feedback,
            &[second as u32, sign(2), sign(2)],
        );
        b.push(o.count() + 2);
        push(
            &mut b,
            o.interpreted_with_return,
            &[sign(9), sign(2), sign(4), 1, sign(0), sign(1)],
        );
        assert_eq!(
            interpreted_frames(&b, 0, &o),
            Some(vec![
                TranslatedFrame {
                    bytecode_offset: 42,
                    shared_info: 1
                },
                TranslatedFrame {
                    bytecode_offset: 7,
                    shared_info: 2
                },
            ])
        );
        assert_eq!(
            interpreted_frames(&b, second, &o),
            Some(vec![
                TranslatedFrame {
                    bytecode_offset: 42,
                    shared_info: 1
                },
                TranslatedFrame {
                    bytecode_offset: 9,
                    shared_info: 2
                },
            ])
        );
    }

    #[test]
    fn malformed_translations_give_none() {
        let o = ops();
        assert_eq!(interpreted_frames(&[], 0, &o), None);
        assert_eq!(
            interpreted_frames(&[o.begin_with_feedback, 0x80], 0, &o),
            None
        );
        // A run with no basis.
        let mut b = Vec::new();
        push(&mut b, o.begin_with_feedback, &[0, sign(1), sign(1)]);
        b.push(o.count() + 1);
        assert_eq!(interpreted_frames(&b, 0, &o), None);
        // A basis distance pointing before the start.
        let mut b = Vec::new();
        push(&mut b, o.begin_with_feedback, &[9, sign(1), sign(1)]);
        assert_eq!(interpreted_frames(&b, 0, &o), None);
    }
}
