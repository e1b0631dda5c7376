//! V8 object layouts and constants for one binary: the binary's own
//! `v8dbg_*` postmortem symbols first, then the version table.

use std::collections::HashMap;

pub use super::symbols::PostmortemSymbols;
use super::versions::{self, V8Version};
use crate::error::{Error, Result};
use crate::memory::Memory;
use crate::module::Module;

/// Every value the V8 walker uses, resolved once per binary.
#[derive(Debug, Clone)]
pub struct Layout {
    pub version: V8Version,
    pub version_string: String,

    // Tagging (src/common/globals.h, include/v8-internal.h).
    pub heap_object_tag_mask: u64,
    pub heap_object_tag: u64,
    pub smi_tag_mask: u64,
    pub smi_shift: u32,
    pub tagged_size: u64,

    // Frame slots, relative to fp.
    pub fp_context_or_marker: i64,
    pub fp_function: i64,
    pub fp_bytecode_array: i64,
    pub fp_bytecode_offset: i64,

    /// Frame-type marker values by name (`EntryFrame`, `ExitFrame`, ...).
    pub frame_types: HashMap<i64, String>,
    pub frame_entry: i64,
    pub frame_construct_entry: i64,
    pub frame_builtin_exit: Option<i64>,

    // Heap objects.
    pub map: i64,
    pub map_instance_type: i64,
    pub fixed_array_length: i64,
    pub fixed_array_data: i64,

    pub jsfunction_shared: i64,
    /// JSFunction's code field; gone with leaptiering (V8 13+), where the
    /// code is found from the pc instead.
    pub jsfunction_code: Option<i64>,
    pub first_jsfunction_type: u16,
    pub last_jsfunction_type: u16,

    pub sfi_name_or_scope_info: i64,
    pub sfi_script: i64,
    pub sfi_function_data: Option<i64>,
    pub sfi_flags: Option<i64>,
    pub sfi_native_bit: Option<u32>,

    pub script_source: i64,
    pub script_name: i64,
    pub script_line_ends: i64,
    pub script_line_offset: Option<i64>,
    pub script_column_offset: Option<i64>,

    /// Code's instruction-start field; for `code_inline_header` lines, unused.
    pub code_instruction_start: i64,
    /// Up to V8 10.x the instructions sit inline in the Code object, this
    /// many bytes after its start (Code::kHeaderSize), and there is no
    /// InstructionStream. The binary says so by exporting
    /// `class_Code__instruction_start__uintptr_t` (the header size) where
    /// later lines export an `Address` field.
    pub code_inline_header: Option<i64>,
    pub code_instruction_size: i64,
    pub code_flags: i64,
    pub code_kind_mask: u32,
    pub code_kind_shift: u32,
    pub code_kind_baseline: u32,
    pub code_kind_maglev: Option<u32>,
    pub code_kind_regexp: Option<u32>,
    pub code_kind_turbofan: Option<u32>,
    pub code_deopt_data: Option<i64>,
    pub code_position_table: Option<i64>,
    pub istream_code: Option<i64>,
    pub istream_header: Option<i64>,

    pub bytecode_array_header: i64,
    pub bytecode_array_length: i64,
    pub bytecode_array_positions: Option<i64>,
    pub position_table_encoding: super::positions::PositionTableEncoding,

    pub deopt_inlined_count_index: Option<i64>,
    pub deopt_literal_array_index: Option<i64>,
    pub deopt_sfi_index: Option<i64>,
    /// SharedFunctionInfoWrapper's `shared_info`: since V8 13, trusted
    /// objects (DeoptimizationData) reach an SFI through a wrapper.
    pub sfi_wrapper_shared: Option<i64>,
    pub deopt_inlining_positions_index: Option<i64>,
    pub deopt_exit_start_index: Option<i64>,
    pub deopt_first_entry_index: Option<i64>,
    pub deopt_entry_size: Option<i64>,
    pub deopt_pc_offset: Option<i64>,
    pub deopt_bytecode_offset_offset: Option<i64>,
    pub deopt_translation_index_offset: Option<i64>,
    pub deopt_osr_pc_offset_index: Option<i64>,
    pub deopt_frame_translation_index: Option<i64>,
    /// Translation opcodes, on the lines whose translations are read.
    pub translation_opcodes: Option<super::versions::TranslationOpcodes>,
    /// The Maglev safepoint table's header, where the line is known.
    pub maglev_safepoints: Option<super::positions::SafepointTableHeader>,

