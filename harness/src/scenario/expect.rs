//! The one checker of a scenario's `expect` block, for core jobs and
//! sampling jobs alike: a stack's checks (entry reached, nothing
//! `absent`, `frames`/`any_of` matched), a core's (the crashed thread
//! against V8's stack), a sample's, and the totals of a sampling run
//! (`seen`, `tiers`, `min_pass_percent`, V8's own stack against the
//! patterns).

use std::collections::{BTreeMap, BTreeSet};

use crosswind_unwinder::v8::Tier;
use crosswind_unwinder::{Frame, FrameKind, StackReport, StopReason, ThreadStack};

use super::pattern::{sequence_matches, Pattern};
use super::Scenario;
use crate::capture::verify;
use crate::capture::OracleFrame;

impl Scenario {
    /// Whether frames match `expect.frames` or one of `expect.any_of`
    /// (true when neither is given).
    pub fn chains_match(&self, frames: &[Frame]) -> bool {
        if self.frames.is_empty() && self.any_of.is_empty() {
            return true;
        }
        (!self.frames.is_empty() && sequence_matches(&self.frames, frames))
            || self.any_of.iter().any(|c| sequence_matches(c, frames))
    }

    /// Whether V8's own stack (no native frames) matches `expect.frames`
    /// or one of `expect.any_of`.
    pub fn chains_match_v8(&self, frames: &[Frame]) -> bool {
        let relax = |c: &[Pattern]| c.iter().map(Pattern::natives_optional).collect::<Vec<_>>();
        if self.frames.is_empty() && self.any_of.is_empty() {
            return true;
        }
        (!self.frames.is_empty() && sequence_matches(&relax(&self.frames), frames))
            || self
                .any_of
                .iter()
                .any(|c| sequence_matches(&relax(c), frames))
    }

    /// The checker of this scenario's expectations.
    pub fn checker(&self) -> Checker<'_> {
        Checker { s: self }
    }
}

/// Checks stacks against one scenario's `expect` block.
#[derive(Clone, Copy)]
pub struct Checker<'a> {
    s: &'a Scenario,
}

/// What checking a core came to.
pub struct CoreCheck<'r> {
    pub problems: Vec<String>,
    /// The crashed thread, if the core has one.
    pub crashed: Option<&'r ThreadStack>,
    /// Whether V8's stack was compared (`expect.oracle` and one printed).
    pub oracle_compared: bool,
}

impl<'a> Checker<'a> {
    /// `expect.reaches_entry`: the thread ends at its entry, with no
    /// unknown frame.
    fn entry(&self, tid: u32, frames: &[Frame], stop: &StopReason, problems: &mut Vec<String>) {
        if self.s.file.expect.reaches_entry {
            verify::check_entry_of(tid, frames, stop, problems);
        }
    }

    /// `expect.absent`: no frame matches any of its patterns.
    fn absent(&self, frames: &[Frame], problems: &mut Vec<String>) {
        for (p, text) in self.s.absent.iter().zip(&self.s.file.expect.absent) {
            if let Some(i) = frames.iter().position(|f| p.matches(f)) {
                problems.push(format!("frame {i} matches expect.absent `{text}`"));
            }
        }
    }

    /// Every check of a core job on an unwound core (or a replayed
    /// snapshot): the unwinder's warnings, the crashed thread against V8's
    /// stack, `expect.frames` and `expect.absent` on it, and every thread
    /// reaching its entry.
    pub fn core<'r>(
        &self,
        report: &'r StackReport,
        oracle: Option<&[OracleFrame]>,
    ) -> CoreCheck<'r> {
        let mut problems = Vec::new();
        for w in &report.warnings {
            problems.push(format!("warning from the unwinder: {w}"));
        }
        let Some(crashed) = report.threads.iter().find(|t| t.crashed) else {
            problems.push("the core has no crashed thread".into());
            return CoreCheck {
                problems,
                crashed: None,
                oracle_compared: false,
            };
        };
        let mut oracle_compared = false;
        if self.s.file.expect.oracle {
            match oracle {
                Some(o) => {
                    oracle_compared = true;
                    verify::compare_with_oracle(crashed, o, &mut problems);
                }
                None => problems.push(
                    "the program printed no oracle (call crash() or record() from ./oracle)".into(),
                ),
            }
        }
        if !self.s.frames.is_empty() && !sequence_matches(&self.s.frames, &crashed.frames) {
            problems.push(format!(
                "frames do not match expect.frames: [{}]",
                self.s.file.expect.frames.join(", ")
            ));
        }
        self.absent(&crashed.frames, &mut problems);
        for t in &report.threads {
            self.entry(t.tid, &t.frames, &t.stop, &mut problems);
        }
        CoreCheck {
            problems,
            crashed: Some(crashed),
            oracle_compared,
        }
    }

    /// Whether a stack shows the workload: a frame of `main`.
    pub fn shows_workload(&self, frames: &[Frame]) -> bool {
        verify::shows_script(frames, &self.s.file.main)
    }

    /// The checks of one sample of a sampling job, and whether it shows
    /// the workload: the thread's entry is reached, no frame is unknown or
    /// matches `expect.absent`, every JavaScript frame is named and
    /// positioned, and samples showing the workload match `expect.frames`
    /// or one of `expect.any_of`.
    pub fn sample(&self, tid: u64, frames: &[Frame], stop: &StopReason) -> (Vec<String>, bool) {
        let mut problems = Vec::new();
        self.entry(tid as u32, frames, stop, &mut problems);
        self.absent(frames, &mut problems);
        if let Some(i) = frames.iter().position(|f| {
            f.kind == FrameKind::Js
                && (f.function.is_none() || f.line.is_none() || f.column.is_none())
        }) {
            problems.push(format!("JavaScript frame {i} lacks a name or position"));
        }
        let workload = self.shows_workload(frames);
        if workload && !self.s.chains_match(frames) {
            problems.push(format!(
                "frames match neither expect.frames nor expect.any_of: {}",
                frames
                    .iter()
                    .map(short_label)
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
        (problems, workload)
    }

    /// A tally of a sampling job's samples, for the run-wide checks.
    pub fn tally(&self) -> SampleTally<'a> {
        SampleTally {
            checker: *self,
            passed: 0,
            workload: 0,
            seen: vec![0; self.s.seen.len()],
            tiers_seen: BTreeMap::new(),
        }
    }
}

/// What a sampling job's samples showed so far.
pub struct SampleTally<'a> {
    checker: Checker<'a>,
    /// Samples that passed every check.
    pub passed: usize,
    /// Samples showing the workload's own frames.
    pub workload: usize,
    /// Per `expect.seen` pattern: how many samples had a frame matching it.
    seen: Vec<usize>,
    /// Per tier, the samples with a frame of `main` running in it.
    tiers_seen: BTreeMap<Tier, usize>,
}

