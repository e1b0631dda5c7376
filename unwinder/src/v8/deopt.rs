//! Deoptimization: the frames a deoptimization entry or a lazily
//! deoptimized return address stands for, read from the code's
//! DeoptimizationData, its translations (Maglev frames at calls), and the
//! inlining positions of optimized code.

use super::code::CodeObject;
use super::heap::Heap;
use super::names::line_column;
use super::positions::{self, SourcePosition};
use super::{translation, versions, DeoptimizingFrame, JsFrame, Tier, V8Frame, V8Runtime};
use crate::memory::Memory;

/// Most bytes of deoptimization exits before a pc that is read to find
/// which exit it is.
const MAX_DEOPT_EXITS_BYTES: u64 = 64 << 10;

/// Bytes of a Maglev safepoint table read at most.
const MAX_SAFEPOINT_TABLE_BYTES: usize = 64 << 10;

impl V8Runtime {
    /// The function a deoptimization entry builtin at `pc` is deoptimizing,
    /// when it is in `Deoptimizer::ComputeOutputFrames` with `deoptimizer`
    /// saved on its stack and `caller_frame_top` the top of the caller's
    /// frame (see `V8Abi::deoptimizer_on_stack`). V8 marks the stack not
    /// iterable then; the Deoptimizer still holds the caller's frame
    /// pointer and pc and which deoptimization exit was taken.
    pub fn deoptimizing(
        &self,
        pc: u64,
        deoptimizer: u64,
        caller_frame_top: u64,
        mem: &dyn Memory,
    ) -> Option<DeoptimizingFrame> {
        const MAX_CALLER_FRAME: u64 = 16 << 20;
        const MAX_TOP_SLACK: u64 = 16;
        if !self.is_deoptimization_entry(pc) {
            return None;
        }
        let d = versions::deoptimizer_layout(self.layout.version)?;
        let bytes = mem.read_vec(deoptimizer, d.scan_words * 8).ok()?;
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        // The builtin's arithmetic leaves its stack pointer up to two
        // slots below V8's caller_frame_top_ (it drops the frame up to the
        // parameter count, then keeps sp aligned).
        let top_at = (d.deopt_exit_index + 1..words.len().saturating_sub(2)).find(|&i| {
            words[i] >= caller_frame_top && words[i] - caller_frame_top <= MAX_TOP_SLACK
        })?;
        let caller_frame_top = words[top_at];
        let (caller_fp, caller_pc) = (words[top_at + 1], words[top_at + 2]);
        if caller_fp < caller_frame_top
            || caller_fp - caller_frame_top > MAX_CALLER_FRAME
            || caller_pc == 0
        {
            return None;
        }
        let heap = self.heap(mem);
        let function = *words.get(d.function)?;
        let frames = heap
            .is_js_function(function)
            .then(|| {
                let code = self.code_object(&heap, *words.get(d.compiled_code)?)?;
                let tier = self.optimized_tier(code.kind)?;
                let exit = i64::from(*words.get(d.deopt_exit_index)? as u32);
                self.translated_frames(&heap, &code, exit, function, tier)
                    .or_else(|| {
                        self.deopt_entry_frame(&heap, &code, exit, function, tier)
                            .map(|f| vec![f])
                    })
            })
            .flatten()
            .unwrap_or_default();
        Some(DeoptimizingFrame {
            frame: V8Frame::Js(frames),
            caller_fp,
            caller_pc,
            caller_sp: caller_frame_top,
        })
    }

    /// The outermost frame of Maglev code at the call returning to
    /// `pc_offset`, placed by the bytecode offset of the deoptimization
    /// entry its safepoint names.
    pub(super) fn maglev_call_frame(
        &self,
        heap: &Heap,
        code: &CodeObject,
        pc_offset: u64,
        function: u64,
    ) -> Option<JsFrame> {
        let deopt_index = self.maglev_deopt_index(heap, code, pc_offset)??;
        self.deopt_entry_frame(heap, code, deopt_index, function, Tier::Maglev)
    }

    /// The outermost frame of optimized code at deoptimization entry
    /// `deopt_index`, placed by the entry's bytecode offset.
    pub(super) fn deopt_entry_frame(
        &self,
        heap: &Heap,
        code: &CodeObject,
        deopt_index: i64,
        function: u64,
        tier: Tier,
    ) -> Option<JsFrame> {
        let l = &self.layout;
        let deopt = heap.field(code.code, l.code_deopt_data?)?;
        let index = l.deopt_first_entry_index?
            + deopt_index * l.deopt_entry_size?
            + l.deopt_bytecode_offset_offset?;
        let bytecode_offset = heap.smi(heap.array_get(deopt, index)?)?;
        let bytecode = self.function_bytecode(heap, function)?;
        let pos = self.bytecode_position(heap, bytecode, bytecode_offset)?;
        let mut frame = self.blank_frame(heap, Some(function), tier);
        self.fill_position(heap, &mut frame, function, Some(pos));
        Some(frame)
    }