    // Strings (src/objects/instance-type.h).
    pub string_length: i64,
    pub seq_string_chars: i64,
    pub cons_first: i64,
    pub cons_second: i64,
    pub sliced_parent: i64,
    pub sliced_offset: i64,
    pub thin_actual: i64,
    pub external_resource: i64,
    pub external_resource_data: Option<i64>,
    pub first_nonstring_type: u16,
    pub string_repr_mask: u16,
    pub string_encoding_mask: u16,
    pub one_byte_tag: u16,
    pub seq_tag: u16,
    pub cons_tag: u16,
    pub external_tag: u16,
    pub sliced_tag: u16,
    pub thin_tag: u16,

    /// V8's code for the register holding the JSFunction on entry.
    pub js_function_register: Option<u16>,
    /// Offset of the receiver (the first argument slot) from fp.
    pub fp_receiver: Option<i64>,
    /// Property storage, for naming anonymous methods.
    pub properties: Option<super::property_layout::PropertyLayout>,

    // Instance types.
    pub type_script: Option<u16>,
    pub type_sfi: Option<u16>,
    pub type_sfi_wrapper: Option<u16>,
    pub type_function_template_info: Option<u16>,
    pub type_scope_info: Option<u16>,
    pub type_code: Option<u16>,
    pub type_bytecode_array: Option<u16>,
    pub type_instruction_stream: Option<u16>,
    pub type_wasm_instance_object: Option<u16>,
    pub type_wasm_module_object: Option<u16>,
    pub type_wasm_exported_function_data: Option<u16>,
    /// `Script::wasm_managed_native_module`.
    pub script_wasm_native_module: Option<i64>,
    /// The line's WebAssembly layout (versions.rs); `None` on lines
    /// crosswind has not checked, whose wasm frames then stay stubs.
    pub wasm: Option<super::versions::WasmLayout>,
}

/// Reads V8's version from `v8::internal::Version::{major_,minor_,build_,patch_}`.
pub fn read_version(exe: &Module, mem: &dyn Memory) -> Option<(u32, u32, u32, u32)> {
    let get = |field: &str| -> Option<u32> {
        let sym = format!("_ZN2v88internal7Version{}{}_E", field.len() + 1, field);
        let at = exe.symbol_address(&sym).or_else(|| {
            exe.lookup_data_symbols(&sym)
                .first()
                .map(|(_, a, _)| a.wrapping_add(exe.bias))
        })?;
        let mut b = [0u8; 4];
        if mem.read(at, &mut b).is_err() && !exe.read(at, &mut b) {
            return None;
        }
        Some(u32::from_le_bytes(b))
    };
    Some((get("major")?, get("minor")?, get("build")?, get("patch")?))
}

