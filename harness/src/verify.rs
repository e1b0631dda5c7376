//! Checks shared by the core-dump tests and the scenario runner: a
//! thread's frames against V8's own stack (the oracle), and every thread
//! reaching its entry.

use crosswind_unwinder::{Frame, FrameKind, StopReason, ThreadStack};

use crate::capture::{self, OracleFrame};

/// Frames V8's stack traces show: JavaScript frames and builtins that
/// carry their JSFunction.
pub fn visible(frames: &[Frame]) -> Vec<&Frame> {
    frames
        .iter()
        .filter(|f| {
            f.kind == FrameKind::Js || (f.kind == FrameKind::Builtin && f.function.is_some())
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
        let want = o.bare_name();
        let got = f.function.clone().unwrap_or_default();
        let what = format!(
            "frame {i} (V8: `{}` at {:?}:{:?}:{:?})",
            o.printed_name, o.file, o.line, o.column
        );
        if capture::bare_name(&got) != want {
            problems.push(format!("{what}: function is `{got}`, want `{want}`"));
        }
        match &o.file {
            None => {
                if f.kind != FrameKind::Builtin {
                    problems.push(format!("{what}: kind {:?}, want builtin", f.kind));
                }
            }
            Some(file) => {
                if f.kind != FrameKind::Js {
                    problems.push(format!("{what}: kind {:?}, want js", f.kind));
                }
                if f.file.as_deref() != Some(file.as_str()) {
                    problems.push(format!("{what}: file {:?}", f.file));
                }
                // Frame 0 is where the oracle was taken (`new Error` in
                // crash(), or the call of record()); the core has it at the
                // abort or native call that follows.
                if i > 0 && (f.line != o.line || f.column != o.column) {
                    problems.push(format!("{what}: position {:?}:{:?}", f.line, f.column));
                }
            }
        }
    }
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
    let last = t.frames.last();
    let named_entry = last
        .and_then(|f| f.symbol.as_deref())
        .is_some_and(|s| ENTRY_SYMBOLS.contains(&s));
    let unnamed_libc =
        last.is_some_and(|f| f.symbol.is_none() && f.module.as_deref() == Some("libc.so.6"));
    if t.stop != StopReason::EndOfStack || !(named_entry || unnamed_libc) {
        problems.push(format!(
            "thread {}: does not reach its entry (stop: {:?}, last frame: {:?})",
            t.tid,
            t.stop,
            last.map(|f| (f.symbol.clone(), f.module.clone()))
        ));
    }
    if t.frames.iter().any(|f| f.kind == FrameKind::Unknown) {
        problems.push(format!("thread {}: has unknown frames", t.tid));
    }
}
