//! Code lookup: the embedded builtins (in the binary and in V8's copy of
//! them), the interpreter's trampolines, and the Code objects of JIT code
//! found from a function or by scanning back from a pc.

use std::collections::HashMap;

use super::heap::Heap;
use super::{Tier, V8Runtime};
use crate::memory::{Memory, PageCache};
use crate::module::Module;

/// A found code object.
pub(super) struct CodeObject {
    pub(super) code: u64,
    pub(super) start: u64,
    pub(super) kind: u32,
}

/// Names of the builtins whose frames are interpreted frames
/// (`Code::is_interpreter_trampoline_builtin` and the baseline
/// trampolines, src/objects/code-inl.h).
pub(super) const INTERPRETER_BUILTINS: &[&str] = &[
    "Builtins_InterpreterEntryTrampoline",
    "Builtins_InterpreterEntryTrampolineForProfiling",
    "Builtins_InterpreterEnterAtBytecode",
    "Builtins_InterpreterEnterAtNextBytecode",
    "Builtins_InterpreterOnStackReplacement",
    "Builtins_BaselineOrInterpreterEnterAtBytecode",
    "Builtins_BaselineOrInterpreterEnterAtNextBytecode",
];

/// Builtins that build an entry frame (C++ calling into JavaScript): the
/// C++ caller's registers sit above their frame record
/// (src/builtins/arm64/builtins-arm64.cc Generate_JSEntryVariant).
pub(super) const ENTRY_BUILTINS: &[&str] = &[
    "Builtins_JSEntry",
    "Builtins_JSConstructEntry",
    "Builtins_JSRunMicrotasksEntry",
];

/// Page granularity of V8's copy of the embedded builtins.
pub(super) const BLOB_PAGE: u64 = 4096;

/// Bytes from the start of a page that identify it in the blob index.
pub(super) const PAGE_PROBE: usize = 32;

/// Indexes the binary's builtin pages by their first bytes (read from the
/// file; a module replayed from a snapshot has no file, and no index).
pub(super) fn index_blob_pages(
    exe: &Module,
    blob: (u64, u64),
) -> HashMap<[u8; PAGE_PROBE], Vec<u64>> {
    let mut index: HashMap<[u8; PAGE_PROBE], Vec<u64>> = HashMap::new();
    let mut page = blob.0 & !(BLOB_PAGE - 1);
    while page < blob.1 {
        let mut probe = [0u8; PAGE_PROBE];
        if exe.read(page, &mut probe) {
            index.entry(probe).or_default().push(page);
        }
        page += BLOB_PAGE;
    }
    index
}

/// How far back from a pc the walker looks for the start of its
/// InstructionStream before giving up.
const MAX_CODE_SCAN: u64 = 4 << 20;

impl V8Runtime {
    /// `pc` as an address in the binary's builtins when it is in V8's copy
    /// of them.
    pub(super) fn in_binary(&self, pc: u64) -> u64 {
        match self.copy_delta.get() {
            Some(d) if !(self.blob.0..self.blob.1).contains(&pc) => pc.wrapping_sub(d),
            _ => pc,
        }
    }

    /// Where the binary's builtin address `addr` runs in V8's copy of the
    /// embedded builtins (x64's short builtin calls), once an unwind has
    /// located the copy; `None` before that, or when V8 runs the binary's.
    pub fn builtin_in_copy(&self, addr: u64) -> Option<u64> {
        self.copy_delta
            .get()
            .filter(|_| (self.blob.0..self.blob.1).contains(&addr))
            .map(|d| addr.wrapping_add(d))
    }

