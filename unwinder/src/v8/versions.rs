//! The one table of version-gated V8 knowledge: values that official Node.js
//! builds do not export as `v8dbg_*` postmortem symbols. A `v8dbg_*` value
//! always wins over this table. Each row names the V8 source it follows.

/// A V8 version as (major, minor).
pub type V8Version = (u32, u32);

/// One fallback value, valid for V8 versions in `[since, until)`.
#[derive(Debug, Clone, Copy)]
pub struct Fallback {
    /// The `v8dbg_` name (without prefix) the value stands in for.
    pub name: &'static str,
    /// First line it applies to.
    pub since: V8Version,
    /// First line it no longer applies to.
    pub until: V8Version,
    /// The value.
    pub value: i64,
    /// The V8 file (and where useful the declaration) this value comes from.
    pub source: &'static str,
}

/// The V8 lines crosswind knows, with the Node.js line that ships each.
pub const SUPPORTED: &[(V8Version, &str)] = &[
    ((10, 2), "Node.js 18"),
    ((11, 3), "Node.js 20"),
    ((12, 4), "Node.js 22"),
    ((13, 6), "Node.js 24"),
    ((14, 6), "Node.js 26"),
];

const V10_2: V8Version = (10, 2);
const V11_3: V8Version = (11, 3);
const V12_4: V8Version = (12, 4);
const V13_6: V8Version = (13, 6);
const V14_6: V8Version = (14, 6);
/// The end of the newest range: one past the newest supported line.
const NEXT: V8Version = (14, 7);

