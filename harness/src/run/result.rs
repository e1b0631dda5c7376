//! What a job comes to: its status, its problems, what its samples
//! showed, and the counts of a whole run. Plain data, shared by the runner
//! and the report.

use serde::Serialize;

use crosswind_unwinder::ThreadStack;

use crate::capture::OracleFrame;
use crate::live::sample::Stats;

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
    /// Per `expect.seen` pattern, the samples with a frame matching it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<(String, usize)>,
    /// Per tier, the samples with a frame of `main` running in it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<(String, usize)>,
    pub stats: Stats,
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
            // As V8 prints it: awaiting callers with `async `, combinators
            // with their index.
            printed: match (o.is_async, o.promise_index) {
                (true, Some(i)) => format!("async {} (index {i})", o.printed_name),
                (true, None) => format!("async {}", o.printed_name),
                _ => o.printed_name.clone(),
            },
            file: o.file.clone(),
            line: o.line,
            column: o.column,
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
