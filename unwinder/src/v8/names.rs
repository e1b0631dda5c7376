//! Names and positions: a function's name and script, a script's line
//! ends, bytecode and code positions turned into line and column, and the
//! caches (validated per hit) that keep them across samples.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::heap::Heap;
use super::positions::{self, BytecodeSizes, PositionEntry, SourcePosition};
use super::{scopeinfo, JsFrame, Tier, V8Runtime};
use crate::memory::Memory;
use crate::module::Module;

/// A script's name and where its lines end.
#[derive(Debug)]
pub(super) struct ScriptInfo {
    pub(super) name: String,
    pub(super) line_ends: Vec<i64>,
    pub(super) line_offset: i64,
    pub(super) column_offset: i64,
}

/// A function's name and script.
#[derive(Debug)]
pub(super) struct FunctionInfo {
    pub(super) name: String,
    pub(super) script: Option<Rc<ScriptInfo>>,
}

/// Fields of a cached object that must still hold for the cache entry to
/// apply (a moved or replaced object changes them).
pub(super) type CacheKey = [u64; 3];

/// A cache by object address, each entry with the key that validates it.
pub(super) type Cache<T> = RefCell<HashMap<u64, (CacheKey, Rc<T>)>>;

impl V8Runtime {
    /// A JSFunction's name as its SharedFunctionInfo holds it.
    pub fn function_name(&self, function: u64, mem: &dyn Memory) -> String {
        let heap = self.heap(mem);
        self.function_info(&heap, function).name.clone()
    }

    pub(super) fn blank_frame(&self, heap: &Heap, function: Option<u64>, tier: Tier) -> JsFrame {
        let info = function.map(|f| self.function_info(heap, f));
        JsFrame {
            function: info.as_ref().map(|i| i.name.clone()).unwrap_or_default(),
            file: info
                .as_ref()
                .and_then(|i| i.script.as_ref())
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            line: None,
            column: None,
            tier,
            inlined: false,
        }
    }

    pub(super) fn fill_position(
        &self,
        heap: &Heap,
        frame: &mut JsFrame,
        function: u64,
        pos: Option<i64>,
    ) {
        let info = self.function_info(heap, function);
        if let (Some(pos), Some(script)) = (pos, info.script.as_ref()) {
            let (line, col) = line_column(script, pos);
            frame.line = Some(line);
            frame.column = Some(col);
        }
    }

    /// Places `frame` at its function's entry: V8 reports function entry
    /// (bytecode offset -1) as the first position of the bytecode.
    pub(super) fn fill_entry_position(&self, heap: &Heap, frame: &mut JsFrame, function: u64) {
        let pos = self
            .function_bytecode(heap, function)
            .and_then(|bc| self.bytecode_position(heap, bc, -1));
        self.fill_position(heap, frame, function, pos);
    }

    /// The BytecodeArray of a function: its SharedFunctionInfo's function
    /// data, or the bytecode its baseline code was compiled from.
    pub(super) fn function_bytecode(&self, heap: &Heap, function: u64) -> Option<u64> {
        self.sfi_bytecode(heap, heap.field(function, self.layout.jsfunction_shared)?)
    }

    /// The BytecodeArray of a SharedFunctionInfo (see `function_bytecode`).
    pub(super) fn sfi_bytecode(&self, heap: &Heap, sfi: u64) -> Option<u64> {
        let l = &self.layout;
        let data = heap.field(sfi, l.sfi_function_data?)?;
        if heap.has_type(data, l.type_bytecode_array) {
            return Some(data);
        }
        if heap.has_type(data, l.type_code) {
            let inner = heap.field(data, l.code_deopt_data?)?;
            if heap.has_type(inner, l.type_bytecode_array) {
                return Some(inner);
            }
        }
        None
    }

    /// Script offset of a bytecode offset in a BytecodeArray.
    pub(super) fn bytecode_position(&self, heap: &Heap, bytecode: u64, offset: i64) -> Option<i64> {
        let table_field = self.layout.bytecode_array_positions?;
        let table = heap.field(bytecode, table_field)?;
        let entries = self.position_table(heap, table)?;
        // Function entry (-1) maps to the first position.
        let pos = positions::position_at(&entries, offset.max(0))?;
        Some(pos.script_offset())
    }

    /// The fields that identify an object for the caches: its map and two
    /// more words.
    pub(super) fn cache_key(&self, heap: &Heap, obj: u64, a: i64, b: i64) -> CacheKey {
        [
            heap.field(obj, self.layout.map).unwrap_or(0),
            heap.field(obj, a).unwrap_or(0),
            heap.field(obj, b).unwrap_or(0),
        ]
    }

