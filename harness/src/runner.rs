//! The scenario runner: expands scenarios into jobs (scenario x Node.js
//! version x architecture), runs them on a backend in parallel (bounded),
//! unwinds each core and checks it against V8's stack and the scenario's
//! expectations.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crosswind_unwinder::{self as cw, ThreadStack};

use crate::backend::{self, Backend, RunRequest};
use crate::capture::{self, OracleFrame};
use crate::provision::NodePackage;
use crate::scenario::{self, Scenario};
use crate::{addon, verify};

/// One run: a scenario on one Node.js version and architecture.
#[derive(Clone)]
pub struct Job {
    pub scenario: Arc<Scenario>,
    pub node: String,
    pub arch: String,
}

impl Job {
    /// `family::name::node-VER::ARCH`, the trial name in `cargo test`.
    pub fn id(&self) -> String {
        format!(
            "{}::{}::node-{}::{}",
            self.scenario.family, self.scenario.name, self.node, self.arch
        )
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    Fail,
    /// Failed, and the scenario says why (`known_failure`).
    KnownFailure,
    /// Marked `known_failure` but passed: the mark should go.
    UnexpectedPass,
    /// Could not run here (the reason says why).
    Skipped,
}

/// The result of one job.
#[derive(Debug, Clone, Serialize)]
pub struct JobResult {
    pub id: String,
    pub scenario: String,
    pub node: String,
    pub arch: String,
    pub backend: String,
    pub status: Status,
    pub problems: Vec<String>,
    pub duration_s: f64,
    /// V8's own stack, as printed by the program.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub oracle: Vec<OracleFrameReport>,
    /// crosswind's stack of the crashed thread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crashed_thread: Option<ThreadStack>,
    /// Where the run's files (and core) were kept, on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
    /// With `--update-fixtures`: what happened to the committed snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixture: Option<String>,
    /// `samples` captures: what the samples showed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling: Option<SamplingSummary>,
}

/// The account of a sampling job.
#[derive(Debug, Clone, Serialize)]
pub struct SamplingSummary {
    pub samples: usize,
    /// Samples that passed every check.
    pub passed: usize,
    /// Samples showing the workload's own frames (checked against
    /// `expect.frames`).
    pub workload: usize,
    /// Startup stops discarded before the workload showed up.
    pub discarded: usize,
    pub stats: crate::sample::Stats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_early: Option<String>,
    /// The first failing samples, described (their snapshots are kept).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<String>,
}

impl JobResult {
    /// A result with no checks run yet (status `Fail` until they pass).
    pub fn new(
        id: String,
        scenario: String,
        node: String,
        arch: String,
        backend: String,
    ) -> JobResult {
        JobResult {
            id,
            scenario,
            node,
            arch,
            backend,
            status: Status::Fail,
            problems: Vec::new(),
            duration_s: 0.0,
            oracle: Vec::new(),
            crashed_thread: None,
            kept: None,
            fixture: None,
            sampling: None,
        }
    }
}

/// An oracle frame in reports.
#[derive(Debug, Clone, Serialize)]
pub struct OracleFrameReport {
    pub printed: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

impl From<&OracleFrame> for OracleFrameReport {
    fn from(o: &OracleFrame) -> Self {
        OracleFrameReport {
            printed: o.printed_name.clone(),
            file: o.file.clone(),
            line: o.line,
            column: o.column,
        }
    }
}

/// Loads every scenario under `paths`; a file that does not parse is an
/// error naming it.
pub fn load_scenarios(paths: &[PathBuf]) -> Result<Vec<Arc<Scenario>>> {
    scenario::discover(paths)?
        .iter()
        .map(|p| Scenario::load(p).map(Arc::new))
        .collect()
}

/// Expands scenarios into jobs, filtered by `--node` and `--arch`.
pub fn jobs(scenarios: &[Arc<Scenario>], nodes: &[String], arch: Option<&str>) -> Vec<Job> {
    let mut out = Vec::new();
    for s in scenarios {
        for node in s.node_versions() {
            if !nodes.is_empty() && !nodes.contains(&node) {
                continue;
            }
            for a in s.arches() {
                if arch.is_some_and(|want| want != a) {
                    continue;
                }
                out.push(Job {
                    scenario: s.clone(),
                    node: node.clone(),
                    arch: a,
                });
            }
        }
    }
    out
}

/// The backend for a job: the one asked for, or the default for its arch.
pub fn backend_for(name: Option<&str>, arch: &str) -> Result<Arc<dyn Backend>> {
    Ok(match name {
        Some(n) => Arc::from(backend::by_name(n)?),
        None => Arc::from(backend::default_for(arch)),
    })
}

fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Runs one job to its result. Never panics on bad input: problems become
/// a failed result.
pub async fn run_job(
    job: &Job,
    backend: Arc<dyn Backend>,
    keep: bool,
    fixtures: Option<PathBuf>,
) -> JobResult {
    let start = Instant::now();
    let mut result = JobResult::new(
        job.id(),
        job.scenario.id.clone(),
        job.node.clone(),
        job.arch.clone(),
        backend.name().to_string(),
    );
    if let Some(why) = backend.unavailable(&job.arch) {
        result.status = Status::Skipped;
        result.problems.push(why);
        return result;
    }

    if job.scenario.file.capture.mode == scenario::CaptureMode::Samples
        && backend.name() == "docker"
    {
        if let Some(why) = backend::live_unavailable(&job.arch) {
            result.status = Status::Skipped;
            result.problems.push(why);
            return result;
        }
    }
    let workdir = std::env::temp_dir().join("crosswind-run").join(format!(
        "{}-{}",
        sanitize(&job.id()),
        std::process::id()
    ));
    match execute(job, backend, &workdir, fixtures, &mut result).await {
        Ok(()) => {}
        Err(e) => result.problems.push(format!("{e:#}")),
    }
    let failed = !result.problems.is_empty();
    result.status = match (failed, job.scenario.file.known_failure.is_some()) {
        (false, false) => Status::Pass,
        (true, false) => Status::Fail,
        (true, true) => Status::KnownFailure,
        (false, true) => Status::UnexpectedPass,
    };
    if failed || keep {
        result.kept = Some(workdir.display().to_string());
    } else {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    result.duration_s = start.elapsed().as_secs_f64();
    result
}

async fn execute(
    job: &Job,
    backend: Arc<dyn Backend>,
    workdir: &Path,
    fixtures: Option<PathBuf>,
    result: &mut JobResult,
) -> Result<()> {
    let s = job.scenario.clone();
    let (node_v, arch) = (job.node.clone(), job.arch.clone());
    let node = tokio::task::spawn_blocking(move || NodePackage::ensure(&node_v, &arch)).await??;
    let _ = std::fs::remove_dir_all(workdir);
    std::fs::create_dir_all(workdir).with_context(|| format!("creating {}", workdir.display()))?;
    for (name, text) in &s.file.sources {
        std::fs::write(workdir.join(name), text).with_context(|| format!("writing {name}"))?;
    }
    let base = s.path.parent().unwrap_or(Path::new("."));
    for (name, rel) in &s.file.files {
        let from = base.join(rel);
        std::fs::copy(&from, workdir.join(name)).with_context(|| {
            format!(
                "{}: files.{name}: cannot copy {}",
                s.path.display(),
                from.display()
            )
        })?;
    }
    std::fs::write(workdir.join("oracle.js"), capture::ORACLE_JS)?;
    for spec in s.file.addons.clone() {
        let (n, a) = (node.clone(), job.arch.clone());
        let built = tokio::task::spawn_blocking(move || {
            addon::build(&spec, &n, &a).map(|p| (p, spec.name))
        })
        .await??;
        std::fs::copy(&built.0, workdir.join(format!("{}.node", built.1)))?;
    }
    if s.file.capture.mode == scenario::CaptureMode::Samples {
        let (job, workdir) = (job.clone(), workdir.to_path_buf());
        let live = crate::live::LiveBackend::for_backend(backend.name());
        let summary = tokio::task::spawn_blocking(move || {
            let mut problems = Vec::new();
            let summary = sample_job(&job, node, live, &workdir, &mut problems);
            (summary, problems)
        })
        .await?;
        let (summary, problems) = summary;
        result.problems.extend(problems);
        result.sampling = Some(summary?);
        return Ok(());
    }
    let req = RunRequest {
        node: node.clone(),
        workdir: workdir.to_path_buf(),
        script: s.file.main.clone(),
        flags: s.file.flags.clone(),
        timeout: Duration::from_secs(s.file.capture.timeout_s.max(1)),
    };
    let out = backend.run(&req).await?;
    let Some(core) = out.core else {
        let tail: Vec<&str> = out.stderr.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        anyhow::bail!(
            "no core ({}{}); stderr ends:\n{}",
            out.status,
            if out.timed_out { ", timed out" } else { "" },
            tail.join("\n")
        );
    };
    let oracle = capture::parse_oracle(&out.stderr);
    let resolver = cw::ModuleResolver {
        exe: Some(node.node()),
        sysroot: backend.sysroot(&job.arch),
        search_dirs: vec![workdir.to_path_buf()],
    };
    let oracle_text = capture::oracle_block(&out.stderr);
    let fixture = fixtures.map(|root| fixture_path(&root, job));
    let meta = vec![
        ("node_version".to_string(), job.node.clone()),
        ("arch".to_string(), job.arch.clone()),
        ("scenario".to_string(), s.id.clone()),
        ("capture".to_string(), "abort".to_string()),
        ("backend".to_string(), backend.name().to_string()),
    ];
    let (report, fixture_note) =
        tokio::task::spawn_blocking(move || -> Result<(cw::CoreReport, Option<String>)> {
            let process = cw::open_core(&core, &resolver)?;
            match fixture {
                None => Ok((cw::unwind_core(&process, None), None)),
                Some(path) => {
                    let (snapshot, report) =
                        cw::snapshot::record(&process, meta.into_iter().collect(), oracle_text);
                    let note = update_fixture(&path, &snapshot, &report)?;
                    Ok((report, Some(note)))
                }
            }
        })
        .await??;
    result.fixture = fixture_note;
    check_report(&s, &report, oracle.as_deref(), result);
    Ok(())
}

/// Most failing samples whose snapshots a sampling job keeps.
const KEPT_FAILING_SAMPLES: usize = 20;

/// Most failing samples a sampling job describes in its problems.
const LISTED_FAILING_SAMPLES: usize = 5;

/// Runs a `samples` capture: samples the workload under QEMU's gdbstub,
/// checks every sample, and keeps snapshots of failing ones in `workdir`.
fn sample_job(
    job: &Job,
    node: NodePackage,
    live: crate::live::LiveBackend,
    workdir: &Path,
    problems: &mut Vec<String>,
) -> Result<SamplingSummary> {
    let s = &job.scenario;
    let c = &s.file.capture;
    let mut guest = crate::live::LiveGuest::launch(&crate::live::Launch {
        node,
        flags: s.file.flags.clone(),
        script: PathBuf::from(&s.file.main),
        args: Vec::new(),
        cwd: Some(workdir.to_path_buf()),
        every_insn: c.every_insn,
        log: Some(workdir.join("guest.log")),
        search_dirs: Vec::new(),
        backend: live,
    })?;
    let main = s.file.main.clone();
    let start_at = s.start_at.clone();
    let log = workdir.join("guest.log");
    let wait_for_oracle = s.file.expect.oracle;
    // The workload counts once it runs: its frames are on the stack, and
    // V8's stack has been printed and record() has returned.
    // The log is read only until the oracle shows up in it.
    let oracle_printed = std::cell::Cell::new(!wait_for_oracle);
    let started = move |frames: &[crosswind_unwinder::Frame]| {
        let workload = match &start_at {
            Some(p) => frames.iter().any(|f| p.matches(f)),
            None => verify::shows_script(frames, &main),
        };
        if workload && !oracle_printed.get() {
            oracle_printed.set(crate::live::read_log(&log).contains(capture::ORACLE_END));
        }
        workload
            && oracle_printed.get()
            && !(wait_for_oracle && verify::shows_script(frames, "oracle.js"))
    };
    let plan = crate::sample::SamplingPlan {
        count: c.count,
        interval_ms: c.interval_ms,
        start_when: Some(Box::new(started)),
        // The oracle is printed as the workload starts: no stop is worth
        // making before it.
        ready: wait_for_oracle.then(|| {
            let log = workdir.join("guest.log");
            Box::new(move || crate::live::read_log(&log).contains(capture::ORACLE_END))
                as Box<dyn Fn() -> bool>
        }),
        max_warmup: MAX_WARMUP_STOPS,
        deadline: Some(Instant::now() + Duration::from_secs(c.timeout_s.max(1))),
        progress: false,
    };
    let mut index = 0usize;
    let mut passed = 0usize;
    let mut workload = 0usize;
    let mut seen = vec![false; s.seen.len()];
    let mut failing = Vec::new();
    let mut tiers_seen = std::collections::BTreeSet::new();
    let mut listed = 0usize;
    let mut kept = 0usize;
    let run = crate::sample::sample_guest(&mut guest, &plan, &mut |guest, sample, regs| {
        let (sample_problems, shows_workload) = verify::check_sample(s, sample);
        workload += usize::from(shows_workload);
        for (hit, p) in seen.iter_mut().zip(&s.seen) {
            *hit |= sample.frames.iter().any(|f| p.matches(f));
        }
        for f in &sample.frames {
            if verify::shows_script(std::slice::from_ref(f), &s.file.main) {
                tiers_seen.extend(f.tier);
            }
        }
        if sample_problems.is_empty() {
            passed += 1;
        } else {
            if kept < KEPT_FAILING_SAMPLES {
                let meta =
                    crate::sample::sample_meta(&job.node, &job.arch, index, &s.id, guest.backend());
                let (snapshot, _) = guest.snapshot(sample.tid, regs, meta);
                let path = workdir.join(format!("failing-sample-{index:05}.cwsnap"));
                snapshot
                    .write(&path)
                    .with_context(|| format!("writing {}", path.display()))?;
                kept += 1;
            }
            if listed < LISTED_FAILING_SAMPLES {
                failing.push(format!(
                    "sample {index} (leaf {}): {}",
                    sample
                        .frames
                        .first()
                        .map(|f| f
                            .symbol
                            .clone()
                            .or(f.function.clone())
                            .unwrap_or_else(|| format!("{:#x}", f.pc)))
                        .unwrap_or_default(),
                    sample_problems.join("; ")
                ));
                listed += 1;
            }
        }
        index += 1;
        Ok(())
    })?;
    drop(guest);
    let stats = crate::sample::statistics(&run.samples, run.elapsed_s);
    let total = run.samples.len();
    if total < c.count {
        problems.push(format!(
            "only {total} of {} samples: {}",
            c.count,
            run.ended_early.as_deref().unwrap_or("sampling ended early")
        ));
    }
    let share = 100.0 * passed as f64 / total.max(1) as f64;
    if share < s.file.expect.min_pass_percent {
        problems.push(format!(
            "{passed} of {total} samples ({share:.2}%) pass every check; expect.min_pass_percent is {}",
            s.file.expect.min_pass_percent
        ));
        problems.extend(failing.iter().cloned());
    }
    for (hit, text) in seen.iter().zip(&s.file.expect.seen) {
        if !hit {
            problems.push(format!(
                "no sample has a frame matching expect.seen `{text}`"
            ));
        }
    }
    for t in &s.file.expect.tiers {
        if !tiers_seen.contains(t) {
            problems.push(format!(
                "no frame of {} ran in tier {t:?} (seen: {tiers_seen:?})",
                s.file.main
            ));
        }
    }
    if workload == 0 && total > 0 {
        problems.push("no sample shows the workload's frames".into());
    }
    if s.file.expect.oracle {
        match capture::parse_oracle(&crate::live::read_log(&workdir.join("guest.log"))) {
            Some(oracle) => {
                if !s.chains_match_v8(&verify::oracle_as_frames(&oracle)) {
                    problems.push(format!(
                        "V8's own stack matches neither expect.frames nor expect.any_of, so the patterns are wrong: {}",
                        oracle
                            .iter()
                            .map(|o| format!("{} {:?}:{:?}:{:?}", o.printed_name, o.file, o.line, o.column))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    ));
                }
            }
            None => problems.push(
                "the program printed no oracle (call record() once from the innermost function, or set expect.oracle: false)".into(),
            ),
        }
    }
    Ok(SamplingSummary {
        samples: total,
        passed,
        workload,
        discarded: run.discarded,
        stats,
        ended_early: run.ended_early,
        failing,
    })
}

/// Stops a sampling job discards at most while Node.js starts.
const MAX_WARMUP_STOPS: usize = 5000;

/// Where a job's committed snapshot lives under `root`.
pub fn fixture_path(root: &Path, job: &Job) -> PathBuf {
    root.join(&job.scenario.family).join(format!(
        "{}.node-{}.{}.cwsnap",
        job.scenario.name, job.node, job.arch
    ))
}

/// Writes the fixture (replay-verified) and says what changed.
fn update_fixture(
    path: &Path,
    snapshot: &cw::snapshot::Snapshot,
    report: &cw::CoreReport,
) -> Result<String> {
    let before = cw::snapshot::Snapshot::read(path).ok();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let size = crate::output::write_verified(snapshot, report, path)?;
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

/// Applies every check of a scenario to an unwound core (or a replayed
/// snapshot).
pub fn check_report(
    s: &Scenario,
    report: &cw::CoreReport,
    oracle: Option<&[OracleFrame]>,
    result: &mut JobResult,
) {
    let problems = &mut result.problems;
    for w in &report.warnings {
        problems.push(format!("warning from the unwinder: {w}"));
    }
    let Some(crashed) = report.threads.iter().find(|t| t.crashed) else {
        problems.push("the core has no crashed thread".into());
        return;
    };
    result.crashed_thread = Some(crashed.clone());
    if s.file.expect.oracle {
        match oracle {
            Some(o) => {
                result.oracle = o.iter().map(OracleFrameReport::from).collect();
                verify::compare_with_oracle(crashed, o, problems);
            }
            None => problems.push(
                "the program printed no oracle (call crash() or record() from ./oracle)".into(),
            ),
        }
    }
    if !s.frames.is_empty() && !scenario::sequence_matches(&s.frames, &crashed.frames) {
        problems.push(format!(
            "frames do not match expect.frames: [{}]",
            s.file.expect.frames.join(", ")
        ));
    }
    for (p, text) in s.absent.iter().zip(&s.file.expect.absent) {
        if let Some(i) = crashed.frames.iter().position(|f| p.matches(f)) {
            problems.push(format!("frame {i} matches expect.absent `{text}`"));
        }
    }
    if s.file.expect.reaches_entry {
        for t in &report.threads {
            verify::check_entry(t, problems);
        }
    }
}

/// Counts by status, for the summary line.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub known_failures: usize,
    pub skipped: usize,
    /// Samples taken by sampling jobs, and how many passed every check.
    pub samples: usize,
    pub samples_passed: usize,
}

/// The share of all samples (percent) that must pass every check across
/// a run's sampling jobs (issue 5: 99.5%).
pub const MIN_SAMPLE_PASS_PERCENT: f64 = 99.5;

impl Summary {
    /// Whether the run's samples, taken together, pass often enough.
    pub fn samples_ok(&self) -> bool {
        self.samples == 0
            || 100.0 * self.samples_passed as f64 / self.samples as f64 >= MIN_SAMPLE_PASS_PERCENT
    }
}

impl Summary {
    /// Tallies results; an unexpected pass counts as a failure.
    pub fn of(results: &[JobResult]) -> Summary {
        let mut s = Summary::default();
        for r in results {
            match r.status {
                Status::Pass => s.passed += 1,
                Status::Fail | Status::UnexpectedPass => s.failed += 1,
                Status::KnownFailure => s.known_failures += 1,
                Status::Skipped => s.skipped += 1,
            }
            if let Some(sm) = &r.sampling {
                s.samples += sm.samples;
                s.samples_passed += sm.passed;
            }
        }
        s
    }
}

/// Options of `crosswind run`.
pub struct RunOptions {
    pub nodes: Vec<String>,
    pub arch: Option<String>,
    pub backend: Option<String>,
    pub jobs: usize,
    pub report: Option<PathBuf>,
    pub keep: bool,
    pub paths: Vec<PathBuf>,
    /// Write each run's snapshot under this directory.
    pub update_fixtures: Option<PathBuf>,
}

/// `crosswind run`: 0 when every job passed (known failures aside).
pub fn run_command(opts: RunOptions) -> Result<u8> {
    let scenarios = load_scenarios(&opts.paths)?;
    let jobs = jobs(&scenarios, &opts.nodes, opts.arch.as_deref());
    if jobs.is_empty() {
        anyhow::bail!("no scenario matches (scenarios found: {})", scenarios.len());
    }
    // Provision each (version, arch) once, before the parallel runs.
    let mut pairs: Vec<(String, String)> = jobs
        .iter()
        .map(|j| (j.node.clone(), j.arch.clone()))
        .collect();
    pairs.sort();
    pairs.dedup();
    for (v, a) in &pairs {
        NodePackage::ensure(v, a)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.jobs.max(1))
        .enable_all()
        .build()?;
    let (results, interrupted) = rt.block_on(run_all(
        jobs,
        opts.backend.clone(),
        opts.jobs.max(1),
        opts.keep,
        opts.update_fixtures.clone(),
    ))?;
    for r in &results {
        if let Some(f) = &r.fixture {
            eprintln!("fixture {f}");
        }
    }
    for r in &results {
        if matches!(r.status, Status::Fail | Status::UnexpectedPass) {
            eprint!("{}", crate::report::failure_details(r));
        }
    }
    let known: Vec<&JobResult> = results
        .iter()
        .filter(|r| r.status == Status::KnownFailure)
        .collect();
    if !known.is_empty() {
        eprintln!("known failures:");
        for r in known {
            let scenario = scenarios.iter().find(|s| s.id == r.scenario);
            let reason = scenario
                .and_then(|s| s.file.known_failure.clone())
                .unwrap_or_default();
            eprintln!("  {}: {reason}", r.id);
        }
    }
    if let Some(p) = &opts.report {
        crate::report::write_json(p, &results)?;
    }
    let summary = Summary::of(&results);
    println!("{}", crate::report::summary_line(&summary));
    Ok(if interrupted {
        130
    } else if summary.failed == 0 && summary.skipped == 0 && summary.samples_ok() {
        0
    } else {
        1
    })
}

/// Runs the jobs; the flag says whether Ctrl-C cut the run short.
async fn run_all(
    jobs: Vec<Job>,
    backend: Option<String>,
    parallel: usize,
    keep: bool,
    fixtures: Option<PathBuf>,
) -> Result<(Vec<JobResult>, bool)> {
    let interactive = console::Term::stderr().is_term() && std::env::var_os("CI").is_none();
    let bar = if interactive {
        let b = indicatif::ProgressBar::new(jobs.len() as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {msg}")
        {
            b.set_style(style);
        }
        Some(b)
    } else {
        None
    };
    // The long jobs (sampling) start first, so that the short ones fill
    // the cores at the end instead of one long job running alone.
    let mut jobs = jobs;
    jobs.sort_by_key(|j| j.scenario.file.capture.mode != scenario::CaptureMode::Samples);
    let limit = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut set = tokio::task::JoinSet::new();
    for job in jobs {
        let backend = backend_for(backend.as_deref(), &job.arch)?;
        let limit = limit.clone();
        let fixtures = fixtures.clone();
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            run_job(&job, backend, keep, fixtures).await
        });
    }
    let mut results = Vec::new();
    let mut interrupted = false;
    // SIGTERM (a CI timeout, `kill`) ends the run as Ctrl-C does.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    loop {
        tokio::select! {
            next = set.join_next() => {
                let Some(done) = next else { break };
                let r = done.context("a scenario task failed")?;
                let line = crate::report::result_line(&r);
                match &bar {
                    Some(b) => {
                        b.inc(1);
                        b.println(line);
                    }
                    None => eprintln!("{line}"),
                }
                results.push(r);
            }
            _ = async {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            } => {
                // Dropping the tasks drops their child processes, which are
                // killed on drop: no QEMU survives. Sampling jobs run on
                // blocking threads; they are told to end, and the runtime
                // waits for them when it shuts down.
                crate::live::interrupt_all();
                set.abort_all();
                while set.join_next().await.is_some() {}
                if let Some(b) = &bar {
                    b.abandon();
                }
                eprintln!("interrupted: {} job(s) finished, the rest were stopped", results.len());
                interrupted = true;
                break;
            }
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    results.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((results, interrupted))
}
