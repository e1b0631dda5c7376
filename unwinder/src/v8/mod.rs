//! V8 introspection: which code is V8's, what kind of frame a frame
//! pointer heads, and how to name a JavaScript frame the way V8's own stack
//! traces do (function, script, line, column, tier, inlined frames).
//!
//! Layouts come from [`layout`] (the binary's `v8dbg_*` symbols, then the
//! version table in [`versions`]); nothing here hard-codes an offset.
//!
//! [`V8Runtime`] is one struct whose methods live by concern: [`code`]
//! (builtins, their copy, code objects), [`describe`] (what a frame is),
//! [`deopt`] (deoptimization data and Maglev translations), [`names`]
//! (function and script names, positions, and their caches) and [`step`]
//! (how the walker steps past a V8 frame).

pub mod abi;
pub mod async_stack;
pub mod code;
pub mod deopt;
pub mod describe;
pub mod heap;
pub mod layout;
pub mod names;
pub mod positions;
pub mod properties;
pub mod property_layout;
pub mod scopeinfo;
pub mod step;
pub mod symbols;
pub mod translation;
pub mod versions;
pub mod wasm;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use code::{index_blob_pages, INTERPRETER_BUILTINS, PAGE_PROBE};
use heap::Heap;
use layout::Layout;
use names::{read_bytecode_sizes, Cache, FunctionInfo, ScriptInfo};
use positions::{BytecodeSizes, PositionEntry};

use crate::error::Result;
use crate::memory::Memory;
use crate::module::Module;

/// The tier that produced a JavaScript frame's code.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Bytecode run by the interpreter (Ignition).
    Interpreted,
    /// Baseline code (Sparkplug).
    Baseline,
    /// Optimized code from Maglev.
    Maglev,
    /// Optimized code from TurboFan.
    Turbofan,
    /// A builtin of the embedded blob.
    Builtin,
    /// Code whose tier could not be told.
    Unknown,
}

/// A JavaScript frame as V8 would report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsFrame {
    /// Bare function name; empty for top-level code and anonymous functions.
    pub function: String,
    /// Script name; empty for eval code and scripts without a name.
    pub file: String,
    /// 1-based line and column, when the position is known.
    pub line: Option<u32>,
    /// 1-based column, when known.
    pub column: Option<u32>,
    /// The tier whose code the frame runs.
    pub tier: Tier,
    /// Whether the optimizing compiler inlined this frame into its caller.
    pub inlined: bool,
}

/// What a V8 frame is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V8Frame {
    /// JavaScript, innermost (most deeply inlined) first.
    Js(Vec<JsFrame>),
    /// A builtin of the embedded blob; `function` is the JavaScript
    /// function it implements when the frame carries one.
    Builtin {
        /// The `Builtins_*` symbol.
        symbol: String,
        /// The JavaScript function it implements, if the frame carries one.
        function: Option<String>,
    },
    /// A typed frame: entry, exit, construct, internal, stub, ...
    Stub {
        /// The frame type's name (`EntryFrame`, `ExitFrame`, ...).
        name: String,
        /// The builtin the pc is in, if any.
        symbol: Option<String>,
    },
    /// WebAssembly code.
    Wasm(wasm::WasmFrame),
}

/// A function being deoptimized while `Deoptimizer::ComputeOutputFrames`
/// runs: its frame is off the stack (in the Deoptimizer's input), so its
/// description and its caller come from the Deoptimizer object.
#[derive(Debug, Clone)]
pub struct DeoptimizingFrame {
    /// The function's frames as the deoptimization entry's translation
    /// lists them, innermost first.
    pub frame: V8Frame,
    /// Its caller's frame pointer.
    pub caller_fp: u64,
    /// Its caller's pc (the return address).
    pub caller_pc: u64,
    /// Its caller's stack pointer.
    pub caller_sp: u64,
}

/// A frame's description plus what the walker needs to step past it.
#[derive(Debug, Clone)]
pub struct V8FrameInfo {
    /// What the frame is.
    pub frame: V8Frame,
    /// True for entry frames (C++ called into JS): the caller is restored
    /// from the entry frame's saved registers.
    pub is_entry: bool,
}