/// Fallback values. Offsets are from the start of the object (the tagged
/// pointer minus the heap-object tag), for 64-bit builds without pointer
/// compression, which is how official Node.js binaries are built.
pub const FALLBACKS: &[Fallback] = &[
    // --- Code (src/objects/code.h, CODE_DATA_FIELDS) ---
    // In 11.3 `Code` is the former CodeDataContainer: map, relocation_info,
    // deoptimization data, position table, instruction_stream,
    // code_entry_point, flags, builtin_id, instruction_size.
    Fallback {
        name: "class_Code__instruction_start",
        since: V11_3,
        until: V12_4,
        value: 40,
        source: "src/objects/code.h (11.3) kCodeEntryPointOffset",
    },
    Fallback {
        name: "class_Code__flags",
        since: V11_3,
        until: V12_4,
        value: 48,
        source: "src/objects/code.h (11.3) kFlagsOffset",
    },
    Fallback {
        name: "class_Code__instruction_size",
        since: V11_3,
        until: V12_4,
        value: 56,
        source: "src/objects/code.h (11.3) kInstructionSizeOffset, after flags and builtin_id",
    },
    // --- V8 10.2 only: values 11.3 exports as v8dbg but 10.2 does not ---
    Fallback {
        name: "FirstJSFunctionType",
        since: V10_2,
        until: V11_3,
        value: 2065,
        source: "src/objects/instance-type.h (10.2) FIRST_JS_FUNCTION_TYPE; v8::Function::GetName tests (type - 0x811) <= 0xf in Node 18",
    },
    Fallback {
        name: "LastJSFunctionType",
        since: V10_2,
        until: V11_3,
        value: 2080,
        source: "src/objects/instance-type.h (10.2) LAST_JS_FUNCTION_TYPE (16 JSFunction types)",
    },
    Fallback {
        name: "DeoptimizationDataInlinedFunctionCountIndex",
        since: V10_2,
        until: V11_3,
        value: 1,
        source: "src/objects/code.h (10.2) DeoptimizationData::kInlinedFunctionCountIndex",
    },
    Fallback {
        name: "DeoptimizationDataLiteralArrayIndex",
        since: V10_2,
        until: V11_3,
        value: 2,
        source: "src/objects/code.h (10.2) DeoptimizationData::kLiteralArrayIndex",
    },
    Fallback {
        name: "DeoptimizationDataSharedFunctionInfoIndex",
        since: V10_2,
        until: V11_3,
        value: 6,
        source: "src/objects/code.h (10.2) DeoptimizationData::kSharedFunctionInfoIndex",
    },
    Fallback {
        name: "DeoptimizationDataInliningPositionsIndex",
        since: V10_2,
        until: V11_3,
        value: 7,
        source: "src/objects/code.h (10.2) DeoptimizationData::kInliningPositionsIndex",
    },
    // --- JSFunction (src/objects/js-function.tq) ---
    Fallback {
        name: "FirstJSFunctionType",
        since: V11_3,
        until: V12_4,
        value: 2066,
        source: "src/objects/instance-type.h FIRST_JS_FUNCTION_TYPE = JS_FUNCTION_TYPE (v8dbg type_JSFunction__JS_FUNCTION_TYPE)",
    },
    Fallback {
        name: "LastJSFunctionType",
        since: V11_3,
        until: V12_4,
        value: 2081,
        source: "src/objects/js-function.tq (11.3): JS_FUNCTION_TYPE, then the class, promise, regexp and array constructors and 11 typed-array constructors (12.x added Float16)",
    },
    Fallback {
        name: "class_JSFunction__code",
        since: V11_3,
        until: V12_4,
        value: 48,
        source: "src/objects/js-function.tq (11.3) JSFunction: shared 24, context 32, feedback_cell 40, code 48",
    },
    Fallback {
        name: "class_Code__deoptimization_data_or_interpreter_data",
        since: V10_2,
        until: V12_4,
        value: 16,
        source: "src/objects/code.h (11.3) kDeoptimizationDataOrInterpreterDataOffset, after relocation_info; v8dbg exports it as class_Code__deoptimization_data",
    },
    Fallback {
        name: "class_Code__deoptimization_data_or_interpreter_data",
        since: V12_4,
        until: NEXT,
        value: 8,
        source: "src/objects/code.h CODE_DATA_FIELDS kDeoptimizationDataOrInterpreterDataOffset",
    },
    Fallback {
        name: "class_Code__position_table",
        since: V10_2,
        until: V12_4,
        value: 24,
        source: "src/objects/code.h (11.3) kPositionTableOffset; v8dbg exports it as class_Code__source_position_table",
    },
    Fallback {
        name: "class_Code__position_table",
        since: V12_4,
        until: NEXT,
        value: 16,
        source: "src/objects/code.h CODE_DATA_FIELDS kPositionTableOffset",
    },
    Fallback {
        name: "CodeKindBuiltin",
        since: V10_2,
        until: V14_6,
        value: 2,
        source: "src/objects/code-kind.h CODE_KIND_LIST",
    },
    Fallback {
        name: "CodeKindBuiltin",
        since: V14_6,
        until: NEXT,
        value: 3,
        source: "src/objects/code-kind.h CODE_KIND_LIST (14.6 adds FOR_TESTING_JS before BUILTIN; read from Node 26's CodeKindToString table)",
    },
    Fallback {
        name: "CodeKindRegexp",
        since: V10_2,
        until: V14_6,
        value: 3,
        source: "src/objects/code-kind.h CODE_KIND_LIST (REGEXP)",
    },
    Fallback {
        name: "CodeKindRegexp",
        since: V14_6,
        until: NEXT,
        value: 4,
        source: "src/objects/code-kind.h CODE_KIND_LIST (14.6: REGEXP follows BUILTIN; Node 26's CodeKindToString table)",
    },
    Fallback {
        name: "CodeKindMaglev",
        since: V10_2,
        until: V12_4,
        value: 12,
        source: "src/objects/code-kind.h CODE_KIND_LIST (11.3: BASELINE is 11, v8dbg)",
    },
    Fallback {
        name: "CodeKindMaglev",
        since: V12_4,
        until: V14_6,
        value: 11,
        source: "src/objects/code-kind.h CODE_KIND_LIST",
    },
    Fallback {
        name: "CodeKindMaglev",
        since: V14_6,
        until: NEXT,
        value: 12,
        source: "src/objects/code-kind.h CODE_KIND_LIST",
    },
    Fallback {
        name: "CodeKindTurbofan",
        since: V10_2,
        until: V12_4,
        value: 13,
        source: "src/objects/code-kind.h CODE_KIND_LIST (11.3: TURBOFAN follows MAGLEV)",
    },
    Fallback {
        name: "CodeKindTurbofan",
        since: V12_4,
        until: V14_6,
        value: 12,
        source: "src/objects/code-kind.h CODE_KIND_LIST (TURBOFAN_JS)",
    },
    Fallback {
        name: "CodeKindTurbofan",
        since: V14_6,
        until: NEXT,
        value: 13,
        source: "src/objects/code-kind.h CODE_KIND_LIST (TURBOFAN_JS)",
    },
    // --- DeoptimizationData (src/objects/deoptimization-data.h) ---
    Fallback {
        name: "DeoptimizationDataDeoptExitStartIndex",
        since: V10_2,
        until: V13_6,
        value: 8,
        source: "src/objects/deoptimization-data.h DeoptimizationData::kDeoptExitStartIndex",
    },
    Fallback {
        name: "DeoptimizationDataDeoptExitStartIndex",
        since: V13_6,
        until: NEXT,
        value: 9,
        source: "src/objects/deoptimization-data.h DeoptimizationData::kDeoptExitStartIndex",
    },
    Fallback {
        name: "DeoptimizationDataFirstDeoptEntryIndex",
        since: V10_2,
        until: V13_6,
        value: 11,
        source: "src/objects/deoptimization-data.h DeoptimizationData::kFirstDeoptEntryIndex",
    },
    Fallback {
        name: "DeoptimizationDataFirstDeoptEntryIndex",
        since: V13_6,
        until: NEXT,
        value: 12,
        source: "src/objects/deoptimization-data.h DeoptimizationData::kFirstDeoptEntryIndex",
    },
    Fallback {
        name: "DeoptimizationDataDeoptEntrySize",
        since: V10_2,
        until: NEXT,
        value: 3,
        source: "src/objects/deoptimization-data.h DeoptimizationData::kDeoptEntrySize (release builds)",
    },
    Fallback {
        name: "DeoptimizationDataOsrPcOffsetIndex",
        since: V10_2,
        until: V13_6,
        value: 4,
        source: "src/objects/deoptimization-data.h (code.h up to 11.x) DeoptimizationData::kOsrPcOffsetIndex",
    },
    Fallback {
        name: "DeoptimizationDataOsrPcOffsetIndex",
        since: V13_6,
        until: NEXT,
        value: 5,
        source: "src/objects/deoptimization-data.h DeoptimizationData::kOsrPcOffsetIndex (13.x: after the protected literal array)",
    },
    Fallback {
        name: "DeoptimizationDataFrameTranslationIndex",
        since: V13_6,
        until: NEXT,
        value: 0,
        source: "src/objects/deoptimization-data.h DeoptimizationData::kFrameTranslationIndex",
    },
    Fallback {
        name: "DeoptimizationDataTranslationIndexOffset",
        since: V13_6,
        until: NEXT,
        value: 1,
        source: "src/objects/deoptimization-data.h DeoptimizationData::kTranslationIndexOffset (second word of a deopt entry)",
    },
    Fallback {
        name: "DeoptimizationDataPcOffset",
        since: V10_2,
        until: NEXT,
        value: 2,
        source: "src/objects/deoptimization-data.h DeoptimizationData::kPcOffset",
    },
    // --- AccessorPair (src/objects/struct.tq): exported up to 13.6, not in 14.6 ---
    Fallback {
        name: "class_AccessorPair__getter",
        since: V14_6,
        until: NEXT,
        value: 8,
        source: "src/objects/struct.tq AccessorPair: getter, the first field after the map",
    },
    Fallback {
        name: "class_AccessorPair__setter",
        since: V14_6,
        until: NEXT,
        value: 16,
        source: "src/objects/struct.tq AccessorPair: setter, after getter",
    },
    // --- Maglev safepoint table (src/codegen/maglev-safepoint-table.h) ---
    // Header: kStackSlotsOffset at 0, kLengthOffset at 4,
    // kEntryConfigurationOffset at 8, kNumTaggedSlotsOffset at 12; entries
    // from 16 (seen so in Node 24 and 26 cores).
    Fallback {
        name: "MaglevSafepointTableLengthOffset",
        since: V13_6,
        until: NEXT,
        value: 4,
        source: "src/codegen/maglev-safepoint-table.h MaglevSafepointTable kLengthOffset (after kStackSlotsOffset)",
    },
    Fallback {
        name: "MaglevSafepointTableEntryConfigurationOffset",
        since: V13_6,
        until: NEXT,
        value: 8,
        source: "src/codegen/maglev-safepoint-table.h kEntryConfigurationOffset",
    },
    Fallback {
        name: "MaglevSafepointTableHeaderSize",
        since: V13_6,
        until: NEXT,
        value: 16,
        source: "src/codegen/maglev-safepoint-table.h kHeaderSize",
    },
    Fallback {
        name: "DeoptimizationDataBytecodeOffsetRawOffset",
        since: V10_2,
        until: NEXT,
        value: 0,
        source: "src/objects/deoptimization-data.h DeoptimizationData::kBytecodeOffsetRawOffset (first word of a deopt entry)",
    },
    // --- Source-position tables (src/codegen/source-position-table.cc) ---
    Fallback {
        name: "SourcePositionTableFlagBits",
        since: V14_6,
        until: NEXT,
        value: 1,
        source: "src/codegen/source-position-table.cc EncodeEntry: code_offset << 2 | is_breakable << 1 | is_statement, unsigned (before: a signed delta whose sign is is_statement)",
    },
    // --- InstructionStream (src/objects/instruction-stream.h) ---
    Fallback {
        name: "class_InstructionStream__code",
        since: V11_3,
        until: NEXT,
        value: 8,
        source: "src/objects/instruction-stream.h kCodeOffset (first field after the map)",
    },
    // --- BytecodeArray (src/objects/bytecode-array.h) ---
    Fallback {
        name: "class_BytecodeArray__source_position_table",
        since: V10_2,
        until: V12_4,
        value: 32,
        source: "src/objects/code.h (11.3) BytecodeArray: FixedArrayBase (map, length), constant_pool, handler_table, source_position_table",
    },
    Fallback {
        name: "class_BytecodeArray__source_position_table",
        since: V12_4,
        until: NEXT,
        value: 24,
        source: "src/objects/bytecode-array.h BYTECODE_ARRAY_FIELDS kSourcePositionTableOffset",
    },
    // --- SharedFunctionInfo (src/objects/shared-function-info.tq) ---
    Fallback {
        name: "class_SharedFunctionInfo__function_data",
        since: V10_2,
        until: NEXT,
        value: 8,
        source: "src/objects/shared-function-info.tq trusted_function_data (a plain tagged field without the sandbox)",
    },
    Fallback {
        name: "SharedFunctionInfo_is_native_bit",
        since: V10_2,
        until: NEXT,
        value: 5,
        source: "src/objects/shared-function-info.tq SharedFunctionInfoFlags (function_kind: 5 bits, then is_native)",
    },
    // --- Script (src/objects/script.tq) ---
    Fallback {
        name: "class_Script__line_offset",
        since: V10_2,
        until: NEXT,
        value: 24,
        source: "src/objects/script.tq line_offset: Smi",
    },
    Fallback {
        name: "class_Script__column_offset",
        since: V10_2,
        until: NEXT,
        value: 32,
        source: "src/objects/script.tq column_offset: Smi",
    },
    // --- ExternalString (src/objects/string.h) ---
    Fallback {
        name: "class_ExternalString__resource_data",
        since: V10_2,
        until: NEXT,
        value: 24,
        source: "src/objects/string.h ExternalString kResourceDataOffset (cached data pointer)",
    },
];