    /// Checks once per page whether `pc` (outside every module) lies in a
    /// copy of the embedded builtins: its page must equal a page of the
    /// binary's builtins at the same offset (V8 copies them page-aligned),
    /// and the copy's start must equal the binary's.
    pub fn locate_builtin_copy(&self, pc: u64, mem: &dyn Memory) {
        if self.copy_delta.get().is_some() || self.blob_pages.is_empty() {
            return;
        }
        let page = pc & !(BLOB_PAGE - 1);
        if !self.checked_pages.borrow_mut().insert(page) {
            return;
        }
        let mut probe = [0u8; PAGE_PROBE];
        if mem.read(page, &mut probe).is_err() {
            // A core leaves the copy out (its pages equal the binary's),
            // but keeps its segment: one of exactly the builtins' size.
            let blob_start = self.blob.0 & !(BLOB_PAGE - 1);
            let blob_len = self.blob.1.saturating_sub(blob_start).div_ceil(BLOB_PAGE) * BLOB_PAGE;
            if let Some((start, end)) = mem.mapping_at(pc) {
                if end - start == blob_len && start % BLOB_PAGE == 0 {
                    self.set_copy_delta(Some(start.wrapping_sub(blob_start)));
                }
            }
            return;
        }
        let Some(candidates) = self.blob_pages.get(&probe) else {
            return;
        };
        let mut found = None;
        for &binary_page in candidates {
            let delta = page.wrapping_sub(binary_page);
            let (mut here, mut there) = ([0u8; PAGE_PROBE], [0u8; PAGE_PROBE]);
            let same_pc = mem.read(pc, &mut here).is_ok()
                && mem.read(pc.wrapping_sub(delta), &mut there).is_ok()
                && here == there;
            let same_start = mem.read(self.blob.0.wrapping_add(delta), &mut here).is_ok()
                && mem.read(self.blob.0, &mut there).is_ok()
                && here == there;
            if same_pc && same_start {
                if found.is_some_and(|f| f != delta) {
                    return;
                }
                found = Some(delta);
            }
        }
        self.set_copy_delta(found);
    }

    /// Records where V8's copy of the builtins is; `builtin_at`'s kept
    /// answer was given without it.
    fn set_copy_delta(&self, delta: Option<u64>) {
        self.copy_delta.set(delta);
        self.last_builtin.set((u64::MAX, 0));
    }

    /// Whether `pc` is in V8 code: an embedded builtin (or its copy in
    /// the code range) or a Code object's instructions.
    pub fn is_code_at(&self, pc: u64, mem: &dyn Memory) -> bool {
        if self.builtin_at(pc).is_some() {
            return true;
        }
        // Unmapped (or undumped) addresses are not code; the back-scan is
        // for addresses that could be.
        if mem.mapping_at(pc).is_none() && mem.read_u64(pc).is_err() {
            return false;
        }
        let heap = self.heap(mem);
        self.scan_for_code(&heap, pc).is_some()
    }

    /// The `Builtins_*` symbol containing `pc`.
    pub fn builtin_at(&self, pc: u64) -> Option<&str> {
        // A frame asks this of one pc several times over (is it a builtin,
        // a deoptimization entry, an entry frame): the last answer is kept.
        let (last_pc, last_slot) = self.last_builtin.get();
        let slot = if last_pc == pc {
            last_slot
        } else {
            let slot = self.builtin_slot(pc);
            self.last_builtin.set((pc, slot));
            slot
        };
        let (_, _, name) = self.builtins.get(slot.checked_sub(1)?)?;
        Some(name.as_str())
    }

    /// One more than the index of the builtin holding `pc`, or 0.
    fn builtin_slot(&self, pc: u64) -> usize {
        let pc = self.in_binary(pc);
        let idx = self.builtins.partition_point(|(s, _, _)| *s <= pc);
        match idx.checked_sub(1).and_then(|i| self.builtins.get(i)) {
            Some((s, e, _)) if pc >= *s && pc < *e => idx,
            _ => 0,
        }
    }

    /// Whether `pc` is in one of the deoptimization entry builtins
    /// (`DeoptimizationEntry_Eager`, `_Lazy`, ...).
    pub fn is_deoptimization_entry(&self, pc: u64) -> bool {
        self.builtin_at(pc)
            .is_some_and(|n| n.starts_with("Builtins_DeoptimizationEntry"))
    }

