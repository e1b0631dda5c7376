//! `crosswind unwind` and `crosswind snapshot`: read a core, a snapshot or
//! a running process, unwind it, and print text for people or the stable
//! JSON contract (docs/json.md) for programs, or write a snapshot.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};
use crosswind_unwinder::{self as cw, Frame, FrameKind, ThreadStack};
use serde::Serialize;

/// What `unwind` and `snapshot` read.
pub enum Source {
    /// A core file (or, for `unwind`, a snapshot).
    File(PathBuf),
    /// A running process on this host.
    Pid(u32),
}

/// The JSON document `crosswind unwind --format json` prints.
#[derive(Serialize)]
pub struct UnwindDocument<'a> {
    pub arch: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v8_version: Option<&'a str>,
    pub threads: &'a [ThreadStack],
    /// For a running process: how long each thread was stopped, in
    /// microseconds, in the order of `threads`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_us: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub warnings: &'a [String],
}

/// The trace sink `CROSSWIND_TRACE` asks for: one line per unwind step.
fn trace() -> Option<cw::TraceSink> {
    std::env::var_os("CROSSWIND_TRACE")
        .map(|_| Box::new(|line: &str| eprintln!("trace: {line}")) as cw::TraceSink)
}

/// Runs `crosswind unwind`. Bad input comes back as an error (exit 2).
pub fn unwind_command(
    source: &Source,
    resolver: cw::ModuleResolver,
    json: bool,
    async_callers: bool,
) -> Result<u8> {
    let (mut report, stopped) = match source {
        Source::File(path) if is_snapshot_file(path) => {
            let snapshot = cw::snapshot::Snapshot::read(path)?;
            (
                cw::snapshot::SnapshotProcess::new(&snapshot)?.unwind(trace()),
                None,
            )
        }
        Source::File(path) => {
            let process = cw::open_core(path, &resolver)?;
            (cw::unwind_core(&process, trace()), None)
        }
        Source::Pid(pid) => {
            let process = cw::process::PtraceProcess::open(*pid, &resolver)?;
            let mut session = cw::Session::new(&process)
                .with_trace(trace())
                .with_async_callers(async_callers);
            require_node(&process, &mut session)?;
            let capture = process.unwind_threads(&mut session)?;
            (capture.report, Some(capture.stopped_for))
        }
    };
    if !async_callers {
        // Cores and snapshots unwind through the library's one-call
        // helpers, which add them: they are dropped here.
        for t in &mut report.threads {
            t.frames.retain(|f| f.is_async != Some(true));
        }
    }
    if json {
        let doc = UnwindDocument {
            arch: report.arch.name(),
            v8_version: report.v8_version.as_deref(),
            threads: &report.threads,
            stopped_us: stopped
                .as_ref()
                .map(|s| s.iter().map(|d| d.as_micros() as u64).collect()),
            warnings: &report.warnings,
        };
        emit(&format!("{}\n", serde_json::to_string(&doc)?))?;
    } else {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        emit(&render_threads(
            &report.threads,
            stopped.as_deref().unwrap_or(&[]),
        ))?;
    }
    Ok(0)
}

/// Fails unless the process runs a V8 crosswind can read, saying what it
/// runs instead.
fn require_node<P: cw::Process>(
    process: &cw::process::PtraceProcess,
    session: &mut cw::Session<P>,
) -> Result<()> {
    if session.find_v8().is_some() {
        return Ok(());
    }
    let exe = process.exe_path.display().to_string();
    let why = session.v8_problem().unwrap_or("no V8 found").to_string();
    let emulated = process
        .exe_path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("qemu-"));
    if emulated {
        bail!(
            "process {}: {exe} is QEMU, not Node.js: ptrace sees the emulator, not its guest; sample an emulated Node.js with `crosswind sample`",
            process.pid
        );
    }
    bail!(
        "process {}: {exe} is not a Node.js crosswind can read ({why})",
        process.pid
    )
}

/// Writes to stdout; a closed pipe (`crosswind unwind … | head`) is not
/// an error.
pub fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

fn is_snapshot_file(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|_| cw::snapshot::Snapshot::is_snapshot(&magic))
}

/// `crosswind snapshot`: unwinds the core (or running process) while
/// recording, writes the snapshot, replays it and keeps it only if the
/// frames are identical.
pub fn snapshot_command(
    source: &Source,
    resolver: cw::ModuleResolver,
    out: &Path,
    meta: Vec<(String, String)>,
) -> Result<u8> {
    let path = match source {
        Source::File(path) => path,
        Source::Pid(pid) => return snapshot_pid(*pid, resolver, out, meta),
    };
    let process = cw::open_core(path, &resolver)?;
    let (snapshot, report) = cw::snapshot::record(&process, meta.into_iter().collect(), None);
    let size = write_verified(&snapshot, &report, out)?;
    let core_size = process.core.file_len();
    println!(
        "{}: {} bytes, {:.2}% of the core ({} bytes); replay gives the same {} frames",
        out.display(),
        size,
        100.0 * size as f64 / core_size.max(1) as f64,
        core_size,
        report.threads.iter().map(|t| t.frames.len()).sum::<usize>()
    );
    Ok(0)
}

