//! JavaScript object properties: enough of V8's two property stores (fast
//! mode: the map's DescriptorArray plus in-object and PropertyArray fields;
//! dictionary mode: a NameDictionary) to find under which key an object or
//! its prototype chain holds a function. V8's stack traces name anonymous
//! methods this way (`CallSiteInfo::GetMethodName`, src/objects/call-site-info.cc),
//! e.g. `Module._compile` for `Module.prototype._compile = function () {}`.
//!
//! Every offset and bit comes from the binary's `v8dbg_*` symbols, save
//! the few the version table supplies where a line dropped them.

use std::rc::Rc;

use super::heap::Heap;
use super::names::Cache;
pub use super::property_layout::PropertyLayout;
use super::V8Runtime;

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
pub(super) fn method_name(
    heap: &Heap,
    l: &PropertyLayout,
    maps: &Cache<MapDescriptors>,
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
        for p in own_properties(heap, l, maps, obj) {
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
pub(super) fn own_data_string(
    heap: &Heap,
    l: &PropertyLayout,
    maps: &Cache<MapDescriptors>,
    obj: u64,
    key: &str,
) -> Option<String> {
    let map = heap.map(obj)?;
    let bf3 = heap.field_u32(map, l.map_bit_field3)?;
    let value = if is_dictionary_map(l, bf3) {
        dictionary_properties(heap, l, heap.field(obj, l.receiver_properties)?)?
            .into_iter()
            .find(|p| {
                p.is_data
                    && heap.is_string(p.key)
                    && heap.read_string(p.key).as_deref() == Some(key)
            })?
            .values[0]
    } else {
        let descriptors = map_descriptors(heap, l, maps, map, bf3)?;
        let d = descriptors
            .entries
            .iter()
            .find(|d| is_data(l, d.details) && d.key_text.as_deref() == Some(key))?;
        descriptors.value(heap, l, obj, d)?
    };
    heap.is_string(value).then(|| heap.read_string(value))?
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

fn is_dictionary_map(l: &PropertyLayout, bf3: u32) -> bool {
    (bf3 >> l.dictionary_map_shift) & 1 != 0
}

fn is_data(l: &PropertyLayout, details: i64) -> bool {
    details & l.kind_mask != l.kind_accessor
}

fn own_properties(
    heap: &Heap,
    l: &PropertyLayout,
    maps: &Cache<MapDescriptors>,
    obj: u64,
) -> Vec<Property> {
    (|| {
        let map = heap.map(obj)?;
        let bf3 = heap.field_u32(map, l.map_bit_field3)?;
        if is_dictionary_map(l, bf3) {
            dictionary_properties(heap, l, heap.field(obj, l.receiver_properties)?)
        } else {
            let descriptors = map_descriptors(heap, l, maps, map, bf3)?;
            Some(descriptors.properties(heap, l, obj))
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

/// A fast-mode map's own descriptors, read once per map: the searches
/// here run for every JavaScript frame, and one map's descriptors serve
/// every object of that shape (every function, for the `name` look-up).
pub struct MapDescriptors {
    entries: Vec<Descriptor>,
    /// How many fields live in the object, and the word where they start.
    inobject: i64,
    start_words: i64,
}

/// One descriptor: the parts that stay put while the map's descriptor
/// array and bit field 3 do (a field's representation may be generalised
/// in place, which is not read here).
struct Descriptor {
    key: u64,
    /// The key's text, when the key is a string.
    key_text: Option<String>,
    details: i64,
    /// The value, when the descriptor rather than the object holds it.
    held: Option<u64>,
}

impl MapDescriptors {
    /// The value of descriptor `d` for `obj`: held by the descriptor, or
    /// in one of the object's fields (`FieldIndex::ForDetails`: in-object
    /// fields first, then the PropertyArray, FixedArray-shaped).
    fn value(&self, heap: &Heap, l: &PropertyLayout, obj: u64, d: &Descriptor) -> Option<u64> {
        if let Some(v) = d.held {
            return Some(v);
        }
        let slot = heap.layout.tagged_size as i64;
        let index = (d.details & l.index_mask) >> l.index_shift;
        if index < self.inobject {
            return heap.field(obj, (self.start_words + index) * slot);
        }
        let backing = heap.field(obj, l.receiver_properties)?;
        if !heap.is_heap_object(backing) {
            return None;
        }
        heap.field(
            backing,
            heap.layout.fixed_array_data + (index - self.inobject) * slot,
        )
    }

    fn properties(&self, heap: &Heap, l: &PropertyLayout, obj: u64) -> Vec<Property> {
        self.entries
            .iter()
            .filter_map(|d| {
                let value = self.value(heap, l, obj, d)?;
                Some(Property {
                    key: d.key,
                    values: values_of(heap, l, d.details, value),
                    enumerable: details_enumerable(l, d.details),
                    is_data: is_data(l, d.details),
                })
            })
            .collect()
    }
}

/// `map`'s descriptors from the cache, validated by the map's own map,
/// its descriptor array and bit field 3 (which holds the own count).
fn map_descriptors(
    heap: &Heap,
    l: &PropertyLayout,
    maps: &Cache<MapDescriptors>,
    map: u64,
    bf3: u32,
) -> Option<Rc<MapDescriptors>> {
    let descriptors = heap.field(map, l.map_descriptors)?;
    let key = [
        heap.field(map, heap.layout.map).unwrap_or(0),
        descriptors,
        u64::from(bf3),
    ];
    V8Runtime::cached(maps, map, key, || {
        read_map_descriptors(heap, l, map, descriptors, bf3)
    })
}

fn read_map_descriptors(
    heap: &Heap,
    l: &PropertyLayout,
    map: u64,
    descriptors: u64,
    bf3: u32,
) -> Option<MapDescriptors> {
    let count = ((bf3 & l.own_descriptors_mask) >> l.own_descriptors_shift) as u64;
    if count > MAX_DESCRIPTORS {
        return None;
    }
    let slot = heap.layout.tagged_size as i64;
    let map_byte = |off: i64| -> Option<i64> {
        let at = map
            .wrapping_sub(heap.layout.heap_object_tag)
            .wrapping_add_signed(off);
        heap.mem.read_u8(at).ok().map(i64::from)
    };
    let size_words = map_byte(l.map_instance_size_words)?;
    let start_words = map_byte(l.map_inobject_start_words)?;
    let mut entries = Vec::with_capacity(count as usize);
    for i in 0..count as i64 {
        let base = l.descriptors_start + i * l.desc_size * slot;
        let key = heap.field(descriptors, base + l.desc_key * slot)?;
        let details = heap.smi(heap.field(descriptors, base + l.desc_details * slot)?)?;
        let location = (details & l.location_mask) >> l.location_shift;
        let held = if location == l.location_descriptor {
            Some(heap.field(descriptors, base + l.desc_value * slot)?)
        } else {
            None
        };
        let key_text = heap.is_string(key).then(|| heap.read_string(key)).flatten();
        entries.push(Descriptor {
            key,
            key_text,
            details,
            held,
        });
    }
    Some(MapDescriptors {
        entries,
        inobject: size_words - start_words,
        start_words,
    })
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
            is_data: is_data(l, details),
        });
    }
    Some(out)
}
