//! ScopeInfo: where V8 keeps a compiled function's name (and inferred
//! name) once `SharedFunctionInfo::name_or_scope_info` holds a ScopeInfo.
//!
//! The layout is variable: a fixed header, then optional sections whose
//! presence the flags word encodes (src/objects/scope-info.tq,
//! `ScopeInfo::FunctionName`/`InferredFunctionName`). The header offsets
//! and flag bits per V8 line are in `versions::scope_info_layout`.

use super::heap::Heap;
use super::versions::scope_info_layout;

/// The function name (or, when empty, the inferred name) stored in a
/// ScopeInfo, as `ScopeInfo::FunctionDebugName` computes it.
pub fn function_name(heap: &Heap, scope_info: u64) -> Option<String> {
    let l = scope_info_layout(heap.layout.version)?;
    let flags = if l.flags_is_smi {
        heap.smi(heap.field(scope_info, l.flags)?)? as u64
    } else {
        heap.field_u32(scope_info, l.flags)? as u64
    };
    let ncl = heap.smi(heap.field(scope_info, l.context_local_count)?)?;
    if !(0..(1 << 20)).contains(&ncl) {
        return None;
    }
    let slot = heap.layout.tagged_size as i64;
    let mut off = l.variable_part;
    if l.has_module_variable_count && flags & l.scope_type_mask == l.module_scope {
        off += slot;
    }
    off += if ncl < l.max_inlined_locals {
        ncl * slot
    } else {
        slot
    };
    off += ncl * slot;
    if flags & (1 << l.has_saved_class_variable_bit) != 0 {
        off += slot;
    }
    let function_variable = (flags >> l.function_variable_shift) & 3;
    if function_variable == 0 {
        return Some(String::new());
    }
    let name = heap
        .field(scope_info, off)
        .filter(|&n| heap.is_string(n))
        .and_then(|n| heap.read_string(n))
        .unwrap_or_default();
    if !name.is_empty() {
        return Some(name);
    }
    off += 2 * slot;
    if flags & (1 << l.has_inferred_name_bit) != 0 {
        let inferred = heap
            .field(scope_info, off)
            .filter(|&n| heap.is_string(n))
            .and_then(|n| heap.read_string(n));
        if let Some(s) = inferred {
            return Some(s);
        }
    }
    Some(String::new())
}
