//! Reports for scenario runs: the coloured side-by-side diff of V8's
//! frames and crosswind's, one line per result, the summary, and the JSON
//! report (`--report`).

use std::path::Path;

use anyhow::{Context, Result};
use console::style;
use serde::Serialize;

use crate::capture;
use crate::capture::verify;
use crate::run::result::{JobResult, Status, Summary, MIN_SAMPLE_PASS_PERCENT};

pub mod inspect;
pub mod output;

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
                            printed_name(f),
                            location(f.file.as_deref(), f.line, f.column)
                        )
                    })
                    .unwrap_or_default();
                let same = match (r.oracle.get(i), ours.get(i)) {
                    (Some(o), Some(f)) => {
                        capture::bare_name(&o.printed) == capture::bare_name(&printed_name(f))
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
        for l in crate::report::output::render_text(std::slice::from_ref(t)).lines() {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out
}

/// A crosswind frame's name in V8's words: awaiting callers with
/// `async `, combinators with their index.
fn printed_name(f: &crosswind_unwinder::Frame) -> String {
    let name = f.function.as_deref().unwrap_or("");
    match (f.is_async == Some(true), f.promise_index) {
        (true, Some(i)) => format!("async {name} (index {i})"),
        (true, None) => format!("async {name}"),
        _ => name.to_string(),
    }
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
                format!(", below the required {}%", MIN_SAMPLE_PASS_PERCENT)
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

/// The fields of a report's results the matrix needs (reports are read
/// back as untrusted input: anything else in them is ignored).
#[derive(serde::Deserialize)]
struct MatrixResult {
    scenario: String,
    node: String,
    arch: String,
    status: Status,
}

#[derive(serde::Deserialize)]
struct MatrixReport {
    results: Vec<MatrixResult>,
}

/// Markers around the generated table in a Markdown file.
pub const MATRIX_BEGIN: &str = "<!-- matrix:begin (generated by `crosswind matrix`) -->";
pub const MATRIX_END: &str = "<!-- matrix:end -->";

/// One cell of the matrix: (passed, known failures, total).
type Tally = (usize, usize, usize);

/// A Markdown table of Node.js versions x architectures x scenario
/// families with pass counts, from `crosswind run --report` files.
pub fn matrix_table(reports: &[std::path::PathBuf]) -> Result<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut cells: BTreeMap<(String, String), BTreeMap<String, Tally>> = BTreeMap::new();
    let mut families = BTreeSet::new();
    for path in reports {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let report: MatrixReport = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a crosswind run report: {e}", path.display()))?;
        for r in report.results {
            if r.status == Status::Skipped {
                continue;
            }
            let family = r.scenario.split('/').next().unwrap_or("").to_string();
            families.insert(family.clone());
            let cell = cells
                .entry((r.node, r.arch))
                .or_default()
                .entry(family)
                .or_default();
            cell.0 += usize::from(r.status == Status::Pass);
            cell.1 += usize::from(r.status == Status::KnownFailure);
            cell.2 += 1;
        }
    }
    let mut out = String::from("| Node.js | arch |");
    for f in &families {
        out.push_str(&format!(" {f} |"));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(families.len()));
    out.push('\n');
    for ((node, arch), by_family) in &cells {
        out.push_str(&format!("| {node} | {arch} |"));
        for f in &families {
            match by_family.get(f) {
                Some((pass, known, total)) if *known > 0 => {
                    out.push_str(&format!(" {pass}/{total} ({known} known) |"))
                }
                Some((pass, _, total)) => out.push_str(&format!(" {pass}/{total} |")),
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// Replaces the generated table between the markers in a Markdown file.
pub fn update_matrix(markdown: &Path, table: &str) -> Result<()> {
    let text = std::fs::read_to_string(markdown)
        .with_context(|| format!("{}: cannot read", markdown.display()))?;
    let (Some(begin), Some(end)) = (text.find(MATRIX_BEGIN), text.find(MATRIX_END)) else {
        anyhow::bail!(
            "{}: no `{MATRIX_BEGIN}` ... `{MATRIX_END}` markers to put the table between",
            markdown.display()
        );
    };
    if end < begin {
        anyhow::bail!(
            "{}: the matrix markers are out of order",
            markdown.display()
        );
    }
    let updated = format!("{}{MATRIX_BEGIN}\n{table}{}", &text[..begin], &text[end..]);
    std::fs::write(markdown, updated).with_context(|| format!("writing {}", markdown.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_counts_by_line_arch_and_family() {
        let dir = std::env::temp_dir().join(format!("crosswind-matrix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let report = dir.join("r.json");
        std::fs::write(
            &report,
            r#"{"summary":{},"results":[
              {"scenario":"pure-js/a","node":"22.20.0","arch":"arm64","status":"pass","extra":1},
              {"scenario":"pure-js/b","node":"22.20.0","arch":"arm64","status":"fail"},
              {"scenario":"tiers/c","node":"22.20.0","arch":"arm64","status":"known-failure"},
              {"scenario":"tiers/d","node":"22.20.0","arch":"x64","status":"skipped"}]}"#,
        )
        .unwrap();
        let table = matrix_table(std::slice::from_ref(&report)).unwrap();
        assert!(table.contains("| pure-js | tiers |"), "{table}");
        assert!(
            table.contains("| 22.20.0 | arm64 | 1/2 | 0/1 (1 known) |"),
            "{table}"
        );
        assert!(
            !table.contains("x64"),
            "skipped jobs are not counted: {table}"
        );
        let md = dir.join("README.md");
        std::fs::write(&md, format!("a\n{MATRIX_BEGIN}\nold\n{MATRIX_END}\nb\n")).unwrap();
        update_matrix(&md, &table).unwrap();
        let text = std::fs::read_to_string(&md).unwrap();
        assert!(text.starts_with("a\n") && text.ends_with(&format!("{MATRIX_END}\nb\n")));
        assert!(!text.contains("old") && text.contains("1/2"));
        std::fs::write(&report, "{not json").unwrap();
        let err = matrix_table(&[report]).unwrap_err().to_string();
        assert!(err.contains("not a crosswind run report"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
