//! `crosswind repro FILE.cwsnap`: a reporter's snapshot made a fixture
//! under `scenarios/fixtures/reports/`, carrying the frames it must replay
//! to as scenario patterns; `cargo test` replays it against them.

use std::fmt::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Provenance key of a report fixture: its expected frames, one pattern a
/// line (the scenario pattern syntax), innermost first, for the first
/// thread (the crashed one of a core, the main one of a running process).
pub const META_EXPECT: &str = "expect_frames";
/// Where report fixtures go, under `scenarios/fixtures/`.
pub const REPORTS_FAMILY: &str = "reports";

/// `crosswind repro FILE.cwsnap --name NAME [--expect FILE]`: the
/// reporter's snapshot becomes `DIR/fixtures/reports/NAME.cwsnap`, which
/// `cargo test` replays and checks against the expected patterns (from
/// `--expect`, else the frames it replays to now, for the contributor to
/// correct).
pub fn snapshot_fixture(
    snapshot_path: &Path,
    name: &str,
    expect: Option<&Path>,
    out: &Path,
) -> Result<u8> {
    use crosswind_unwinder::snapshot::{Snapshot, SnapshotProcess};
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        bail!("--name {name:?}: use letters, digits and '-'");
    }
    let mut snapshot = Snapshot::read(snapshot_path)?;
    let report = SnapshotProcess::new(&snapshot)?.unwind(None);
    let thread = report
        .threads
        .first()
        .with_context(|| format!("{}: the snapshot has no thread", snapshot_path.display()))?;
    let patterns: Vec<String> = match expect {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("{}: cannot read", file.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect(),
        None => thread.frames.iter().map(frame_pattern).collect(),
    };
    for (i, p) in patterns.iter().enumerate() {
        crate::scenario::Pattern::parse(p)
            .map_err(|e| anyhow::anyhow!("expected pattern {} `{p}`: {e}", i + 1))?;
    }
    snapshot
        .meta
        .insert(META_EXPECT.into(), patterns.join("\n"));
    let path = out
        .join("fixtures")
        .join(REPORTS_FAMILY)
        .join(format!("{name}.cwsnap"));
    if path.exists() {
        bail!("{}: already exists; pass another --name", path.display());
    }
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
        .with_context(|| format!("creating the directory of {}", path.display()))?;
    std::fs::write(&path, snapshot.encode()?)
        .with_context(|| format!("writing {}", path.display()))?;
    let now = check_fixture_frames(&snapshot, &report.threads);
    println!(
        "{}: {} expected frames{}; {}",
        path.display(),
        patterns.len(),
        if expect.is_none() {
            " written from the current replay: correct them to what V8 and gdb show"
        } else {
            ""
        },
        match now {
            None => "the replay matches them now".to_string(),
            Some(why) => format!("the replay does not match them yet ({why})"),
        }
    );
    Ok(0)
}

/// Whether a report fixture's replayed frames match its expected patterns:
/// `None` when they do, else why not.
pub fn check_fixture_frames(
    snapshot: &crosswind_unwinder::snapshot::Snapshot,
    threads: &[crosswind_unwinder::ThreadStack],
) -> Option<String> {
    let text = snapshot.meta.get(META_EXPECT)?;
    let mut patterns = Vec::new();
    for line in text.lines() {
        match crate::scenario::Pattern::parse(line) {
            Ok(p) => patterns.push(p),
            Err(e) => return Some(format!("pattern `{line}`: {e}")),
        }
    }
    let Some(thread) = threads.first() else {
        return Some("no thread replayed".into());
    };
    if crate::scenario::sequence_matches(&patterns, &thread.frames) {
        None
    } else {
        let got: Vec<String> = thread.frames.iter().map(frame_pattern).collect();
        Some(format!("replayed: {}", got.join(" | ")))
    }
}

/// A pattern naming `f` exactly as crosswind shows it now; the bare kind
/// where the name would not read back as a pattern.
fn frame_pattern(f: &crosswind_unwinder::Frame) -> String {
    use crosswind_unwinder::FrameKind;
    let kind = match f.kind {
        FrameKind::Js => "js",
        FrameKind::Wasm => "wasm",
        FrameKind::Builtin => "builtin",
        FrameKind::Stub => "stub",
        FrameKind::Native => "native",
        FrameKind::Unknown => "unknown",
    };
    let name = match f.kind {
        FrameKind::Js => Some(
            f.function
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| crate::scenario::ANONYMOUS.into()),
        ),
        FrameKind::Native | FrameKind::Builtin => f
            .function
            .clone()
            .filter(|_| f.kind == FrameKind::Builtin)
            .or_else(|| f.symbol.clone()),
        FrameKind::Stub => f.function.clone(),
        _ => None,
    };
    let mut text = match name {
        Some(n) => format!("{kind}: {n}"),
        None => return kind.to_string(),
    };
    if f.kind == FrameKind::Js {
        if let Some(file) = f.file.as_deref().filter(|s| !s.is_empty()) {
            let _ = write!(text, " @ {file}");
            if let (Some(l), Some(c)) = (f.line, f.column) {
                let _ = write!(text, ":{l}:{c}");
            }
        }
    }
    match crate::scenario::Pattern::parse(&text) {
        Ok(p) if p.matches(f) => text,
        _ => kind.to_string(),
    }
}