/// V8 knowledge bound to one binary and one process.
pub struct V8Runtime {
    /// The binary's V8 layout.
    pub layout: Layout,
    arch: &'static dyn crate::arch::Arch,
    /// V8's ABI on that architecture.
    abi: &'static dyn abi::V8Abi,
    /// The binary's embedded builtins, and an index of their pages by the
    /// first bytes of each, to recognise V8's copy of them (below).
    blob: (u64, u64),
    blob_pages: HashMap<[u8; PAGE_PROBE], Vec<u64>>,
    /// How far V8 moved its copy of the embedded builtins from the binary's
    /// (x64 remaps them into the code range for short calls:
    /// src/heap/code-range.cc CodeRange::RemapEmbeddedBuiltins), once found.
    copy_delta: std::cell::Cell<Option<u64>>,
    /// Pages already checked for being part of that copy.
    checked_pages: RefCell<std::collections::HashSet<u64>>,
    builtins: Vec<(u64, u64, String)>,
    /// The last pc `builtin_at` was asked about, and its answer (see there).
    last_builtin: std::cell::Cell<(u64, usize)>,
    interpreter: Vec<(u64, u64)>,
    bytecode_sizes: Option<BytecodeSizes>,
    // Caches keyed by object address. A garbage collection may move or
    // reuse an address between samples of a live process, so every hit is
    // validated against fields re-read from the object (its `CacheKey`).
    scripts: Cache<ScriptInfo>,
    functions: Cache<FunctionInfo>,
    tables: Cache<Vec<PositionEntry>>,
    /// Deoptimization translations (DeoptimizationFrameTranslation bytes).
    translations: Cache<Vec<u8>>,
    /// Per map, its own descriptors (for naming functions by property).
    maps: Cache<properties::MapDescriptors>,
    /// Per NativeModule address, its functions' body offsets and names
    /// (validated by the wire bytes' address and length).
    wasm_modules: RefCell<HashMap<u64, Rc<wasm::ModuleInfo>>>,
    /// Builtin names by id, for the async stack walk.
    builtin_names: async_stack::BuiltinNames,
}

impl V8Runtime {
    /// Binds to the V8 inside `exe`, reading layouts through `mem`.
    pub fn new(exe: &Module, mem: &dyn Memory) -> Result<V8Runtime> {
        let layout = Layout::resolve(exe, mem)?;
        let builtins = exe.symbol_ranges("Builtins_");
        let interpreter = builtins
            .iter()
            .filter(|(_, _, n)| INTERPRETER_BUILTINS.contains(&n.as_str()))
            .map(|(s, e, _)| (*s, *e))
            .collect();
        let bytecode_sizes = read_bytecode_sizes(exe);
        let blob = match (builtins.first(), builtins.last()) {
            (Some(first), Some(last)) => (first.0, last.1),
            _ => (0, 0),
        };
        let blob_pages = index_blob_pages(exe, blob);
        let builtin_names =
            async_stack::BuiltinNames::find(exe, versions::async_layout(layout.version).as_ref());
        Ok(V8Runtime {
            layout,
            arch: exe.arch.arch(),
            abi: abi::abi(exe.arch),
            blob,
            blob_pages,
            copy_delta: std::cell::Cell::new(None),
            checked_pages: RefCell::new(std::collections::HashSet::new()),
            builtins,
            last_builtin: std::cell::Cell::new((u64::MAX, 0)),
            interpreter,
            bytecode_sizes,
            translations: RefCell::new(HashMap::new()),
            scripts: RefCell::new(HashMap::new()),
            functions: RefCell::new(HashMap::new()),
            tables: RefCell::new(HashMap::new()),
            maps: RefCell::new(HashMap::new()),
            wasm_modules: RefCell::new(HashMap::new()),
            builtin_names,
        })
    }

    /// The heap of the process in `mem`, read through this binary's layout.
    fn heap<'a>(&'a self, mem: &'a dyn Memory) -> Heap<'a> {
        Heap {
            layout: &self.layout,
            mem,
        }
    }
}
