//! `crosswind repro` on a reporter's script with no crosswind helpers in
//! it: the scenario it writes must expect the script's frames as V8
//! printed them and pass `crosswind run` unedited, on arm64 under QEMU and
//! on x64 natively (on an x86-64 host). A script that never aborts is
//! refused and leaves no scenario behind.

use std::path::Path;
use std::process::Command;

use crosswind_harness::provision::DEFAULT_NODE;
use crosswind_harness::target::TargetArch;

const CROSSWIND: &str = env!("CARGO_BIN_EXE_crosswind");

fn program(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/repro-programs")
        .join(name)
}

fn crosswind(args: &[&str]) -> (i32, String) {
    let out = Command::new(CROSSWIND)
        .args(args)
        .output()
        .expect("running crosswind");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn repro_passes_on(arch: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().display().to_string();
    let script = program("bug-report.js").display().to_string();
    let (code, text) = crosswind(&[
        "repro",
        &script,
        "--arch",
        arch,
        "--node",
        DEFAULT_NODE,
        "--out",
        &out,
    ]);
    assert_eq!(code, 0, "repro on {arch} failed:\n{text}");
    let yaml_path = dir.path().join("pure-js/bug-report.yaml");
    let yaml = std::fs::read_to_string(&yaml_path).expect("the scenario written");
    // V8's positions of the script's frames (tests/repro-programs/bug-report.js).
    for want in [
        "js: validate @ main.js:4:13",
        "js: (anonymous) @ main.js:9:28",
        "js: checkout @ main.js:9:17",
        "js: (anonymous) @ main.js:11:1",
    ] {
        assert!(yaml.contains(want), "{want} missing from:\n{yaml}");
    }
    // The scenario passes as written.
    let (code, text) = crosswind(&[
        "run",
        "--arch",
        arch,
        "--node",
        DEFAULT_NODE,
        &yaml_path.display().to_string(),
    ]);
    assert_eq!(
        code, 0,
        "crosswind run on the written scenario failed:\n{text}"
    );
}

#[test]
fn repro_writes_a_passing_scenario_on_arm64() {
    repro_passes_on("arm64");
}

#[test]
fn repro_writes_a_passing_scenario_on_x64() {
    if TargetArch::host() != Some(TargetArch::X64) {
        eprintln!("skipped: x64 scenarios run natively on an x86-64 host only");
        return;
    }
    repro_passes_on("x64");
}

#[test]
fn a_script_that_never_aborts_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("fine.js");
    std::fs::write(&script, "console.log('all good');\n").expect("writing the script");
    let out = dir.path().join("scen");
    let (code, text) = crosswind(&[
        "repro",
        &script.display().to_string(),
        "--arch",
        "arm64",
        "--node",
        DEFAULT_NODE,
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("process.abort()"), "{text}");
    assert!(
        !out.join("pure-js/fine.yaml").exists(),
        "a scenario was left behind"
    );
}
