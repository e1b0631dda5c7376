//! V8's position tables: the source-position table of bytecode and
//! optimized code (src/codegen/source-position-table.cc), the packed
//! `SourcePosition` (src/codegen/source-position.h), and Sparkplug's
//! pc-to-bytecode-offset table (src/baseline/bytecode-offset-iterator.cc).

/// Bound on entries decoded from one table.
const MAX_ENTRIES: usize = 1 << 22;

/// One decoded entry of a source-position table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionEntry {
    /// Offset into the code (or bytecode) the entry starts at.
    pub code_offset: i64,
    /// The source position from that offset on.
    pub position: SourcePosition,
    /// Whether the position starts a statement.
    pub is_statement: bool,
}

/// V8's packed 64-bit `SourcePosition`: bit 0 is "external", bits 1..31
/// the script offset plus one, bits 31..47 the inlining id plus one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePosition(pub i64);

impl SourcePosition {
    /// Whether this is an external (line-based) position, used only by
    /// wasm and builtins.
    pub fn is_external(self) -> bool {
        self.0 & 1 != 0
    }
    /// Offset into the script source, in UTF-16 units; -1 when unknown.
    pub fn script_offset(self) -> i64 {
        ((self.0 >> 1) & ((1 << 30) - 1)) - 1
    }
    /// Inlining id, -1 for the outermost function.
    pub fn inlining_id(self) -> i64 {
        ((self.0 >> 31) & 0xffff) - 1
    }
}

/// Reads a zig-zag VLQ integer (EncodeInt in source-position-table.cc).
fn decode_int(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let encoded = decode_unsigned(bytes, at)?;
    Some(((encoded >> 1) as i64) ^ -((encoded & 1) as i64))
}

/// How an entry's code-offset delta and its flags are packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionTableEncoding {
    /// A zig-zag integer whose sign carries is_statement (V8 up to 13.x).
    SignedStatement,
    /// An unsigned integer: `delta << 2 | is_breakable << 1 | is_statement`
    /// (V8 14.x).
    FlagBits,
}

/// Decodes a whole source-position table.
pub fn decode_position_table(bytes: &[u8], encoding: PositionTableEncoding) -> Vec<PositionEntry> {
    let mut out = Vec::new();
    let mut at = 0;
    // PositionTableEntry's default: kFunctionEntryBytecodeOffset (-1).
    let mut code_offset = -1i64;
    let mut position = 0i64;
    while at < bytes.len() && out.len() < MAX_ENTRIES {
        let (is_statement, code_delta) = match encoding {
            PositionTableEncoding::SignedStatement => {
                let Some(delta) = decode_int(bytes, &mut at) else {
                    break;
                };
                // The sign of the code-offset delta carries is_statement.
                if delta >= 0 {
                    (true, delta)
                } else {
                    (false, -(delta + 1))
                }
            }
            PositionTableEncoding::FlagBits => {
                let Some(packed) = decode_unsigned(bytes, &mut at) else {
                    break;
                };
                (packed & 1 != 0, (packed >> 2) as i64)
            }
        };
        let Some(pos_delta) = decode_int(bytes, &mut at) else {
            break;
        };
        code_offset = code_offset.wrapping_add(code_delta);
        position = position.wrapping_add(pos_delta);
        out.push(PositionEntry {
            code_offset,
            position: SourcePosition(position),
            is_statement,
        });
    }
    out
}

/// The position in force at `offset`: the last entry whose code offset is
/// at or before it (BytecodeArray::SourcePosition, Code::SourcePosition).
pub fn position_at(table: &[PositionEntry], offset: i64) -> Option<SourcePosition> {
    let mut found = None;
    for e in table {
        if e.code_offset > offset {
            break;
        }
        if !e.position.is_external() {
            found = Some(e.position);
        }
    }
    found
}

/// Reads an unsigned little-endian-groups VLQ (src/base/vlq.h).
fn decode_unsigned(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*at)?;
        *at += 1;
        if shift >= 64 {
            return None;
        }
        v |= ((b & 0x7f) as u64) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
}

/// One entry of a Maglev safepoint table: the return pc of a call, and
/// the deoptimization entry that describes the frame there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafepointEntry {
    /// Return pc of the call, as an offset into the code.
    pub pc: u32,
    /// The deoptimization entry describing the frame there, if any.
    pub deopt_index: Option<u32>,
    /// The lazy-deopt exit that replaces `pc` on the stack once the code
    /// is deoptimized.
    pub trampoline_pc: Option<u32>,
}

/// Where a Maglev safepoint table keeps its entry count and its entry
/// configuration, and where its entries start.
#[derive(Debug, Clone, Copy)]
pub struct SafepointTableHeader {
    /// Offset of the entry count.
    pub length_offset: usize,
    /// Offset of the entry configuration.
    pub configuration_offset: usize,
    /// Size of the header: where the entries start.
    pub size: usize,
}

/// Bound on the entries read from one table.
const MAX_SAFEPOINTS: usize = 1 << 16;

