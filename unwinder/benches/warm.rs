//! Warm unwinding through the library, as a profiler embedding it would
//! run it: every committed fixture (`scenarios/fixtures/`) is replayed
//! once to fill the caches (V8's names, scripts and positions, the CFI
//! rows), then unwound again and again through the same session. Ends
//! with `warm: N frames/s (M ns/frame)` from criterion's estimate.
//!
//! Replay memory is the snapshot's recorded ranges; with the `unicorn`
//! feature frames are also emulated where metadata runs out, as in
//! `crosswind unwind`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::Criterion;
use crosswind_unwinder::snapshot::{self, Snapshot, SnapshotProcess};
use crosswind_unwinder::Session;

fn fixtures() -> Vec<PathBuf> {
    snapshot::files_in_families(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/fixtures"),
    )
}

fn main() {
    let processes: Vec<SnapshotProcess> = fixtures()
        .iter()
        .filter_map(
            |p| match Snapshot::read(p).and_then(|s| SnapshotProcess::new(&s)) {
                Ok(process) => Some(process),
                Err(e) => {
                    eprintln!("warm: skipping {}: {e}", p.display());
                    None
                }
            },
        )
        .collect();
    if processes.is_empty() {
        eprintln!("warm: no fixtures under scenarios/fixtures");
        std::process::exit(2);
    }
    let mut sessions: Vec<Session<&SnapshotProcess>> = processes.iter().map(Session::new).collect();
    // One pass fills every cache; it also gives the frames per pass.
    let frames_per_pass: usize = sessions
        .iter_mut()
        .zip(&processes)
        .map(|(s, p)| {
            s.unwind_all(&p.threads)
                .threads
                .iter()
                .map(|t| t.frames.len())
                .sum::<usize>()
        })
        .sum();
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    let mut group = c.benchmark_group("warm");
    group.bench_function("all-fixtures", |b| {
        b.iter(|| {
            for (s, p) in sessions.iter_mut().zip(&processes) {
                std::hint::black_box(s.unwind_all(&p.threads));
            }
        })
    });
    group.finish();
    let per_pass = criterion_estimate_ns("warm/all-fixtures");
    match per_pass {
        Some(ns) => {
            let per_frame = ns / frames_per_pass.max(1) as f64;
            println!(
                "warm: {:.0} frames/s ({:.0} ns/frame) over {} fixtures, {frames_per_pass} frames a pass",
                1e9 / per_frame,
                per_frame,
                processes.len()
            );
        }
        None => println!("warm: {frames_per_pass} frames a pass (no criterion estimate found)"),
    }
}

/// Criterion's point estimate of the mean, in nanoseconds, from the
/// files it writes under `target/criterion`.
fn criterion_estimate_ns(id: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("criterion").join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    doc["mean"]["point_estimate"].as_f64()
}