    /// The frames of Maglev code at the call returning to `pc_offset`,
    /// innermost first, as V8 summarizes them: the interpreter frames of
    /// the translation of the deoptimization entry the call's safepoint
    /// names, each placed at its bytecode offset.
    pub(super) fn maglev_translated_frames(
        &self,
        heap: &Heap,
        code: &CodeObject,
        pc_offset: u64,
        function: u64,
    ) -> Option<Vec<JsFrame>> {
        let l = &self.layout;
        // Without the line's opcode table no translation can be read.
        l.translation_opcodes?;
        let Some(deopt_index) = self.maglev_deopt_index(heap, code, pc_offset)? else {
            // No deoptimization point at this safepoint: V8 summarizes the
            // frame as its function at entry, without inlined frames
            // (OptimizedJSFrame::Summarize, src/execution/frames.cc).
            let mut frame = self.blank_frame(heap, Some(function), Tier::Maglev);
            self.fill_entry_position(heap, &mut frame, function);
            return Some(vec![frame]);
        };
        self.translated_frames(heap, code, deopt_index, function, Tier::Maglev)
    }

    /// The interpreter frames, innermost first, that the translation of
    /// deoptimization entry `deopt_index` of optimized code lists, each
    /// placed at its bytecode offset; `function` must be the outermost.
    pub(super) fn translated_frames(
        &self,
        heap: &Heap,
        code: &CodeObject,
        deopt_index: i64,
        function: u64,
        tier: Tier,
    ) -> Option<Vec<JsFrame>> {
        let l = &self.layout;
        let ops = l.translation_opcodes?;
        let deopt = heap.field(code.code, l.code_deopt_data?)?;
        let entry = l.deopt_first_entry_index? + deopt_index * l.deopt_entry_size?;
        let start = heap.smi(heap.array_get(deopt, entry + l.deopt_translation_index_offset?)?)?;
        let translations = heap.array_get(deopt, l.deopt_frame_translation_index?)?;
        let bytes = self.translation_bytes(heap, translations)?;
        let frames = translation::interpreted_frames(&bytes, usize::try_from(start).ok()?, &ops)?;
        let literals = heap.array_get(deopt, l.deopt_literal_array_index?)?;
        let outer_sfi = heap.field(function, l.jsfunction_shared)?;
        let mut out = Vec::with_capacity(frames.len());
        for (depth, f) in frames.iter().enumerate().rev() {
            let sfi = heap.unwrap_sfi(heap.strip_weak(heap.array_get(literals, f.shared_info)?))?;
            // The outermost frame is the function whose frame this is.
            if depth == 0 && sfi != outer_sfi {
                return None;
            }
            let bytecode = self.sfi_bytecode(heap, sfi)?;
            let offset = self.bytecode_position(heap, bytecode, f.bytecode_offset)?;
            let info = self.sfi_info(heap, sfi);
            let script = info.script.as_ref()?;
            let (line, column) = line_column(script, offset);
            out.push(JsFrame {
                function: info.name.clone(),
                file: script.name.clone(),
                line: Some(line),
                column: Some(column),
                tier,
                inlined: depth != 0,
            });
        }
        Some(out)
    }

    /// The deoptimization index of the safepoint of Maglev code at
    /// `pc_offset`: `Some(None)` for a safepoint without one (Maglev
    /// emits no lazy deoptimization point for its function-entry and loop
    /// stack checks).
    pub(super) fn maglev_deopt_index(
        &self,
        heap: &Heap,
        code: &CodeObject,
        pc_offset: u64,
    ) -> Option<Option<i64>> {
        let l = &self.layout;
        let header = l.maglev_safepoints?;
        // The safepoint table opens the metadata, right after the
        // instructions (Code::safepoint_table_offset is 0).
        let size = heap.field_u32(code.code, l.code_instruction_size)? as u64;
        if pc_offset >= size {
            return None;
        }
        let table_start = code.start.checked_add(size)?;
        let head = heap.mem.read_vec(table_start, header.size).ok()?;
        let table_size = positions::maglev_safepoint_table_size(&head, header)?;
        if table_size > MAX_SAFEPOINT_TABLE_BYTES {
            return None;
        }
        let table = heap.mem.read_vec(table_start, table_size).ok()?;
        let entry =
            positions::find_maglev_safepoint(&table, header, u32::try_from(pc_offset).ok()?)?;
        Some(entry.deopt_index.map(i64::from))
    }

