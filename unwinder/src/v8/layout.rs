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
    /// V8's line (major, minor).
    pub version: V8Version,
    /// V8's full version, `major.minor.build.patch`.
    pub version_string: String,

    // Tagging (src/common/globals.h, include/v8-internal.h).
    /// Mask of the tag bits of a tagged value.
    pub heap_object_tag_mask: u64,
    /// Tag of a heap object pointer (kHeapObjectTag).
    pub heap_object_tag: u64,
    /// Mask of a Smi's tag bits.
    pub smi_tag_mask: u64,
    /// Shift from a Smi's tagged value to its integer (tag size plus shift size).
    pub smi_shift: u32,
    /// Bytes of a tagged field (4 with pointer compression, else 8).
    pub tagged_size: u64,

    // Frame slots, relative to fp.
    /// Slot of the context, or of the frame-type marker in typed frames.
    pub fp_context_or_marker: i64,
    /// Slot of the frame's JSFunction.
    pub fp_function: i64,
    /// Slot of an interpreted or baseline frame's BytecodeArray.
    pub fp_bytecode_array: i64,
    /// Slot of an interpreted frame's bytecode offset (a Smi).
    pub fp_bytecode_offset: i64,

    /// Frame-type marker values by name (`EntryFrame`, `ExitFrame`, ...).
    pub frame_types: HashMap<i64, String>,
    /// Marker of an entry frame (C++ calling into JavaScript).
    pub frame_entry: i64,
    /// Marker of a construct entry frame.
    pub frame_construct_entry: i64,
    /// Marker of a builtin exit frame (a builtin calling C++), where the line has one.
    pub frame_builtin_exit: Option<i64>,

    // Heap objects.
    /// HeapObject's map field.
    pub map: i64,
    /// Map's instance-type field.
    pub map_instance_type: i64,
    /// FixedArrayBase's length field.
    pub fixed_array_length: i64,
    /// Where a FixedArray's elements start.
    pub fixed_array_data: i64,

    /// JSFunction's SharedFunctionInfo field.
    pub jsfunction_shared: i64,
    /// JSFunction's code field; gone with leaptiering (V8 13+), where the
    /// code is found from the pc instead.
    pub jsfunction_code: Option<i64>,
    /// First instance type of the JSFunction range.
    pub first_jsfunction_type: u16,
    /// Last instance type of the JSFunction range.
    pub last_jsfunction_type: u16,

    /// SharedFunctionInfo's name-or-ScopeInfo field.
    pub sfi_name_or_scope_info: i64,
    /// SharedFunctionInfo's script field.
    pub sfi_script: i64,
    /// SharedFunctionInfo's function data (bytecode, baseline code, API data).
    pub sfi_function_data: Option<i64>,
    /// SharedFunctionInfo's flags field.
    pub sfi_flags: Option<i64>,
    /// Bit of the `native` flag in the SharedFunctionInfo's flags.
    pub sfi_native_bit: Option<u32>,

    /// Script's source field.
    pub script_source: i64,
    /// Script's name field.
    pub script_name: i64,
    /// Script's line-ends field.
    pub script_line_ends: i64,
    /// Script's line offset field.
    pub script_line_offset: Option<i64>,
    /// Script's column offset field.
    pub script_column_offset: Option<i64>,

    /// Code's instruction-start field; for `code_inline_header` lines, unused.
    pub code_instruction_start: i64,
    /// Up to V8 10.x the instructions sit inline in the Code object, this
    /// many bytes after its start (Code::kHeaderSize), and there is no
    /// InstructionStream. The binary says so by exporting
    /// `class_Code__instruction_start__uintptr_t` (the header size) where
    /// later lines export an `Address` field.
    pub code_inline_header: Option<i64>,
    /// Code's instruction-size field.
    pub code_instruction_size: i64,
    /// Code's flags field.
    pub code_flags: i64,
    /// Mask of the code kind in Code's flags (after the shift).
    pub code_kind_mask: u32,
    /// Shift of the code kind in Code's flags.
    pub code_kind_shift: u32,
    /// Code kind of baseline (Sparkplug) code.
    pub code_kind_baseline: u32,
    /// Code kind of Maglev code, where the line has Maglev.
    pub code_kind_maglev: Option<u32>,
    /// Code kind of compiled regular expressions.
    pub code_kind_regexp: Option<u32>,
    /// Code kind of TurboFan code.
    pub code_kind_turbofan: Option<u32>,
    /// Code's deoptimization-data (or interpreter-data) field.
    pub code_deopt_data: Option<i64>,
    /// Code's source position table field.
    pub code_position_table: Option<i64>,
    /// InstructionStream's field pointing back at its Code.
    pub istream_code: Option<i64>,
    /// Bytes from an InstructionStream's start to its instructions.
    pub istream_header: Option<i64>,

    /// Where a BytecodeArray's bytecodes start.
    pub bytecode_array_header: i64,
    /// BytecodeArray's length field.
    pub bytecode_array_length: i64,
    /// BytecodeArray's source position table field.
    pub bytecode_array_positions: Option<i64>,
    /// How this line encodes source position tables.
    pub position_table_encoding: super::positions::PositionTableEncoding,

    /// DeoptimizationData's index of the inlined function count.
    pub deopt_inlined_count_index: Option<i64>,
    /// DeoptimizationData's index of the literal array.
    pub deopt_literal_array_index: Option<i64>,
    /// DeoptimizationData's index of the SharedFunctionInfo (or its wrapper).
    pub deopt_sfi_index: Option<i64>,
    /// SharedFunctionInfoWrapper's `shared_info`: since V8 13, trusted
    /// objects (DeoptimizationData) reach an SFI through a wrapper.
    pub sfi_wrapper_shared: Option<i64>,
    /// DeoptimizationData's index of the inlining positions.
    pub deopt_inlining_positions_index: Option<i64>,
    /// DeoptimizationData's index of where the deoptimization exits start.
    pub deopt_exit_start_index: Option<i64>,
    /// DeoptimizationData's index of the first deoptimization entry.
    pub deopt_first_entry_index: Option<i64>,
    /// Elements per deoptimization entry.
    pub deopt_entry_size: Option<i64>,
    /// Offset of an entry's pc within it.
    pub deopt_pc_offset: Option<i64>,
    /// Offset of an entry's bytecode offset within it.
    pub deopt_bytecode_offset_offset: Option<i64>,
    /// Offset of an entry's translation index within it.
    pub deopt_translation_index_offset: Option<i64>,
    /// DeoptimizationData's index of the OSR pc offset.
    pub deopt_osr_pc_offset_index: Option<i64>,
    /// DeoptimizationData's index of the frame translation bytes.
    pub deopt_frame_translation_index: Option<i64>,
    /// Translation opcodes, on the lines whose translations are read.
    pub translation_opcodes: Option<super::versions::TranslationOpcodes>,
    /// The Maglev safepoint table's header, where the line is known.
    pub maglev_safepoints: Option<super::positions::SafepointTableHeader>,

    // Strings (src/objects/instance-type.h).
    /// String's length field.
    pub string_length: i64,
    /// Where a sequential string's characters start.
    pub seq_string_chars: i64,
    /// ConsString's first part.
    pub cons_first: i64,
    /// ConsString's second part.
    pub cons_second: i64,
    /// SlicedString's parent string.
    pub sliced_parent: i64,
    /// SlicedString's offset into its parent.
    pub sliced_offset: i64,
    /// ThinString's actual string.
    pub thin_actual: i64,
    /// ExternalString's resource field.
    pub external_resource: i64,
    /// ExternalString's cached resource data field, where the line has it.
    pub external_resource_data: Option<i64>,
    /// First instance type that is not a string.
    pub first_nonstring_type: u16,
    /// Mask of a string instance type's representation bits.
    pub string_repr_mask: u16,
    /// Mask of a string instance type's encoding bit.
    pub string_encoding_mask: u16,
    /// Encoding tag of one-byte strings.
    pub one_byte_tag: u16,
    /// Representation tag of sequential strings.
    pub seq_tag: u16,
    /// Representation tag of cons strings.
    pub cons_tag: u16,
    /// Representation tag of external strings.
    pub external_tag: u16,
    /// Representation tag of sliced strings.
    pub sliced_tag: u16,
    /// Representation tag of thin strings.
    pub thin_tag: u16,

    /// V8's code for the register holding the JSFunction on entry.
    pub js_function_register: Option<u16>,
    /// Offset of the receiver (the first argument slot) from fp.
    pub fp_receiver: Option<i64>,
    /// Property storage, for naming anonymous methods.
    pub properties: Option<super::property_layout::PropertyLayout>,

    // Instance types.
    /// Instance type of Script.
    pub type_script: Option<u16>,
    /// Instance type of SharedFunctionInfo.
    pub type_sfi: Option<u16>,
    /// Instance type of SharedFunctionInfoWrapper (V8 13+).
    pub type_sfi_wrapper: Option<u16>,
    /// Instance type of FunctionTemplateInfo (API functions).
    pub type_function_template_info: Option<u16>,
    /// Instance type of ScopeInfo.
    pub type_scope_info: Option<u16>,
    /// Instance type of Code.
    pub type_code: Option<u16>,
    /// Instance type of BytecodeArray.
    pub type_bytecode_array: Option<u16>,
    /// Instance type of InstructionStream.
    pub type_instruction_stream: Option<u16>,
    /// Instance type of WasmInstanceObject.
    pub type_wasm_instance_object: Option<u16>,
    /// Instance type of WasmModuleObject.
    pub type_wasm_module_object: Option<u16>,
    /// Instance type of WasmExportedFunctionData.
    pub type_wasm_exported_function_data: Option<u16>,
    /// `Script::wasm_managed_native_module`.
    pub script_wasm_native_module: Option<i64>,
    /// The line's WebAssembly layout (versions.rs); `None` on lines
    /// crosswind has not checked, whose wasm frames then stay stubs.
    pub wasm: Option<super::versions::WasmLayout>,
    /// What the async stack walk finds among the binary's exports.
    pub promises: PromiseExports,
}

