//! The scenario library as `cargo test` trials: one per (scenario, Node.js
//! version, architecture), named `family::name::node-VER::ARCH`. Listing
//! parses the YAML only; no QEMU starts until a trial runs. A trial whose
//! backend cannot run here is ignored, and its kind says why.
//!
//! Only the default Node.js version runs unless `CROSSWIND_NODE` lists
//! others (comma-separated): `just test-arm64` runs every version through
//! `crosswind run`.

use std::path::Path;

use crosswind_harness::run::{self, Status};
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut trials = Vec::new();
    match crosswind_harness::scenario::discover(&[root]) {
        Ok(files) => {
            for file in files {
                match crosswind_harness::scenario::Scenario::load(&file) {
                    Ok(s) => {
                        let s = std::sync::Arc::new(s);
                        for job in run::jobs(
                            &[s],
                            &crosswind_harness::provision::versions_under_test(),
                            None,
                        ) {
                            trials.push(trial(job));
                        }
                    }
                    Err(e) => trials.push(bad_file(&file, format!("{e:#}"))),
                }
            }
        }
        Err(e) => trials.push(bad_file(Path::new("scenarios"), format!("{e:#}"))),
    }
    libtest_mimic::run(&args, trials).exit();
}

fn bad_file(path: &Path, error: String) -> Trial {
    let name = format!("scenario-file::{}", path.display());
    Trial::test(name, move || Err(error.into()))
}

fn trial(job: run::Job) -> Trial {
    let backend = run::backend_for(None, job.arch);
    let unavailable = backend
        .as_ref()
        .ok()
        .and_then(|b| b.unavailable(job.arch.name()));
    let id = job.id();
    let t = Trial::test(id, move || {
        let backend = backend.map_err(|e| Failed::from(format!("{e:#}")))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let r = rt.block_on(run::run_job(&job, backend, false, None));
        match r.status {
            Status::Pass | Status::KnownFailure => Ok(()),
            Status::Skipped => Err(format!("skipped: {}", r.problems.join("; ")).into()),
            Status::Fail | Status::UnexpectedPass => {
                Err(crosswind_harness::report::failure_details(&r).into())
            }
        }
    });
    match unavailable {
        Some(why) => t
            .with_ignored_flag(true)
            .with_kind(format!("ignored: {why}")),
        None => t,
    }
}
