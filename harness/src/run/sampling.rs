//! Sampling jobs (`capture.mode: samples`): the workload sampled live
//! under a gdbstub, every sample checked by the scenario's checker
//! ([`crate::scenario::expect`]), snapshots of failing samples kept.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crosswind_unwinder::arch::Regs;
use crosswind_unwinder::Frame;

use super::job::Job;
use super::result::SamplingSummary;
use crate::capture::{self, verify};
use crate::live::sample::{folded, sample_guest, sample_meta, statistics, Sample, SamplingPlan};
use crate::live::{read_log, Launch, LiveBackend, LiveGuest};
use crate::provision::NodePackage;
use crate::scenario::Scenario;

/// The file, in a sampling job's directory, of every sample's stack as
/// folded lines (outermost frame first, then the count).
const SAMPLES_FOLDED: &str = "samples.folded";

/// Most failing samples whose snapshots a sampling job keeps.
const KEPT_FAILING_SAMPLES: usize = 20;

/// Most failing samples a sampling job describes in its problems.
const LISTED_FAILING_SAMPLES: usize = 5;

/// Stops a sampling job discards at most while Node.js starts.
const MAX_WARMUP_STOPS: usize = 5000;

/// How long a sampling job's stop lasts at least (see `SamplingPlan::min_stop`).
const SCENARIO_MIN_STOP: Duration = Duration::from_millis(40);

/// Runs a `samples` capture: samples the workload under QEMU's gdbstub,
/// checks every sample, and keeps snapshots of failing ones in `workdir`.
pub(super) fn sample_job(
    job: &Job,
    node: NodePackage,
    live: LiveBackend,
    workdir: &Path,
    problems: &mut Vec<String>,
) -> Result<SamplingSummary> {
    let s = &job.scenario;
    let c = &s.file.capture;
    let mut guest = launch(s, node, live, workdir)?;
    let plan = plan(s, workdir);
    let mut tally = s.checker().tally();
    let mut failing = FailingSamples::new(job, workdir);
    let mut index = 0usize;
    let run = sample_guest(&mut guest, &plan, &mut |guest, sample, regs| {
        let sample_problems = tally.add(sample.tid, &sample.frames, &sample.stop);
        if !sample_problems.is_empty() {
            failing.add(guest, index, sample, regs, &sample_problems)?;
        }
        index += 1;
        Ok(())
    })?;
    drop(guest);
    // Every sample's stack, for a kept run directory: what a failing
    // `expect.seen` or a low pass share was made of.
    std::fs::write(workdir.join(SAMPLES_FOLDED), folded(&run.samples))
        .with_context(|| format!("writing {SAMPLES_FOLDED} in {}", workdir.display()))?;
    let stats = statistics(&run.samples, run.elapsed_s);
    let total = run.samples.len();
    if total < c.count {
        problems.push(format!(
            "only {total} of {} samples: {}",
            c.count,
            run.ended_early.as_deref().unwrap_or("sampling ended early")
        ));
    }
    let oracle = || capture::parse_oracle(&read_log(&workdir.join("guest.log")));
    tally.finish(total, &failing.described, oracle, problems);
    Ok(SamplingSummary {
        samples: total,
        passed: tally.passed,
        workload: tally.workload,
        discarded: run.discarded,
        seen: tally.seen(),
        tiers: tally.tiers(),
        stats,
        ended_early: run.ended_early,
        failing: failing.described,
    })
}

/// Starts the scenario's program under a gdbstub, in `workdir`.
fn launch(s: &Scenario, node: NodePackage, live: LiveBackend, workdir: &Path) -> Result<LiveGuest> {
    LiveGuest::launch(&Launch {
        node,
        flags: s.file.flags.clone(),
        script: PathBuf::from(&s.file.main),
        args: Vec::new(),
        cwd: Some(workdir.to_path_buf()),
        every_insn: s.file.capture.every_insn,
        log: Some(workdir.join("guest.log")),
        search_dirs: Vec::new(),
        backend: live,
    })
}

/// How a scenario is sampled: `capture.count` samples at
/// `capture.interval_ms`, kept once the workload runs.
fn plan(s: &Scenario, workdir: &Path) -> SamplingPlan {
    let c = &s.file.capture;
    let wait_for_oracle = s.file.expect.oracle;
    SamplingPlan {
        count: c.count,
        interval_ms: c.interval_ms,
        start_when: Some(Box::new(workload_started(s, workdir))),
        // The oracle is printed as the workload starts: no stop is worth
        // making before it.
        ready: wait_for_oracle.then(|| {
            let log = workdir.join("guest.log");
            Box::new(move || read_log(&log).contains(capture::ORACLE_END)) as Box<dyn Fn() -> bool>
        }),
        // The scenarios' expectations of what shows up (tiers reached,
        // garbage collection) were set when a stop took about this long
        // over the gdbstub; reading memory from QEMU made stops 30x
        // shorter and starved the helper threads that tier code up.
        min_stop: SCENARIO_MIN_STOP,
        max_warmup: MAX_WARMUP_STOPS,
        deadline: Some(Instant::now() + Duration::from_secs(c.timeout_s.max(1))),
        progress: false,
    }
}

/// Whether a stop's frames show that the workload runs: its frames are on
/// the stack (or `capture.start_at` matches), and V8's stack has been
/// printed and record() has returned. The log is read only until the
/// oracle shows up in it.
fn workload_started(s: &Scenario, workdir: &Path) -> impl Fn(&[Frame]) -> bool {
    let main = s.file.main.clone();
    let start_at = s.start_at.clone();
    let log = workdir.join("guest.log");
    let wait_for_oracle = s.file.expect.oracle;
    let oracle_printed = std::cell::Cell::new(!wait_for_oracle);
    move |frames: &[Frame]| {
        let workload = match &start_at {
            Some(p) => frames.iter().any(|f| p.matches(f)),
            None => verify::shows_script(frames, &main),
        };
        if workload && !oracle_printed.get() {
            oracle_printed.set(read_log(&log).contains(capture::ORACLE_END));
        }
        workload
            && oracle_printed.get()
            && !(wait_for_oracle && verify::shows_script(frames, "oracle.js"))
    }
}

/// The failing samples of a job: the first ones kept as snapshots, the
/// first few described.
struct FailingSamples<'a> {
    job: &'a Job,
    workdir: &'a Path,
    kept: usize,
    described: Vec<String>,
}

impl<'a> FailingSamples<'a> {
    fn new(job: &'a Job, workdir: &'a Path) -> Self {
        FailingSamples {
            job,
            workdir,
            kept: 0,
            described: Vec::new(),
        }
    }

    /// Records sample `index`, which failed with `problems`, while the
    /// guest is still stopped at it.
    fn add(
        &mut self,
        guest: &mut LiveGuest,
        index: usize,
        sample: &Sample,
        regs: Regs,
        problems: &[String],
    ) -> Result<()> {
        let job = self.job;
        if self.kept < KEPT_FAILING_SAMPLES {
            let meta = sample_meta(
                &job.node,
                job.arch.name(),
                index,
                &job.scenario.id,
                guest.backend(),
            );
            let (snapshot, _) = guest.snapshot(sample.tid, regs, meta);
            let path = self
                .workdir
                .join(format!("failing-sample-{index:05}.cwsnap"));
            snapshot
                .write(&path)
                .with_context(|| format!("writing {}", path.display()))?;
            self.kept += 1;
        }
        if self.described.len() < LISTED_FAILING_SAMPLES {
            self.described.push(format!(
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
                problems.join("; ")
            ));
        }
        Ok(())
    }
}
