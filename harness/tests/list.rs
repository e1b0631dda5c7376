//! `crosswind run --list`: scenarios expanded into their jobs with nothing
//! provisioned, started or run, and malformed files reported with their
//! line and column.

use std::path::Path;
use std::process::{Command, Output};

fn crosswind_list(paths: &[&Path]) -> Output {
    // No PATH and no HOME: listing that tried to start QEMU or to provision
    // Node.js (under ~/.cache) would fail.
    Command::new(env!("CARGO_BIN_EXE_crosswind"))
        .env_clear()
        .args(["run", "--list"])
        .args(paths)
        .output()
        .expect("running crosswind")
}

#[test]
fn the_scenario_library_lists_one_line_per_job() {
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let out = crosswind_list(&[&scenarios.join("sampling"), &scenarios.join("pure-js")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    for line in &lines {
        let (id, rest) = line.split_once(' ').expect("ID [BACKEND] MODE");
        assert_eq!(id.split("::").count(), 4, "{line}");
        assert!(
            [
                "[qemu-user] samples",
                "[native] samples",
                "[qemu-user] core",
                "[native] core"
            ]
            .contains(&rest),
            "{line}"
        );
    }
    // The backend is the host's: native for its own architecture.
    assert!(lines.iter().any(|l| {
        l.starts_with("sampling::gc-allocator::node-20.20.2::arm64 [") && l.ends_with("] samples")
    }));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("pure-js::") && l.ends_with(" core")));
    let mut unique = lines.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), lines.len(), "a job is listed twice");
    assert!(
        stderr.contains(&format!("{} jobs from", lines.len())),
        "{stderr}"
    );
}

#[test]
fn a_malformed_file_is_named_with_its_line_and_column() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let family = dir.path().join("family");
    std::fs::create_dir(&family).expect("a family folder");
    let file = family.join("broken.yaml");
    std::fs::write(&file, "description: x\ncapture:\n  mode: [oops\n").expect("writing");
    let out = crosswind_list(&[dir.path()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("broken.yaml:3:"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