/// A Maglev safepoint table's shape, from its header.
struct SafepointLayout {
    length: usize,
    entry_size: usize,
    has_deopt: bool,
    pc_bytes: usize,
    deopt_bytes: usize,
}

impl SafepointLayout {
    fn read(table: &[u8], header: SafepointTableHeader) -> Option<SafepointLayout> {
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(table.get(at..at + 4)?.try_into().ok()?))
        };
        let length = (word(header.length_offset)? as usize).min(MAX_SAFEPOINTS);
        let config = word(header.configuration_offset)?;
        let has_deopt = config & 1 != 0;
        let register_bytes = ((config >> 1) & 7) as usize;
        let pc_bytes = ((config >> 4) & 7) as usize;
        let deopt_bytes = ((config >> 7) & 7) as usize;
        if pc_bytes == 0 || pc_bytes > 4 || deopt_bytes > 4 {
            return None;
        }
        let deopt_part = if has_deopt { pc_bytes + deopt_bytes } else { 0 };
        Some(SafepointLayout {
            length,
            entry_size: pc_bytes + deopt_part + 1 + register_bytes,
            has_deopt,
            pc_bytes,
            deopt_bytes,
        })
    }
}

/// The bytes a whole Maglev safepoint table takes, from its header alone.
pub fn maglev_safepoint_table_size(
    header_bytes: &[u8],
    header: SafepointTableHeader,
) -> Option<usize> {
    let layout = SafepointLayout::read(header_bytes, header)?;
    header
        .size
        .checked_add(layout.length.checked_mul(layout.entry_size)?)
}

/// Finds the safepoint whose return pc (or, after a lazy deoptimization,
/// whose trampoline) is `pc_offset`, in a Maglev safepoint table
/// (src/codegen/maglev-safepoint-table.h, as of V8 13.6 and 14.6; the
/// header offsets come from the version table): each entry is the pc, then, when
/// the table has deopt data, deopt index + 1 and trampoline pc + 1, then
/// one byte of extra spill slots and the tagged-register bitmap. The entry
/// configuration packs has-deopt-data (1 bit), then the byte sizes of the
/// register bitmap, the pcs and the deopt index (3 bits each).
pub fn find_maglev_safepoint(
    table: &[u8],
    header: SafepointTableHeader,
    pc_offset: u32,
) -> Option<SafepointEntry> {
    let layout = SafepointLayout::read(table, header)?;
    let (length, entry_size) = (layout.length, layout.entry_size);
    let (has_deopt, pc_bytes, deopt_bytes) =
        (layout.has_deopt, layout.pc_bytes, layout.deopt_bytes);
    let read = |at: usize, n: usize| -> Option<u32> {
        let bytes = table.get(at..at + n)?;
        Some(bytes.iter().rev().fold(0u32, |v, b| (v << 8) | *b as u32))
    };
    for i in 0..length {
        let at = header.size + i * entry_size;
        let pc = read(at, pc_bytes)?;
        let (deopt_index, trampoline_pc) = if has_deopt {
            // Stored plus one, so that -1 (none) is zero.
            let d = read(at + pc_bytes, deopt_bytes)?.checked_sub(1);
            let t = read(at + pc_bytes + deopt_bytes, pc_bytes)?.checked_sub(1);
            (d, t)
        } else {
            (None, None)
        };
        if pc == pc_offset || trampoline_pc == Some(pc_offset) {
            return Some(SafepointEntry {
                pc,
                deopt_index,
                trampoline_pc,
            });
        }
    }
    None
}

/// Sizes of each bytecode at the three operand scales, as V8's
/// `interpreter::Bytecodes::kBytecodeSizes` table in the binary has them.
pub struct BytecodeSizes {
    /// `count` entries per scale: single, double (Wide), quadruple (ExtraWide).
    pub sizes: Vec<u8>,
    /// Number of bytecodes.
    pub count: usize,
}

// Prefix bytecodes come first in BYTECODE_LIST (src/interpreter/bytecodes.h):
// Wide, ExtraWide, DebugBreakWide, DebugBreakExtraWide.
const WIDE: u8 = 0;
const EXTRA_WIDE: u8 = 1;
const DEBUG_BREAK_WIDE: u8 = 2;
const DEBUG_BREAK_EXTRA_WIDE: u8 = 3;

impl BytecodeSizes {
    /// Size in bytes of the bytecode starting at `bytecodes[at]`, prefix
    /// included.
    pub fn size_at(&self, bytecodes: &[u8], at: usize) -> Option<usize> {
        let b = *bytecodes.get(at)?;
        let (scale, op) = match b {
            WIDE | DEBUG_BREAK_WIDE => (1, *bytecodes.get(at + 1)?),
            EXTRA_WIDE | DEBUG_BREAK_EXTRA_WIDE => (2, *bytecodes.get(at + 1)?),
            _ => (0, b),
        };
        if op as usize >= self.count {
            return None;
        }
        let size = *self.sizes.get(scale * self.count + op as usize)? as usize;
        let total = if scale == 0 { size } else { size + 1 };
        (total > 0).then_some(total)
    }
}