impl SampleTally<'_> {
    /// Checks one sample ([`Checker::sample`]) and counts it; returns its
    /// problems (empty when it passed).
    pub fn add(&mut self, tid: u64, frames: &[Frame], stop: &StopReason) -> Vec<String> {
        let s = self.checker.s;
        let (problems, shows_workload) = self.checker.sample(tid, frames, stop);
        self.workload += usize::from(shows_workload);
        for (hit, p) in self.seen.iter_mut().zip(&s.seen) {
            *hit += usize::from(frames.iter().any(|f| p.matches(f)));
        }
        let tiers: BTreeSet<Tier> = frames
            .iter()
            .filter(|f| verify::shows_script(std::slice::from_ref(*f), &s.file.main))
            .filter_map(|f| f.tier)
            .collect();
        for t in tiers {
            *self.tiers_seen.entry(t).or_default() += 1;
        }
        if problems.is_empty() {
            self.passed += 1;
        }
        problems
    }

    /// Per `expect.seen` pattern, as written, the samples with a frame
    /// matching it.
    pub fn seen(&self) -> Vec<(String, usize)> {
        let expect = &self.checker.s.file.expect;
        expect
            .seen
            .iter()
            .cloned()
            .zip(self.seen.iter().copied())
            .collect()
    }

    /// Per tier (`Interpreted`, `Baseline`, ...), the samples with a frame
    /// of `main` running in it.
    pub fn tiers(&self) -> Vec<(String, usize)> {
        self.tiers_seen
            .iter()
            .map(|(t, n)| (format!("{t:?}"), *n))
            .collect()
    }

    /// [`Self::seen`] as one line, for a failing `expect.seen`.
    fn seen_counts(&self) -> String {
        let counts: Vec<String> = self
            .seen()
            .iter()
            .map(|(text, n)| format!("`{text}` in {n}"))
            .collect();
        format!("samples per pattern: {}", counts.join(", "))
    }

    /// The run-wide checks once `total` samples were taken: the share that
    /// passed (`failing` describes the first failing ones), `expect.seen`,
    /// `expect.tiers`, the workload shown at all, and V8's own stack
    /// (`oracle` reads it, only with `expect.oracle`) against the patterns.
    pub fn finish(
        &self,
        total: usize,
        failing: &[String],
        oracle: impl FnOnce() -> Option<Vec<OracleFrame>>,
        problems: &mut Vec<String>,
    ) {
        let s = self.checker.s;
        let expect = &s.file.expect;
        let passed = self.passed;
        let share = 100.0 * passed as f64 / total.max(1) as f64;
        if share < expect.min_pass_percent {
            problems.push(format!(
                "{passed} of {total} samples ({share:.2}%) pass every check; expect.min_pass_percent is {}",
                expect.min_pass_percent
            ));
            problems.extend(failing.iter().cloned());
        }
        for (hits, text) in self.seen.iter().zip(&expect.seen) {
            if *hits == 0 {
                problems.push(format!(
                    "no sample has a frame matching expect.seen `{text}` ({})",
                    self.seen_counts()
                ));
            }
        }
        let tiers_seen = &self.tiers_seen;
        for t in &expect.tiers {
            if !tiers_seen.contains_key(t) {
                problems.push(format!(
                    "no frame of {} ran in tier {t:?} (samples per tier: {tiers_seen:?})",
                    s.file.main
                ));
            }
        }
        if self.workload == 0 && total > 0 {
            problems.push("no sample shows the workload's frames".into());
        }
        if expect.oracle {
            match oracle() {
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
    }
}

/// A frame in one-line messages.
fn short_label(f: &Frame) -> String {
    match f.kind {
        FrameKind::Js => format!(
            "js {}@{}:{}:{}",
            f.function.as_deref().unwrap_or("?"),
            f.file
                .as_deref()
                .map(|p| p.rsplit('/').next().unwrap_or(p))
                .unwrap_or(""),
            f.line.unwrap_or(0),
            f.column.unwrap_or(0)
        ),
        _ => f
            .function
            .clone()
            .or(f.symbol.clone())
            .unwrap_or_else(|| format!("{:#x}", f.pc)),
    }
}
