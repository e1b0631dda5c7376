//! Sampling jobs (`capture.mode: samples`): the workload sampled live
//! under a gdbstub, every sample checked, snapshots of failing samples
//! kept.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::job::Job;
use super::result::SamplingSummary;
use crate::capture::{self, verify};
use crate::provision::NodePackage;

/// Most failing samples whose snapshots a sampling job keeps.
const KEPT_FAILING_SAMPLES: usize = 20;

/// Most failing samples a sampling job describes in its problems.
const LISTED_FAILING_SAMPLES: usize = 5;

/// Runs a `samples` capture: samples the workload under QEMU's gdbstub,
/// checks every sample, and keeps snapshots of failing ones in `workdir`.
pub(super) fn sample_job(
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
    let plan = crate::live::sample::SamplingPlan {
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
    let run = crate::live::sample::sample_guest(&mut guest, &plan, &mut |guest, sample, regs| {
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
                let meta = crate::live::sample::sample_meta(
                    &job.node,
                    &job.arch,
                    index,
                    &s.id,
                    guest.backend(),
                );
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
    let stats = crate::live::sample::statistics(&run.samples, run.elapsed_s);
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
