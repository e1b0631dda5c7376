//! Reading V8 heap objects through [`Memory`]: tagged values, maps and
//! instance types, fixed arrays and every string representation.

use super::layout::Layout;
use crate::memory::Memory;

/// Longest string crosswind reads (script sources included).
const MAX_STRING_BYTES: usize = 16 << 20;
/// How deep cons/sliced/thin chains may nest before we give up.
const MAX_STRING_DEPTH: usize = 4096;

/// Heap objects start at multiples of this (kObjectAlignment without
/// pointer compression, src/common/globals.h).
const OBJECT_ALIGNMENT: u64 = 8;

/// What a heap object's first word holds.
enum MapWord {
    Map(u64),
    /// The tagged address of the object's new copy.
    Forwarded(u64),
}

/// A view of the V8 heap of one process.
pub struct Heap<'a> {
    /// The binary's layout.
    pub layout: &'a Layout,
    /// The process's memory.
    pub mem: &'a dyn Memory,
}

impl<'a> Heap<'a> {
    /// Whether `v` is a Smi.
    pub fn is_smi(&self, v: u64) -> bool {
        v & self.layout.smi_tag_mask == 0
    }

    /// The value of a Smi.
    pub fn smi(&self, v: u64) -> Option<i64> {
        self.is_smi(v).then(|| (v as i64) >> self.layout.smi_shift)
    }

    /// The frame type a frame-type marker encodes. Markers are
    /// `type << kSmiTagSize` (StackFrame::TypeToMarker in
    /// src/execution/frames.h): Smi-tagged, but not shifted like a Smi.
    pub fn frame_marker(&self, v: u64) -> Option<i64> {
        (self.is_smi(v) && v < (1 << 16)).then_some((v >> 1) as i64)
    }

    /// A strong reference from a possibly weak one (weak references set
    /// bit 1, src/objects/tagged.h kWeakHeapObjectTag).
    pub fn strip_weak(&self, v: u64) -> u64 {
        if v & 3 == 3 {
            v & !2
        } else {
            v
        }
    }

    /// Whether `v` is a tagged heap-object pointer.
    pub fn is_heap_object(&self, v: u64) -> bool {
        v & self.layout.heap_object_tag_mask == self.layout.heap_object_tag && v > 0x1000
    }

    /// Reads the 8-byte field at `offset` of the object `obj`.
    pub fn field(&self, obj: u64, offset: i64) -> Option<u64> {
        let at = obj
            .wrapping_sub(self.layout.heap_object_tag)
            .wrapping_add_signed(offset);
        self.mem.read_u64(at).ok()
    }

    /// Reads a 4-byte field.
    pub fn field_u32(&self, obj: u64, offset: i64) -> Option<u32> {
        let at = obj
            .wrapping_sub(self.layout.heap_object_tag)
            .wrapping_add_signed(offset);
        self.mem.read_u32(at).ok()
    }

    /// The map of a heap object. While the garbage collector moves
    /// objects, an evacuated object's map word holds its new address,
    /// untagged so that it reads as a Smi (`MapWord::FromForwardingAddress`,
    /// src/objects/objects-inl.h, in builds without pointer compression, as
    /// Node.js's are); the old copy's other fields stay intact until the
    /// collection ends, so only the map is taken from the new copy.
    pub fn map(&self, obj: u64) -> Option<u64> {
        match self.map_word(obj)? {
            MapWord::Map(map) => Some(map),
            MapWord::Forwarded(to) => {
                let map = self.field(to, self.layout.map)?;
                self.is_heap_object(map).then_some(map)
            }
        }
    }

    fn map_word(&self, obj: u64) -> Option<MapWord> {
        if !self.is_heap_object(obj) {
            return None;
        }
        let word = self.field(obj, self.layout.map)?;
        if self.is_heap_object(word) {
            return Some(MapWord::Map(word));
        }
        let forwarded =
            self.layout.tagged_size == 8 && word & (OBJECT_ALIGNMENT - 1) == 0 && word > 0x1000;
        forwarded.then(|| MapWord::Forwarded(word.wrapping_add(self.layout.heap_object_tag)))
    }

    /// Whether `obj` is being moved right now: its map word forwards to a
    /// copy whose map is not written yet. V8 13.6+ scavengers install the
    /// forwarding address before they copy (`Scavenger::TryMigrateObject`,
    /// src/heap/scavenger.cc), so a thread stopped in between leaves the map
    /// nowhere; the old copy's fields are still intact.
    fn in_flight(&self, obj: u64) -> bool {
        matches!(self.map_word(obj), Some(MapWord::Forwarded(to))
            if self.field(to, self.layout.map) == Some(0))
    }

    /// The instance type of a heap object.
    pub fn instance_type(&self, obj: u64) -> Option<u16> {
        let map = self.map(obj)?;
        let at = map
            .wrapping_sub(self.layout.heap_object_tag)
            .wrapping_add_signed(self.layout.map_instance_type);
        self.mem.read_u16(at).ok()
    }

    /// Whether `obj` is a JSFunction (any of the JSFunction instance types).
    /// An object caught in flight (see `in_flight`) counts as a JSFunction
    /// when its SharedFunctionInfo field holds one.
    pub fn is_js_function(&self, obj: u64) -> bool {
        match self.instance_type(obj) {
            Some(t) => {
                t >= self.layout.first_jsfunction_type && t <= self.layout.last_jsfunction_type
            }
            None => {
                self.in_flight(obj)
                    && self
                        .field(obj, self.layout.jsfunction_shared)
                        .and_then(|sfi| self.unwrap_sfi(sfi))
                        .is_some()
            }
        }
    }

