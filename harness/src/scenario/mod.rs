//! Scenarios: the YAML schema (`scenarios/<family>/<name>.yaml`, documented
//! in `scenarios/README.md`) and loading it with located errors. The frame
//! patterns that express expectations are in [`pattern`], their checker in
//! [`expect`].
//!
//! YAML is parsed with `serde-saphyr`: `serde_yaml` is archived, and
//! saphyr is maintained, panic-free on malformed input, and reports line and
//! column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::provision::NODE_VERSIONS;
use crate::target::TargetArch;

pub mod expect;
pub mod pattern;

pub use pattern::{sequence_matches, Pattern, ANONYMOUS};

/// Architectures scenarios run on, as Node.js packages name them.
pub const ARCHES: &[&str] = &[TargetArch::Arm64.name(), TargetArch::X64.name()];

/// A scenario file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// One line saying what the scenario exercises.
    #[serde(default)]
    pub description: String,
    /// Node.js versions; default: every supported version.
    #[serde(default)]
    pub node: Vec<String>,
    /// `arm64` and/or `x64`; default: both.
    #[serde(default)]
    pub arch: Vec<String>,
    /// Extra node flags.
    #[serde(default)]
    pub flags: Vec<String>,
    /// The script node runs; default `main.js`.
    #[serde(default = "default_main")]
    pub main: String,
    /// Files written next to the script: name -> contents.
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
    /// Files copied next to the script: name -> path relative to the
    /// scenario file.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Native addons built for the target and placed as `<name>.node`.
    #[serde(default)]
    pub addons: Vec<AddonSpec>,
    #[serde(default)]
    pub capture: Capture,
    #[serde(default)]
    pub expect: Expect,
    /// Marks a scenario expected to fail, with the open reason.
    #[serde(default)]
    pub known_failure: Option<String>,
}

fn default_main() -> String {
    "main.js".into()
}

/// An N-API addon: C (`.c`) or C++ (`.cc`, `.cpp`) sources.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddonSpec {
    pub name: String,
    /// Compiler flags (`-O2`, `-fomit-frame-pointer`, ...).
    #[serde(default)]
    pub cflags: Vec<String>,
    /// Source name -> contents.
    pub sources: BTreeMap<String, String>,
}

/// How the stack is captured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    #[serde(default)]
    pub mode: CaptureMode,
    /// Seconds before the run is killed.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// `samples` mode: how many samples to take.
    #[serde(default = "default_sample_count")]
    pub count: usize,
    /// `samples` mode: mean interval between samples (jittered).
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// `samples` mode: let every instruction be a sample point (QEMU one
    /// instruction per translation block).
    #[serde(default = "yes")]
    pub every_insn: bool,
    /// `samples` mode: samples count from the first stop whose stack has
    /// a frame matching this pattern (default: any frame of `main`);
    /// stops before it, in Node.js startup, are discarded.
    #[serde(default)]
    pub start_at: Option<String>,
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            mode: CaptureMode::Abort,
            timeout_s: default_timeout(),
            count: default_sample_count(),
            interval_ms: default_interval_ms(),
            every_insn: true,
            start_at: None,
        }
    }
}

fn default_timeout() -> u64 {
    120
}

fn default_sample_count() -> usize {
    500
}

fn default_interval_ms() -> u64 {
    5
}

/// Capture modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureMode {
    /// The program aborts (or dies of a fatal signal) and leaves a core.
    #[default]
    Abort,
    /// The running program is sampled through QEMU's gdbstub, as a
    /// profiler would; the expectations hold for every sample.
    Samples,
}

/// Expectations on the captured stacks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Patterns the crashed thread's frames must match, innermost first,
    /// anchored at both ends (use `any*` for runs of frames).
    #[serde(default)]
    pub frames: Vec<String>,
    /// Patterns no frame of the crashed thread may match.
    #[serde(default)]
    pub absent: Vec<String>,
    /// Every thread must reach its entry.
    #[serde(default = "yes")]
    pub reaches_entry: bool,
    /// Compare with V8's own stack printed by `oracle.js` (the program
    /// must call `crash()` or `record()`). In `samples` captures the
    /// program calls `record()` once from its innermost function, and V8's
    /// stack must itself match `frames` or one of `any_of`: the positions
    /// the patterns pin are V8's.
    #[serde(default = "yes")]
    pub oracle: bool,
    /// `samples` captures: alternative frame sequences; a sample showing
    /// the workload must match one of them (or `frames`).
    #[serde(default)]
    pub any_of: Vec<Vec<String>>,
    /// `samples` captures: patterns each of which must match a frame of at
    /// least one sample (`native: uv__io_poll`).
    #[serde(default)]
    pub seen: Vec<String>,
    /// `samples` captures: tiers (`interpreted`, `baseline`, `maglev`,
    /// `turbofan`) each of which some frame of `main` must show in at
    /// least one sample.
    #[serde(default)]
    pub tiers: Vec<crosswind_unwinder::v8::Tier>,
    /// `samples` captures: the share of samples (percent) that must pass
    /// every check.
    #[serde(default = "hundred")]
    pub min_pass_percent: f64,
}

