//! `crosswind snapshot --inspect`: what a snapshot holds, listed for the
//! person deciding whether to share it: provenance, threads, memory by
//! kind, each module's recorded answers, and the JavaScript functions and
//! scripts its unwind named.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::Path;

use anyhow::Result;
use crosswind_unwinder::snapshot::Snapshot;
use crosswind_unwinder::{FrameKind, ThreadStack};

/// Memory this far above a thread's stack pointer counts as its stack
/// (Node.js's main thread stack is 8 MiB; other threads' are smaller).
const STACK_REACH: u64 = 8 << 20;
/// Below the stack pointer: the red zone a leaf function may use.
const RED_ZONE: u64 = 128;

/// The listing of the snapshot at `path`.
pub fn inspect(path: &Path) -> Result<String> {
    let file_size = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .len();
    let s = Snapshot::read(path)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: crosswind snapshot, {}, {file_size} bytes compressed",
        path.display(),
        s.arch.name()
    );
    if !s.meta.is_empty() {
        let _ = writeln!(out, "\nprovenance:");
        for (k, v) in &s.meta {
            let _ = writeln!(out, "  {k}: {v}");
        }
    }
    list_threads(&s, &mut out);
    list_memory(&s, &mut out);
    list_modules(&s, &mut out);
    list_javascript(&s, &mut out);
    Ok(out)
}

fn list_threads(s: &Snapshot, out: &mut String) {
    let arch = s.arch.arch();
    let _ = writeln!(out, "\nthreads: {}", s.threads.len());
    for t in &s.threads {
        let hex = |v: Option<u64>| v.map_or("?".to_string(), |v| format!("{v:#x}"));
        let _ = writeln!(
            out,
            "  {}{}: pc {}, sp {}",
            t.tid,
            if t.signal != 0 {
                format!(" (signal {})", t.signal)
            } else {
                String::new()
            },
            hex(t.regs.pc(arch)),
            hex(t.regs.sp(arch))
        );
    }
}

/// Memory in stacks (near a thread's stack pointer) and elsewhere (heap
/// objects, JIT code, data the walk read).
fn list_memory(s: &Snapshot, out: &mut String) {
    let arch = s.arch.arch();
    let sps: Vec<u64> = s.threads.iter().filter_map(|t| t.regs.sp(arch)).collect();
    let in_stack = |addr: u64| {
        sps.iter().any(|&sp| {
            addr >= sp.saturating_sub(RED_ZONE) && addr - sp.saturating_sub(RED_ZONE) < STACK_REACH
        })
    };
    let (mut stack, mut other, mut stack_ranges, mut other_ranges) = (0usize, 0usize, 0, 0);
    for (&addr, bytes) in &s.memory {
        if in_stack(addr) {
            stack += bytes.len();
            stack_ranges += 1;
        } else {
            other += bytes.len();
            other_ranges += 1;
        }
    }
    let _ = writeln!(
        out,
        "\nmemory: {} bytes in {} ranges\n  stacks: {stack} bytes in {stack_ranges} ranges\n  heap objects, JIT code and data read: {other} bytes in {other_ranges} ranges",
        stack + other,
        s.memory.len()
    );
}

fn list_modules(s: &Snapshot, out: &mut String) {
    let _ = writeln!(out, "\nmodules: {}", s.modules.len());
    for m in &s.modules {
        let a = &m.answers;
        let bytes: usize = a.bytes.values().map(Vec::len).sum();
        let build_id: String = m.build_id.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(
            out,
            "  {}{}{}{}: {} symbols, {} CFI rows, {} named values, {} file bytes",
            m.name,
            if m.is_exe { " [executable]" } else { "" },
            if m.path == m.name {
                String::new()
            } else {
                format!(" ({})", m.path)
            },
            if build_id.is_empty() {
                String::new()
            } else {
                format!(" [build id {build_id}]")
            },
            a.symbols.len(),
            a.cfi.len(),
            a.names.len() + a.prefixes.values().map(Vec::len).sum::<usize>(),
            bytes
        );
    }
}

/// The JavaScript functions and scripts the recorded unwind named.
fn list_javascript(s: &Snapshot, out: &mut String) {
    let threads: Vec<ThreadStack> = s
        .expected
        .as_deref()
        .and_then(|e| serde_json::from_str(e).ok())
        .unwrap_or_default();
    let mut functions = BTreeSet::new();
    let mut scripts = BTreeSet::new();
    for f in threads.iter().flat_map(|t| &t.frames) {
        if matches!(f.kind, FrameKind::Js | FrameKind::Wasm) {
            functions.insert(
                f.function
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "<anonymous>".into()),
            );
            if let Some(file) = f.file.clone().filter(|f| !f.is_empty()) {
                scripts.insert(file);
            }
        }
    }
    let _ = writeln!(out, "\nJavaScript functions named: {}", functions.len());
    for f in &functions {
        let _ = writeln!(out, "  {f}");
    }
    let _ = writeln!(out, "\nscripts named: {}", scripts.len());
    for f in &scripts {
        let _ = writeln!(out, "  {f}");
    }
    if s.oracle.is_some() {
        let _ = writeln!(
            out,
            "\nV8's own stack, as the program printed it, is included."
        );
    }
}
