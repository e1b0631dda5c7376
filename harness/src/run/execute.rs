//! Running one job: preparing its directory, running it on a backend to
//! a core (or handing it to the sampler), unwinding the core and checking
//! what came of it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crosswind_unwinder as cw;

use super::fixture::{fixture_path, update_fixture};
use super::job::Job;
use super::result::{JobResult, OracleFrameReport, Status};
use super::sampling::sample_job;
use crate::addon;
use crate::backend::{self, Backend, RunRequest};
use crate::capture::{self, OracleFrame};
use crate::provision::NodePackage;
use crate::scenario::{self, Scenario};
use crate::target::TargetArch;

/// The backend for a job: the one asked for, or the default for its arch.
pub fn backend_for(name: Option<&str>, arch: TargetArch) -> Result<Arc<dyn Backend>> {
    Ok(match name {
        Some(n) => Arc::from(backend::by_name(n)?),
        None => Arc::from(backend::default_for(arch.name())),
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
        job.arch.to_string(),
        backend.name().to_string(),
    );
    if let Some(why) = backend.unavailable(job.arch.name()) {
        result.status = Status::Skipped;
        result.problems.push(why);
        return result;
    }

    if job.scenario.file.capture.mode == scenario::CaptureMode::Samples {
        if let Some(why) = backend::live_unavailable(backend.name(), job.arch.name()) {
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
    let (node_v, arch) = (job.node.clone(), job.arch);
    let node =
        tokio::task::spawn_blocking(move || NodePackage::ensure(&node_v, arch.name())).await??;
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
        let (n, a) = (node.clone(), job.arch.name());
        let built =
            tokio::task::spawn_blocking(move || addon::build(&spec, &n, a).map(|p| (p, spec.name)))
                .await??;
        std::fs::copy(&built.0, workdir.join(format!("{}.node", built.1)))?;
    }
    if s.file.capture.mode == scenario::CaptureMode::Samples {
        let (job, workdir) = (job.clone(), workdir.to_path_buf());
        let live = backend::registry::sampling_guest(backend.name());
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
        sysroot: backend.sysroot(job.arch.name()),
        search_dirs: vec![workdir.to_path_buf()],
    };
    let oracle_text = capture::oracle_block(&out.stderr);
    let fixture = fixtures.map(|root| fixture_path(&root, job));
    let meta = vec![
        ("node_version".to_string(), job.node.clone()),
        ("arch".to_string(), job.arch.to_string()),
        ("scenario".to_string(), s.id.clone()),
        ("capture".to_string(), "abort".to_string()),
        ("backend".to_string(), backend.name().to_string()),
    ];
    let (report, fixture_note) =
        tokio::task::spawn_blocking(move || -> Result<(cw::StackReport, Option<String>)> {
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

/// Applies every check of a scenario to an unwound core (or a replayed
/// snapshot): the scenario's checker ([`crate::scenario::expect`]), its
/// findings put into `result`.
pub fn check_report(
    s: &Scenario,
    report: &cw::StackReport,
    oracle: Option<&[OracleFrame]>,
    result: &mut JobResult,
) {
    let check = s.checker().core(report, oracle);
    result.problems.extend(check.problems);
    if let Some(crashed) = check.crashed {
        result.crashed_thread = Some(crashed.clone());
    }
    if check.oracle_compared {
        if let Some(o) = oracle {
            result.oracle = o.iter().map(OracleFrameReport::from).collect();
        }
    }
}
