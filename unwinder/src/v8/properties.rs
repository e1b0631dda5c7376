//! JavaScript object properties: enough of V8's two property stores (fast
//! mode: the map's DescriptorArray plus in-object and PropertyArray fields;
//! dictionary mode: a NameDictionary) to find under which key an object or
//! its prototype chain holds a function. V8's stack traces name anonymous
//! methods this way (`CallSiteInfo::GetMethodName`, src/objects/call-site-info.cc),
//! e.g. `Module._compile` for `Module.prototype._compile = function () {}`.
//!
//! Every offset and bit comes from the binary's `v8dbg_*` symbols, save
//! the few the version table supplies where a line dropped them.

use super::heap::Heap;
pub use super::property_layout::PropertyLayout;

/// Descriptors per map are capped by V8 (kMaxNumberOfDescriptors, 1020);
/// dictionaries here are bounded to keep hostile cores cheap.
const MAX_DESCRIPTORS: u64 = 1020;
const MAX_DICTIONARY_CAPACITY: i64 = 1 << 20;
/// How many prototypes the search follows.
const MAX_PROTOTYPE_DEPTH: usize = 64;

/// One own property: key object, value (a getter/setter pair is expanded
/// to both functions), and whether it is enumerable.
struct Property {
    key: u64,
    values: [u64; 2],
    enumerable: bool,
    /// A data property (not an accessor).
    is_data: bool,
}

/// The key under which `receiver` or its prototypes hold `function` as an
/// enumerable property, if exactly one does; `None` for top-level calls
/// (receiver undefined or the global proxy) and ambiguous cases, as
/// `CallSiteInfo::GetMethodName` returns null there.
pub fn method_name(
    heap: &Heap,
    l: &PropertyLayout,
    receiver: u64,
    function: u64,
) -> Option<String> {
    let mut obj = receiver;
    let mut found: Option<u64> = None;
    for _ in 0..MAX_PROTOTYPE_DEPTH {
        let ty = heap.instance_type(obj)?;
        if ty < l.first_receiver_type
            || ty == l.proxy_type
            || ty == l.global_proxy_type
            || ty == l.global_object_type
        {
            break;
        }
        for p in own_properties(heap, l, obj) {
            if p.enumerable && p.values.contains(&function) {
                if found.is_some() {
                    return None;
                }
                found = Some(p.key);
            }
        }
        let map = heap.map(obj)?;
        obj = heap.field(map, l.map_prototype)?;
        if !heap.is_heap_object(obj) {
            break;
        }
    }
    key_name(heap, l, found?)
}

/// The string value of `obj`'s own data property `key`, if it has one.
/// `JSFunction::GetDebugName` (src/objects/js-function.cc) prefers a
/// function's own `name` data property, which V8 defines for methods with
/// computed keys (`[Symbol.iterator]() {}`) and `Object.defineProperty`
/// renames, over the SharedFunctionInfo's name.
pub fn own_data_string(heap: &Heap, l: &PropertyLayout, obj: u64, key: &str) -> Option<String> {
    own_properties(heap, l, obj)
        .into_iter()
        .filter(|p| p.is_data && heap.is_string(p.values[0]))
        .find(|p| heap.is_string(p.key) && heap.read_string(p.key).as_deref() == Some(key))
        .and_then(|p| heap.read_string(p.values[0]))
}

/// A property key as V8 prints it: strings as they are, symbols as
/// `[description]`.
fn key_name(heap: &Heap, l: &PropertyLayout, key: u64) -> Option<String> {
    if heap.is_string(key) {
        return heap.read_string(key);
    }
    if heap.instance_type(key) == Some(l.symbol_type) {
        let desc = heap.field(key, l.symbol_name)?;
        let desc = if heap.is_string(desc) {
            heap.read_string(desc)?
        } else {
            String::new()
        };
        return Some(format!("[{desc}]"));
    }
    None
}

fn own_properties(heap: &Heap, l: &PropertyLayout, obj: u64) -> Vec<Property> {
    (|| {
        let map = heap.map(obj)?;
        let bf3 = heap.field_u32(map, l.map_bit_field3)?;
        if (bf3 >> l.dictionary_map_shift) & 1 != 0 {
            dictionary_properties(heap, l, heap.field(obj, l.receiver_properties)?)
        } else {
            fast_properties(heap, l, obj, map, bf3)
        }
    })()
    .unwrap_or_default()
}

