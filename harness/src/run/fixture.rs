//! Committed snapshots (`--update-fixtures`): where a job's snapshot
//! lives, writing it replay-verified, and what changed since the last one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crosswind_unwinder::{self as cw, ThreadStack};

use super::job::Job;

/// Where a job's committed snapshot lives under `root`.
pub fn fixture_path(root: &Path, job: &Job) -> PathBuf {
    root.join(&job.scenario.family).join(format!(
        "{}.node-{}.{}.cwsnap",
        job.scenario.name, job.node, job.arch
    ))
}

/// Writes the fixture (replay-verified) and says what changed.
pub(super) fn update_fixture(
    path: &Path,
    snapshot: &cw::snapshot::Snapshot,
    report: &cw::StackReport,
) -> Result<String> {
    let before = cw::snapshot::Snapshot::read(path).ok();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let size = crate::report::output::write_verified(snapshot, report, path)?;
    let now: Vec<ThreadStack> = report.threads.clone();
    let note = match before.and_then(|b| b.expected) {
        None => "new".to_string(),
        Some(old) => {
            let old: Vec<ThreadStack> = serde_json::from_str(&old).unwrap_or_default();
            let frames = |t: &[ThreadStack]| -> Vec<String> {
                t.iter()
                    .find(|t| t.crashed)
                    .map(|t| t.frames.iter().map(frame_key).collect())
                    .unwrap_or_default()
            };
            let (a, b) = (frames(&old), frames(&now));
            let differ =
                a.iter().zip(&b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len());
            if differ == 0 {
                "unchanged frames".to_string()
            } else {
                format!(
                    "changed: {differ} crashed-thread frame(s) differ ({} -> {} frames)",
                    a.len(),
                    b.len()
                )
            }
        }
    };
    Ok(format!("{} ({size} bytes): {note}", path.display()))
}

/// A frame as compared between fixture versions: what it is, not where
/// the runtime happened to map it.
fn frame_key(f: &crosswind_unwinder::Frame) -> String {
    format!(
        "{:?} {} {} {} {:?}:{:?}",
        f.kind,
        f.symbol.as_deref().unwrap_or(""),
        f.function.as_deref().unwrap_or(""),
        f.file
            .as_deref()
            .map(|p| p.rsplit('/').next().unwrap_or(p))
            .unwrap_or(""),
        f.line,
        f.column
    )
}
