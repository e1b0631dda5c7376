//! V8 introspection: which code is V8's, what kind of frame a frame
//! pointer heads, and how to name a JavaScript frame the way V8's own stack
//! traces do (function, script, line, column, tier, inlined frames).
//!
//! Layouts come from [`layout`] (the binary's `v8dbg_*` symbols, then the
//! version table in [`versions`]); nothing here hard-codes an offset.

pub mod heap;
pub mod layout;
pub mod positions;
pub mod properties;
pub mod property_layout;
pub mod scopeinfo;
pub mod symbols;
pub mod translation;
pub mod versions;
pub mod wasm;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use heap::Heap;
use layout::Layout;
use positions::{BytecodeSizes, PositionEntry, SourcePosition};

use crate::error::Result;
use crate::memory::Memory;
use crate::module::Module;

/// The tier that produced a JavaScript frame's code.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Interpreted,
    Baseline,
    Maglev,
    Turbofan,
    Builtin,
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
    pub column: Option<u32>,
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
        symbol: String,
        function: Option<String>,
    },
    /// A typed frame: entry, exit, construct, internal, stub, ...
    Stub {
        name: String,
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
    pub caller_fp: u64,
    pub caller_pc: u64,
    pub caller_sp: u64,
}

/// A frame's description plus what the walker needs to step past it.
#[derive(Debug, Clone)]
pub struct V8FrameInfo {
    pub frame: V8Frame,
    /// True for entry frames (C++ called into JS): the caller is restored
    /// from the entry frame's saved registers.
    pub is_entry: bool,
}

#[derive(Debug)]
struct ScriptInfo {
    name: String,
    line_ends: Vec<i64>,
    line_offset: i64,
    column_offset: i64,
}

#[derive(Debug)]
struct FunctionInfo {
    name: String,
    script: Option<Rc<ScriptInfo>>,
}

/// Fields of a cached object that must still hold for the cache entry to
/// apply (a moved or replaced object changes them).
type CacheKey = [u64; 3];

/// A cache by object address, each entry with the key that validates it.
type Cache<T> = RefCell<HashMap<u64, (CacheKey, Rc<T>)>>;

/// A found code object.
struct CodeObject {
    code: u64,
    start: u64,
    kind: u32,
}

/// Names of the builtins whose frames are interpreted frames
/// (`Code::is_interpreter_trampoline_builtin` and the baseline
/// trampolines, src/objects/code-inl.h).
const INTERPRETER_BUILTINS: &[&str] = &[
    "Builtins_InterpreterEntryTrampoline",
    "Builtins_InterpreterEntryTrampolineForProfiling",
    "Builtins_InterpreterEnterAtBytecode",
    "Builtins_InterpreterEnterAtNextBytecode",
    "Builtins_InterpreterOnStackReplacement",
    "Builtins_BaselineOrInterpreterEnterAtBytecode",
    "Builtins_BaselineOrInterpreterEnterAtNextBytecode",
];

/// Builtins that build an entry frame (C++ calling into JavaScript): the
/// C++ caller's registers sit above their frame record
/// (src/builtins/arm64/builtins-arm64.cc Generate_JSEntryVariant).
const ENTRY_BUILTINS: &[&str] = &[
    "Builtins_JSEntry",
    "Builtins_JSConstructEntry",
    "Builtins_JSRunMicrotasksEntry",
];

/// Slot of a BuiltinExitFrame's target JSFunction above fp
/// (frame-constants.h `BuiltinExitFrameConstants::kTargetOffset`: the
/// caller's fp and pc, then new.target, then the target).
const BUILTIN_EXIT_TARGET_SLOT: i64 = 3;

/// Page granularity of V8's copy of the embedded builtins.
const BLOB_PAGE: u64 = 4096;

/// Bytes from the start of a page that identify it in the blob index.
const PAGE_PROBE: usize = 32;

/// Indexes the binary's builtin pages by their first bytes (read from the
/// file; a module replayed from a snapshot has no file, and no index).
fn index_blob_pages(exe: &Module, blob: (u64, u64)) -> HashMap<[u8; PAGE_PROBE], Vec<u64>> {
    let mut index: HashMap<[u8; PAGE_PROBE], Vec<u64>> = HashMap::new();
    let mut page = blob.0 & !(BLOB_PAGE - 1);
    while page < blob.1 {
        let mut probe = [0u8; PAGE_PROBE];
        if exe.read(page, &mut probe) {
            index.entry(probe).or_default().push(page);
        }
        page += BLOB_PAGE;
    }
    index
}

/// Most bytes of deoptimization exits before a pc that is read to find
/// which exit it is.
const MAX_DEOPT_EXITS_BYTES: u64 = 64 << 10;

/// How far back from a pc the walker looks for the start of its
/// InstructionStream before giving up.
const MAX_CODE_SCAN: u64 = 4 << 20;
/// Bytes of a Maglev safepoint table read at most.
const MAX_SAFEPOINT_TABLE_BYTES: usize = 64 << 10;

/// V8 knowledge bound to one binary and one process.
/// The frame types of wasm code itself (src/execution/frames.h): Liftoff
/// and TurboFan functions, and wasm code that called out to C.
const WASM_CODE_FRAMES: &[&str] = &["WasmFrame", "WasmExitFrame"];