/// Offsets and flag bits of ScopeInfo for one V8 line: a variable-length
/// object, so a table row of its own rather than `Fallback` values.
#[derive(Debug, Clone, Copy)]
pub struct ScopeInfoLayout {
    /// Offset of the flags field.
    pub flags: i64,
    /// Whether `flags` is a Smi (V8 12.4) or a raw uint32 (13.x on).
    pub flags_is_smi: bool,
    /// Offset of the context local count.
    pub context_local_count: i64,
    /// Where the variable part starts.
    pub variable_part: i64,
    /// Mask of the scope type in the flags.
    pub scope_type_mask: u64,
    /// The scope type of module scopes.
    pub module_scope: u64,
    /// Whether a module scope has a module_variable_count slot before the
    /// context locals (not in 10.2: ContextLocalNamesIndex is fixed).
    pub has_module_variable_count: bool,
    /// Bit of HasSavedClassVariable in the flags.
    pub has_saved_class_variable_bit: u32,
    /// Shift of the FunctionVariable field in the flags.
    pub function_variable_shift: u32,
    /// Bit of HasInferredFunctionName in the flags.
    pub has_inferred_name_bit: u32,
    /// Context locals above this many are stored in a hash table (one slot).
    pub max_inlined_locals: i64,
}

/// The ScopeInfo shape of 12.4, which the other lines vary: the ScopeFlags
/// bits (scope_type 4 bits, ..., has_saved_class_variable at 10,
/// function_variable at 12, has_inferred_function_name at 14) and
/// kScopeInfoMaxInlinedLocalNamesSize are the same on every supported line.
const SCOPE_INFO_12_4: ScopeInfoLayout = ScopeInfoLayout {
    flags: 8,
    flags_is_smi: true,
    context_local_count: 24,
    variable_part: 32,
    scope_type_mask: 0xf,
    module_scope: 3,
    has_module_variable_count: true,
    has_saved_class_variable_bit: 10,
    function_variable_shift: 12,
    has_inferred_name_bit: 14,
    max_inlined_locals: 75,
};

