//! The one table of version-gated V8 knowledge: values that official Node.js
//! builds do not export as `v8dbg_*` postmortem symbols. A `v8dbg_*` value
//! always wins over this table. Each row names the V8 source it follows.

/// A V8 version as (major, minor).
pub type V8Version = (u32, u32);

/// One fallback value, valid for V8 versions in `[since, until)`.
#[derive(Debug, Clone, Copy)]
pub struct Fallback {
    pub name: &'static str,
    pub since: V8Version,
    pub until: V8Version,
    pub value: i64,
    /// The V8 file (and where useful the declaration) this value comes from.
    pub source: &'static str,
}

/// The V8 lines crosswind knows, with the Node.js line that ships each.
pub const SUPPORTED: &[(V8Version, &str)] = &[((12, 4), "Node.js 22")];

const V12_4: V8Version = (12, 4);
const V12_5: V8Version = (12, 5);

/// Fallback values. Offsets are from the start of the object (the tagged
/// pointer minus the heap-object tag), for 64-bit builds without pointer
/// compression, which is how official Node.js binaries are built.
pub const FALLBACKS: &[Fallback] = &[
    // --- Code (src/objects/code.h, CODE_DATA_FIELDS) ---
    Fallback {
        name: "class_Code__deoptimization_data_or_interpreter_data",
        since: V12_4,
        until: V12_5,
        value: 8,
        source: "src/objects/code.h CODE_DATA_FIELDS kDeoptimizationDataOrInterpreterDataOffset",
    },
    Fallback {
        name: "class_Code__position_table",
        since: V12_4,
        until: V12_5,
        value: 16,
        source: "src/objects/code.h CODE_DATA_FIELDS kPositionTableOffset",
    },
    Fallback {
        name: "CodeKindBuiltin",
        since: V12_4,
        until: V12_5,
        value: 2,
        source: "src/objects/code-kind.h CODE_KIND_LIST",
    },
    Fallback {
        name: "CodeKindRegexp",
        since: V12_4,
        until: V12_5,
        value: 3,
        source: "src/objects/code-kind.h CODE_KIND_LIST (REGEXP)",
    },
    Fallback {
        name: "CodeKindMaglev",
        since: V12_4,
        until: V12_5,
        value: 11,
        source: "src/objects/code-kind.h CODE_KIND_LIST",
    },
    Fallback {
        name: "CodeKindTurbofan",
        since: V12_4,
        until: V12_5,
        value: 12,
        source: "src/objects/code-kind.h CODE_KIND_LIST (TURBOFAN_JS)",
    },
    // --- DeoptimizationData (src/objects/deoptimization-data.h) ---
    Fallback {
        name: "DeoptimizationDataDeoptExitStartIndex",
        since: V12_4,
        until: V12_5,
        value: 8,
        source: "src/objects/deoptimization-data.h DeoptimizationData::kDeoptExitStartIndex",
    },
    Fallback {
        name: "DeoptimizationDataFirstDeoptEntryIndex",
        since: V12_4,
        until: V12_5,
        value: 11,
        source: "src/objects/deoptimization-data.h DeoptimizationData::kFirstDeoptEntryIndex",
    },
    Fallback {
        name: "DeoptimizationDataDeoptEntrySize",
        since: V12_4,
        until: V12_5,
        value: 3,
        source: "src/objects/deoptimization-data.h DeoptimizationData::kDeoptEntrySize (release builds)",
    },
    Fallback {
        name: "DeoptimizationDataPcOffset",
        since: V12_4,
        until: V12_5,
        value: 2,
        source: "src/objects/deoptimization-data.h DeoptimizationData::kPcOffset",
    },
    // --- InstructionStream (src/objects/instruction-stream.h) ---
    Fallback {
        name: "class_InstructionStream__code",
        since: V12_4,
        until: V12_5,
        value: 8,
        source: "src/objects/instruction-stream.h kCodeOffset (first field after the map)",
    },
    // --- BytecodeArray (src/objects/bytecode-array.h) ---
    Fallback {
        name: "class_BytecodeArray__source_position_table",
        since: V12_4,
        until: V12_5,
        value: 24,
        source: "src/objects/bytecode-array.h BYTECODE_ARRAY_FIELDS kSourcePositionTableOffset",
    },
    // --- SharedFunctionInfo (src/objects/shared-function-info.tq) ---
    Fallback {
        name: "class_SharedFunctionInfo__function_data",
        since: V12_4,
        until: V12_5,
        value: 8,
        source: "src/objects/shared-function-info.tq trusted_function_data (a plain tagged field without the sandbox)",
    },
    Fallback {
        name: "SharedFunctionInfo_is_native_bit",
        since: V12_4,
        until: V12_5,
        value: 5,
        source: "src/objects/shared-function-info.tq SharedFunctionInfoFlags (function_kind: 5 bits, then is_native)",
    },
    // --- Script (src/objects/script.tq) ---
    Fallback {
        name: "class_Script__line_offset",
        since: V12_4,
        until: V12_5,
        value: 24,
        source: "src/objects/script.tq line_offset: Smi",
    },
    Fallback {
        name: "class_Script__column_offset",
        since: V12_4,
        until: V12_5,
        value: 32,
        source: "src/objects/script.tq column_offset: Smi",
    },
    // --- ExternalString (src/objects/string.h) ---
    Fallback {
        name: "class_ExternalString__resource_data",
        since: V12_4,
        until: V12_5,
        value: 24,
        source: "src/objects/string.h ExternalString kResourceDataOffset (cached data pointer)",
    },
];

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