/// Maps a pc offset in Sparkplug (baseline) code to the bytecode offset it
/// belongs to, as `Code::GetBytecodeOffsetForBaselinePC` does: walk the
/// pc-delta table in step with the bytecodes until the current bytecode's
/// code ends at or after `pc_offset`. Returns -1 for the function entry.
pub fn baseline_bytecode_offset(
    offset_table: &[u8],
    bytecodes: &[u8],
    sizes: &BytecodeSizes,
    pc_offset: u64,
) -> Option<i64> {
    if pc_offset == 0 {
        return Some(-1);
    }
    let mut at = 0;
    let mut pc_end = decode_unsigned(offset_table, &mut at)?;
    let mut bytecode_offset: i64 = -1;
    let mut next_bytecode = 0usize;
    let mut steps = 0usize;
    while pc_end < pc_offset {
        steps += 1;
        if steps > bytecodes.len() + 1 {
            return None;
        }
        pc_end += decode_unsigned(offset_table, &mut at)?;
        bytecode_offset = next_bytecode as i64;
        next_bytecode += sizes.size_at(bytecodes, next_bytecode)?;
    }
    Some(bytecode_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_int(out: &mut Vec<u8>, v: i64) {
        let mut e = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            let more = e > 0x7f;
            out.push(((more as u8) << 7) | (e & 0x7f) as u8);
            e >>= 7;
            if !more {
                break;
            }
        }
    }

    #[test]
    fn decodes_deltas_and_statement_flag() {
        let mut t = Vec::new();
        // (offset 0, pos raw 10, statement), (offset 5, pos raw 4, expression)
        encode_int(&mut t, 1);
        encode_int(&mut t, 10);
        encode_int(&mut t, -(5) - 1);
        encode_int(&mut t, -6);
        let e = decode_position_table(&t, PositionTableEncoding::SignedStatement);
        assert_eq!(e.len(), 2);
        assert!(e[0].is_statement);
        assert_eq!(e[1].code_offset, 5);
        assert!(!e[1].is_statement);
        assert_eq!(e[1].position.0, 4);
        assert_eq!(position_at(&e, 4).map(|p| p.0), Some(10));
        assert_eq!(position_at(&e, 9).map(|p| p.0), Some(4));
    }

    #[test]
    fn source_position_fields() {
        // script offset 41, inlining id 2
        let raw = ((41 + 1) << 1) | ((2 + 1) << 31);
        let p = SourcePosition(raw);
        assert_eq!(p.script_offset(), 41);
        assert_eq!(p.inlining_id(), 2);
        assert!(!p.is_external());
    }

    #[test]
    fn truncated_table_stops() {
        for enc in [
            PositionTableEncoding::SignedStatement,
            PositionTableEncoding::FlagBits,
        ] {
            assert!(decode_position_table(&[0x80, 0x80], enc).is_empty());
        }
    }

    #[test]
    fn finds_maglev_safepoints() {
        // The head of a Node 24 Maglev table seen in a core: stack slots,
        // 13 entries, configuration 0xa3 (deopt data; 1-byte registers, 2-byte pcs,
        // 1-byte deopt indexes).
        let mut t = vec![0x12, 0, 0, 0, 13, 0, 0, 0, 0xa3, 0, 0, 0, 5, 0, 0, 0];
        t.extend([0xac, 0x00, 0x0f, 0xa9, 0x05, 0x00, 0x00]);
        t.extend([0xf8, 0x00, 0x10, 0xad, 0x05, 0x00, 0x00]);
        t.extend([0xb4, 0x01, 0x11, 0xb1, 0x05, 0x00, 0x00]);
        let header = SafepointTableHeader {
            length_offset: 4,
            configuration_offset: 8,
            size: 16,
        };
        let e = find_maglev_safepoint(&t, header, 436).unwrap();
        assert_eq!(e.deopt_index, Some(16));
        assert_eq!(e.trampoline_pc, Some(1456));
        // A deoptimized frame's return address is the trampoline.
        assert_eq!(find_maglev_safepoint(&t, header, 1456).unwrap().pc, 436);
        // The table says 13 entries but holds 3: the read stops cleanly.
        assert!(find_maglev_safepoint(&t, header, 999).is_none());
    }

    #[test]
    fn decodes_flag_bit_entries() {
        // The head of a V8 14.6 table seen in a core: function entry
        // (offset -1, breakable), then offset 0 as a statement at raw
        // position 340, then offset 6 as an expression.
        let t = [0x02, 0xfc, 0x04, 0x07, 0x2c, 0x1a, 0x18];
        let e = decode_position_table(&t, PositionTableEncoding::FlagBits);
        assert_eq!(e.len(), 3);
        assert_eq!((e[0].code_offset, e[0].is_statement), (-1, false));
        assert_eq!((e[1].code_offset, e[1].is_statement), (0, true));
        assert_eq!(e[1].position.0, 340);
        assert_eq!((e[2].code_offset, e[2].is_statement), (6, false));
    }
}
