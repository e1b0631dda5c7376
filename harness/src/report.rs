//! Reports for scenario runs: the coloured side-by-side diff of V8's
//! frames and crosswind's, one line per result, the summary, and the JSON
//! report (`--report`).

use std::path::Path;

use anyhow::{Context, Result};
use console::style;
use serde::Serialize;

use crate::capture;
use crate::runner::{JobResult, Status, Summary};
use crate::verify;

/// One line for a finished job.
pub fn result_line(r: &JobResult) -> String {
    let tag = match r.status {
        Status::Pass => style("PASS").green(),
        Status::Fail => style("FAIL").red().bold(),
        Status::KnownFailure => style("KNOWN").yellow(),
        Status::UnexpectedPass => style("UNEXPECTED PASS").red().bold(),
        Status::Skipped => style("SKIP").yellow(),
    };
    let extra = match (&r.status, &r.sampling) {
        (Status::Skipped, _) => {
            format!(" ({})", r.problems.first().cloned().unwrap_or_default())
        }
        (_, Some(s)) => format!(
            " ({} of {} samples pass, {:.1} samples/s)",
            s.passed, s.samples, s.stats.samples_per_second
        ),
        _ => String::new(),
    };
    format!("{tag} {} [{}] {:.1}s{extra}", r.id, r.backend, r.duration_s)
}

/// Everything a contributor needs about a failed job: the problems, then
/// V8's frames beside crosswind's, mismatches in red.
pub fn failure_details(r: &JobResult) -> String {
    let mut out = String::new();
    out.push_str(&format!("--- {} ---\n", r.id));
    if let Some(k) = &r.kept {
        out.push_str(&format!("files and core kept in {k}\n"));
    }
    for p in &r.problems {
        out.push_str(&format!("  {} {p}\n", style("-").red()));
    }
    if let Some(t) = &r.crashed_thread {
        if !r.oracle.is_empty() {
            let ours = verify::visible(&t.frames);
            let width = 60;
            out.push_str(&format!("  {:<width$} | crosswind\n", "V8 (Error.stack)"));
            for i in 0..r.oracle.len().max(ours.len()) {
                let left = r
                    .oracle
                    .get(i)
                    .map(|o| {
                        format!(
                            "{} ({})",
                            o.printed,
                            location(o.file.as_deref(), o.line, o.column)
                        )
                    })
                    .unwrap_or_default();
                let right = ours
                    .get(i)
                    .map(|f| {
                        format!(
                            "{} ({})",
                            f.function.as_deref().unwrap_or(""),
                            location(f.file.as_deref(), f.line, f.column)
                        )
                    })
                    .unwrap_or_default();
                let same = match (r.oracle.get(i), ours.get(i)) {
                    (Some(o), Some(f)) => {
                        capture::bare_name(&o.printed)
                            == capture::bare_name(f.function.as_deref().unwrap_or(""))
                            && o.line == f.line
                            && o.column == f.column
                    }
                    _ => false,
                };
                let left = truncate(&left, width);
                let line = format!("  {left:<width$} | {right}");
                out.push_str(&if same {
                    line
                } else {
                    style(line).red().to_string()
                });
                out.push('\n');
            }
        }
        out.push_str("  crosswind, crashed thread:\n");
        for l in crate::output::render_text(std::slice::from_ref(t)).lines() {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out
}

fn location(file: Option<&str>, line: Option<u32>, column: Option<u32>) -> String {
    match (file, line, column) {
        (None, _, _) => "<anonymous>".into(),
        (Some(f), Some(l), Some(c)) => format!("{}:{l}:{c}", short(f)),
        (Some(f), _, _) => short(f).to_string(),
    }
}

fn short(path: &str) -> &str {
    if path.starts_with("node:") {
        path
    } else {
        path.rsplit('/').next().unwrap_or(path)
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

/// The summary line: `N passed, N failed` (plus known failures and skips).
pub fn summary_line(s: &Summary) -> String {
    let mut line = format!(
        "{} passed, {} failed, {} skipped, {} known failures",
        s.passed, s.failed, s.skipped, s.known_failures
    );
    if s.samples > 0 {
        line.push_str(&format!(
            "; {} of {} samples ({:.2}%) unwound completely and correctly{}",
            s.samples_passed,
            s.samples,
            100.0 * s.samples_passed as f64 / s.samples as f64,
            if s.samples_ok() {
                String::new()
            } else {
                format!(
                    ", below the required {}%",
                    crate::runner::MIN_SAMPLE_PASS_PERCENT
                )
            }
        ));
    }
    line
}

#[derive(Serialize)]
struct ReportDocument<'a> {
    summary: Summary,
    results: &'a [JobResult],
}

/// Writes the full JSON report.
pub fn write_json(path: &Path, results: &[JobResult]) -> Result<()> {
    let doc = ReportDocument {
        summary: Summary::of(results),
        results,
    };
    let text = serde_json::to_string_pretty(&doc)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
