//! Where one V8 binary keeps object properties: the offsets and bit fields
//! of maps, descriptor arrays and name dictionaries, read from its
//! `v8dbg_*` symbols (a few from the version table where a line dropped
//! them). The property readers in [`super::properties`] use it.

use super::symbols::PostmortemSymbols;
use super::versions::{fallback, V8Version};

/// Property-storage layout of one V8 binary.
#[derive(Debug, Clone)]
pub struct PropertyLayout {
    pub(super) receiver_properties: i64,
    pub(super) map_bit_field3: i64,
    pub(super) dictionary_map_shift: u32,
    pub(super) own_descriptors_mask: u32,
    pub(super) own_descriptors_shift: u32,
    pub(super) map_descriptors: i64,
    pub(super) map_prototype: i64,
    pub(super) map_instance_size_words: i64,
    pub(super) map_inobject_start_words: i64,
    pub(super) descriptors_start: i64,
    pub(super) desc_key: i64,
    pub(super) desc_details: i64,
    pub(super) desc_value: i64,
    pub(super) desc_size: i64,
    pub(super) kind_mask: i64,
    pub(super) kind_accessor: i64,
    pub(super) location_mask: i64,
    pub(super) location_shift: u32,
    pub(super) location_descriptor: i64,
    pub(super) index_mask: i64,
    pub(super) index_shift: u32,
    pub(super) attributes_mask: i64,
    pub(super) attributes_shift: u32,
    pub(super) dont_enum: i64,
    pub(super) dictionary_prefix_start: i64,
    pub(super) dictionary_prefix_size: i64,
    pub(super) dictionary_entry_size: i64,
    pub(super) accessor_getter: i64,
    pub(super) accessor_setter: i64,
    pub(super) symbol_name: i64,
    pub(super) first_receiver_type: u16,
    pub(super) proxy_type: u16,
    pub(super) global_object_type: u16,
    pub(super) global_proxy_type: u16,
    pub(super) symbol_type: u16,
    pub(super) accessor_pair_type: u16,
}

impl PropertyLayout {
    /// Resolves the layout; `None` when the binary lacks any value.
    pub fn resolve(s: &PostmortemSymbols, version: V8Version) -> Option<PropertyLayout> {
        let g = |n: &str| s.get(n);
        Some(PropertyLayout {
            receiver_properties: s.field("JSReceiver", "raw_properties_or_hash")?,
            map_bit_field3: s.field("Map", "bit_field3")?,
            dictionary_map_shift: g("bit_field3_is_dictionary_map_shift")? as u32,
            own_descriptors_mask: g("bit_field3_number_of_own_descriptors_mask")? as u32,
            own_descriptors_shift: g("bit_field3_number_of_own_descriptors_shift")? as u32,
            map_descriptors: s.field("Map", "instance_descriptors")?,
            map_prototype: s.field("Map", "prototype")?,
            map_instance_size_words: s.field("Map", "instance_size_in_words")?,
            map_inobject_start_words: s.field(
                "Map",
                "inobject_properties_start_or_constructor_function_index",
            )?,
            descriptors_start: s.field("DescriptorArray", "header_size")?,
            desc_key: g("prop_desc_key")?,
            desc_details: g("prop_desc_details")?,
            desc_value: g("prop_desc_value")?,
            desc_size: g("prop_desc_size")?,
            kind_mask: g("prop_kind_mask")?,
            kind_accessor: g("prop_kind_Accessor")?,
            location_mask: g("prop_location_mask")?,
            location_shift: g("prop_location_shift")? as u32,
            location_descriptor: g("prop_location_Descriptor")?,
            index_mask: g("prop_index_mask")?,
            index_shift: g("prop_index_shift")? as u32,
            attributes_mask: g("prop_attributes_mask")?,
            attributes_shift: g("prop_attributes_shift")? as u32,
            dont_enum: g("prop_attributes_DONT_ENUM")?,
            dictionary_prefix_start: g("namedictionary_prefix_start_index")?,
            dictionary_prefix_size: g("namedictionaryshape_prefix_size")?,
            dictionary_entry_size: g("namedictionaryshape_entry_size")?,
            accessor_getter: s
                .field("AccessorPair", "getter")
                .or_else(|| fallback("class_AccessorPair__getter", version).map(|f| f.value))?,
            accessor_setter: s
                .field("AccessorPair", "setter")
                .or_else(|| fallback("class_AccessorPair__setter", version).map(|f| f.value))?,
            symbol_name: s.field("Symbol", "name")?,
            // JS_PROXY_TYPE is FIRST_JS_RECEIVER_TYPE (src/objects/instance-type.h).
            first_receiver_type: s.instance_type("JS_PROXY_TYPE")?,
            proxy_type: s.instance_type("JS_PROXY_TYPE")?,
            global_object_type: s.instance_type("JS_GLOBAL_OBJECT_TYPE")?,
            global_proxy_type: s.instance_type("JS_GLOBAL_PROXY_TYPE")?,
            symbol_type: s.instance_type("SYMBOL_TYPE")?,
            accessor_pair_type: s.instance_type("ACCESSOR_PAIR_TYPE")?,
        })
    }
}
