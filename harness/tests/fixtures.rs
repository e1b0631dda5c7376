//! Replays the committed snapshots (`scenarios/fixtures/`) with no QEMU and
//! no Node.js binary: each must replay (through Unicorn) to exactly the
//! frames the original core gave, and still pass its scenario's checks
//! against the V8 stack the program printed. Damaged snapshots must fail
//! with an error, never a panic.

use std::path::{Path, PathBuf};

use crosswind_harness::capture;
use crosswind_harness::runner::{self, JobResult, Status};
use crosswind_harness::scenario::Scenario;
use crosswind_unwinder::snapshot::{Snapshot, SnapshotProcess};
use crosswind_unwinder::ThreadStack;
use libtest_mimic::{Arguments, Failed, Trial};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn fixtures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let dir = root().join("fixtures");
    for family in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(family.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if f.path().extension().is_some_and(|e| e == "cwsnap") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

fn main() {
    let args = Arguments::from_args();
    let mut trials: Vec<Trial> = fixtures()
        .into_iter()
        .map(|p| {
            let name = format!(
                "replay::{}",
                p.strip_prefix(root().join("fixtures"))
                    .unwrap_or(&p)
                    .display()
            );
            Trial::test(name, move || replay(&p))
        })
        .collect();
    trials.push(Trial::test("damaged-snapshots", damaged));
    libtest_mimic::run(&args, trials).exit();
}

fn replay(path: &Path) -> Result<(), Failed> {
    let snapshot = Snapshot::read(path).map_err(|e| e.to_string())?;
    let report = SnapshotProcess::new(&snapshot)
        .map_err(|e| e.to_string())?
        .unwind(false);
    let expected: Vec<ThreadStack> =
        serde_json::from_str(snapshot.expected.as_deref().ok_or("no expected frames")?)
            .map_err(|e| format!("expected frames: {e}"))?;
    if report.threads != expected {
        return Err("replay differs from the frames of the original core".into());
    }
    // The scenario's own checks, against the V8 stack the program printed.
    let id = snapshot
        .meta
        .get("scenario")
        .ok_or("no scenario in the provenance")?;
    let scenario =
        Scenario::load(&root().join(format!("{id}.yaml"))).map_err(|e| format!("{e:#}"))?;
    let oracle = snapshot.oracle.as_deref().and_then(capture::parse_oracle);
    let mut result = JobResult {
        id: id.clone(),
        scenario: id.clone(),
        node: snapshot
            .meta
            .get("node_version")
            .cloned()
            .unwrap_or_default(),
        arch: snapshot.meta.get("arch").cloned().unwrap_or_default(),
        backend: "snapshot".into(),
        status: Status::Fail,
        problems: Vec::new(),
        duration_s: 0.0,
        oracle: Vec::new(),
        crashed_thread: None,
        kept: None,
        fixture: None,
    };
    runner::check_report(&scenario, &report, oracle.as_deref(), &mut result);
    // Emulation as an oracle: every function that returns within the
    // budget must return where the static unwinder said.
    let process = SnapshotProcess::new(&snapshot).map_err(|e| e.to_string())?;
    let cross = crosswind_unwinder::emulate::cross_check(
        &process,
        crosswind_unwinder::emulate::DEFAULT_BUDGET,
    );
    eprintln!(
        "{id}: emulation checked {} steps, {} returned, {} disagree",
        cross.checked,
        cross.returned,
        cross.disagreements.len()
    );
    result.problems.extend(cross.disagreements);
    if result.problems.is_empty() {
        Ok(())
    } else {
        Err(crosswind_harness::report::failure_details(&result).into())
    }
}

/// Truncations and flipped bytes of a real snapshot decode to errors.
fn damaged() -> Result<(), Failed> {
    let Some(first) = fixtures().into_iter().next() else {
        return Err("no fixtures committed".into());
    };
    let data = std::fs::read(&first).map_err(|e| e.to_string())?;
    let mut checked = 0;
    for cut in (0..data.len()).step_by(data.len() / 97 + 1) {
        if Snapshot::decode(&data[..cut]).is_ok() {
            return Err(format!("a snapshot truncated to {cut} bytes decoded").into());
        }
        checked += 1;
    }
    for at in (0..data.len()).step_by(data.len() / 89 + 1) {
        let mut d = data.clone();
        d[at] ^= 0x5a;
        if Snapshot::decode(&d).is_ok() {
            return Err(format!("a snapshot with byte {at} flipped decoded").into());
        }
        checked += 1;
    }
    if checked < 100 {
        return Err("too few damaged variants".into());
    }
    Ok(())
}
