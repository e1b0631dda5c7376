//! `crosswind unwind`: opens a core, unwinds it and prints text for people
//! or the stable JSON contract (docs/json.md) for programs.

use std::path::Path;

use anyhow::Result;
use crosswind_unwinder::{self as cw, Frame, FrameKind, ThreadStack};
use serde::Serialize;

/// The JSON document `crosswind unwind --format json` prints.
#[derive(Serialize)]
pub struct UnwindDocument<'a> {
    pub arch: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v8_version: Option<&'a str>,
    pub threads: &'a [ThreadStack],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub warnings: &'a [String],
}

/// Runs `crosswind unwind`. Bad input comes back as an error (exit 2).
pub fn unwind_command(core: &Path, resolver: cw::ModuleResolver, json: bool) -> Result<u8> {
    let trace = || -> Option<cw::TraceSink> {
        std::env::var_os("CROSSWIND_TRACE")
            .map(|_| Box::new(|line: &str| eprintln!("trace: {line}")) as cw::TraceSink)
    };
    let report = if is_snapshot_file(core) {
        let snapshot = cw::snapshot::Snapshot::read(core)?;
        cw::snapshot::SnapshotProcess::new(&snapshot)?.unwind(trace())
    } else {
        let process = cw::open_core(core, &resolver)?;
        cw::unwind_core(&process, trace())
    };
    if json {
        let doc = UnwindDocument {
            arch: report.arch.name(),
            v8_version: report.v8_version.as_deref(),
            threads: &report.threads,
            warnings: &report.warnings,
        };
        emit(&format!("{}\n", serde_json::to_string(&doc)?))?;
    } else {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        emit(&render_text(&report.threads))?;
    }
    Ok(0)
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

/// `crosswind snapshot`: unwinds the core while recording, writes the
/// snapshot, replays it and keeps it only if the frames are identical.
pub fn snapshot_command(
    core: &Path,
    resolver: cw::ModuleResolver,
    out: &Path,
    meta: Vec<(String, String)>,
) -> Result<u8> {
    let process = cw::open_core(core, &resolver)?;
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
            "{}: replaying the snapshot gives different frames than the core; not written",
            out.display()
        );
    }
    std::fs::write(out, &bytes).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    Ok(bytes.len() as u64)
}

/// Renders stacks for people: one line a frame, innermost first.
pub fn render_text(threads: &[ThreadStack]) -> String {
    let mut out = String::new();
    for t in threads {
        out.push_str(&format!(
            "thread {}{}:\n",
            t.tid,
            if t.crashed { " (crashed)" } else { "" }
        ));
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