    /// Whether `pc` is in a builtin that builds an entry frame.
    pub fn is_entry_builtin(&self, pc: u64) -> bool {
        self.builtin_at(pc)
            .is_some_and(|n| ENTRY_BUILTINS.contains(&n))
    }

    /// Whether `pc` is in one of the interpreter's trampolines.
    pub(super) fn is_interpreter(&self, pc: u64) -> bool {
        let pc = self.in_binary(pc);
        self.interpreter.iter().any(|&(s, e)| pc >= s && pc < e)
    }

    /// Where optimized code compiled for on-stack replacement ends (its
    /// deoptimization data has an OSR entry), or None for any other code.
    /// Such code is entered from a loop with the unoptimized frame's record
    /// already built, so it never runs in an unbuilt frame whatever its
    /// first instructions. `start` is the code's instruction start.
    pub fn osr_code_end(&self, start: u64, mem: &dyn Memory) -> Option<u64> {
        let heap = self.heap(mem);
        let l = &self.layout;
        let code = self.code_at_start(&heap, start)?;
        self.optimized_tier(code.kind)?;
        let deopt = heap.field(code.code, l.code_deopt_data?)?;
        let osr_pc = heap.smi(heap.array_get(deopt, l.deopt_osr_pc_offset_index?)?)?;
        if osr_pc < 0 {
            return None;
        }
        let size = heap.field_u32(code.code, l.code_instruction_size)? as u64;
        Some(start.wrapping_add(size))
    }

    /// Where the code containing `pc` starts: its builtin's symbol, or its
    /// InstructionStream in JIT memory.
    pub fn code_start(&self, pc: u64, mem: &dyn Memory) -> Option<u64> {
        let at = self.in_binary(pc);
        let idx = self.builtins.partition_point(|(s, _, _)| *s <= at);
        if let Some((s, e, _)) = idx.checked_sub(1).and_then(|i| self.builtins.get(i)) {
            if at < *e {
                // In the copy, the start is the copy's.
                return Some(s.wrapping_add(pc.wrapping_sub(at)));
            }
        }
        let heap = self.heap(mem);
        self.scan_for_code(&heap, pc).map(|c| c.start)
    }

    /// Start of the code of `function` that contains `pc` (its current or
    /// baseline code, else found by scanning back from `pc`).
    pub fn function_code_start(&self, function: u64, pc: u64, mem: &dyn Memory) -> Option<u64> {
        let heap = self.heap(mem);
        self.find_code(&heap, pc, function).map(|c| c.start)
    }

    /// The first instruction of a JSFunction's current code: its optimized
    /// or baseline code, or the interpreter entry trampoline.
    pub fn function_entry(&self, function: u64, mem: &dyn Memory) -> Option<u64> {
        let heap = self.heap(mem);
        let code = heap.field(function, self.layout.jsfunction_code?)?;
        self.code_object(&heap, code).map(|c| c.start)
    }

    /// The Code object whose instructions contain `pc`: the function's
    /// current code, its baseline code, or, failing both, the
    /// InstructionStream found by scanning back from `pc`.
    pub(super) fn find_code(&self, heap: &Heap, pc: u64, function: u64) -> Option<CodeObject> {
        let l = &self.layout;
        let mut candidates = Vec::new();
        if let Some(c) = l.jsfunction_code.and_then(|off| heap.field(function, off)) {
            candidates.push(c);
        }
        if let (Some(off), Some(sfi)) = (
            l.sfi_function_data,
            heap.field(function, l.jsfunction_shared),
        ) {
            if let Some(d) = heap.field(sfi, off) {
                candidates.push(d);
            }
        }
        for c in candidates {
            if let Some(code) = self.code_object(heap, c) {
                let size = heap.field_u32(c, l.code_instruction_size).unwrap_or(0) as u64;
                if pc >= code.start && pc < code.start + size {
                    return Some(code);
                }
            }
        }
        self.scan_for_code(heap, pc)
    }