fn hundred() -> f64 {
    100.0
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            frames: Vec::new(),
            absent: Vec::new(),
            reaches_entry: true,
            oracle: true,
            any_of: Vec::new(),
            seen: Vec::new(),
            tiers: Vec::new(),
            min_pass_percent: hundred(),
        }
    }
}

fn yes() -> bool {
    true
}

/// A loaded, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `<family>/<name>`.
    pub id: String,
    pub family: String,
    pub name: String,
    pub path: PathBuf,
    pub file: ScenarioFile,
    pub frames: Vec<Pattern>,
    pub absent: Vec<Pattern>,
    pub any_of: Vec<Vec<Pattern>>,
    pub seen: Vec<Pattern>,
    pub start_at: Option<Pattern>,
}

impl Scenario {
    /// Loads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        Self::parse(path, &text)
    }

    /// Parses scenario text; `path` names it in errors and anchors `files`.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario> {
        let file: ScenarioFile = serde_saphyr::from_str(text).map_err(|e| {
            let at = e
                .location()
                .filter(|l| l.line() > 0)
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            let message = one_line(&e.to_string());
            anyhow::anyhow!("{}{at}: {}", path.display(), without_position(&message))
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let family = path
            .parent()
            .and_then(|p| p.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Semantic errors carry no position from the parser: they point at
        // the first occurrence of the offending key or value instead.
        let bad_at = |needle: &str, what: String| {
            anyhow::anyhow!("{}{}: {what}", path.display(), position_of(text, needle))
        };
        for v in &file.node {
            if !NODE_VERSIONS.contains(&v.as_str()) {
                return Err(bad_at(
                    v,
                    format!(
                        "node: {v} is not a supported version (supported: {})",
                        NODE_VERSIONS.join(", ")
                    ),
                ));
            }
        }
        for a in &file.arch {
            if !ARCHES.contains(&a.as_str()) {
                return Err(bad_at(
                    a,
                    format!("arch: '{a}' is not one of {}", ARCHES.join(", ")),
                ));
            }
        }
        if file.capture.mode == CaptureMode::Samples
            && (file.capture.count == 0 || file.capture.interval_ms == 0)
        {
            return Err(bad_at(
                "capture",
                "capture: count and interval_ms must be positive".into(),
            ));
        }
        if !(0.0..=100.0).contains(&file.expect.min_pass_percent) {
            return Err(bad_at(
                "min_pass_percent",
                "expect.min_pass_percent: must be between 0 and 100".into(),
            ));
        }
        if !file.sources.contains_key(&file.main) && !file.files.contains_key(&file.main) {
            return Err(bad_at(
                &file.main,
                format!("main: '{}' is not among sources or files", file.main),
            ));
        }
        for name in file.sources.keys().chain(file.files.keys()) {
            check_file_name(name).map_err(|e| bad_at(name, format!("sources: {e}")))?;
        }
        for a in &file.addons {
            check_file_name(&a.name).map_err(|e| bad_at(&a.name, format!("addons: {e}")))?;
            if a.sources.is_empty() {
                return Err(bad_at(
                    &a.name,
                    format!("addons: '{}' has no sources", a.name),
                ));
            }
            for s in a.sources.keys() {
                check_file_name(s).map_err(|e| bad_at(s, format!("addons: {e}")))?;
                if !(s.ends_with(".c")
                    || s.ends_with(".cc")
                    || s.ends_with(".cpp")
                    || s.ends_with(".h"))
                {
                    return Err(bad_at(
                        s,
                        format!("addons: '{s}' is not a .c, .cc, .cpp or .h file"),
                    ));
                }
            }
        }
        if let Some(r) = &file.known_failure {
            if r.trim().is_empty() {
                return Err(bad_at(
                    "known_failure",
                    "known_failure: give the open reason".into(),
                ));
            }
        }
        let parse_all = |list: &[String], field: &str| -> Result<Vec<Pattern>> {
            list.iter()
                .enumerate()
                .map(|(i, p)| {
                    Pattern::parse(p).map_err(|e| bad_at(p, format!("expect.{field}[{i}]: {e}")))
                })
                .collect()
        };
        let frames = parse_all(&file.expect.frames, "frames")?;
        let absent = parse_all(&file.expect.absent, "absent")?;
        let any_of = file
            .expect
            .any_of
            .iter()
            .enumerate()
            .map(|(i, chain)| parse_all(chain, &format!("any_of[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let seen = parse_all(&file.expect.seen, "seen")?;
        let sampling_only = [
            ("any_of", !any_of.is_empty()),
            ("seen", !seen.is_empty()),
            ("tiers", !file.expect.tiers.is_empty()),
        ];
        for (field, used) in sampling_only {
            if used && file.capture.mode != CaptureMode::Samples {
                return Err(bad_at(
                    field,
                    format!("expect.{field}: only for `capture.mode: samples`"),
                ));
            }
        }
        let start_at = match &file.capture.start_at {
            Some(p) => {
                Some(Pattern::parse(p).map_err(|e| bad_at(p, format!("capture.start_at: {e}")))?)
            }
            None => None,
        };
        Ok(Scenario {
            id: format!("{family}/{name}"),
            family,
            name,
            path: path.to_path_buf(),
            file,
            frames,
            absent,
            any_of,
            seen,
            start_at,
        })
    }

    /// Node.js versions this scenario runs on.
    pub fn node_versions(&self) -> Vec<String> {
        if self.file.node.is_empty() {
            NODE_VERSIONS.iter().map(|v| v.to_string()).collect()
        } else {
            self.file.node.clone()
        }
    }

    /// Architectures this scenario runs on.
    pub fn arches(&self) -> Vec<TargetArch> {
        if self.file.arch.is_empty() {
            TargetArch::ALL.to_vec()
        } else {
            // Checked against ARCHES when the scenario was parsed.
            self.file
                .arch
                .iter()
                .filter_map(|a| TargetArch::parse(a))
                .collect()
        }
    }
}

/// `:line:column` (1-based) of the first occurrence of `needle` in
/// `text`, or nothing when it does not occur (or is empty).
fn position_of(text: &str, needle: &str) -> String {
    if needle.is_empty() {
        return String::new();
    }
    let Some(at) = text.find(needle) else {
        return String::new();
    };
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(":{line}:{column}")
}

/// The parser's message without its own `line N column M: ` prefix, which
/// the error already gives as `:N:M`.
fn without_position(message: &str) -> &str {
    let Some(rest) = message.strip_prefix("line ") else {
        return message;
    };
    let mut words = rest.splitn(4, ' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some(line), Some("column"), Some(column), Some(tail))
            if line.bytes().all(|b| b.is_ascii_digit())
                && column
                    .strip_suffix(':')
                    .is_some_and(|c| c.bytes().all(|b| b.is_ascii_digit())) =>
        {
            tail
        }
        _ => message,
    }
}

/// saphyr's message without its source snippet: `line L column C: what`.
fn one_line(s: &str) -> String {
    let first = s.lines().next().unwrap_or(s);
    let first = first.split(" --> ").next().unwrap_or(first);
    first.trim().trim_start_matches("error: ").to_string()
}

fn check_file_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a plain file name (letters, digits, . _ -)"
        ))
    }
}

/// Finds scenario files under `paths` (files or directories), sorted.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out, 0)?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{}: no such scenario file or directory", p.display());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if depth > 16 {
        return Ok(());
    }
    for e in std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out, depth + 1)?;
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn located_yaml_errors() {
        let e = Scenario::parse(
            Path::new("s/x.yaml"),
            "main: main.js\nsources:\n  main.js: 1\nexpect:\n  frames: [\"bad: x\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("s/x.yaml:5:13: expect.frames[0]"), "{e}");
        let e = Scenario::parse(
            Path::new("s/x.yaml"),
            "sources:\n  main.js: |\n    x\nbogus_field: 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line") || e.contains("4"), "{e}");
    }
}
