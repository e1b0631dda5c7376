//! `crosswind repro SCRIPT.js`: a reporter's script, unchanged, turned into
//! a scenario. The script runs on the chosen lines and architectures with
//! a preloaded hook that prints V8's own stack where it calls
//! `process.abort()`; the scenario is written with that stack's frames of
//! the script as expectations, then run, and where it passes or fails is
//! printed. A wrong stack in crosswind thus becomes a failing scenario.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::capture::bare_name;
use crate::run::{run_command, RunOptions};
use crate::target::TargetArch;

/// The scenario's script, as the runner writes it.
const MAIN: &str = "main.js";
/// The preload, written next to the script.
const PRELOAD: &str = "crosswind-repro.js";
/// Prints V8's stack (between the oracle markers) where the program calls
/// `process.abort()`, leaving out the hook itself, then aborts.
const PRELOAD_JS: &str = r#"'use strict';
// Written by `crosswind repro`: prints V8's own stack where the program
// calls process.abort(), without the program being edited.
Error.stackTraceLimit = Infinity;
const realAbort = process.abort;
process.abort = function abort() {
  const holder = {};
  Error.captureStackTrace(holder, abort);
  process._rawDebug('CROSSWIND-ORACLE-BEGIN\nError: crosswind-repro\n' +
    holder.stack.split('\n').slice(1).join('\n') + '\nCROSSWIND-ORACLE-END');
  return realAbort.call(process);
};
"#;

/// What `crosswind repro` was asked.
pub struct ReproOptions {
    pub script: PathBuf,
    pub nodes: Vec<String>,
    pub arch: Option<TargetArch>,
    pub name: Option<String>,
    pub family: Option<String>,
    pub out: PathBuf,
    pub jobs: usize,
}

/// Runs `crosswind repro`: 0 when the written scenario passes everywhere.
pub fn repro_command(o: ReproOptions) -> Result<u8> {
    let source = std::fs::read_to_string(&o.script)
        .with_context(|| format!("{}: cannot read the script", o.script.display()))?;
    let name = match &o.name {
        Some(n) => n.clone(),
        None => name_from(&o.script)?,
    };
    let family = o.family.clone().unwrap_or_else(|| {
        if source.contains(".node'") || source.contains(".node\"") {
            "native-addon".into()
        } else {
            "pure-js".into()
        }
    });
    let path = o.out.join(&family).join(format!("{name}.yaml"));
    if path.exists() {
        bail!(
            "{}: already exists; pass --name to choose another",
            path.display()
        );
    }
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
        .with_context(|| format!("creating the directory of {}", path.display()))?;
    let scenario = |frames: &[String]| scenario_yaml(&o, &source, frames);
    std::fs::write(&path, scenario(&[])).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "crosswind repro: running {} to record V8's stack where it aborts",
        o.script.display()
    );
    let frames = match record_v8_stack(&o, &path) {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    std::fs::write(&path, scenario(&frames))
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "crosswind repro: wrote {} ({} frames of the script expected); running it",
        path.display(),
        frames.len()
    );
    run_command(run_options(&o, &path, None))
}