    /// For a frame whose return address V8 redirected to its code's lazy
    /// deoptimization exit (the function was deoptimized while on the
    /// stack: src/deoptimizer/deoptimizer.cc, ActivationsFinder replaces
    /// the pc with the call's trampoline pc), the return address of the
    /// call the frame is really in. The exits come one call each, eager
    /// then lazy, in deoptimization-entry order, so the calls before the pc
    /// count the entry, whose Pc is the original return offset.
    pub(super) fn lazy_deopt_return(&self, heap: &Heap, code: &CodeObject, pc: u64) -> Option<u64> {
        let l = &self.layout;
        // Only optimized code has deoptimization exits; baseline code
        // keeps its BytecodeArray where the deoptimization data would be.
        self.optimized_tier(code.kind)?;
        let deopt = heap.field(code.code, l.code_deopt_data?)?;
        let exit_start = heap.smi(heap.array_get(deopt, l.deopt_exit_start_index?)?)?;
        let exits = code.start.checked_add(u64::try_from(exit_start).ok()?)?;
        if pc < exits || pc - exits > MAX_DEOPT_EXITS_BYTES {
            return None;
        }
        let bytes = heap.mem.read_vec(exits, (pc - exits) as usize).ok()?;
        let target = (pc - exits) as usize;
        let (mut at, mut before) = (0usize, 0i64);
        while at < target {
            let (len, is_call) = self.abi.deopt_exit_insn(bytes.get(at..)?)?;
            before += i64::from(is_call);
            at += len;
        }
        // The pc must be the start of an exit, as V8 leaves it.
        if at != target {
            return None;
        }
        let entry = l.deopt_first_entry_index? + before * l.deopt_entry_size? + l.deopt_pc_offset?;
        let return_offset = heap.smi(heap.array_get(deopt, entry)?)?;
        code.start.checked_add(u64::try_from(return_offset).ok()?)
    }

    /// Expands a position in optimized code into the inlining stack, as
    /// `SourcePosition::InliningStack` does with the code's deoptimization
    /// data: each inlined level names its function and the position of the
    /// call in its caller.
    pub(super) fn inlined_frames(
        &self,
        heap: &Heap,
        code: &CodeObject,
        outer_sfi: u64,
        pos: SourcePosition,
        tier: Tier,
    ) -> Vec<JsFrame> {
        let l = &self.layout;
        let mut out = Vec::new();
        let mut pos = pos;
        let deopt = l.code_deopt_data.and_then(|off| heap.field(code.code, off));
        let mut guard = 0;
        while pos.inlining_id() >= 0 && guard < 256 {
            guard += 1;
            let Some(step) = deopt.and_then(|d| self.inlining_step(heap, d, pos.inlining_id()))
            else {
                break;
            };
            let (sfi, caller_pos) = step;
            out.push(self.positioned_frame(heap, sfi, pos, tier, true));
            pos = caller_pos;
        }
        out.push(self.positioned_frame(heap, outer_sfi, pos, tier, false));
        out
    }

    /// One inlining level: the inlined function's SFI and the position of
    /// its call site, from DeoptimizationData's InliningPositions (an array
    /// of {SourcePosition, int inlined_function_id}) and LiteralArray.
    pub(super) fn inlining_step(
        &self,
        heap: &Heap,
        deopt: u64,
        inlining_id: i64,
    ) -> Option<(u64, SourcePosition)> {
        let l = &self.layout;
        let positions = heap.array_get(deopt, l.deopt_inlining_positions_index?)?;
        let literals = heap.array_get(deopt, l.deopt_literal_array_index?)?;
        let bytes = self.byte_array(heap, positions)?;
        // sizeof(InliningPosition): SourcePosition (8) + int (4), padded to 16.
        let at = (inlining_id as usize).checked_mul(16)?;
        let raw_pos = i64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?);
        let fn_id = i32::from_le_bytes(bytes.get(at + 8..at + 12)?.try_into().ok()?);
        let sfi = heap.unwrap_sfi(heap.strip_weak(heap.array_get(literals, fn_id as i64)?))?;
        Some((sfi, SourcePosition(raw_pos)))
    }
}