/// ScopeInfo by V8 line: `(since, until, layout, source)`.
const SCOPE_INFO_LAYOUTS: &[(V8Version, V8Version, ScopeInfoLayout, &str)] = &[
    (
        V10_2,
        V11_3,
        ScopeInfoLayout {
            has_module_variable_count: false,
            ..SCOPE_INFO_12_4
        },
        "src/objects/scope-info.h (10.2): ContextLocalNamesIndex() is 3 for every \
         scope type; flag bits as 12.4; checked against the disassembly of \
         ScopeInfo::FunctionName and InferredFunctionName in Node 18",
    ),
    (
        V11_3,
        V13_6,
        SCOPE_INFO_12_4,
        "src/objects/scope-info.tq (flags: Smi at +8, parameter_count +16, \
         context_local_count +24, variable part +32; ScopeFlags bits) and \
         src/objects/scope-info.h kScopeInfoMaxInlinedLocalNamesSize = 75; checked \
         against the disassembly of ScopeInfo::InferredFunctionName in Node 22 \
         (and in a Node 20 core)",
    ),
    (
        V13_6,
        NEXT,
        ScopeInfoLayout {
            flags_is_smi: false,
            variable_part: 48,
            ..SCOPE_INFO_12_4
        },
        "src/objects/scope-info.tq (flags: ScopeFlags, a uint32 at +8 with \
         optional_padding; parameter_count +16, context_local_count +24, \
         position_info +32, variable part +48)",
    ),
];

/// Where a wasm frame's names come from on one V8 line: heap-object fields
/// v8dbg does not export, and the C++ objects of src/wasm/ (NativeModule,
/// WasmCode), which have no postmortem metadata at all. Offsets of C++
/// objects are from the object's start; heap-object offsets from the
/// untagged pointer. Each row was checked against cores of that line's
/// official arm64 and x64 builds (a WasmCode found through its
/// NativeModule's `owned_code_` must hold the frame's pc, carry the
/// function index V8 printed and its module's address).
#[derive(Debug, Clone, Copy)]
pub struct WasmLayout {
    /// fp-relative slot of the instance (WasmFrameConstants::
    /// kWasmInstanceOffset, later kWasmInstanceDataOffset).
    pub frame_instance: i64,
    /// WASM_INSTANCE_OBJECT_TYPE where v8dbg does not export it.
    pub instance_object_type: Option<u16>,
    /// From the slot's WasmTrustedInstanceData to its WasmInstanceObject
    /// (12.4 on: the slot holds the trusted data); `None` where the slot
    /// holds the WasmInstanceObject itself.
    pub instance_data_instance_object: Option<i64>,
    /// WasmInstanceObject's module object field.
    pub instance_module_object: i64,
    /// WasmModuleObject's managed native module field.
    pub module_object_native_module: i64,
    /// WasmModuleObject's script field.
    pub module_object_script: i64,
    /// Foreign's address (a raw pointer: official builds have no sandbox).
    pub foreign_address: i64,
    /// ManagedPtrDestructor::shared_ptr_ptr_ (src/objects/managed.h).
    pub managed_shared_ptr_ptr: u64,
    /// NativeModule::owned_code_ (a std::map, followed by new_owned_code_,
    /// a std::vector), on x86-64 and on arm64: up to 12.4 it follows
    /// base::RecursiveMutex members, whose pthread_mutex_t is 40 bytes on
    /// x86-64 and 48 on arm64.
    pub native_module_owned_code: ArchOffset,
    /// NativeModule::wire_bytes_ (std::shared_ptr<OwnedVector<uint8_t>>).
    pub native_module_wire_bytes: u64,
    /// WasmCode's native module pointer.
    pub code_native_module: u64,
    /// WasmCode's instructions pointer.
    pub code_instructions: u64,
    /// WasmCode's meta data pointer.
    pub code_meta_data: u64,
    /// WasmCode's instruction size.
    pub code_instructions_size: u64,
    /// WasmCode's relocation info size.
    pub code_reloc_info_size: u64,
    /// WasmCode's source positions size.
    pub code_source_positions_size: u64,
    /// meta_data_ holds protected instructions, relocation info, then
    /// source positions.
    pub code_protected_instructions_size: u64,
    /// WasmCode's function index.
    pub code_index: u64,
    /// WasmCode's flags.
    pub code_flags: u64,
    /// ExecutionTierField of `flags_`: after KindField (2 bits, 3 with
    /// V8_ENABLE_DRUMBRAKE, which Node.js 26 builds have).
    pub code_tier_shift: u8,
    /// Mask of the ExecutionTierField.
    pub code_tier_mask: u8,
    /// ExecutionTier::kLiftoff and kTurbofan (src/wasm/wasm-tier.h).
    pub tier_liftoff: u8,
    /// ExecutionTier::kTurbofan.
    pub tier_turbofan: u8,
}