    /// The Code object `c`, with where its instructions start and its kind.
    pub(super) fn code_object(&self, heap: &Heap, c: u64) -> Option<CodeObject> {
        let l = &self.layout;
        if !heap.has_type(c, l.type_code) {
            return None;
        }
        let start = match l.code_inline_header {
            Some(header) => c
                .wrapping_sub(l.heap_object_tag)
                .wrapping_add_signed(header),
            None => heap.field(c, l.code_instruction_start)?,
        };
        let flags = heap.field_u32(c, l.code_flags)?;
        Some(CodeObject {
            code: c,
            start,
            kind: (flags >> l.code_kind_shift) & l.code_kind_mask,
        })
    }

    /// The Code object whose instructions start at `start`.
    pub(super) fn code_at_start(&self, heap: &Heap, start: u64) -> Option<CodeObject> {
        let l = &self.layout;
        if let Some(header) = l.code_inline_header {
            let code = start
                .wrapping_sub(header as u64)
                .wrapping_add(l.heap_object_tag);
            return self.code_object(heap, code).filter(|c| c.start == start);
        }
        let istream = start
            .wrapping_sub(l.istream_header? as u64)
            .wrapping_add(l.heap_object_tag);
        if !heap.has_type(istream, l.type_instruction_stream) {
            return None;
        }
        heap.field(istream, l.istream_code?)
            .and_then(|c| self.code_object(heap, c))
            .filter(|c| c.start == start)
    }

    /// Scans back from `pc` for an InstructionStream header whose Code
    /// points back at it: a candidate is accepted only when the Code's
    /// instruction start is the instruction start that candidate implies.
    pub(super) fn scan_for_code(&self, heap: &Heap, pc: u64) -> Option<CodeObject> {
        let l = &self.layout;
        if let Some(header) = l.code_inline_header {
            return self.scan_for_inline_code(heap, pc, header as u64);
        }
        let header = l.istream_header? as u64;
        let code_field = l.istream_code?;
        let pages = PageCache::new(heap.mem);
        let heap = &Heap {
            layout: heap.layout,
            mem: &pages,
        };
        let mut at = pc & !7;
        let stop = pc.saturating_sub(MAX_CODE_SCAN);
        while at > stop {
            let istream = at.wrapping_sub(header).wrapping_add(l.heap_object_tag);
            if heap.has_type(istream, l.type_instruction_stream) {
                if let Some(code) = heap
                    .field(istream, code_field)
                    .and_then(|c| self.code_object(heap, c))
                {
                    if code.start == at {
                        return Some(code);
                    }
                }
            }
            at -= 8;
        }
        None
    }

    /// `scan_for_code` for lines whose Code holds its instructions inline:
    /// a candidate Code header sits `header` bytes before each aligned
    /// address, and is accepted when its map says Code and its instruction
    /// size reaches past `pc`.
    pub(super) fn scan_for_inline_code(
        &self,
        heap: &Heap,
        pc: u64,
        header: u64,
    ) -> Option<CodeObject> {
        let l = &self.layout;
        let pages = PageCache::new(heap.mem);
        let heap = &Heap {
            layout: heap.layout,
            mem: &pages,
        };
        let mut at = pc & !7;
        let stop = pc.saturating_sub(MAX_CODE_SCAN);
        while at > stop {
            let candidate = at.wrapping_sub(header).wrapping_add(l.heap_object_tag);
            if let Some(code) = self.code_object(heap, candidate) {
                let size = heap
                    .field_u32(candidate, l.code_instruction_size)
                    .unwrap_or(0) as u64;
                if code.start == at && pc < at.saturating_add(size) {
                    return Some(code);
                }
            }
            at -= 8;
        }
        None
    }

    /// The tier of optimized code of `kind`, if it is optimized code.
    pub(super) fn optimized_tier(&self, kind: u32) -> Option<Tier> {
        let l = &self.layout;
        if Some(kind) == l.code_kind_maglev {
            Some(Tier::Maglev)
        } else if Some(kind) == l.code_kind_turbofan {
            Some(Tier::Turbofan)
        } else {
            None
        }
    }
}
