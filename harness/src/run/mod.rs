//! `crosswind run`: scenarios expanded into jobs (scenario x Node.js
//! version x architecture), run on a backend in parallel (bounded), each
//! core unwound and checked against V8's stack and the scenario's
//! expectations. A job is in [`job`], running it in [`execute`], a
//! sampling job in [`sampling`], what
//! it comes to in [`result`], committed snapshots in [`fixture`].

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::provision::NodePackage;
use crate::scenario;
use crate::target::TargetArch;

pub mod execute;
pub mod fixture;
pub mod job;
pub mod result;
pub mod sampling;

pub use execute::{backend_for, check_report, run_job};
pub use fixture::fixture_path;
pub use job::{jobs, load_scenarios, Job};
pub use result::{
    JobResult, OracleFrameReport, SamplingSummary, Status, Summary, MIN_SAMPLE_PASS_PERCENT,
};

/// Options of `crosswind run`.
pub struct RunOptions {
    pub nodes: Vec<String>,
    pub arch: Option<TargetArch>,
    pub backend: Option<String>,
    pub jobs: usize,
    pub report: Option<PathBuf>,
    pub keep: bool,
    pub paths: Vec<PathBuf>,
    /// Write each run's snapshot under this directory.
    pub update_fixtures: Option<PathBuf>,
    /// Only list the jobs ([`list_command`]).
    pub list: bool,
}

/// `crosswind run --list`: the jobs the paths expand to, one a line
/// (`ID [BACKEND] MODE`), with nothing provisioned, started or run. A file
/// that does not parse is an error naming it, with its line and column.
pub fn list_command(opts: &RunOptions) -> Result<u8> {
    let scenarios = load_scenarios(&opts.paths)?;
    let jobs = jobs(&scenarios, &opts.nodes, opts.arch);
    for job in &jobs {
        let backend = backend_for(opts.backend.as_deref(), job.arch)?;
        let mode = match job.scenario.file.capture.mode {
            scenario::CaptureMode::Abort => "core",
            scenario::CaptureMode::Samples => "samples",
        };
        println!("{} [{}] {mode}", job.id(), backend.name());
    }
    eprintln!("{} jobs from {} scenarios", jobs.len(), scenarios.len());
    Ok(0)
}

/// `crosswind run`: 0 when every job passed (known failures aside).
pub fn run_command(opts: RunOptions) -> Result<u8> {
    if opts.list {
        return list_command(&opts);
    }
    let scenarios = load_scenarios(&opts.paths)?;
    let jobs = jobs(&scenarios, &opts.nodes, opts.arch);
    if jobs.is_empty() {
        anyhow::bail!("no scenario matches (scenarios found: {})", scenarios.len());
    }
    // Provision each (version, arch) once, before the parallel runs.
    let mut pairs: Vec<(String, TargetArch)> =
        jobs.iter().map(|j| (j.node.clone(), j.arch)).collect();
    pairs.sort();
    pairs.dedup();
    for (v, a) in &pairs {
        NodePackage::ensure(v, a.name())?;
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
        let backend = backend_for(backend.as_deref(), job.arch)?;
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