/// An offset that differs between the architectures' C++ ABIs.
#[derive(Debug, Clone, Copy)]
pub struct ArchOffset {
    /// The offset on x86-64.
    pub x86_64: u64,
    /// The offset on arm64.
    pub aarch64: u64,
}

impl ArchOffset {
    /// The offset for `arch`.
    pub fn for_arch(self, arch: crate::arch::ArchKind) -> u64 {
        match arch {
            crate::arch::ArchKind::X86_64 => self.x86_64,
            crate::arch::ArchKind::Aarch64 => self.aarch64,
        }
    }
}

/// Node.js 22's values; the other lines vary them.
const WASM_12_4: WasmLayout = WasmLayout {
    frame_instance: -16,
    instance_object_type: None,
    instance_data_instance_object: Some(0xa0),
    instance_module_object: 0x20,
    module_object_native_module: 0x18,
    module_object_script: 0x20,
    foreign_address: 8,
    managed_shared_ptr_ptr: 0x18,
    native_module_owned_code: ArchOffset {
        x86_64: 0x188,
        aarch64: 0x198,
    },
    native_module_wire_bytes: 0xc8,
    code_native_module: 0,
    code_instructions: 8,
    code_meta_data: 0x10,
    code_instructions_size: 0x18,
    code_reloc_info_size: 0x1c,
    code_source_positions_size: 0x20,
    code_protected_instructions_size: 0x28,
    code_index: 0x2c,
    code_flags: 0x50,
    code_tier_shift: 2,
    code_tier_mask: 3,
    tier_liftoff: 1,
    tier_turbofan: 2,
};

/// Node.js 24's values, which 14.6 varies: WasmCode gained a word after
/// `instructions_` and `deopt_data_size_`.
const WASM_13_6: WasmLayout = WasmLayout {
    instance_data_instance_object: Some(0x98),
    // 13.x's mutexes are abseil's, the same on both.
    native_module_owned_code: ArchOffset {
        x86_64: 0x138,
        aarch64: 0x138,
    },
    native_module_wire_bytes: 0xf0,
    code_meta_data: 0x18,
    code_instructions_size: 0x20,
    code_reloc_info_size: 0x24,
    code_source_positions_size: 0x28,
    code_protected_instructions_size: 0x34,
    code_index: 0x38,
    code_flags: 0x60,
    ..WASM_12_4
};

const WASM_LAYOUTS: &[(V8Version, V8Version, WasmLayout, &str)] = &[
    (
        V10_2,
        V11_3,
        WasmLayout {
            instance_object_type: Some(2142),
            instance_data_instance_object: None,
            instance_module_object: 0xd0,
            module_object_script: 0x28,
            native_module_owned_code: ArchOffset {
                x86_64: 0x1a0,
                aarch64: 0x1a8,
            },
            native_module_wire_bytes: 0x138,
            code_flags: 0x10,
            code_meta_data: 0x18,
            code_instructions_size: 0x20,
            code_reloc_info_size: 0x24,
            code_source_positions_size: 0x28,
            code_protected_instructions_size: 0x2c,
            code_index: 0x30,
            ..WASM_12_4
        },
        "src/wasm/wasm-code-manager.h (10.2): WasmCode is native_module_, \
         instructions_, flags_, meta_data_, then the int sizes (no inlining \
         positions) and index_; src/wasm/wasm-objects.h: the frame holds the \
         WasmInstanceObject, module_object after its raw fields; \
         WasmModuleObject has export_wrappers before script",
    ),
    (
        V11_3,
        V12_4,
        WasmLayout {
            instance_object_type: Some(2154),
            instance_data_instance_object: None,
            instance_module_object: 0xd0,
            native_module_owned_code: ArchOffset {
                x86_64: 0x130,
                aarch64: 0x138,
            },
            ..WASM_12_4
        },
        "src/wasm/wasm-code-manager.h (11.3): WasmCode as 12.4 \
         (meta_data_ after instructions_, inlining_positions_size_); the \
         frame holds the WasmInstanceObject",
    ),
    (
        V12_4,
        V13_6,
        WASM_12_4,
        "src/wasm/wasm-code-manager.h (12.4); src/wasm/wasm-objects.h: the \
         frame holds WasmTrustedInstanceData (kWasmInstanceDataOffset)",
    ),
    (
        V13_6,
        V14_6,
        WASM_13_6,
        "src/wasm/wasm-code-manager.h (13.6): signature_hash_ after \
         instructions_, deopt_data_size_ before protected_instructions_size_",
    ),
    (
        V14_6,
        NEXT,
        WasmLayout {
            instance_data_instance_object: Some(0x68),
            native_module_owned_code: ArchOffset {
                x86_64: 0x130,
                aarch64: 0x130,
            },
            native_module_wire_bytes: 0xe8,
            code_flags: 0x78,
            code_tier_shift: 3,
            ..WASM_13_6
        },
        "src/wasm/wasm-code-manager.h (14.6): code_pointer_handle_ after \
         instructions_; KindField is 3 bits (V8_ENABLE_DRUMBRAKE)",
    ),
];