/// The `v8dbg_*` values the async stack walk (`async_stack.rs`) uses:
/// instance types of the promise machinery, the JSFunction's context
/// field and the number of a Context's fixed slots.
#[derive(Debug, Clone, Default)]
pub struct PromiseExports {
    /// JS_PROMISE_TYPE.
    pub js_promise: Option<u16>,
    /// PROMISE_REACTION_TYPE.
    pub reaction: Option<u16>,
    /// PROMISE_CAPABILITY_TYPE.
    pub capability: Option<u16>,
    /// JS_ASYNC_FUNCTION_OBJECT_TYPE.
    pub async_function_object: Option<u16>,
    /// JS_ASYNC_GENERATOR_OBJECT_TYPE.
    pub async_generator_object: Option<u16>,
    /// ASYNC_GENERATOR_REQUEST_TYPE.
    pub async_generator_request: Option<u16>,
    /// JSFunction's `context`.
    pub jsfunction_context: Option<i64>,
    /// Context::MIN_CONTEXT_SLOTS (`context_min_slots`).
    pub context_min_slots: Option<i64>,
}

impl PromiseExports {
    fn resolve(syms: &PostmortemSymbols) -> PromiseExports {
        PromiseExports {
            js_promise: syms.instance_type("JS_PROMISE_TYPE"),
            reaction: syms.instance_type("PROMISE_REACTION_TYPE"),
            capability: syms.instance_type("PROMISE_CAPABILITY_TYPE"),
            async_function_object: syms.instance_type("JS_ASYNC_FUNCTION_OBJECT_TYPE"),
            async_generator_object: syms.instance_type("JS_ASYNC_GENERATOR_OBJECT_TYPE"),
            async_generator_request: syms.instance_type("ASYNC_GENERATOR_REQUEST_TYPE"),
            jsfunction_context: syms.field("JSFunction", "context"),
            context_min_slots: syms.get("context_min_slots"),
        }
    }
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
        let lk = Lookup::open(exe, mem)?;
        let (syms, version) = (&lk.syms, lk.version);
        let frame_types = frame_types(syms);
        let smi_shift_size = lk.req("SmiShiftSize")? as u32;
        Ok(Layout {
            version,
            version_string: lk.version_string.clone(),
            heap_object_tag_mask: lk.req("HeapObjectTagMask")? as u64,
            heap_object_tag: lk.req("HeapObjectTag")? as u64,
            smi_tag_mask: lk.req("SmiTagMask")? as u64,
            // kSmiTagSize is 1 on every V8 (include/v8-internal.h).
            smi_shift: smi_shift_size + 1,
            tagged_size: syms.get("TaggedSize").unwrap_or(8) as u64,
            fp_context_or_marker: lk.fp_context_or_marker()?,
            fp_function: lk.req("off_fp_function")?,
            fp_bytecode_array: lk.req("off_fp_bytecode_array")?,
            fp_bytecode_offset: lk.req("off_fp_bytecode_offset")?,
            frame_entry: lk.frame_type("EntryFrame")?,
            frame_construct_entry: lk.frame_type("ConstructEntryFrame")?,
            frame_builtin_exit: syms.get("frametype_BuiltinExitFrame"),
            frame_types,
            map: syms.field("HeapObject", "map").unwrap_or(0),
            map_instance_type: lk.field("Map", "instance_type")?,
            fixed_array_length: lk.field("FixedArrayBase", "length")?,
            fixed_array_data: lk.field("FixedArray", "data")?,
            jsfunction_shared: lk.field("JSFunction", "shared")?,
            jsfunction_code: lk.opt_field("JSFunction", "code"),
            first_jsfunction_type: lk.req_opt("FirstJSFunctionType")? as u16,
            last_jsfunction_type: lk.req_opt("LastJSFunctionType")? as u16,
            sfi_name_or_scope_info: lk.field("SharedFunctionInfo", "name_or_scope_info")?,
            sfi_script: lk.sfi_script()?,
            sfi_function_data: lk.opt_field("SharedFunctionInfo", "function_data"),
            sfi_flags: syms.field("SharedFunctionInfo", "flags"),
            sfi_native_bit: lk.opt("SharedFunctionInfo_is_native_bit").map(|v| v as u32),
            script_source: lk.field("Script", "source")?,
            script_name: lk.field("Script", "name")?,
            script_line_ends: lk.field("Script", "line_ends")?,
            script_line_offset: lk.opt_field("Script", "line_offset"),
            script_column_offset: lk.opt_field("Script", "column_offset"),
            code_inline_header: syms.get("class_Code__instruction_start__uintptr_t"),
            code_instruction_start: lk.req_opt_field("Code", "instruction_start")?,
            code_instruction_size: lk.req_opt_field("Code", "instruction_size")?,
            code_flags: lk.req_opt_field("Code", "flags")?,
            code_kind_mask: lk.req("CodeKindFieldMask")? as u32,
            code_kind_shift: syms.get("CodeKindFieldShift").unwrap_or(0) as u32,
            code_kind_baseline: lk.req("CodeKindBaseline")? as u32,
            code_kind_maglev: lk.opt("CodeKindMaglev").map(|v| v as u32),
            code_kind_regexp: lk.opt("CodeKindRegexp").map(|v| v as u32),
            code_kind_turbofan: lk.opt("CodeKindTurbofan").map(|v| v as u32),
            code_deopt_data: lk.opt_field("Code", "deoptimization_data_or_interpreter_data"),
            code_position_table: lk.opt_field("Code", "position_table"),
            istream_code: lk.opt_field("InstructionStream", "code"),
            istream_header: syms.field("InstructionStream", "instruction_start"),
            bytecode_array_header: lk.field("BytecodeArray", "data")?,
            bytecode_array_length: lk.bytecode_array_length()?,
            bytecode_array_positions: lk.opt_field("BytecodeArray", "source_position_table"),
            position_table_encoding: lk.position_table_encoding(),
            deopt_inlined_count_index: lk.opt("DeoptimizationDataInlinedFunctionCountIndex"),
            deopt_literal_array_index: lk.opt("DeoptimizationDataLiteralArrayIndex"),
            deopt_sfi_index: lk
                .opt("DeoptimizationDataSharedFunctionInfoIndex")
                .or_else(|| syms.get("DeoptimizationDataWrappedSharedFunctionInfoIndex")),
            sfi_wrapper_shared: syms.field("SharedFunctionInfoWrapper", "shared_info"),
            deopt_inlining_positions_index: lk.opt("DeoptimizationDataInliningPositionsIndex"),
            deopt_exit_start_index: lk.opt("DeoptimizationDataDeoptExitStartIndex"),
            deopt_first_entry_index: lk.opt("DeoptimizationDataFirstDeoptEntryIndex"),
            deopt_entry_size: lk.opt("DeoptimizationDataDeoptEntrySize"),
            deopt_pc_offset: lk.opt("DeoptimizationDataPcOffset"),
            deopt_bytecode_offset_offset: lk.opt("DeoptimizationDataBytecodeOffsetRawOffset"),
            deopt_translation_index_offset: lk.opt("DeoptimizationDataTranslationIndexOffset"),
            deopt_osr_pc_offset_index: lk.opt("DeoptimizationDataOsrPcOffsetIndex"),
            deopt_frame_translation_index: lk.opt("DeoptimizationDataFrameTranslationIndex"),
            translation_opcodes: super::versions::translation_opcodes(version),
            maglev_safepoints: lk.maglev_safepoints(),
            string_length: lk.field("String", "length")?,
            seq_string_chars: lk.field("SeqOneByteString", "chars")?,
            cons_first: lk.field("ConsString", "first")?,
            cons_second: lk.field("ConsString", "second")?,
            sliced_parent: lk.field("SlicedString", "parent")?,
            sliced_offset: lk.field("SlicedString", "offset")?,
            thin_actual: lk.field("ThinString", "actual")?,
            external_resource: lk.field("ExternalString", "resource")?,
            external_resource_data: lk.opt_field("ExternalString", "resource_data"),
            first_nonstring_type: lk.req("FirstNonstringType")? as u16,
            string_repr_mask: lk.req("StringRepresentationMask")? as u16,
            string_encoding_mask: lk.req("StringEncodingMask")? as u16,
            one_byte_tag: lk.req("OneByteStringTag")? as u16,
            seq_tag: syms.get("SeqStringTag").unwrap_or(0) as u16,
            cons_tag: lk.req("ConsStringTag")? as u16,
            external_tag: lk.req("ExternalStringTag")? as u16,
            sliced_tag: lk.req("SlicedStringTag")? as u16,
            thin_tag: lk.req("ThinStringTag")? as u16,
            // Arguments are pushed in reverse since V8 9.0, so the receiver
            // is the lowest argument slot, at `off_fp_args`.
            fp_receiver: syms.get("off_fp_args"),
            js_function_register: syms.get("JSFunctionRegister").map(|v| v as u16),
            properties: super::property_layout::PropertyLayout::resolve(syms, version),
            type_script: syms.instance_type("SCRIPT_TYPE"),
            type_sfi: syms.instance_type("SHARED_FUNCTION_INFO_TYPE"),
            type_sfi_wrapper: syms.instance_type("SHARED_FUNCTION_INFO_WRAPPER_TYPE"),
            type_function_template_info: syms.instance_type("FUNCTION_TEMPLATE_INFO_TYPE"),
            type_scope_info: syms.instance_type("SCOPE_INFO_TYPE"),
            type_code: syms.instance_type("CODE_TYPE"),
            type_bytecode_array: syms.instance_type("BYTECODE_ARRAY_TYPE"),
            type_instruction_stream: syms.instance_type("INSTRUCTION_STREAM_TYPE"),
            type_wasm_instance_object: lk.wasm_instance_object_type(),
            type_wasm_module_object: syms.instance_type("WASM_MODULE_OBJECT_TYPE"),
            type_wasm_exported_function_data: syms
                .instance_type("WASM_EXPORTED_FUNCTION_DATA_TYPE"),
            script_wasm_native_module: syms.field("Script", "wasm_managed_native_module"),
            wasm: super::versions::wasm_layout(version),
            promises: PromiseExports::resolve(syms),
        })
    }

    /// The name of a frame-type marker value.
    pub fn frame_type_name(&self, marker: i64) -> Option<&str> {
        self.frame_types.get(&marker).map(|s| s.as_str())
    }
}