pub struct V8Runtime {
    pub layout: Layout,
    arch: &'static dyn crate::arch::Arch,
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
    /// Per NativeModule address, its functions' body offsets and names
    /// (validated by the wire bytes' address and length).
    wasm_modules: RefCell<HashMap<u64, Rc<wasm::ModuleInfo>>>,
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
        Ok(V8Runtime {
            layout,
            arch: exe.arch.arch(),
            blob,
            blob_pages,
            copy_delta: std::cell::Cell::new(None),
            checked_pages: RefCell::new(std::collections::HashSet::new()),
            builtins,
            interpreter,
            bytecode_sizes,
            translations: RefCell::new(HashMap::new()),
            scripts: RefCell::new(HashMap::new()),
            functions: RefCell::new(HashMap::new()),
            tables: RefCell::new(HashMap::new()),
            wasm_modules: RefCell::new(HashMap::new()),
        })
    }

    /// `pc` as an address in the binary's builtins when it is in V8's copy
    /// of them.
    fn in_binary(&self, pc: u64) -> u64 {
        match self.copy_delta.get() {
            Some(d) if !(self.blob.0..self.blob.1).contains(&pc) => pc.wrapping_sub(d),
            _ => pc,
        }
    }

    /// Checks once per page whether `pc` (outside every module) lies in a
    /// copy of the embedded builtins: its page must equal a page of the
    /// binary's builtins at the same offset (V8 copies them page-aligned),
    /// and the copy's start must equal the binary's.
    pub fn locate_builtin_copy(&self, pc: u64, mem: &dyn Memory) {
        if self.copy_delta.get().is_some() || self.blob_pages.is_empty() {
            return;
        }
        let page = pc & !(BLOB_PAGE - 1);
        if !self.checked_pages.borrow_mut().insert(page) {
            return;
        }
        let mut probe = [0u8; PAGE_PROBE];
        if mem.read(page, &mut probe).is_err() {
            // A core leaves the copy out (its pages equal the binary's),
            // but keeps its segment: one of exactly the builtins' size.
            let blob_start = self.blob.0 & !(BLOB_PAGE - 1);
            let blob_len = self.blob.1.saturating_sub(blob_start).div_ceil(BLOB_PAGE) * BLOB_PAGE;
            if let Some((start, end)) = mem.mapping_at(pc) {
                if end - start == blob_len && start % BLOB_PAGE == 0 {
                    self.copy_delta.set(Some(start.wrapping_sub(blob_start)));
                }
            }
            return;
        }
        let Some(candidates) = self.blob_pages.get(&probe) else {
            return;
        };
        let mut found = None;
        for &binary_page in candidates {
            let delta = page.wrapping_sub(binary_page);
            let (mut here, mut there) = ([0u8; PAGE_PROBE], [0u8; PAGE_PROBE]);
            let same_pc = mem.read(pc, &mut here).is_ok()
                && mem.read(pc.wrapping_sub(delta), &mut there).is_ok()
                && here == there;
            let same_start = mem.read(self.blob.0.wrapping_add(delta), &mut here).is_ok()
                && mem.read(self.blob.0, &mut there).is_ok()
                && here == there;
            if same_pc && same_start {
                if found.is_some_and(|f| f != delta) {
                    return;
                }
                found = Some(delta);
            }
        }
        self.copy_delta.set(found);
    }

    /// Whether `pc` is in V8 code: an embedded builtin (or its copy in
    /// the code range) or a Code object's instructions.
    pub fn is_code_at(&self, pc: u64, mem: &dyn Memory) -> bool {
        if self.builtin_at(pc).is_some() {
            return true;
        }
        // Unmapped (or undumped) addresses are not code; the back-scan is
        // for addresses that could be.
        if mem.mapping_at(pc).is_none() && mem.read_u64(pc).is_err() {
            return false;
        }
        let heap = Heap {
            layout: &self.layout,
            mem,
        };
        self.scan_for_code(&heap, pc).is_some()
    }

    /// The `Builtins_*` symbol containing `pc`.
    pub fn builtin_at(&self, pc: u64) -> Option<&str> {
        let pc = self.in_binary(pc);
        let idx = self.builtins.partition_point(|(s, _, _)| *s <= pc);
        let (s, e, n) = self.builtins.get(idx.checked_sub(1)?)?;
        (pc >= *s && pc < *e).then_some(n.as_str())
    }

    /// Whether `pc` is in one of the deoptimization entry builtins
    /// (`DeoptimizationEntry_Eager`, `_Lazy`, ...).
    pub fn is_deoptimization_entry(&self, pc: u64) -> bool {
        self.builtin_at(pc)
            .is_some_and(|n| n.starts_with("Builtins_DeoptimizationEntry"))
    }

    /// Whether `pc` is in a builtin that builds an entry frame.
    pub fn is_entry_builtin(&self, pc: u64) -> bool {
        self.builtin_at(pc)
            .is_some_and(|n| ENTRY_BUILTINS.contains(&n))
    }

    fn is_interpreter(&self, pc: u64) -> bool {
        let pc = self.in_binary(pc);
        self.interpreter.iter().any(|&(s, e)| pc >= s && pc < e)
    }

    /// Where the code containing `pc` starts: its builtin's symbol, or its
    /// InstructionStream in JIT memory.
    /// Where optimized code compiled for on-stack replacement ends (its
    /// deoptimization data has an OSR entry), or None for any other code.
    /// Such code is entered from a loop with the unoptimized frame's record
    /// already built, so it never runs in an unbuilt frame whatever its
    /// first instructions. `start` is the code's instruction start.
    pub fn osr_code_end(&self, start: u64, mem: &dyn Memory) -> Option<u64> {
        let heap = Heap {
            layout: &self.layout,
            mem,
        };
        let l = &self.layout;
        let code = self.code_at_start(&heap, start)?;
        self.optimized_tier(code.kind)?;
        let deopt = heap.field(code.code, l.code_deopt_data?)?;
        let osr_pc = heap.smi(heap.array_get(deopt, l.deopt_osr_pc_offset_index?)?)?;
        if osr_pc < 0 {
            return None;
        }
        let size = heap.field_u32(code.code, l.code_instruction_size)? as u64;
        Some(start.wrapping_add(size))
    }

    /// Where the code containing `pc` starts: its builtin's symbol, or its
    /// InstructionStream in JIT memory.
    pub fn code_start(&self, pc: u64, mem: &dyn Memory) -> Option<u64> {
        let at = self.in_binary(pc);
        let idx = self.builtins.partition_point(|(s, _, _)| *s <= at);
        if let Some((s, e, _)) = idx.checked_sub(1).and_then(|i| self.builtins.get(i)) {
            if at < *e {
                // In the copy, the start is the copy's.
                return Some(s.wrapping_add(pc.wrapping_sub(at)));
            }
        }
        let heap = Heap {
            layout: &self.layout,
            mem,
        };
        self.scan_for_code(&heap, pc).map(|c| c.start)
    }

    /// Start of the code of `function` that contains `pc` (its current or
    /// baseline code, else found by scanning back from `pc`).
    pub fn function_code_start(&self, function: u64, pc: u64, mem: &dyn Memory) -> Option<u64> {
        let heap = Heap {
            layout: &self.layout,
            mem,
        };
        self.find_code(&heap, pc, function).map(|c| c.start)
    }

    /// The JSFunction of the JavaScript frame whose frame pointer is `fp`.
    pub fn frame_function(&self, fp: u64, mem: &dyn Memory) -> Option<u64> {
        let heap = Heap {
            layout: &self.layout,
            mem,
        };
        let f = mem
            .read_u64(fp.wrapping_add_signed(self.layout.fp_function))
            .ok()?;
        heap.is_js_function(f).then_some(f)
    }

    /// A JSFunction's name as its SharedFunctionInfo holds it.
    pub fn function_name(&self, function: u64, mem: &dyn Memory) -> String {
        let heap = Heap {
            layout: &self.layout,
            mem,
        };
        self.function_info(&heap, function).name.clone()
    }

    /// The first instruction of a JSFunction's current code: its optimized
    /// or baseline code, or the interpreter entry trampoline.
    pub fn function_entry(&self, function: u64, mem: &dyn Memory) -> Option<u64> {
        let heap = Heap {
            layout: &self.layout,
            mem,
        };
        let code = heap.field(function, self.layout.jsfunction_code?)?;
        self.code_object(&heap, code).map(|c| c.start)
    }

    /// Describes a leaf whose frame is not built (prologue or epilogue):
    /// the function comes from the JSFunction register, not the frame.
    pub fn describe_unbuilt(&self, pc: u64, function: Option<u64>, mem: &dyn Memory) -> V8Frame {
        let heap = Heap {
            layout: &self.layout,
            mem,
        };
        let function = function.filter(|&f| heap.is_js_function(f));
        let builtin = self.builtin_at(pc).map(str::to_string);
        // Past the teardown of its frame (the trampoline's epilogue) the
        // function is gone from the JSFunction register: the leaf is the
        // trampoline itself.
        let interpreter_with_function = self.is_interpreter(pc) && function.is_some();
        if builtin.is_none() && function.is_none() {
            if let Some(code) = self.scan_for_code(&heap, pc) {
                // Compiled regular expressions run without a JSFunction.
                if Some(code.kind) == self.layout.code_kind_regexp {
                    return V8Frame::Stub {
                        name: "RegExp".into(),
                        symbol: None,
                    };
                }
                if let Some(frames) = self.optimized_frames_by_code(&heap, &code, pc) {
                    return V8Frame::Js(frames);
                }
            }
        }
        if interpreter_with_function || builtin.is_none() {
            let mut frames = match function {
                Some(f) if !self.is_interpreter(pc) => {
                    // No frame pointer of its own: baseline positions,
                    // which need the frame's bytecode slot, stay unknown.
                    self.compiled_frames(&heap, pc, 0, true, f)
                }
                _ => {
                    let tier = if self.is_interpreter(pc) {
                        Tier::Interpreted
                    } else {
                        Tier::Unknown
                    };
                    vec![self.blank_frame(&heap, function, tier)]
                }
            };
            // In a prologue or epilogue the code has no position of its
            // own; V8 reports function entry (bytecode offset -1) as the
            // first position of the bytecode, and so does crosswind.
            if let (Some(f), [frame]) = (function, frames.as_mut_slice()) {
                if frame.line.is_none() {
                    let pos = self
                        .function_bytecode(&heap, f)
                        .and_then(|bc| self.bytecode_position(&heap, bc, -1));
                    self.fill_position(&heap, frame, f, pos);
                }
            }
            return V8Frame::Js(frames);
        }
        V8Frame::Builtin {
            symbol: builtin.unwrap_or_default(),
            function: function
                .filter(|&f| self.is_native_function(&heap, f))
                .map(|f| self.function_info(&heap, f).name.clone())
                .filter(|n| !n.is_empty()),
        }
    }

    /// Describes the V8 frame whose frame pointer is `fp` and whose pc is
    /// `pc` (a return address unless `is_leaf`).
    pub fn describe(&self, pc: u64, fp: u64, is_leaf: bool, mem: &dyn Memory) -> V8FrameInfo {
        let heap = Heap {
            layout: &self.layout,
            mem,
        };
        let l = &self.layout;
        let builtin = self.builtin_at(pc).map(str::to_string);
        let marker = mem
            .read_u64(fp.wrapping_add_signed(l.fp_context_or_marker))
            .ok();
        if let Some(m) = marker.and_then(|m| heap.frame_marker(m)) {
            let name = l
                .frame_type_name(m)
                .map(str::to_string)
                .unwrap_or_else(|| format!("FrameType{m}"));
            let is_entry = m == l.frame_entry || m == l.frame_construct_entry;
            if WASM_CODE_FRAMES.contains(&name.as_str()) {
                if let Some(frame) = self.wasm_frame(&heap, pc, fp, is_leaf) {
                    return V8FrameInfo {
                        frame: V8Frame::Wasm(frame),
                        is_entry: false,
                    };
                }
            }
            if Some(m) == l.frame_builtin_exit {
                let target = mem
                    .read_u64(fp.wrapping_add(BUILTIN_EXIT_TARGET_SLOT as u64 * l.tagged_size))
                    .ok()
                    .filter(|&t| heap.is_js_function(t))
                    // API functions (up to 11.x entered through a builtin
                    // exit frame too) are not in V8's stack traces.
                    .filter(|&t| !self.is_api_function(&heap, t));
                if let Some(t) = target {
                    return V8FrameInfo {
                        frame: V8Frame::Builtin {
                            symbol: builtin.unwrap_or(name),
                            function: Some(self.function_info(&heap, t).name.clone()),
                        },
                        is_entry: false,
                    };
                }
            }
            return V8FrameInfo {
                frame: V8Frame::Stub {
                    name,
                    symbol: builtin,
                },
                is_entry,
            };
        }
        let function = mem
            .read_u64(fp.wrapping_add_signed(l.fp_function))
            .ok()
            .filter(|&f| heap.is_js_function(f));
        if self.is_interpreter(pc) {
            let mut frame = self.interpreted_frame(&heap, fp, function);
            if let Some(f) = function {
                self.name_from_receiver(&heap, fp, f, &mut frame);
                // A leaf in the trampoline before its first dispatch has no
                // bytecode offset saved yet: it is at function entry.
                if is_leaf && frame.line.is_none() {
                    let pos = self
                        .function_bytecode(&heap, f)
                        .and_then(|bc| self.bytecode_position(&heap, bc, -1));
                    self.fill_position(&heap, &mut frame, f, pos);
                }
            }
            return V8FrameInfo {
                frame: V8Frame::Js(vec![frame]),
                is_entry: false,
            };
        }
        if let Some(symbol) = builtin {
            // Only builtins exposed to JavaScript (`native` SFIs such as
            // Array.prototype.map) show in V8's stack traces; internal
            // closures (await reactions, the module resume function) do not
            // (CallSiteBuilder::IsNotHidden, src/execution/isolate.cc).
            let function = function
                .filter(|&f| self.is_native_function(&heap, f))
                .map(|f| self.function_info(&heap, f).name.clone())
                .filter(|n| !n.is_empty());
            return V8FrameInfo {
                frame: V8Frame::Builtin { symbol, function },
                is_entry: false,
            };
        }
        // Up to V8 11.x the JS-to-wasm wrapper of an exported function is
        // compiled code run as that JSFunction's frame; V8's stack traces
        // do not show it (StackFrame::JS_TO_WASM).
        if function.is_some_and(|f| self.is_wasm_export(&heap, f)) {
            return V8FrameInfo {
                frame: V8Frame::Stub {
                    name: "JsToWasmFrame".into(),
                    symbol: None,
                },
                is_entry: false,
            };
        }
        // Compiled regular expressions run without a JSFunction in the
        // frame (src/regexp/*/regexp-macro-assembler-*.cc).
        if function.is_none()
            && self
                .scan_for_code(&heap, pc)
                .is_some_and(|c| Some(c.kind) == l.code_kind_regexp)
        {
            return V8FrameInfo {
                frame: V8Frame::Stub {
                    name: "RegExp".into(),
                    symbol: None,
                },
                is_entry: false,
            };
        }
        let mut frames = match function {
            Some(f) => self.compiled_frames(&heap, pc, fp, is_leaf, f),
            None => vec![JsFrame {
                function: String::new(),
                file: String::new(),
                line: None,
                column: None,
                tier: Tier::Unknown,
                inlined: false,
            }],
        };
        if let (Some(f), Some(outer)) = (function, frames.last_mut()) {
            self.name_from_receiver(&heap, fp, f, outer);
        }
        V8FrameInfo {
            frame: V8Frame::Js(frames),
            is_entry: false,
        }
    }

    /// Names the frame's function as `JSFunction::GetDebugName` does (an own
    /// `name` data property wins), and an anonymous function after the
    /// property of its receiver that holds it, as V8's stack traces do
    /// (`Module._compile`). Only the
    /// physical frame has its receiver on the stack; inlined frames keep
    /// the name their function has.
    fn name_from_receiver(&self, heap: &Heap, fp: u64, function: u64, frame: &mut JsFrame) {
        let Some(props) = self.layout.properties.as_ref() else {
            return;
        };
        if let Some(name) = properties::own_data_string(heap, props, function, "name") {
            frame.function = name;
        }
        if !frame.function.is_empty() {
            return;
        }
        let Some(off) = self.layout.fp_receiver else {
            return;
        };
        let Ok(receiver) = heap.mem.read_u64(fp.wrapping_add_signed(off)) else {
            return;
        };
        if let Some(name) = properties::method_name(heap, props, receiver, function) {
            frame.function = name;
        }
    }

    /// Whether a JSFunction is an API function: its SFI's function data is
    /// a FunctionTemplateInfo.
    fn is_api_function(&self, heap: &Heap, function: u64) -> bool {
        let l = &self.layout;
        l.sfi_function_data
            .and_then(|off| heap.field(heap.field(function, l.jsfunction_shared)?, off))
            .is_some_and(|data| heap.has_type(data, l.type_function_template_info))
    }

    /// Whether `function` is an exported WebAssembly function (its
    /// SharedFunctionInfo's data is WasmExportedFunctionData).
    fn is_wasm_export(&self, heap: &Heap, function: u64) -> bool {
        let l = &self.layout;
        l.type_wasm_exported_function_data.is_some()
            && l.sfi_function_data
                .and_then(|off| heap.field(heap.field(function, l.jsfunction_shared)?, off))
                .is_some_and(|data| heap.has_type(data, l.type_wasm_exported_function_data))
    }

    /// Names the wasm code frame at `fp` (see `wasm.rs`); `None` where the
    /// line has no wasm layout or the frame's objects do not check out.
    fn wasm_frame(&self, heap: &Heap, pc: u64, fp: u64, is_leaf: bool) -> Option<wasm::WasmFrame> {
        let l = &self.layout;
        let namer = wasm::WasmNamer {
            heap,
            layout: l.wasm.as_ref()?,
            arch: self.arch.kind(),
            encoding: l.position_table_encoding,
            instance_object_type: l.type_wasm_instance_object,
            module_object_type: l.type_wasm_module_object,
            script_type: l.type_script,
            script_name: l.script_name,
            script_managed_native_module: l.script_wasm_native_module,
        };
        namer.describe(fp, pc, is_leaf, &self.wasm_modules)
    }

    /// Whether the function's SharedFunctionInfo has the `native` flag;
    /// true when the layout does not say (the name then decides).
    fn is_native_function(&self, heap: &Heap, function: u64) -> bool {
        let l = &self.layout;
        let (Some(flags_off), Some(bit)) = (l.sfi_flags, l.sfi_native_bit) else {
            return true;
        };
        heap.field(function, l.jsfunction_shared)
            .and_then(|sfi| heap.field_u32(sfi, flags_off))
            .is_none_or(|flags| flags & (1 << bit) != 0)
    }

    fn interpreted_frame(&self, heap: &Heap, fp: u64, function: Option<u64>) -> JsFrame {
        let l = &self.layout;
        let mut frame = self.blank_frame(heap, function, Tier::Interpreted);
        let bytecode = heap
            .mem
            .read_u64(fp.wrapping_add_signed(l.fp_bytecode_array))
            .ok();
        let offset = heap
            .mem
            .read_u64(fp.wrapping_add_signed(l.fp_bytecode_offset))
            .ok()
            .and_then(|v| heap.smi(v))
            // The slot holds the offset from the tagged BytecodeArray pointer
            // (src/execution/frames.cc InterpretedFrame::GetBytecodeOffset).
            .map(|v| v - (l.bytecode_array_header - l.heap_object_tag as i64));
        if let (Some(bc), Some(off), Some(f)) = (bytecode, offset, function) {
            self.fill_position(heap, &mut frame, f, self.bytecode_position(heap, bc, off));
        }
        frame
    }

    /// The function a deoptimization entry builtin at `pc` is deoptimizing,
    /// when it is in `Deoptimizer::ComputeOutputFrames` with `deoptimizer`
    /// saved on its stack and `caller_frame_top` the top of the caller's
    /// frame (see `Arch::deoptimizer_on_stack`). V8 marks the stack not
    /// iterable then; the Deoptimizer still holds the caller's frame
    /// pointer and pc and which deoptimization exit was taken.
    pub fn deoptimizing(
        &self,
        pc: u64,
        deoptimizer: u64,
        caller_frame_top: u64,
        mem: &dyn Memory,
    ) -> Option<DeoptimizingFrame> {
        const MAX_CALLER_FRAME: u64 = 16 << 20;
        const MAX_TOP_SLACK: u64 = 16;
        if !self.is_deoptimization_entry(pc) {
            return None;
        }
        let d = versions::deoptimizer_layout(self.layout.version)?;
        let bytes = mem.read_vec(deoptimizer, d.scan_words * 8).ok()?;
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        // The builtin's arithmetic leaves its stack pointer up to two
        // slots below V8's caller_frame_top_ (it drops the frame up to the
        // parameter count, then keeps sp aligned).
        let top_at = (d.deopt_exit_index + 1..words.len().saturating_sub(2)).find(|&i| {
            words[i] >= caller_frame_top && words[i] - caller_frame_top <= MAX_TOP_SLACK
        })?;
        let caller_frame_top = words[top_at];
        let (caller_fp, caller_pc) = (words[top_at + 1], words[top_at + 2]);
        if caller_fp < caller_frame_top
            || caller_fp - caller_frame_top > MAX_CALLER_FRAME
            || caller_pc == 0
        {
            return None;
        }
        let heap = Heap {
            layout: &self.layout,
            mem,
        };
        let function = *words.get(d.function)?;
        let frames = heap
            .is_js_function(function)
            .then(|| {
                let code = self.code_object(&heap, *words.get(d.compiled_code)?)?;
                let tier = self.optimized_tier(code.kind)?;
                let exit = i64::from(*words.get(d.deopt_exit_index)? as u32);
                self.translated_frames(&heap, &code, exit, function, tier)
                    .or_else(|| {
                        self.deopt_entry_frame(&heap, &code, exit, function, tier)
                            .map(|f| vec![f])
                    })
            })
            .flatten()
            .unwrap_or_default();
        Some(DeoptimizingFrame {
            frame: V8Frame::Js(frames),
            caller_fp,
            caller_pc,
            caller_sp: caller_frame_top,
        })
    }

    /// An interpreted frame the interpreter is moving to Sparkplug code
    /// (`InterpreterOnStackReplacement_ToBaseline`, src/builtins/<arch>/
    /// builtins-<arch>.cc): the builtin has put the feedback cell where the
    /// bytecode offset was and keeps the offset in a register while it
    /// calls C++ for the baseline pc. `bytecode_offset` is that register's
    /// value as unwound to this frame. `None` for any other frame.
    pub fn interpreted_frame_moving_to_baseline(
        &self,
        pc: u64,
        fp: u64,
        bytecode_offset: u64,
        mem: &dyn Memory,
    ) -> Option<V8Frame> {
        let heap = Heap {
            layout: &self.layout,
            mem,
        };
        let l = &self.layout;
        if !self.is_interpreter(pc) {
            return None;
        }
        let slot = mem
            .read_u64(fp.wrapping_add_signed(l.fp_bytecode_offset))
            .ok()?;
        if !heap.is_heap_object(slot) {
            return None;
        }
        let function = mem
            .read_u64(fp.wrapping_add_signed(l.fp_function))
            .ok()
            .filter(|&f| heap.is_js_function(f))?;
        let bytecode = mem
            .read_u64(fp.wrapping_add_signed(l.fp_bytecode_array))
            .ok()?;
        let length = heap.smi(heap.field(bytecode, l.bytecode_array_length)?)?;
        let offset = i64::try_from(bytecode_offset)
            .ok()
            .filter(|o| (0..length).contains(o))?;
        let mut frame = self.blank_frame(&heap, Some(function), Tier::Interpreted);
        let position = self.bytecode_position(&heap, bytecode, offset);
        self.fill_position(&heap, &mut frame, function, position);
        frame.line?;
        Some(V8Frame::Js(vec![frame]))
    }

    fn blank_frame(&self, heap: &Heap, function: Option<u64>, tier: Tier) -> JsFrame {
        let info = function.map(|f| self.function_info(heap, f));
        JsFrame {
            function: info.as_ref().map(|i| i.name.clone()).unwrap_or_default(),
            file: info
                .as_ref()
                .and_then(|i| i.script.as_ref())
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            line: None,
            column: None,
            tier,
            inlined: false,
        }
    }

    fn fill_position(&self, heap: &Heap, frame: &mut JsFrame, function: u64, pos: Option<i64>) {
        let info = self.function_info(heap, function);
        if let (Some(pos), Some(script)) = (pos, info.script.as_ref()) {
            let (line, col) = line_column(script, pos);
            frame.line = Some(line);
            frame.column = Some(col);
        }
    }

    /// The BytecodeArray of a function: its SharedFunctionInfo's function
    /// data, or the bytecode its baseline code was compiled from.
    fn function_bytecode(&self, heap: &Heap, function: u64) -> Option<u64> {
        self.sfi_bytecode(heap, heap.field(function, self.layout.jsfunction_shared)?)
    }

    /// The BytecodeArray of a SharedFunctionInfo (see `function_bytecode`).
    fn sfi_bytecode(&self, heap: &Heap, sfi: u64) -> Option<u64> {
        let l = &self.layout;
        let data = heap.field(sfi, l.sfi_function_data?)?;
        if heap.has_type(data, l.type_bytecode_array) {
            return Some(data);
        }
        if heap.has_type(data, l.type_code) {
            let inner = heap.field(data, l.code_deopt_data?)?;
            if heap.has_type(inner, l.type_bytecode_array) {
                return Some(inner);
            }
        }
        None
    }

    /// Script offset of a bytecode offset in a BytecodeArray.
    fn bytecode_position(&self, heap: &Heap, bytecode: u64, offset: i64) -> Option<i64> {
        let table_field = self.layout.bytecode_array_positions?;
        let table = heap.field(bytecode, table_field)?;
        let entries = self.position_table(heap, table)?;
        // Function entry (-1) maps to the first position.
        let pos = positions::position_at(&entries, offset.max(0))?;
        Some(pos.script_offset())
    }

    /// The fields that identify an object for the caches: its map and two
    /// more words.
    fn cache_key(&self, heap: &Heap, obj: u64, a: i64, b: i64) -> CacheKey {
        [
            heap.field(obj, self.layout.map).unwrap_or(0),
            heap.field(obj, a).unwrap_or(0),
            heap.field(obj, b).unwrap_or(0),
        ]
    }

    /// What `cache` holds for `obj` while its `key` still matches; else
    /// what `make` builds, kept under that key.
    fn cached<T>(
        cache: &Cache<T>,
        obj: u64,
        key: CacheKey,
        make: impl FnOnce() -> Option<T>,
    ) -> Option<Rc<T>> {
        if let Some((k, v)) = cache.borrow().get(&obj) {
            if *k == key {
                return Some(v.clone());
            }
        }
        let value = Rc::new(make()?);
        cache.borrow_mut().insert(obj, (key, value.clone()));
        Some(value)
    }

    /// The cache key of a byte array: its map, length and first bytes.
    fn byte_array_key(&self, heap: &Heap, arr: u64) -> CacheKey {
        let l = &self.layout;
        self.cache_key(heap, arr, l.fixed_array_length, l.fixed_array_data)
    }

    fn position_table(&self, heap: &Heap, table: u64) -> Option<Rc<Vec<PositionEntry>>> {
        let key = self.byte_array_key(heap, table);
        Self::cached(&self.tables, table, key, || {
            let bytes = self.byte_array(heap, table)?;
            Some(positions::decode_position_table(
                &bytes,
                self.layout.position_table_encoding,
            ))
        })
    }

    /// A DeoptimizationFrameTranslation's bytes, read once per object (each
    /// Maglev frame at a call decodes its code's translation).
    fn translation_bytes(&self, heap: &Heap, arr: u64) -> Option<Rc<Vec<u8>>> {
        let key = self.byte_array_key(heap, arr);
        Self::cached(&self.translations, arr, key, || self.byte_array(heap, arr))
    }

    /// Contents of a (Trusted)ByteArray: Smi length, then bytes.
    fn byte_array(&self, heap: &Heap, arr: u64) -> Option<Vec<u8>> {
        if !heap.is_heap_object(arr) {
            return None;
        }
        let len = heap.array_length(arr)?;
        if !(0..=(64 << 20)).contains(&len) {
            return None;
        }
        let base = arr
            .wrapping_sub(self.layout.heap_object_tag)
            .wrapping_add_signed(self.layout.fixed_array_data);
        heap.mem.read_vec(base, len as usize).ok()
    }

    fn compiled_frames(
        &self,
        heap: &Heap,
        pc: u64,
        fp: u64,
        is_leaf: bool,
        function: u64,
    ) -> Vec<JsFrame> {
        let l = &self.layout;
        let Some(code) = self.find_code(heap, pc, function) else {
            return vec![self.blank_frame(heap, Some(function), Tier::Unknown)];
        };
        let pc = match is_leaf {
            false => self.lazy_deopt_return(heap, &code, pc).unwrap_or(pc),
            true => pc,
        };
        let pc_offset = pc - code.start;
        if code.kind == l.code_kind_baseline {
            let mut frame = self.blank_frame(heap, Some(function), Tier::Baseline);
            let pos = (|| {
                let bc = heap
                    .mem
                    .read_u64(fp.wrapping_add_signed(l.fp_bytecode_array))
                    .ok()?;
                let table = heap.field(code.code, l.code_position_table?)?;
                let table = self.byte_array(heap, table)?;
                let bytecodes = self.byte_array_raw(heap, bc)?;
                let off = positions::baseline_bytecode_offset(
                    &table,
                    &bytecodes,
                    self.bytecode_sizes.as_ref()?,
                    pc_offset,
                )?;
                self.bytecode_position(heap, bc, off)
            })();
            self.fill_position(heap, &mut frame, function, pos);
            return vec![frame];
        }
        let tier = self.optimized_tier(code.kind).unwrap_or(Tier::Unknown);
        // Return addresses point after the call; V8 looks up pc - 1
        // (Code::SourcePosition).
        let lookup = if is_leaf {
            pc_offset
        } else {
            pc_offset.saturating_sub(1)
        };
        let pos = (|| {
            let table = heap.field(code.code, l.code_position_table?)?;
            let entries = self.position_table(heap, table)?;
            positions::position_at(&entries, lookup as i64)
        })();
        // At a call in Maglev code V8 summarizes the frame from the
        // deoptimization entry of the call's safepoint, not from the
        // position table, which on-stack-replaced code leaves at the loop
        // header; the entry's bytecode offset places the outermost frame.
        // Frames of functions Maglev inlined are placed the same way, by the
        // bytecode offsets of the entry's translation.
        if !is_leaf && tier == Tier::Maglev {
            if let Some(frames) = self.maglev_translated_frames(heap, &code, pc_offset, function) {
                return frames;
            }
            if pos.is_none_or(|p| p.inlining_id() < 0) {
                if let Some(frame) = self.maglev_call_frame(heap, &code, pc_offset, function) {
                    return vec![frame];
                }
            }
        }
        match pos {
            Some(p) => match heap.field(function, l.jsfunction_shared) {
                Some(sfi) => self.inlined_frames(heap, &code, sfi, p, tier),
                None => vec![self.blank_frame(heap, Some(function), tier)],
            },
            None => {
                let mut frame = self.blank_frame(heap, Some(function), tier);
                // A leaf before the code's first position (just past the
                // prologue) is at function entry, as unbuilt leaves are.
                if is_leaf {
                    let entry = self
                        .function_bytecode(heap, function)
                        .and_then(|bc| self.bytecode_position(heap, bc, -1));
                    self.fill_position(heap, &mut frame, function, entry);
                }
                vec![frame]
            }
        }
    }

    /// The outermost frame of Maglev code at the call returning to
    /// `pc_offset`, placed by the bytecode offset of the deoptimization
    /// entry its safepoint names.
    fn maglev_call_frame(
        &self,
        heap: &Heap,
        code: &CodeObject,
        pc_offset: u64,
        function: u64,
    ) -> Option<JsFrame> {
        let deopt_index = self.maglev_deopt_index(heap, code, pc_offset)??;
        self.deopt_entry_frame(heap, code, deopt_index, function, Tier::Maglev)
    }

    /// The outermost frame of optimized code at deoptimization entry
    /// `deopt_index`, placed by the entry's bytecode offset.
    fn deopt_entry_frame(
        &self,
        heap: &Heap,
        code: &CodeObject,
        deopt_index: i64,
        function: u64,
        tier: Tier,
    ) -> Option<JsFrame> {
        let l = &self.layout;
        let deopt = heap.field(code.code, l.code_deopt_data?)?;
        let index = l.deopt_first_entry_index?
            + deopt_index * l.deopt_entry_size?
            + l.deopt_bytecode_offset_offset?;
        let bytecode_offset = heap.smi(heap.array_get(deopt, index)?)?;
        let bytecode = self.function_bytecode(heap, function)?;
        let pos = self.bytecode_position(heap, bytecode, bytecode_offset)?;
        let mut frame = self.blank_frame(heap, Some(function), tier);
        self.fill_position(heap, &mut frame, function, Some(pos));
        Some(frame)
    }

    /// The frames of Maglev code at the call returning to `pc_offset`,
    /// innermost first, as V8 summarizes them: the interpreter frames of
    /// the translation of the deoptimization entry the call's safepoint
    /// names, each placed at its bytecode offset.
    fn maglev_translated_frames(
        &self,
        heap: &Heap,
        code: &CodeObject,
        pc_offset: u64,
        function: u64,
    ) -> Option<Vec<JsFrame>> {
        let l = &self.layout;
        // Without the line's opcode table no translation can be read.
        l.translation_opcodes?;
        let Some(deopt_index) = self.maglev_deopt_index(heap, code, pc_offset)? else {
            // No deoptimization point at this safepoint: V8 summarizes the
            // frame as its function at entry, without inlined frames
            // (OptimizedJSFrame::Summarize, src/execution/frames.cc).
            let mut frame = self.blank_frame(heap, Some(function), Tier::Maglev);
            let entry = self
                .function_bytecode(heap, function)
                .and_then(|bc| self.bytecode_position(heap, bc, -1));
            self.fill_position(heap, &mut frame, function, entry);
            return Some(vec![frame]);
        };
        self.translated_frames(heap, code, deopt_index, function, Tier::Maglev)
    }

    /// The interpreter frames, innermost first, that the translation of
    /// deoptimization entry `deopt_index` of optimized code lists, each
    /// placed at its bytecode offset; `function` must be the outermost.
    fn translated_frames(
        &self,
        heap: &Heap,
        code: &CodeObject,
        deopt_index: i64,
        function: u64,
        tier: Tier,
    ) -> Option<Vec<JsFrame>> {
        let l = &self.layout;
        let ops = l.translation_opcodes?;
        let deopt = heap.field(code.code, l.code_deopt_data?)?;
        let entry = l.deopt_first_entry_index? + deopt_index * l.deopt_entry_size?;
        let start = heap.smi(heap.array_get(deopt, entry + l.deopt_translation_index_offset?)?)?;
        let translations = heap.array_get(deopt, l.deopt_frame_translation_index?)?;
        let bytes = self.translation_bytes(heap, translations)?;
        let frames = translation::interpreted_frames(&bytes, usize::try_from(start).ok()?, &ops)?;
        let literals = heap.array_get(deopt, l.deopt_literal_array_index?)?;
        let outer_sfi = heap.field(function, l.jsfunction_shared)?;
        let mut out = Vec::with_capacity(frames.len());
        for (depth, f) in frames.iter().enumerate().rev() {
            let sfi = heap.unwrap_sfi(heap.strip_weak(heap.array_get(literals, f.shared_info)?))?;
            // The outermost frame is the function whose frame this is.
            if depth == 0 && sfi != outer_sfi {
                return None;
            }
            let bytecode = self.sfi_bytecode(heap, sfi)?;
            let offset = self.bytecode_position(heap, bytecode, f.bytecode_offset)?;
            let info = self.sfi_info(heap, sfi);
            let script = info.script.as_ref()?;
            let (line, column) = line_column(script, offset);
            out.push(JsFrame {
                function: info.name.clone(),
                file: script.name.clone(),
                line: Some(line),
                column: Some(column),
                tier,
                inlined: depth != 0,
            });
        }
        Some(out)
    }

    /// The deoptimization index of the safepoint of Maglev code at
    /// `pc_offset`: `Some(None)` for a safepoint without one (Maglev
    /// emits no lazy deoptimization point for its function-entry and loop
    /// stack checks).
    fn maglev_deopt_index(
        &self,
        heap: &Heap,
        code: &CodeObject,
        pc_offset: u64,
    ) -> Option<Option<i64>> {
        let l = &self.layout;
        let header = l.maglev_safepoints?;
        // The safepoint table opens the metadata, right after the
        // instructions (Code::safepoint_table_offset is 0).
        let size = heap.field_u32(code.code, l.code_instruction_size)? as u64;
        if pc_offset >= size {
            return None;
        }
        let table_start = code.start.checked_add(size)?;
        let head = heap.mem.read_vec(table_start, header.size).ok()?;
        let table_size = positions::maglev_safepoint_table_size(&head, header)?;
        if table_size > MAX_SAFEPOINT_TABLE_BYTES {
            return None;
        }
        let table = heap.mem.read_vec(table_start, table_size).ok()?;
        let entry =
            positions::find_maglev_safepoint(&table, header, u32::try_from(pc_offset).ok()?)?;
        Some(entry.deopt_index.map(i64::from))
    }

    /// For a frame whose return address V8 redirected to its code's lazy
    /// deoptimization exit (the function was deoptimized while on the
    /// stack: src/deoptimizer/deoptimizer.cc, ActivationsFinder replaces
    /// the pc with the call's trampoline pc), the return address of the
    /// call the frame is really in. The exits come one call each, eager
    /// then lazy, in deoptimization-entry order, so the calls before the pc
    /// count the entry, whose Pc is the original return offset.
    fn lazy_deopt_return(&self, heap: &Heap, code: &CodeObject, pc: u64) -> Option<u64> {
        let l = &self.layout;
        // Only optimized code has deoptimization exits; baseline code
        // keeps its BytecodeArray where the deoptimization data would be.
        self.optimized_tier(code.kind)?;
        let deopt = heap.field(code.code, l.code_deopt_data?)?;
        let exit_start = heap.smi(heap.array_get(deopt, l.deopt_exit_start_index?)?)?;
        let exits = code.start.checked_add(u64::try_from(exit_start).ok()?)?;
        if pc < exits || pc - exits > MAX_DEOPT_EXITS_BYTES {
            return None;
        }
        let bytes = heap.mem.read_vec(exits, (pc - exits) as usize).ok()?;
        let target = (pc - exits) as usize;
        let (mut at, mut before) = (0usize, 0i64);
        while at < target {
            let (len, is_call) = self.arch.deopt_exit_insn(bytes.get(at..)?)?;
            before += i64::from(is_call);
            at += len;
        }
        // The pc must be the start of an exit, as V8 leaves it.
        if at != target {
            return None;
        }
        let entry = l.deopt_first_entry_index? + before * l.deopt_entry_size? + l.deopt_pc_offset?;
        let return_offset = heap.smi(heap.array_get(deopt, entry)?)?;
        code.start.checked_add(u64::try_from(return_offset).ok()?)
    }

    /// Expands a position in optimized code into the inlining stack, as
    /// `SourcePosition::InliningStack` does with the code's deoptimization
    /// data: each inlined level names its function and the position of the
    /// call in its caller.
    fn inlined_frames(
        &self,
        heap: &Heap,
        code: &CodeObject,
        outer_sfi: u64,
        pos: SourcePosition,
        tier: Tier,
    ) -> Vec<JsFrame> {
        let l = &self.layout;
        let mut out = Vec::new();
        let mut pos = pos;
        let deopt = l.code_deopt_data.and_then(|off| heap.field(code.code, off));
        let mut guard = 0;
        while pos.inlining_id() >= 0 && guard < 256 {
            guard += 1;
            let Some(step) = deopt.and_then(|d| self.inlining_step(heap, d, pos.inlining_id()))
            else {
                break;
            };
            let (sfi, caller_pos) = step;
            out.push(self.positioned_frame(heap, sfi, pos, tier, true));
            pos = caller_pos;
        }
        out.push(self.positioned_frame(heap, outer_sfi, pos, tier, false));
        out
    }

    /// The frame of a SharedFunctionInfo at a script position.
    fn positioned_frame(
        &self,
        heap: &Heap,
        sfi: u64,
        pos: SourcePosition,
        tier: Tier,
        inlined: bool,
    ) -> JsFrame {
        let info = self.sfi_info(heap, sfi);
        let (line, column) = match info.script.as_ref() {
            Some(s) => {
                let (line, col) = line_column(s, pos.script_offset());
                (Some(line), Some(col))
            }
            None => (None, None),
        };
        JsFrame {
            function: info.name.clone(),
            file: info
                .script
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            line,
            column,
            tier,
            inlined,
        }
    }

    /// Frames for a leaf in optimized code whose JSFunction register no
    /// longer holds the function (an epilogue after the frame is torn
    /// down): the function comes from the code's deoptimization data.
    fn optimized_frames_by_code(
        &self,
        heap: &Heap,
        code: &CodeObject,
        pc: u64,
    ) -> Option<Vec<JsFrame>> {
        let l = &self.layout;
        let tier = self.optimized_tier(code.kind)?;
        let deopt = heap.field(code.code, l.code_deopt_data?)?;
        let sfi = heap.unwrap_sfi(heap.array_get(deopt, l.deopt_sfi_index?)?)?;
        let table = heap.field(code.code, l.code_position_table?)?;
        let entries = self.position_table(heap, table)?;
        let pos = positions::position_at(&entries, (pc - code.start) as i64)?;
        Some(self.inlined_frames(heap, code, sfi, pos, tier))
    }

    /// The tier of optimized code of `kind`, if it is optimized code.
    fn optimized_tier(&self, kind: u32) -> Option<Tier> {
        let l = &self.layout;
        if Some(kind) == l.code_kind_maglev {
            Some(Tier::Maglev)
        } else if Some(kind) == l.code_kind_turbofan {
            Some(Tier::Turbofan)
        } else {
            None
        }
    }

    /// One inlining level: the inlined function's SFI and the position of
    /// its call site, from DeoptimizationData's InliningPositions (an array
    /// of {SourcePosition, int inlined_function_id}) and LiteralArray.
    fn inlining_step(
        &self,
        heap: &Heap,
        deopt: u64,
        inlining_id: i64,
    ) -> Option<(u64, SourcePosition)> {
        let l = &self.layout;
        let positions = heap.array_get(deopt, l.deopt_inlining_positions_index?)?;
        let literals = heap.array_get(deopt, l.deopt_literal_array_index?)?;
        let bytes = self.byte_array(heap, positions)?;
        // sizeof(InliningPosition): SourcePosition (8) + int (4), padded to 16.
        let at = (inlining_id as usize).checked_mul(16)?;
        let raw_pos = i64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?);
        let fn_id = i32::from_le_bytes(bytes.get(at + 8..at + 12)?.try_into().ok()?);
        let sfi = heap.unwrap_sfi(heap.strip_weak(heap.array_get(literals, fn_id as i64)?))?;
        Some((sfi, SourcePosition(raw_pos)))
    }

    /// Bytecodes of a BytecodeArray.
    fn byte_array_raw(&self, heap: &Heap, bc: u64) -> Option<Vec<u8>> {
        let l = &self.layout;
        let len = heap.smi(heap.field(bc, l.bytecode_array_length)?)?;
        if !(0..=(64 << 20)).contains(&len) {
            return None;
        }
        let base = bc
            .wrapping_sub(l.heap_object_tag)
            .wrapping_add_signed(l.bytecode_array_header);
        heap.mem.read_vec(base, len as usize).ok()
    }

    /// The Code object whose instructions contain `pc`: the function's
    /// current code, its baseline code, or, failing both, the
    /// InstructionStream found by scanning back from `pc`.
    fn find_code(&self, heap: &Heap, pc: u64, function: u64) -> Option<CodeObject> {
        let l = &self.layout;
        let mut candidates = Vec::new();
        if let Some(c) = l.jsfunction_code.and_then(|off| heap.field(function, off)) {
            candidates.push(c);
        }
        if let (Some(off), Some(sfi)) = (
            l.sfi_function_data,
            heap.field(function, l.jsfunction_shared),
        ) {
            if let Some(d) = heap.field(sfi, off) {
                candidates.push(d);
            }
        }
        for c in candidates {
            if let Some(code) = self.code_object(heap, c) {
                let size = heap.field_u32(c, l.code_instruction_size).unwrap_or(0) as u64;
                if pc >= code.start && pc < code.start + size {
                    return Some(code);
                }
            }
        }
        self.scan_for_code(heap, pc)
    }

    fn code_object(&self, heap: &Heap, c: u64) -> Option<CodeObject> {
        let l = &self.layout;
        if !heap.has_type(c, l.type_code) {
            return None;
        }
        let start = match l.code_inline_header {
            Some(header) => c
                .wrapping_sub(l.heap_object_tag)
                .wrapping_add_signed(header),
            None => heap.field(c, l.code_instruction_start)?,
        };
        let flags = heap.field_u32(c, l.code_flags)?;
        Some(CodeObject {
            code: c,
            start,
            kind: (flags >> l.code_kind_shift) & l.code_kind_mask,
        })
    }

    /// Scans back from `pc` for an InstructionStream header whose Code
    /// points back at it: a candidate is accepted only when the Code's
    /// instruction start is the instruction start that candidate implies.
    /// The Code object whose instructions start at `start`.
    fn code_at_start(&self, heap: &Heap, start: u64) -> Option<CodeObject> {
        let l = &self.layout;
        if let Some(header) = l.code_inline_header {
            let code = start
                .wrapping_sub(header as u64)
                .wrapping_add(l.heap_object_tag);
            return self.code_object(heap, code).filter(|c| c.start == start);
        }
        let istream = start
            .wrapping_sub(l.istream_header? as u64)
            .wrapping_add(l.heap_object_tag);
        if !heap.has_type(istream, l.type_instruction_stream) {
            return None;
        }
        heap.field(istream, l.istream_code?)
            .and_then(|c| self.code_object(heap, c))
            .filter(|c| c.start == start)
    }

    fn scan_for_code(&self, heap: &Heap, pc: u64) -> Option<CodeObject> {
        let l = &self.layout;
        if let Some(header) = l.code_inline_header {
            return self.scan_for_inline_code(heap, pc, header as u64);
        }
        let header = l.istream_header? as u64;
        let code_field = l.istream_code?;
        let mut at = pc & !7;
        let stop = pc.saturating_sub(MAX_CODE_SCAN);
        while at > stop {
            let istream = at.wrapping_sub(header).wrapping_add(l.heap_object_tag);
            if heap.has_type(istream, l.type_instruction_stream) {
                if let Some(code) = heap
                    .field(istream, code_field)
                    .and_then(|c| self.code_object(heap, c))
                {
                    if code.start == at {
                        return Some(code);
                    }
                }
            }
            at -= 8;
        }
        None
    }

    /// `scan_for_code` for lines whose Code holds its instructions inline:
    /// a candidate Code header sits `header` bytes before each aligned
    /// address, and is accepted when its map says Code and its instruction
    /// size reaches past `pc`.
    fn scan_for_inline_code(&self, heap: &Heap, pc: u64, header: u64) -> Option<CodeObject> {
        let l = &self.layout;
        let mut at = pc & !7;
        let stop = pc.saturating_sub(MAX_CODE_SCAN);
        while at > stop {
            let candidate = at.wrapping_sub(header).wrapping_add(l.heap_object_tag);
            if let Some(code) = self.code_object(heap, candidate) {
                let size = heap
                    .field_u32(candidate, l.code_instruction_size)
                    .unwrap_or(0) as u64;
                if code.start == at && pc < at.saturating_add(size) {
                    return Some(code);
                }
            }
            at -= 8;
        }
        None
    }

    fn function_info(&self, heap: &Heap, function: u64) -> Rc<FunctionInfo> {
        match heap.field(function, self.layout.jsfunction_shared) {
            Some(sfi) => self.sfi_info(heap, sfi),
            None => Rc::new(FunctionInfo {
                name: String::new(),
                script: None,
            }),
        }
    }

    fn sfi_info(&self, heap: &Heap, sfi: u64) -> Rc<FunctionInfo> {
        let l = &self.layout;
        let key = self.cache_key(heap, sfi, l.sfi_name_or_scope_info, l.sfi_script);
        let make = || {
            let name = heap
                .field(sfi, l.sfi_name_or_scope_info)
                .and_then(|n| {
                    if heap.is_string(n) {
                        heap.read_string(n)
                    } else if heap.has_type(n, l.type_scope_info) {
                        scopeinfo::function_name(heap, n)
                    } else {
                        None
                    }
                })
                .unwrap_or_default();
            let script = heap
                .field(sfi, l.sfi_script)
                .filter(|&s| heap.has_type(s, l.type_script))
                .and_then(|s| self.script_info(heap, s));
            Some(FunctionInfo { name, script })
        };
        Self::cached(&self.functions, sfi, key, make).unwrap_or_else(|| {
            Rc::new(FunctionInfo {
                name: String::new(),
                script: None,
            })
        })
    }

    fn script_info(&self, heap: &Heap, script: u64) -> Option<Rc<ScriptInfo>> {
        let l = &self.layout;
        let key = self.cache_key(heap, script, l.script_source, l.script_name);
        Self::cached(&self.scripts, script, key, || {
            let name = heap
                .field(script, l.script_name)
                .filter(|&n| heap.is_string(n))
                .and_then(|n| heap.read_string(n))
                .unwrap_or_default();
            let smi_field = |off: Option<i64>| {
                off.and_then(|o| heap.field(script, o))
                    .and_then(|v| heap.smi(v))
                    .unwrap_or(0)
            };
            let line_ends = self
                .stored_line_ends(heap, script)
                .or_else(|| {
                    let src = heap.field(script, l.script_source)?;
                    Some(compute_line_ends(&heap.read_utf16(src)?))
                })
                .unwrap_or_default();
            Some(ScriptInfo {
                name,
                line_ends,
                line_offset: smi_field(l.script_line_offset),
                column_offset: smi_field(l.script_column_offset),
            })
        })
    }

    fn stored_line_ends(&self, heap: &Heap, script: u64) -> Option<Vec<i64>> {
        let arr = heap.field(script, self.layout.script_line_ends)?;
        if !heap.is_heap_object(arr) {
            return None;
        }
        let n = heap.array_length(arr)?;
        if !(1..=(16 << 20)).contains(&n) {
            return None;
        }
        let base = arr
            .wrapping_sub(self.layout.heap_object_tag)
            .wrapping_add_signed(self.layout.fixed_array_data);
        let raw = heap.mem.read_vec(base, n as usize * 8).ok()?;
        raw.chunks_exact(8)
            .map(|c| heap.smi(u64::from_le_bytes(c.try_into().ok()?)))
            .collect()
    }
}