/// The wasm layout of a V8 line.
pub fn wasm_layout(version: V8Version) -> Option<WasmLayout> {
    WASM_LAYOUTS
        .iter()
        .find(|(since, until, _, _)| version >= *since && version < *until)
        .map(|(_, _, l, _)| *l)
}

/// Deoptimization translation opcodes of one V8 line
/// (src/deoptimizer/translation-opcode.h, TRANSLATION_OPCODE_LIST: the
/// opcode is the list position; official builds have WebAssembly, so the
/// IF_WASM entries count).
#[derive(Debug, Clone, Copy)]
pub struct TranslationOpcodes {
    /// Operand count per opcode; its length is kNumTranslationOpcodes.
    pub operand_counts: &'static [u8],
    /// INTERPRETED_FRAME_WITH_RETURN.
    pub interpreted_with_return: u8,
    /// INTERPRETED_FRAME_WITHOUT_RETURN.
    pub interpreted_without_return: u8,
    /// The other frame opcodes (TRANSLATION_FRAME_OPCODE_LIST and the
    /// JavaScript builtin continuations): `first..=last`.
    pub other_frames: (u8, u8),
    /// BEGIN_WITHOUT_FEEDBACK.
    pub begin_without_feedback: u8,
    /// BEGIN_WITH_FEEDBACK.
    pub begin_with_feedback: u8,
    /// TAGGED_STACK_SLOT.
    pub tagged_stack_slot: u8,
    /// MATCH_PREVIOUS_TRANSLATION.
    pub match_previous: u8,
}

impl TranslationOpcodes {
    /// kNumTranslationOpcodes.
    pub fn count(&self) -> u8 {
        self.operand_counts.len() as u8
    }
    /// Whether `opcode` begins a translation.
    pub fn is_begin(&self, opcode: u8) -> bool {
        opcode == self.begin_with_feedback || opcode == self.begin_without_feedback
    }
    /// Whether `opcode` is a frame other than an interpreted one.
    pub fn is_other_frame(&self, opcode: u8) -> bool {
        (self.other_frames.0..=self.other_frames.1).contains(&opcode)
    }
}

/// V8 13.6 and 14.6 (the same list in both): INTERPRETED_FRAME_WITH_RETURN
/// (6: bytecode offset, SFI literal, bytecode literal, height, return value
/// offset and count), INTERPRETED_FRAME_WITHOUT_RETURN (4), the builtin
/// continuations (3, 3), CONSTRUCT_CREATE_STUB (2), CONSTRUCT_INVOKE_STUB
/// (1), BUILTIN_CONTINUATION (3), JS_TO_WASM_BUILTIN_CONTINUATION (4),
/// WASM_INLINED_INTO_JS (3), LIFTOFF (3), INLINED_EXTRA_ARGUMENTS (3),
/// ARGUMENTS_ELEMENTS (1), ARGUMENTS_LENGTH, REST_LENGTH (0),
/// BEGIN_WITHOUT_FEEDBACK, BEGIN_WITH_FEEDBACK (3), then the value opcodes
/// through UPDATE_FEEDBACK (2) and MATCH_PREVIOUS_TRANSLATION (1).
const TRANSLATION_OPCODES_13_6: TranslationOpcodes = TranslationOpcodes {
    operand_counts: &[
        6, 4, 3, 3, 2, 1, 3, 4, 3, 3, 3, // frames
        1, 0, 0, 3, 3, // ARGUMENTS_ELEMENTS .. BEGIN_WITH_FEEDBACK
        1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, // BOOL_REGISTER .. UNSIGNED_BIGINT64_STACK_SLOT
        0, 1, 1, 1, 1, 1, 2, 1, // OPTIMIZED_OUT .. MATCH_PREVIOUS_TRANSLATION
    ],
    interpreted_with_return: 0,
    interpreted_without_return: 1,
    other_frames: (2, 10),
    begin_without_feedback: 14,
    begin_with_feedback: 15,
    tagged_stack_slot: 40,
    match_previous: 44,
};

/// Where the fields of V8's C++ `Deoptimizer` object are, in 8-byte words
/// from its start (no v8dbg constant covers them). crosswind reads the
/// object only while its deoptimization entry builtin runs
/// `Deoptimizer::ComputeOutputFrames`, when the deoptimized frame is off
/// the stack. `caller_frame_top_`, `caller_fp_` and `caller_pc_` follow
/// one another in every line; the first is found by its value, which the
/// builtin's stack pointer gives.
#[derive(Debug, Clone, Copy)]
pub struct DeoptimizerLayout {
    /// `function_`, after `isolate_`.
    pub function: usize,
    /// `compiled_code_`.
    pub compiled_code: usize,
    /// `deopt_exit_index_` (an unsigned int in the word's low half).
    pub deopt_exit_index: usize,
    /// Words searched for `caller_frame_top_`.
    pub scan_words: usize,
}