/// V8's version in `exe`, as a line and as a string, if crosswind
/// supports that line.
fn supported_version(exe: &Module, mem: &dyn Memory) -> Result<(V8Version, String)> {
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
    Ok((version, version_string))
}

/// Frame-type marker values and their names (`frametype_*` symbols).
fn frame_types(syms: &PostmortemSymbols) -> HashMap<i64, String> {
    let mut frame_types = HashMap::new();
    for (k, v) in syms.values.iter() {
        if let Some(n) = k.strip_prefix("frametype_") {
            frame_types.insert(*v, n.to_string());
        }
    }
    frame_types
}

/// Looks values up in one binary's postmortem symbols, with the version
/// table's fallbacks, and words the error for a required value that is
/// missing.
struct Lookup<'a> {
    syms: PostmortemSymbols,
    version: V8Version,
    exe: &'a Module,
    version_string: String,
}

impl Lookup<'_> {
    /// Reads the postmortem symbols and the version of the V8 in `exe`;
    /// an error when it has none or is on a line crosswind does not
    /// support.
    fn open<'a>(exe: &'a Module, mem: &dyn Memory) -> Result<Lookup<'a>> {
        let syms = PostmortemSymbols::read(exe, mem);
        if syms.is_empty() {
            return Err(Error::Other(format!(
                "{}: no v8dbg_* postmortem symbols; not a Node.js/V8 binary, or stripped",
                exe.path.display()
            )));
        }
        let (version, version_string) = supported_version(exe, mem)?;
        Ok(Lookup {
            syms,
            version,
            exe,
            version_string,
        })
    }

    /// The error for a required value the binary lacks.
    fn missing(&self, what: &str) -> Error {
        Error::Other(format!(
            "{}: V8 {} lacks v8dbg_{what} and crosswind has no fallback for it",
            self.exe.path.display(),
            self.version_string
        ))
    }

    /// A required symbol.
    fn req(&self, name: &str) -> Result<i64> {
        self.syms.get(name).ok_or_else(|| self.missing(name))
    }

    /// A required class field offset.
    fn field(&self, class: &str, f: &str) -> Result<i64> {
        self.syms
            .field(class, f)
            .ok_or_else(|| self.missing(&format!("class_{class}__{f}")))
    }

    /// A class field offset, from the symbols or the version table.
    fn opt_field(&self, class: &str, f: &str) -> Option<i64> {
        self.syms.field(class, f).or_else(|| {
            versions::fallback(&format!("class_{class}__{f}"), self.version).map(|fb| fb.value)
        })
    }

    /// A value, from the symbols or the version table.
    fn opt(&self, name: &str) -> Option<i64> {
        self.syms
            .get(name)
            .or_else(|| versions::fallback(name, self.version).map(|fb| fb.value))
    }

    /// A required value the version table may supply.
    fn req_opt(&self, name: &str) -> Result<i64> {
        self.opt(name).ok_or_else(|| self.missing(name))
    }

    /// A required class field offset the version table may supply.
    fn req_opt_field(&self, class: &str, f: &str) -> Result<i64> {
        self.opt_field(class, f)
            .ok_or_else(|| self.missing(&format!("class_{class}__{f}")))
    }

    /// A required frame-type marker value.
    fn frame_type(&self, n: &str) -> Result<i64> {
        self.req(&format!("frametype_{n}"))
    }

    /// The frame slot of the context or frame-type marker.
    fn fp_context_or_marker(&self) -> Result<i64> {
        self.syms
            .get("off_fp_context_or_frame_type")
            .or_else(|| self.syms.get("off_fp_context"))
            .ok_or_else(|| self.missing("off_fp_context"))
    }

    /// `SharedFunctionInfo::script`, under any of the names it has had.
    fn sfi_script(&self) -> Result<i64> {
        let s = &self.syms;
        s.field("SharedFunctionInfo", "script")
            .or_else(|| s.field("SharedFunctionInfo", "raw_script"))
            .or_else(|| s.field("SharedFunctionInfo", "script_or_debug_info"))
            .ok_or_else(|| self.missing("class_SharedFunctionInfo__script"))
    }

    /// `BytecodeArray::length`: BytecodeArray was a FixedArrayBase, with
    /// its length, up to 11.x.
    fn bytecode_array_length(&self) -> Result<i64> {
        self.syms
            .field("BytecodeArray", "length")
            .or_else(|| self.syms.field("FixedArrayBase", "length"))
            .ok_or_else(|| self.missing("class_BytecodeArray__length"))
    }

    /// How the line encodes source position tables.
    fn position_table_encoding(&self) -> super::positions::PositionTableEncoding {
        if self.opt("SourcePositionTableFlagBits") == Some(1) {
            super::positions::PositionTableEncoding::FlagBits
        } else {
            super::positions::PositionTableEncoding::SignedStatement
        }
    }

    /// The header of Maglev safepoint tables, where the line has them.
    fn maglev_safepoints(&self) -> Option<super::positions::SafepointTableHeader> {
        Some(super::positions::SafepointTableHeader {
            length_offset: usize::try_from(self.opt("MaglevSafepointTableLengthOffset")?).ok()?,
            configuration_offset: usize::try_from(
                self.opt("MaglevSafepointTableEntryConfigurationOffset")?,
            )
            .ok()?,
            size: usize::try_from(self.opt("MaglevSafepointTableHeaderSize")?).ok()?,
        })
    }

    /// The WasmInstanceObject instance type, from the symbols or the
    /// line's wasm layout.
    fn wasm_instance_object_type(&self) -> Option<u16> {
        self.syms
            .instance_type("WASM_INSTANCE_OBJECT_TYPE")
            .or_else(|| versions::wasm_layout(self.version).and_then(|w| w.instance_object_type))
    }
}
