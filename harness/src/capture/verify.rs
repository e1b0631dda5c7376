//! Checks shared by the core-dump tests, sweeps and the scenario checker
//! ([`crate::scenario::expect`]): a thread's frames against V8's own stack
//! (the oracle), and every thread reaching its entry.

use crosswind_unwinder::{Frame, FrameKind, StopReason, ThreadStack};

use crate::capture::{self, OracleFrame};

/// Frames V8's stack traces show: JavaScript frames and builtins that
/// carry their JSFunction.
pub fn visible(frames: &[Frame]) -> Vec<&Frame> {
    frames
        .iter()
        .filter(|f| {
            matches!(f.kind, FrameKind::Js | FrameKind::Wasm)
                || (f.kind == FrameKind::Builtin && f.function.is_some())
        })
        .collect()
}

pub fn compare_with_oracle(
    thread: &ThreadStack,
    oracle: &[OracleFrame],
    problems: &mut Vec<String>,
) {
    let mut ours = visible(&thread.frames);
    // Frames above the oracle's innermost frame are the abort machinery
    // (in workers a `new Function` wrapping %AbortJS), which V8's stack
    // cannot contain.
    if let Some(innermost) = oracle
        .first()
        .map(|o| o.bare_name())
        .filter(|n| !n.is_empty())
    {
        if let Some(i) = ours.iter().position(|f| {
            f.function.as_deref().map(capture::bare_name).as_deref() == Some(innermost.as_str())
        }) {
            ours.drain(..i);
        }
    }
    if ours.len() != oracle.len() {
        problems.push(format!(
            "V8 shows {} frames, crosswind {}",
            oracle.len(),
            ours.len()
        ));
    }
    for (i, (o, f)) in oracle.iter().zip(ours.iter()).enumerate() {
        let what = format!(
            "frame {i} (V8: `{}` at {:?}:{:?}:{:?})",
            o.printed_name, o.file, o.line, o.column
        );
        // Frame 0 is where the oracle was taken (`new Error` in crash(),
        // or the call of record()); the core has it at the abort or native
        // call that follows.
        for m in oracle_mismatches(o, f, i > 0) {
            problems.push(format!("{what}: {m}"));
        }
    }
}

/// How one crosswind frame differs from V8's frame `o`: the bare function
/// name, builtin or JavaScript, the file, and (with `position`) the line
/// and column. Empty when they agree.
pub fn oracle_mismatches(o: &OracleFrame, f: &Frame, position: bool) -> Vec<String> {
    let mut out = Vec::new();
    if o.is_async != (f.is_async == Some(true)) {
        out.push(format!("async is {:?}, want {}", f.is_async, o.is_async));
    }
    if o.promise_index != f.promise_index {
        out.push(format!(
            "promise index {:?}, want {:?}",
            f.promise_index, o.promise_index
        ));
    }
    let want = o.bare_name();
    let got = f.function.clone().unwrap_or_default();
    let got_bare = if o.wasm_function.is_some() {
        got.clone()
    } else {
        capture::bare_name(&got)
    };
    if got_bare != want {
        out.push(format!("function is `{got}`, want `{want}`"));
    }
    if let Some(index) = o.wasm_function {
        if f.kind != FrameKind::Wasm {
            out.push(format!("kind {:?}, want wasm", f.kind));
        }
        if f.wasm_function != Some(index) {
            out.push(format!(
                "wasm function index {:?}, want {index}",
                f.wasm_function
            ));
        }
        if f.file != o.file {
            out.push(format!("file {:?}", f.file));
        }
        if position && f.column != o.column {
            out.push(format!(
                "byte offset {}",
                f.column.map_or("unknown".to_string(), |c| format!(
                    "{:#x}",
                    c.saturating_sub(1)
                ))
            ));
        }
        return out;
    }
    match &o.file {
        None => {
            if f.kind != FrameKind::Builtin {
                out.push(format!("kind {:?}, want builtin", f.kind));
            }
        }
        Some(file) => {
            if f.kind != FrameKind::Js {
                out.push(format!("kind {:?}, want js", f.kind));
            }
            if f.file.as_deref() != Some(file.as_str()) {
                out.push(format!("file {:?}", f.file));
            }
            if position && (f.line != o.line || f.column != o.column) {
                out.push(format!("position {:?}:{:?}", f.line, f.column));
            }
        }
    }
    out
}

/// Glibc's entry points; `start_thread` and `thread_start` are static
/// functions, unnamed in Debian's cross libc without debug symbols (gdb
/// shows `??` there too), so for those the frame must be in libc and the
/// walk must end where the CFI marks the outermost frame.
const ENTRY_SYMBOLS: &[&str] = &[
    "_start",
    "__libc_start_main",
    "start_thread",
    "thread_start",
    "__clone",
    "clone3",
    "__clone3",
];

pub fn check_entry(t: &ThreadStack, problems: &mut Vec<String>) {
    check_entry_of(t.tid, &t.frames, &t.stop, problems);
}

/// [`check_entry`] on a stack's parts (a sample's, without copying it).
pub fn check_entry_of(tid: u32, frames: &[Frame], stop: &StopReason, problems: &mut Vec<String>) {
    let last = frames.last();
    let named_entry = last
        .and_then(|f| f.symbol.as_deref())
        .is_some_and(|s| ENTRY_SYMBOLS.contains(&s));
    let unnamed_libc =
        last.is_some_and(|f| f.symbol.is_none() && f.module.as_deref() == Some("libc.so.6"));
    if *stop != StopReason::EndOfStack || !(named_entry || unnamed_libc) {
        problems.push(format!(
            "thread {}: does not reach its entry (stop: {:?}, last frame: {:?})",
            tid,
            stop,
            last.map(|f| (f.symbol.clone(), f.module.clone()))
        ));
    }
    if frames.iter().any(|f| f.kind == FrameKind::Unknown) {
        problems.push(format!("thread {}: has unknown frames", tid));
    }
}

/// Whether a stack has a JavaScript frame of the script `main` (a file
/// name; V8 reports the full path).
pub fn shows_script(frames: &[Frame], main: &str) -> bool {
    frames.iter().any(|f| {
        f.kind == FrameKind::Js
            && f.file
                .as_deref()
                .is_some_and(|p| p == main || p.ends_with(&format!("/{main}")))
    })
}

/// V8's stack as frames, to match against a scenario's patterns.
pub fn oracle_as_frames(oracle: &[OracleFrame]) -> Vec<Frame> {
    oracle
        .iter()
        .map(|o| {
            let kind = if o.wasm_function.is_some() {
                FrameKind::Wasm
            } else if o.file.is_some() {
                FrameKind::Js
            } else {
                FrameKind::Builtin
            };
            let mut f = Frame::new(kind, 0, crosswind_unwinder::Method::V8);
            f.function = Some(o.bare_name());
            f.file = o.file.clone();
            f.line = o.line;
            f.column = o.column;
            f.wasm_function = o.wasm_function;
            f
        })
        .collect()
}