const DEOPTIMIZER_10_2: DeoptimizerLayout = DeoptimizerLayout {
    function: 1,
    compiled_code: 2,
    deopt_exit_index: 3,
    scan_words: 40,
};

/// Deoptimizer by V8 line: `(since, until, layout, source)`.
const DEOPTIMIZER_LAYOUTS: &[(V8Version, V8Version, DeoptimizerLayout, &str)] = &[
    (
        V10_2,
        V13_6,
        DEOPTIMIZER_10_2,
        "src/deoptimizer/deoptimizer.h (10.2, 11.3, 12.4): isolate_, function_, \
         compiled_code_, deopt_exit_index_, ... caller_frame_top_, caller_fp_, \
         caller_pc_",
    ),
    (
        V13_6,
        NEXT,
        DeoptimizerLayout {
            deopt_exit_index: 4,
            ..DEOPTIMIZER_10_2
        },
        "src/deoptimizer/deoptimizer.h (13.6, 14.6): compiled_optimized_wasm_code_ \
         (V8_ENABLE_WEBASSEMBLY, on in Node.js) comes before deopt_exit_index_",
    ),
];

/// The Deoptimizer layout of a V8 line.
pub fn deoptimizer_layout(version: V8Version) -> Option<DeoptimizerLayout> {
    DEOPTIMIZER_LAYOUTS
        .iter()
        .find(|(since, until, _, _)| version >= *since && version < *until)
        .map(|(_, _, l, _)| *l)
}

/// The translation opcodes of a V8 line, where crosswind reads
/// translations (the lines with Maglev).
pub fn translation_opcodes(version: V8Version) -> Option<TranslationOpcodes> {
    (version >= V13_6 && version < NEXT).then_some(TRANSLATION_OPCODES_13_6)
}

/// The ScopeInfo layout of a V8 line.
pub fn scope_info_layout(version: V8Version) -> Option<ScopeInfoLayout> {
    SCOPE_INFO_LAYOUTS
        .iter()
        .find(|(since, until, _, _)| version >= *since && version < *until)
        .map(|(_, _, l, _)| *l)
}

/// What V8's async stack trace walk reads (src/execution/isolate.cc,
/// `CaptureAsyncStackTrace`), none of it exported as `v8dbg_*`. Offsets
/// are from the untagged object start, for 64-bit builds without pointer
/// compression or the sandbox, as official Node.js builds are.
#[derive(Debug, Clone, Copy)]
pub struct AsyncLayout {
    /// JSGeneratorObject (src/objects/js-generator.tq): JSObject's map,
    /// properties and elements, then `function`, `context`, `receiver`,
    /// `input_or_debug_pos`, `resume_mode`, `continuation`,
    /// `parameters_and_registers`.
    pub generator_function: i64,
    /// `input_or_debug_pos`: while suspended, the bytecode offset of the
    /// suspend point, from the tagged BytecodeArray pointer.
    pub generator_input_or_debug_pos: i64,
    /// `continuation`: a Smi, negative while executing or closed.
    pub generator_continuation: i64,
    /// JSAsyncFunctionObject's `promise`, after the generator's fields.
    pub async_function_promise: i64,
    /// JSAsyncGeneratorObject's `queue`, after the generator's fields.
    pub async_generator_queue: i64,
    /// AsyncGeneratorRequest (a Struct: map, then `next`, `resume_mode`,
    /// `value`, `promise`).
    pub generator_request_promise: i64,
    /// JSPromise (src/objects/js-promise.tq): `reactions_or_result`, then
    /// `flags`, right after JSObject's header (Node.js's embedder field
    /// comes after them).
    pub promise_reactions_or_result: i64,
    /// JSPromise's `flags`: a Smi whose low two bits are the state
    /// (0 pending).
    pub promise_flags: i64,
    /// PromiseReaction (src/objects/promise.tq, a Struct): `next`,
    /// `reject_handler`, `fulfill_handler`, `promise_or_capability`.
    pub reaction_next: i64,
    /// PromiseReaction's `reject_handler`.
    pub reaction_reject_handler: i64,
    /// PromiseReaction's `fulfill_handler`.
    pub reaction_fulfill_handler: i64,
    /// PromiseReaction's `promise_or_capability`.
    pub reaction_promise_or_capability: i64,
    /// PromiseCapability's `promise` (a Struct: map, then `promise`).
    pub capability_promise: i64,
    /// JSReceiver's `properties_or_hash`: a Smi identity hash in promise
    /// combinators' element closures, holding the element's index plus one.
    pub receiver_properties_or_hash: i64,
    /// Context::EXTENSION_INDEX (src/objects/contexts.h): the await
    /// closure's context keeps the generator object there.
    pub context_extension_index: i64,
    /// Where a builtin's SharedFunctionInfo holds its builtin id, a Smi.
    pub sfi_builtin_id: i64,
    /// Size of one `BuiltinMetadata` (src/builtins/builtins.cc: the name,
    /// the kind, a union), whose array lists builtins in id order.
    pub builtin_metadata_size: u64,
}