fn details_enumerable(l: &PropertyLayout, details: i64) -> bool {
    ((details & l.attributes_mask) >> l.attributes_shift) & l.dont_enum == 0
}

/// A property's value, with an AccessorPair expanded to getter and setter.
fn values_of(heap: &Heap, l: &PropertyLayout, details: i64, value: u64) -> [u64; 2] {
    if details & l.kind_mask == l.kind_accessor
        && heap.instance_type(value) == Some(l.accessor_pair_type)
    {
        [
            heap.field(value, l.accessor_getter).unwrap_or(0),
            heap.field(value, l.accessor_setter).unwrap_or(0),
        ]
    } else {
        [value, 0]
    }
}

fn fast_properties(
    heap: &Heap,
    l: &PropertyLayout,
    obj: u64,
    map: u64,
    bf3: u32,
) -> Option<Vec<Property>> {
    let count = ((bf3 & l.own_descriptors_mask) >> l.own_descriptors_shift) as u64;
    if count > MAX_DESCRIPTORS {
        return None;
    }
    let descriptors = heap.field(map, l.map_descriptors)?;
    let slot = heap.layout.tagged_size as i64;
    let map_byte = |off: i64| -> Option<i64> {
        let at = map
            .wrapping_sub(heap.layout.heap_object_tag)
            .wrapping_add_signed(off);
        heap.mem.read_u8(at).ok().map(i64::from)
    };
    let size_words = map_byte(l.map_instance_size_words)?;
    let start_words = map_byte(l.map_inobject_start_words)?;
    let inobject = size_words - start_words;
    let mut out = Vec::new();
    for i in 0..count as i64 {
        let base = l.descriptors_start + i * l.desc_size * slot;
        let key = heap.field(descriptors, base + l.desc_key * slot)?;
        let details = heap.smi(heap.field(descriptors, base + l.desc_details * slot)?)?;
        let location = (details & l.location_mask) >> l.location_shift;
        let value = if location == l.location_descriptor {
            heap.field(descriptors, base + l.desc_value * slot)?
        } else {
            // FieldIndex::ForDetails: in-object fields first, then the
            // PropertyArray (FixedArray-shaped: length word, then slots).
            let index = (details & l.index_mask) >> l.index_shift;
            if index < inobject {
                heap.field(obj, (start_words + index) * slot)?
            } else {
                let backing = heap.field(obj, l.receiver_properties)?;
                if !heap.is_heap_object(backing) {
                    continue;
                }
                heap.field(
                    backing,
                    heap.layout.fixed_array_data + (index - inobject) * slot,
                )?
            }
        };
        out.push(Property {
            key,
            values: values_of(heap, l, details, value),
            enumerable: details_enumerable(l, details),
            is_data: details & l.kind_mask != l.kind_accessor,
        });
    }
    Some(out)
}

/// NameDictionary (src/objects/dictionary.h): a HashTable whose elements
/// are [number of elements, deleted, capacity, prefix..., then entries of
/// (key, value, details)].
fn dictionary_properties(heap: &Heap, l: &PropertyLayout, dict: u64) -> Option<Vec<Property>> {
    if !heap.is_heap_object(dict) {
        return None;
    }
    // HashTable's capacity sits right before the prefix start.
    let capacity = heap.smi(heap.array_get(dict, l.dictionary_prefix_start - 1)?)?;
    if !(0..=MAX_DICTIONARY_CAPACITY).contains(&capacity) {
        return None;
    }
    let first = l.dictionary_prefix_start + l.dictionary_prefix_size;
    let mut out = Vec::new();
    for e in 0..capacity {
        let at = first + e * l.dictionary_entry_size;
        let key = heap.array_get(dict, at)?;
        if !(heap.is_string(key) || heap.instance_type(key) == Some(l.symbol_type)) {
            continue; // empty or deleted entry
        }
        let value = heap.array_get(dict, at + 1)?;
        let Some(details) = heap.array_get(dict, at + 2).and_then(|d| heap.smi(d)) else {
            continue;
        };
        out.push(Property {
            key,
            values: values_of(heap, l, details, value),
            enumerable: details_enumerable(l, details),
            is_data: details & l.kind_mask != l.kind_accessor,
        });
    }
    Some(out)
}