/// `crosswind snapshot --pid`: each thread stopped for its own recorded
/// walk, then the snapshot written as for a core.
fn snapshot_pid(
    pid: u32,
    resolver: cw::ModuleResolver,
    out: &Path,
    meta: Vec<(String, String)>,
) -> Result<u8> {
    let process = cw::process::PtraceProcess::open(pid, &resolver)?;
    let mut session = cw::Session::new(cw::snapshot::RecordingProcess::new(&process));
    require_node(&process, &mut session)?;
    let capture = process.unwind_threads(&mut session)?;
    let mut meta: std::collections::BTreeMap<String, String> = meta.into_iter().collect();
    meta.insert(
        cw::snapshot::META_PROCESS.into(),
        cw::snapshot::PROCESS_RUNNING.into(),
    );
    meta.insert(
        "source".into(),
        format!("pid {pid} ({})", process.exe_path.display()),
    );
    let snapshot = cw::snapshot::finish_recording(
        session.into_process(),
        &capture.report,
        &capture.threads,
        meta,
        None,
    );
    let size = write_verified(&snapshot, &capture.report, out)?;
    let longest = capture
        .stopped_for
        .iter()
        .max()
        .copied()
        .unwrap_or_default();
    println!(
        "{}: {} bytes, {} threads; replay gives the same {} frames; no thread was stopped longer than {:.2} ms",
        out.display(),
        size,
        capture.threads.len(),
        capture.report.threads.iter().map(|t| t.frames.len()).sum::<usize>(),
        longest.as_secs_f64() * 1e3
    );
    Ok(0)
}

/// Writes `snapshot` to `out` after checking that replaying its encoded
/// bytes gives exactly the frames of `report`. Returns the file size.
pub fn write_verified(
    snapshot: &cw::snapshot::Snapshot,
    report: &cw::StackReport,
    out: &Path,
) -> Result<u64> {
    let bytes = snapshot.encode()?;
    let decoded = cw::snapshot::Snapshot::decode(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: the new snapshot does not decode: {e}", out.display()))?;
    let replayed = cw::snapshot::SnapshotProcess::new(&decoded)?.unwind(None);
    let want = serde_json::to_value(&report.threads)?;
    let got = serde_json::to_value(&replayed.threads)?;
    if want != got {
        anyhow::bail!(
            "{}: replaying the snapshot gives different frames than the capture; not written",
            out.display()
        );
    }
    std::fs::write(out, &bytes).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    Ok(bytes.len() as u64)
}

/// Renders stacks for people: one line a frame, innermost first.
pub fn render_text(threads: &[ThreadStack]) -> String {
    render_threads(threads, &[])
}

/// [`render_text`], saying how long each thread was stopped where
/// `stopped` gives it (a running process).
fn render_threads(threads: &[ThreadStack], stopped: &[Duration]) -> String {
    let mut out = String::new();
    for (i, t) in threads.iter().enumerate() {
        let note = match stopped.get(i) {
            Some(d) => format!(" (stopped {:.2} ms)", d.as_secs_f64() * 1e3),
            None if t.crashed => " (crashed)".to_string(),
            None => String::new(),
        };
        out.push_str(&format!("thread {}{note}:\n", t.tid));
        for (i, f) in t.frames.iter().enumerate() {
            out.push_str(&format!("  #{i:<3} {:#014x}  {}\n", f.pc, describe(f)));
        }
        let stop = match &t.stop {
            cw::StopReason::EndOfStack => "end of stack".to_string(),
            cw::StopReason::NullCaller => "no caller".to_string(),
            cw::StopReason::FrameLimit => "frame limit reached".to_string(),
            cw::StopReason::Error(e) => format!("stopped: {e}"),
        };
        out.push_str(&format!("  ({stop})\n\n"));
    }
    out
}

fn describe(f: &Frame) -> String {
    let name = |s: &Option<String>| s.clone().unwrap_or_default();
    match f.kind {
        FrameKind::Js => {
            let func = f
                .function
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("<anonymous>");
            let loc = match (f.line, f.column) {
                (Some(l), Some(c)) => format!("{}:{l}:{c}", name(&f.file)),
                _ => name(&f.file),
            };
            let tier = f
                .tier
                .map(|t| {
                    serde_json::to_value(t)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            if f.is_async == Some(true) {
                return format!("js       async {func} ({loc})");
            }
            let inl = if f.inlined == Some(true) {
                ", inlined"
            } else {
                ""
            };
            format!("js       {func} ({loc}) [{tier}{inl}]")
        }
        FrameKind::Wasm => {
            let tier = f
                .tier
                .and_then(|t| serde_json::to_value(t).ok())
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!(
                "wasm     {} ({}) [{tier}]",
                name(&f.function),
                f.wasm_location().unwrap_or_default()
            )
        }
        FrameKind::Builtin if f.is_async == Some(true) => format!(
            "builtin  async Promise.{} (index {})",
            name(&f.function),
            f.promise_index.map_or("?".to_string(), |i| i.to_string())
        ),
        FrameKind::Builtin => match &f.function {
            Some(func) => format!("builtin  {func} [{}]", name(&f.symbol)),
            None => format!("builtin  {}", name(&f.symbol)),
        },
        FrameKind::Stub => match &f.symbol {
            Some(s) => format!("stub     {} [{s}]", name(&f.function)),
            None => format!("stub     {}", name(&f.function)),
        },
        FrameKind::Native => format!(
            "native   {} ({})",
            f.symbol.as_deref().unwrap_or("??"),
            name(&f.module)
        ),
        FrameKind::Unknown => "unknown".to_string(),
    }
}