    /// What `cache` holds for `obj` while its `key` still matches; else
    /// what `make` builds, kept under that key.
    pub(super) fn cached<T>(
        cache: &Cache<T>,
        obj: u64,
        key: CacheKey,
        make: impl FnOnce() -> Option<T>,
    ) -> Option<Rc<T>> {
        if let Some((k, v)) = cache.borrow().get(&obj) {
            if *k == key {
                return Some(v.clone());
            }
        }
        let value = Rc::new(make()?);
        cache.borrow_mut().insert(obj, (key, value.clone()));
        Some(value)
    }

    /// The cache key of a byte array: its map, length and first bytes.
    pub(super) fn byte_array_key(&self, heap: &Heap, arr: u64) -> CacheKey {
        let l = &self.layout;
        self.cache_key(heap, arr, l.fixed_array_length, l.fixed_array_data)
    }

    pub(super) fn position_table(&self, heap: &Heap, table: u64) -> Option<Rc<Vec<PositionEntry>>> {
        let key = self.byte_array_key(heap, table);
        Self::cached(&self.tables, table, key, || {
            let bytes = self.byte_array(heap, table)?;
            Some(positions::decode_position_table(
                &bytes,
                self.layout.position_table_encoding,
            ))
        })
    }

    /// A DeoptimizationFrameTranslation's bytes, read once per object (each
    /// Maglev frame at a call decodes its code's translation).
    pub(super) fn translation_bytes(&self, heap: &Heap, arr: u64) -> Option<Rc<Vec<u8>>> {
        let key = self.byte_array_key(heap, arr);
        Self::cached(&self.translations, arr, key, || self.byte_array(heap, arr))
    }

    /// Contents of a (Trusted)ByteArray: Smi length, then bytes.
    pub(super) fn byte_array(&self, heap: &Heap, arr: u64) -> Option<Vec<u8>> {
        if !heap.is_heap_object(arr) {
            return None;
        }
        let len = heap.array_length(arr)?;
        if !(0..=(64 << 20)).contains(&len) {
            return None;
        }
        let base = arr
            .wrapping_sub(self.layout.heap_object_tag)
            .wrapping_add_signed(self.layout.fixed_array_data);
        heap.mem.read_vec(base, len as usize).ok()
    }

    /// The frame of a SharedFunctionInfo at a script position.
    pub(super) fn positioned_frame(
        &self,
        heap: &Heap,
        sfi: u64,
        pos: SourcePosition,
        tier: Tier,
        inlined: bool,
    ) -> JsFrame {
        let info = self.sfi_info(heap, sfi);
        let (line, column) = match info.script.as_ref() {
            Some(s) => {
                let (line, col) = line_column(s, pos.script_offset());
                (Some(line), Some(col))
            }
            None => (None, None),
        };
        JsFrame {
            function: info.name.clone(),
            file: info
                .script
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            line,
            column,
            tier,
            inlined,
        }
    }

    /// Bytecodes of a BytecodeArray.
    pub(super) fn byte_array_raw(&self, heap: &Heap, bc: u64) -> Option<Vec<u8>> {
        let l = &self.layout;
        let len = heap.smi(heap.field(bc, l.bytecode_array_length)?)?;
        if !(0..=(64 << 20)).contains(&len) {
            return None;
        }
        let base = bc
            .wrapping_sub(l.heap_object_tag)
            .wrapping_add_signed(l.bytecode_array_header);
        heap.mem.read_vec(base, len as usize).ok()
    }

    pub(super) fn function_info(&self, heap: &Heap, function: u64) -> Rc<FunctionInfo> {
        match heap.field(function, self.layout.jsfunction_shared) {
            Some(sfi) => self.sfi_info(heap, sfi),
            None => Rc::new(FunctionInfo {
                name: String::new(),
                script: None,
            }),
        }
    }

    pub(super) fn sfi_info(&self, heap: &Heap, sfi: u64) -> Rc<FunctionInfo> {
        let l = &self.layout;
        let key = self.cache_key(heap, sfi, l.sfi_name_or_scope_info, l.sfi_script);
        let make = || {
            let name = heap
                .field(sfi, l.sfi_name_or_scope_info)
                .and_then(|n| {
                    if heap.is_string(n) {
                        heap.read_string(n)
                    } else if heap.has_type(n, l.type_scope_info) {
                        scopeinfo::function_name(heap, n)
                    } else {
                        None
                    }
                })
                .unwrap_or_default();
            let script = heap
                .field(sfi, l.sfi_script)
                .filter(|&s| heap.has_type(s, l.type_script))
                .and_then(|s| self.script_info(heap, s));
            Some(FunctionInfo { name, script })
        };
        Self::cached(&self.functions, sfi, key, make).unwrap_or_else(|| {
            Rc::new(FunctionInfo {
                name: String::new(),
                script: None,
            })
        })
    }