const ASYNC_10_2: AsyncLayout = AsyncLayout {
    generator_function: 24,
    generator_input_or_debug_pos: 48,
    generator_continuation: 64,
    async_function_promise: 80,
    async_generator_queue: 80,
    generator_request_promise: 32,
    promise_reactions_or_result: 24,
    promise_flags: 32,
    reaction_next: 8,
    reaction_reject_handler: 16,
    reaction_fulfill_handler: 24,
    reaction_promise_or_capability: 32,
    capability_promise: 8,
    receiver_properties_or_hash: 8,
    context_extension_index: 2,
    sfi_builtin_id: 8,
    builtin_metadata_size: 24,
};

/// 12.4 on: PromiseReaction starts with `continuation_preserved_embedder_data`
/// (src/objects/promise.tq), which moves its other fields one slot on.
const ASYNC_12_4: AsyncLayout = AsyncLayout {
    reaction_next: 16,
    reaction_reject_handler: 24,
    reaction_fulfill_handler: 32,
    reaction_promise_or_capability: 40,
    ..ASYNC_10_2
};

const ASYNC_LAYOUTS: &[(V8Version, V8Version, AsyncLayout, &str)] = &[
    (
        V10_2,
        V12_4,
        ASYNC_10_2,
        "src/objects/js-generator.tq, js-promise.tq, promise.tq (PromiseReaction: \
         next, reject_handler, fulfill_handler, promise_or_capability, then \
         continuation_preserved_embedder_data), contexts.h; \
         SharedFunctionInfo::function_data holds the builtin id \
         (src/objects/shared-function-info-inl.h HasBuiltinId)",
    ),
    (
        V12_4,
        V13_6,
        ASYNC_12_4,
        "as 10.2, with continuation_preserved_embedder_data first in \
         PromiseReaction (src/objects/promise.tq)",
    ),
    (
        V13_6,
        NEXT,
        AsyncLayout {
            sfi_builtin_id: 16,
            ..ASYNC_12_4
        },
        "as 12.4, but SharedFunctionInfo's function data is split in two and \
         the builtin id is in untrusted_function_data, after trusted_function_data \
         (src/objects/shared-function-info.tq)",
    ),
];

/// The async stack trace layout of a V8 line.
pub fn async_layout(version: V8Version) -> Option<AsyncLayout> {
    ASYNC_LAYOUTS
        .iter()
        .find(|(since, until, _, _)| version >= *since && version < *until)
        .map(|(_, _, l, _)| *l)
}

/// The fallback for `name` at `version`.
pub fn fallback(name: &str, version: V8Version) -> Option<&'static Fallback> {
    FALLBACKS
        .iter()
        .find(|f| f.name == name && version >= f.since && version < f.until)
}

/// Whether crosswind has been checked against this V8 line.
pub fn is_supported(version: V8Version) -> bool {
    SUPPORTED.iter().any(|(v, _)| *v == version)
}

/// The supported lines as a user reads them: `12.4 (Node.js 22)`.
pub fn supported_list() -> String {
    SUPPORTED
        .iter()
        .map(|((a, b), n)| format!("{a}.{b} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fallback` takes the first row that matches: two rows of one name
    /// must never cover the same version.
    #[test]
    fn no_overlapping_rows() {
        for (i, a) in FALLBACKS.iter().enumerate() {
            assert!(a.since < a.until, "{}: empty range", a.name);
            for b in &FALLBACKS[i + 1..] {
                if a.name == b.name {
                    assert!(
                        a.until <= b.since || b.until <= a.since,
                        "{}: rows overlap",
                        a.name
                    );
                }
            }
        }
        for (i, (a_since, a_until, _, _)) in SCOPE_INFO_LAYOUTS.iter().enumerate() {
            for (b_since, b_until, _, _) in &SCOPE_INFO_LAYOUTS[i + 1..] {
                assert!(
                    a_until <= b_since || b_until <= a_since,
                    "ScopeInfo rows overlap"
                );
            }
        }
        for (i, (a_since, a_until, _, _)) in ASYNC_LAYOUTS.iter().enumerate() {
            for (b_since, b_until, _, _) in &ASYNC_LAYOUTS[i + 1..] {
                assert!(
                    a_until <= b_since || b_until <= a_since,
                    "async rows overlap"
                );
            }
        }
        for (i, (a_since, a_until, _, _)) in WASM_LAYOUTS.iter().enumerate() {
            for (b_since, b_until, _, _) in &WASM_LAYOUTS[i + 1..] {
                assert!(
                    a_until <= b_since || b_until <= a_since,
                    "wasm rows overlap"
                );
            }
        }
    }

    /// Every supported line resolves the values the walker cannot do
    /// without when the binary does not export them.
    #[test]
    fn every_supported_line_has_its_rows() {
        for (v, _) in SUPPORTED {
            assert!(scope_info_layout(*v).is_some(), "{v:?}: no ScopeInfo row");
            assert!(wasm_layout(*v).is_some(), "{v:?}: no wasm row");
            assert!(async_layout(*v).is_some(), "{v:?}: no async row");
            if let Some(ops) = translation_opcodes(*v) {
                // kNumTranslationOpcodes is 45 in 13.6 and 14.6.
                assert_eq!(ops.count(), 45, "{v:?}");
                assert_eq!(ops.match_previous, ops.count() - 1, "{v:?}");
            }
            for name in [
                "CodeKindMaglev",
                "CodeKindTurbofan",
                "CodeKindRegexp",
                "DeoptimizationDataDeoptExitStartIndex",
                "DeoptimizationDataFirstDeoptEntryIndex",
            ] {
                assert!(fallback(name, *v).is_some(), "{v:?}: no {name}");
            }
        }
    }
}