impl Layout {
    /// Resolves the layout of the V8 inside `exe`.
    pub fn resolve(exe: &Module, mem: &dyn Memory) -> Result<Layout> {
        let syms = PostmortemSymbols::read(exe, mem);
        if syms.is_empty() {
            return Err(Error::Other(format!(
                "{}: no v8dbg_* postmortem symbols; not a Node.js/V8 binary, or stripped",
                exe.path.display()
            )));
        }
        let (maj, min, build, patch) = read_version(exe, mem).ok_or_else(|| {
            Error::Other(format!(
                "{}: cannot read V8's version (v8::internal::Version symbols missing)",
                exe.path.display()
            ))
        })?;
        let version = (maj, min);
        let version_string = format!("{maj}.{min}.{build}.{patch}");
        // Layouts move between V8 lines in ways the postmortem symbols do
        // not always show; an unchecked line gets no JavaScript frames
        // rather than wrong ones.
        if !versions::is_supported(version) {
            return Err(Error::Other(format!(
                "{}: V8 {version_string} is not a line crosswind supports (supported: {}); JavaScript frames are left unnamed rather than guessed",
                exe.path.display(),
                versions::supported_list()
            )));
        }
        let missing = |what: &str| {
            Error::Other(format!(
                "{}: V8 {version_string} lacks v8dbg_{what} and crosswind has no fallback for it",
                exe.path.display()
            ))
        };
        let req = |name: &str| syms.get(name).ok_or_else(|| missing(name));
        let field = |class: &str, f: &str| {
            syms.field(class, f)
                .ok_or_else(|| missing(&format!("class_{class}__{f}")))
        };
        let opt_field = |class: &str, f: &str| {
            syms.field(class, f).or_else(|| {
                versions::fallback(&format!("class_{class}__{f}"), version).map(|fb| fb.value)
            })
        };
        let opt = |name: &str| {
            syms.get(name)
                .or_else(|| versions::fallback(name, version).map(|fb| fb.value))
        };

        let mut frame_types = HashMap::new();
        for (k, v) in syms.values.iter() {
            if let Some(n) = k.strip_prefix("frametype_") {
                frame_types.insert(*v, n.to_string());
            }
        }
        let frame_type = |n: &str| req(&format!("frametype_{n}"));
        let smi_shift_size = req("SmiShiftSize")? as u32;
        Ok(Layout {
            version,
            version_string: version_string.clone(),
            heap_object_tag_mask: req("HeapObjectTagMask")? as u64,
            heap_object_tag: req("HeapObjectTag")? as u64,
            smi_tag_mask: req("SmiTagMask")? as u64,
            // kSmiTagSize is 1 on every V8 (include/v8-internal.h).
            smi_shift: smi_shift_size + 1,
            tagged_size: syms.get("TaggedSize").unwrap_or(8) as u64,
            fp_context_or_marker: syms
                .get("off_fp_context_or_frame_type")
                .or_else(|| syms.get("off_fp_context"))
                .ok_or_else(|| missing("off_fp_context"))?,
            fp_function: req("off_fp_function")?,
            fp_bytecode_array: req("off_fp_bytecode_array")?,
            fp_bytecode_offset: req("off_fp_bytecode_offset")?,
            frame_entry: frame_type("EntryFrame")?,
            frame_construct_entry: frame_type("ConstructEntryFrame")?,
            frame_builtin_exit: syms.get("frametype_BuiltinExitFrame"),
            frame_types,
            map: syms.field("HeapObject", "map").unwrap_or(0),
            map_instance_type: field("Map", "instance_type")?,
            fixed_array_length: field("FixedArrayBase", "length")?,
            fixed_array_data: field("FixedArray", "data")?,
            jsfunction_shared: field("JSFunction", "shared")?,
            jsfunction_code: opt_field("JSFunction", "code"),
            first_jsfunction_type: opt("FirstJSFunctionType")
                .ok_or_else(|| missing("FirstJSFunctionType"))?
                as u16,
            last_jsfunction_type: opt("LastJSFunctionType")
                .ok_or_else(|| missing("LastJSFunctionType"))?
                as u16,
            sfi_name_or_scope_info: field("SharedFunctionInfo", "name_or_scope_info")?,
            sfi_script: syms
                .field("SharedFunctionInfo", "script")
                .or_else(|| syms.field("SharedFunctionInfo", "raw_script"))
                .or_else(|| syms.field("SharedFunctionInfo", "script_or_debug_info"))
                .ok_or_else(|| missing("class_SharedFunctionInfo__script"))?,
            sfi_function_data: opt_field("SharedFunctionInfo", "function_data"),
            sfi_flags: syms.field("SharedFunctionInfo", "flags"),
            sfi_native_bit: opt("SharedFunctionInfo_is_native_bit").map(|v| v as u32),
            script_source: field("Script", "source")?,
            script_name: field("Script", "name")?,
            script_line_ends: field("Script", "line_ends")?,
            script_line_offset: opt_field("Script", "line_offset"),
            script_column_offset: opt_field("Script", "column_offset"),
            code_inline_header: syms.get("class_Code__instruction_start__uintptr_t"),
            code_instruction_start: opt_field("Code", "instruction_start")
                .ok_or_else(|| missing("class_Code__instruction_start"))?,
            code_instruction_size: opt_field("Code", "instruction_size")
                .ok_or_else(|| missing("class_Code__instruction_size"))?,
            code_flags: opt_field("Code", "flags").ok_or_else(|| missing("class_Code__flags"))?,
            code_kind_mask: req("CodeKindFieldMask")? as u32,
            code_kind_shift: syms.get("CodeKindFieldShift").unwrap_or(0) as u32,
            code_kind_baseline: req("CodeKindBaseline")? as u32,
            code_kind_maglev: opt("CodeKindMaglev").map(|v| v as u32),
            code_kind_regexp: opt("CodeKindRegexp").map(|v| v as u32),
            code_kind_turbofan: opt("CodeKindTurbofan").map(|v| v as u32),
            code_deopt_data: opt_field("Code", "deoptimization_data_or_interpreter_data"),
            code_position_table: opt_field("Code", "position_table"),
            istream_code: opt_field("InstructionStream", "code"),
            istream_header: syms.field("InstructionStream", "instruction_start"),
            bytecode_array_header: field("BytecodeArray", "data")?,
            // BytecodeArray was a FixedArrayBase, with its length, up to 11.x.
            bytecode_array_length: syms
                .field("BytecodeArray", "length")
                .or_else(|| syms.field("FixedArrayBase", "length"))
                .ok_or_else(|| missing("class_BytecodeArray__length"))?,
            bytecode_array_positions: opt_field("BytecodeArray", "source_position_table"),
            position_table_encoding: if opt("SourcePositionTableFlagBits") == Some(1) {
                super::positions::PositionTableEncoding::FlagBits
            } else {
                super::positions::PositionTableEncoding::SignedStatement
            },
            deopt_inlined_count_index: opt("DeoptimizationDataInlinedFunctionCountIndex"),
            deopt_literal_array_index: opt("DeoptimizationDataLiteralArrayIndex"),
            deopt_sfi_index: opt("DeoptimizationDataSharedFunctionInfoIndex")
                .or_else(|| syms.get("DeoptimizationDataWrappedSharedFunctionInfoIndex")),
            sfi_wrapper_shared: syms.field("SharedFunctionInfoWrapper", "shared_info"),
            deopt_inlining_positions_index: opt("DeoptimizationDataInliningPositionsIndex"),
            deopt_exit_start_index: opt("DeoptimizationDataDeoptExitStartIndex"),
            deopt_first_entry_index: opt("DeoptimizationDataFirstDeoptEntryIndex"),
            deopt_entry_size: opt("DeoptimizationDataDeoptEntrySize"),
            deopt_pc_offset: opt("DeoptimizationDataPcOffset"),
            deopt_bytecode_offset_offset: opt("DeoptimizationDataBytecodeOffsetRawOffset"),
            deopt_translation_index_offset: opt("DeoptimizationDataTranslationIndexOffset"),
            deopt_osr_pc_offset_index: opt("DeoptimizationDataOsrPcOffsetIndex"),
            deopt_frame_translation_index: opt("DeoptimizationDataFrameTranslationIndex"),
            translation_opcodes: super::versions::translation_opcodes(version),
            maglev_safepoints: (|| {
                Some(super::positions::SafepointTableHeader {
                    length_offset: usize::try_from(opt("MaglevSafepointTableLengthOffset")?)
                        .ok()?,
                    configuration_offset: usize::try_from(opt(
                        "MaglevSafepointTableEntryConfigurationOffset",
                    )?)
                    .ok()?,
                    size: usize::try_from(opt("MaglevSafepointTableHeaderSize")?).ok()?,
                })
            })(),
            string_length: field("String", "length")?,
            seq_string_chars: field("SeqOneByteString", "chars")?,
            cons_first: field("ConsString", "first")?,
            cons_second: field("ConsString", "second")?,
            sliced_parent: field("SlicedString", "parent")?,
            sliced_offset: field("SlicedString", "offset")?,
            thin_actual: field("ThinString", "actual")?,
            external_resource: field("ExternalString", "resource")?,
            external_resource_data: opt_field("ExternalString", "resource_data"),
            first_nonstring_type: req("FirstNonstringType")? as u16,
            string_repr_mask: req("StringRepresentationMask")? as u16,
            string_encoding_mask: req("StringEncodingMask")? as u16,
            one_byte_tag: req("OneByteStringTag")? as u16,
            seq_tag: syms.get("SeqStringTag").unwrap_or(0) as u16,
            cons_tag: req("ConsStringTag")? as u16,
            external_tag: req("ExternalStringTag")? as u16,
            sliced_tag: req("SlicedStringTag")? as u16,
            thin_tag: req("ThinStringTag")? as u16,
            // Arguments are pushed in reverse since V8 9.0, so the receiver
            // is the lowest argument slot, at `off_fp_args`.
            fp_receiver: syms.get("off_fp_args"),
            js_function_register: syms.get("JSFunctionRegister").map(|v| v as u16),
            properties: super::property_layout::PropertyLayout::resolve(&syms, version),
            type_script: syms.instance_type("SCRIPT_TYPE"),
            type_sfi: syms.instance_type("SHARED_FUNCTION_INFO_TYPE"),
            type_sfi_wrapper: syms.instance_type("SHARED_FUNCTION_INFO_WRAPPER_TYPE"),
            type_function_template_info: syms.instance_type("FUNCTION_TEMPLATE_INFO_TYPE"),
            type_scope_info: syms.instance_type("SCOPE_INFO_TYPE"),
            type_code: syms.instance_type("CODE_TYPE"),
            type_bytecode_array: syms.instance_type("BYTECODE_ARRAY_TYPE"),
            type_instruction_stream: syms.instance_type("INSTRUCTION_STREAM_TYPE"),
            type_wasm_instance_object: syms.instance_type("WASM_INSTANCE_OBJECT_TYPE").or_else(
                || super::versions::wasm_layout(version).and_then(|w| w.instance_object_type),
            ),
            type_wasm_module_object: syms.instance_type("WASM_MODULE_OBJECT_TYPE"),
            type_wasm_exported_function_data: syms
                .instance_type("WASM_EXPORTED_FUNCTION_DATA_TYPE"),
            script_wasm_native_module: syms.field("Script", "wasm_managed_native_module"),
            wasm: super::versions::wasm_layout(version),
        })
    }

    /// The name of a frame-type marker value.
    pub fn frame_type_name(&self, marker: i64) -> Option<&str> {
        self.frame_types.get(&marker).map(|s| s.as_str())
    }
}