    pub(super) fn script_info(&self, heap: &Heap, script: u64) -> Option<Rc<ScriptInfo>> {
        let l = &self.layout;
        let key = self.cache_key(heap, script, l.script_source, l.script_name);
        Self::cached(&self.scripts, script, key, || {
            let name = heap
                .field(script, l.script_name)
                .filter(|&n| heap.is_string(n))
                .and_then(|n| heap.read_string(n))
                .unwrap_or_default();
            let smi_field = |off: Option<i64>| {
                off.and_then(|o| heap.field(script, o))
                    .and_then(|v| heap.smi(v))
                    .unwrap_or(0)
            };
            let line_ends = self
                .stored_line_ends(heap, script)
                .or_else(|| {
                    let src = heap.field(script, l.script_source)?;
                    Some(compute_line_ends(&heap.read_utf16(src)?))
                })
                .unwrap_or_default();
            Some(ScriptInfo {
                name,
                line_ends,
                line_offset: smi_field(l.script_line_offset),
                column_offset: smi_field(l.script_column_offset),
            })
        })
    }

    pub(super) fn stored_line_ends(&self, heap: &Heap, script: u64) -> Option<Vec<i64>> {
        let arr = heap.field(script, self.layout.script_line_ends)?;
        if !heap.is_heap_object(arr) {
            return None;
        }
        let n = heap.array_length(arr)?;
        if !(1..=(16 << 20)).contains(&n) {
            return None;
        }
        let base = arr
            .wrapping_sub(self.layout.heap_object_tag)
            .wrapping_add_signed(self.layout.fixed_array_data);
        let raw = heap.mem.read_vec(base, n as usize * 8).ok()?;
        raw.chunks_exact(8)
            .map(|c| heap.smi(u64::from_le_bytes(c.try_into().ok()?)))
            .collect()
    }
}

/// Line ends as `String::CalculateLineEnds` computes them: the index of
/// every line terminator, plus the source length when the last line has
/// none.
pub(super) fn compute_line_ends(src: &[u16]) -> Vec<i64> {
    let mut ends = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        let is_end =
            c == 0x0a || (c == 0x0d && src.get(i + 1) != Some(&0x0a)) || c == 0x2028 || c == 0x2029;
        if is_end {
            ends.push(i as i64);
        }
        i += 1;
    }
    if ends.last().copied() != Some(src.len() as i64 - 1) {
        ends.push(src.len() as i64);
    }
    ends
}

/// 1-based line and column of a script offset (Script::GetPositionInfo with
/// offsets applied, plus one as Error.stack prints them).
pub(super) fn line_column(script: &ScriptInfo, pos: i64) -> (u32, u32) {
    let ends = &script.line_ends;
    let line = ends.partition_point(|&e| e < pos);
    let mut column = if line == 0 {
        pos
    } else {
        pos - (ends[line - 1] + 1)
    };
    if line == 0 {
        column += script.column_offset;
    }
    let line = line as i64 + script.line_offset;
    ((line + 1).max(0) as u32, (column + 1).max(0) as u32)
}

/// Reads `interpreter::Bytecodes::kBytecodeSizes` (uint8_t[3][count]) from
/// the binary, so bytecode lengths always match the V8 that wrote them.
pub(super) fn read_bytecode_sizes(exe: &Module) -> Option<BytecodeSizes> {
    let name = "_ZN2v88internal11interpreter9Bytecodes14kBytecodeSizesE";
    let (_, addr, size) = exe
        .lookup_data_symbols(name)
        .into_iter()
        .find(|(n, _, _)| n == name)?;
    if size == 0 || size % 3 != 0 || size > 3 * 1024 {
        return None;
    }
    let mut sizes = vec![0u8; size as usize];
    if !exe.read(addr.wrapping_add(exe.bias), &mut sizes) {
        return None;
    }
    Some(BytecodeSizes {
        count: size as usize / 3,
        sizes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_and_columns() {
        let src: Vec<u16> = "ab\ncd\r\nef".encode_utf16().collect();
        let ends = compute_line_ends(&src);
        assert_eq!(ends, vec![2, 6, 9]);
        let s = ScriptInfo {
            name: String::new(),
            line_ends: ends,
            line_offset: 0,
            column_offset: 0,
        };
        assert_eq!(line_column(&s, 0), (1, 1));
        assert_eq!(line_column(&s, 4), (2, 2));
        assert_eq!(line_column(&s, 8), (3, 2));
    }
}
