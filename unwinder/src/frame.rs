//! The unwinder's output: frames and thread stacks, in the shape of the
//! stable JSON contract documented in `docs/json.md`.

use serde::{Deserialize, Serialize};

use crate::v8::Tier;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameKind {
    /// Native code: C, C++, the runtime.
    Native,
    /// JavaScript code.
    Js,
    /// A V8 builtin.
    Builtin,
    /// A V8 stub or typed frame (entry, exit, construct, ...).
    Stub,
    /// WebAssembly code.
    Wasm,
    /// Code the unwinder could not place.
    Unknown,
}

/// How the unwinder found this frame's registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The thread's own registers (the innermost frame).
    Context,
    /// DWARF call-frame information of the callee.
    Cfi,
    /// The callee's frame record (saved frame pointer and return address).
    FramePointer,
    /// V8's frame layout (entry frames restore the C++ caller's registers).
    V8,
    /// The link register: the callee was a leaf caught before building (or
    /// after tearing down) its frame record.
    Lr,
    /// Forward emulation of the callee until it returned.
    Emulated,
    /// Not on the stack: an awaiting caller, found through the promises
    /// the resumed async function will settle (`Frame::is_async`).
    Async,
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// What kind of code the frame runs.
    pub kind: FrameKind,
    /// Program counter (for callers, the return address).
    #[serde(serialize_with = "hex", deserialize_with = "unhex")]
    pub pc: u64,
    /// Base name of the module the pc is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Symbol the pc is in (demangled), or the V8 builtin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Function name, as V8 names JavaScript functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Script URL or file name of a JavaScript frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line of a JavaScript frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column of a JavaScript frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// The V8 tier that compiled the code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// Whether the frame is a function the optimizing compiler inlined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inlined: Option<bool>,
    /// A WebAssembly frame's function index (its `function` is the
    /// name-section name, or `wasm-function[N]`); its `line` is 1 and its
    /// `column` the module byte offset plus one, as V8's CallSite has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_function: Option<u32>,
    /// An awaiting caller V8 prints as `at async ...`: not a frame on the
    /// stack, but the async function (or promise combinator) the resumed
    /// code will go back to. Placed after the resumed chain's outermost
    /// synchronous JavaScript frame, as V8's `Error.stack` lists them.
    #[serde(default, rename = "async", skip_serializing_if = "Option::is_none")]
    pub is_async: Option<bool>,
    /// A promise combinator's element index (`at async Promise.all
    /// (index 2)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promise_index: Option<u32>,
    /// How the registers of this frame were found.
    pub method: Method,
}

fn hex<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#x}"))
}

fn unhex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    u64::from_str_radix(s.trim_start_matches("0x"), 16).map_err(serde::de::Error::custom)
}

impl Frame {
    /// A WebAssembly frame's location as V8 prints it in stack traces:
    /// `wasm://wasm/<hash>:wasm-function[N]:0x<offset>`.
    pub fn wasm_location(&self) -> Option<String> {
        let index = self.wasm_function?;
        let offset = match self.column {
            Some(c) if c > 0 => format!("{:#x}", c - 1),
            _ => "?".to_string(),
        };
        Some(format!(
            "{}:wasm-function[{index}]:{offset}",
            self.file.as_deref().unwrap_or("<anonymous>")
        ))
    }

    /// A frame with only kind, pc and method set.
    pub fn new(kind: FrameKind, pc: u64, method: Method) -> Frame {
        Frame {
            kind,
            pc,
            module: None,
            symbol: None,
            function: None,
            file: None,
            line: None,
            column: None,
            tier: None,
            inlined: None,
            wasm_function: None,
            is_async: None,
            promise_index: None,
            method,
        }
    }
}

/// Why a walk ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "reason", content = "detail")]
pub enum StopReason {
    /// The unwind information marks the outermost frame (e.g. `_start`).
    EndOfStack,
    /// The caller's program counter or frame pointer was zero.
    NullCaller,
    /// A step failed; the detail says why.
    Error(String),
    /// The frame limit was reached.
    FrameLimit,
}

/// One thread's stack, innermost frame first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadStack {
    /// Thread id.
    pub tid: u32,
    /// Whether this is the thread that crashed.
    pub crashed: bool,
    /// Frames, innermost first.
    pub frames: Vec<Frame>,
    /// Why the walk stopped.
    pub stop: StopReason,
}