/// Line ends as `String::CalculateLineEnds` computes them: the index of
/// every line terminator, plus the source length when the last line has
/// none.
fn compute_line_ends(src: &[u16]) -> Vec<i64> {
    let mut ends = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        let is_end =
            c == 0x0a || (c == 0x0d && src.get(i + 1) != Some(&0x0a)) || c == 0x2028 || c == 0x2029;
        if is_end {
            ends.push(i as i64);
        }
        i += 1;
    }
    if ends.last().copied() != Some(src.len() as i64 - 1) {
        ends.push(src.len() as i64);
    }
    ends
}

/// 1-based line and column of a script offset (Script::GetPositionInfo with
/// offsets applied, plus one as Error.stack prints them).
fn line_column(script: &ScriptInfo, pos: i64) -> (u32, u32) {
    let ends = &script.line_ends;
    let line = ends.partition_point(|&e| e < pos);
    let mut column = if line == 0 {
        pos
    } else {
        pos - (ends[line - 1] + 1)
    };
    if line == 0 {
        column += script.column_offset;
    }
    let line = line as i64 + script.line_offset;
    ((line + 1).max(0) as u32, (column + 1).max(0) as u32)
}

/// Reads `interpreter::Bytecodes::kBytecodeSizes` (uint8_t[3][count]) from
/// the binary, so bytecode lengths always match the V8 that wrote them.
fn read_bytecode_sizes(exe: &Module) -> Option<BytecodeSizes> {
    let name = "_ZN2v88internal11interpreter9Bytecodes14kBytecodeSizesE";
    let (_, addr, size) = exe
        .lookup_data_symbols(name)
        .into_iter()
        .find(|(n, _, _)| n == name)?;
    if size == 0 || size % 3 != 0 || size > 3 * 1024 {
        return None;
    }
    let mut sizes = vec![0u8; size as usize];
    if !exe.read(addr.wrapping_add(exe.bias), &mut sizes) {
        return None;
    }
    Some(BytecodeSizes {
        count: size as usize / 3,
        sizes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_and_columns() {
        let src: Vec<u16> = "ab\ncd\r\nef".encode_utf16().collect();
        let ends = compute_line_ends(&src);
        assert_eq!(ends, vec![2, 6, 9]);
        let s = ScriptInfo {
            name: String::new(),
            line_ends: ends,
            line_offset: 0,
            column_offset: 0,
        };
        assert_eq!(line_column(&s, 0), (1, 1));
        assert_eq!(line_column(&s, 4), (2, 2));
        assert_eq!(line_column(&s, 8), (3, 2));
    }
}