    /// Whether `obj` has instance type `ty` (false when `ty` is unknown).
    pub fn has_type(&self, obj: u64, ty: Option<u16>) -> bool {
        ty.is_some() && self.instance_type(obj) == ty
    }

    /// The SharedFunctionInfo `obj` is or wraps (a SharedFunctionInfoWrapper,
    /// as trusted objects hold SFIs since V8 13).
    pub fn unwrap_sfi(&self, obj: u64) -> Option<u64> {
        let l = self.layout;
        if self.has_type(obj, l.type_sfi) {
            return Some(obj);
        }
        if self.has_type(obj, l.type_sfi_wrapper) {
            let inner = self.field(obj, l.sfi_wrapper_shared?)?;
            return self.has_type(inner, l.type_sfi).then_some(inner);
        }
        None
    }

    /// Whether `obj` is a string.
    pub fn is_string(&self, obj: u64) -> bool {
        self.instance_type(obj)
            .is_some_and(|t| t < self.layout.first_nonstring_type)
    }

    /// Length of a FixedArray-like object (Smi length field).
    pub fn array_length(&self, arr: u64) -> Option<i64> {
        self.smi(self.field(arr, self.layout.fixed_array_length)?)
    }

    /// Element `i` of a FixedArray.
    pub fn array_get(&self, arr: u64, i: i64) -> Option<u64> {
        self.field(
            arr,
            self.layout.fixed_array_data + i * self.layout.tagged_size as i64,
        )
    }

    /// Reads a string as UTF-8 (lossy), whatever its representation.
    pub fn read_string(&self, obj: u64) -> Option<String> {
        let mut out = Vec::new();
        self.append_string(obj, 0, usize::MAX, &mut out, 0)?;
        Some(String::from_utf16_lossy(&out))
    }

    fn append_string(
        &self,
        obj: u64,
        start: usize,
        len_limit: usize,
        out: &mut Vec<u16>,
        depth: usize,
    ) -> Option<()> {
        if depth > MAX_STRING_DEPTH || out.len() > MAX_STRING_BYTES {
            return None;
        }
        let l = self.layout;
        let ty = self.instance_type(obj)?;
        if ty >= l.first_nonstring_type {
            return None;
        }
        let length = self.field_u32(obj, l.string_length)? as usize;
        let end = length.min(start.saturating_add(len_limit));
        if start >= end {
            return Some(());
        }
        let one_byte = ty & l.string_encoding_mask == l.one_byte_tag;
        let repr = ty & l.string_repr_mask;
        if repr == l.seq_tag {
            let base = obj
                .wrapping_sub(l.heap_object_tag)
                .wrapping_add_signed(l.seq_string_chars);
            self.append_chars(base, one_byte, start, end, out)
        } else if repr == l.cons_tag {
            let first = self.field(obj, l.cons_first)?;
            let second = self.field(obj, l.cons_second)?;
            let first_len = self.field_u32(first, l.string_length)? as usize;
            if start < first_len {
                self.append_string(first, start, end.min(first_len) - start, out, depth + 1)?;
            }
            if end > first_len {
                let s2 = start.saturating_sub(first_len);
                self.append_string(second, s2, end - first_len - s2, out, depth + 1)?;
            }
            Some(())
        } else if repr == l.sliced_tag {
            let parent = self.field(obj, l.sliced_parent)?;
            let offset = self.smi(self.field(obj, l.sliced_offset)?)? as usize;
            self.append_string(parent, offset + start, end - start, out, depth + 1)
        } else if repr == l.thin_tag {
            let actual = self.field(obj, l.thin_actual)?;
            self.append_string(actual, start, end - start, out, depth + 1)
        } else if repr == l.external_tag {
            let data = self.external_data(obj)?;
            self.append_chars(data, one_byte, start, end, out)
        } else {
            None
        }
    }

    /// The character data of an external string: the cached data pointer
    /// when V8 keeps one, else the resource's own data pointer.
    fn external_data(&self, obj: u64) -> Option<u64> {
        let l = self.layout;
        if let Some(off) = l.external_resource_data {
            if let Some(p) = self.field(obj, off).filter(|&p| p != 0) {
                return Some(p);
            }
        }
        // v8::String::ExternalStringResourceBase subclasses used by Node
        // keep `data_` right after the vtable pointer.
        let resource = self.field(obj, l.external_resource)?;
        self.mem.read_u64(resource.wrapping_add(8)).ok()
    }

    fn append_chars(
        &self,
        base: u64,
        one_byte: bool,
        start: usize,
        end: usize,
        out: &mut Vec<u16>,
    ) -> Option<()> {
        let n = end - start;
        if n > MAX_STRING_BYTES {
            return None;
        }
        if one_byte {
            let bytes = self.mem.read_vec(base.wrapping_add(start as u64), n).ok()?;
            out.extend(bytes.iter().map(|&b| b as u16));
        } else {
            let bytes = self
                .mem
                .read_vec(base.wrapping_add(2 * start as u64), 2 * n)
                .ok()?;
            out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]])),
            );
        }
        Some(())
    }

    /// Length in UTF-16 units of a string.
    pub fn string_length(&self, obj: u64) -> Option<usize> {
        Some(self.field_u32(obj, self.layout.string_length)? as usize)
    }

    /// Reads the string as UTF-16 units (for position arithmetic, which
    /// V8 does in UTF-16 units).
    pub fn read_utf16(&self, obj: u64) -> Option<Vec<u16>> {
        let mut out = Vec::new();
        self.append_string(obj, 0, usize::MAX, &mut out, 0)?;
        Some(out)
    }
}