/// Runs the scenario without frame expectations and returns the patterns
/// of V8's frames of the script (innermost first, `any*` between and
/// around them).
fn record_v8_stack(o: &ReproOptions, path: &Path) -> Result<Vec<String>> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let report = dir.path().join("report.json");
    run_command(run_options(o, path, Some(report.clone())))?;
    let text = std::fs::read_to_string(&report)
        .with_context(|| format!("reading {}", report.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)?;
    let oracle = doc["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| &r["oracle"])
        .find(|o| o.as_array().is_some_and(|a| !a.is_empty()))
        .context(
            "the script printed no V8 stack: it must call process.abort() (crosswind repro hooks it)",
        )?;
    Ok(patterns_of(
        oracle.as_array().map(Vec::as_slice).unwrap_or(&[]),
    ))
}

/// The scenario patterns of the oracle frames in the script: consecutive
/// frames of the script stay consecutive, other frames become `any*`.
fn patterns_of(oracle: &[serde_json::Value]) -> Vec<String> {
    let mut out = vec!["any*".to_string()];
    for f in oracle {
        let file = f["file"].as_str().unwrap_or("");
        if !file.ends_with(&format!("/{MAIN}")) {
            if out.last().is_some_and(|l| l != "any*") {
                out.push("any*".into());
            }
            continue;
        }
        let name = bare_name(f["printed"].as_str().unwrap_or(""));
        let name = if name.is_empty() {
            "(anonymous)".to_string()
        } else {
            name
        };
        let mut pattern = format!("js: {name} @ {MAIN}");
        if let (Some(l), Some(c)) = (f["line"].as_u64(), f["column"].as_u64()) {
            let _ = write!(pattern, ":{l}:{c}");
        }
        out.push(pattern);
    }
    if out.last().is_some_and(|l| l != "any*") {
        out.push("any*".into());
    }
    out
}

fn run_options(o: &ReproOptions, path: &Path, report: Option<PathBuf>) -> RunOptions {
    RunOptions {
        nodes: o.nodes.clone(),
        arch: o.arch,
        backend: None,
        jobs: o.jobs,
        report,
        keep: false,
        paths: vec![path.to_path_buf()],
        update_fixtures: None,
        list: false,
    }
}

/// A scenario name from the script's file name: lower case, `-` for
/// anything but letters and digits.
fn name_from(script: &Path) -> Result<String> {
    let stem = script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        bail!(
            "{}: cannot make a scenario name of it; pass --name",
            script.display()
        );
    }
    Ok(name)
}

/// The scenario's YAML: the script as a source, the preload, and the
/// expected frames (none on the first run).
fn scenario_yaml(o: &ReproOptions, source: &str, frames: &[String]) -> String {
    let mut y = String::new();
    let script = o
        .script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let description = format!("{script} as reported, run unchanged (written by crosswind repro).");
    let _ = writeln!(y, "description: {}", yaml_string(&description));
    if !o.nodes.is_empty() {
        let _ = writeln!(
            y,
            "node: [{}]",
            o.nodes
                .iter()
                .map(|n| yaml_string(n))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(a) = o.arch {
        let _ = writeln!(y, "arch: [{}]", a.name());
    }
    let _ = writeln!(y, "flags: [--require, ./{PRELOAD}]");
    let _ = writeln!(y, "sources:");
    for (file, text) in [(MAIN, source), (PRELOAD, PRELOAD_JS)] {
        let _ = writeln!(y, "  {file}: |");
        for line in text.lines() {
            if line.is_empty() {
                y.push('\n');
            } else {
                let _ = writeln!(y, "    {line}");
            }
        }
    }
    if !frames.is_empty() {
        let _ = writeln!(y, "expect:\n  frames:");
        for f in frames {
            let _ = writeln!(y, "    - {}", yaml_string(f));
        }
    }
    y
}

/// A YAML double-quoted string.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_frames_become_patterns() {
        let oracle: Vec<serde_json::Value> = serde_json::from_str(
            r#"[{"printed":"inner","file":"/w/main.js","line":3,"column":11},
                {"printed":"Array.map","file":null,"line":null,"column":null},
                {"printed":"Object.<anonymous>","file":"/w/main.js","line":9,"column":1},
                {"printed":"Module._compile","file":"node:internal/modules/cjs/loader","line":1,"column":2}]"#,
        )
        .unwrap();
        assert_eq!(
            patterns_of(&oracle),
            [
                "any*",
                "js: inner @ main.js:3:11",
                "any*",
                "js: (anonymous) @ main.js:9:1",
                "any*"
            ]
        );
    }

    #[test]
    fn names_come_from_the_file() {
        assert_eq!(name_from(Path::new("/x/My Bug_2.js")).unwrap(), "my-bug-2");
        assert!(name_from(Path::new("/x/__.js")).is_err());
    }
}
