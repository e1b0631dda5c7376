//! `crosswind unwind` against `gdb-multiarch -batch -ex bt`, side by side
//! on the same ARM64 Node.js core, as whole commands (process start, module
//! loading and all). Prints the ratio and crosswind's frames per second
//! from criterion's own estimates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use criterion::Criterion;
use crosswind_harness::capture;
use crosswind_harness::provision::{NodePackage, AARCH64_SYSROOT, DEFAULT_NODE};

fn main() {
    let node = match NodePackage::ensure(DEFAULT_NODE, "arm64") {
        Ok(n) => n,
        Err(e) => {
            eprintln!("bench: {e:#} (run `just setup`)");
            std::process::exit(2);
        }
    };
    let programs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/core-programs");
    let dir = std::env::temp_dir().join("crosswind-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the bench directory");
    std::fs::copy(
        programs.join("03-builtin-callbacks.js"),
        dir.join("03-builtin-callbacks.js"),
    )
    .expect("copying the bench program");
    std::fs::write(dir.join("oracle.js"), capture::ORACLE_JS).expect("writing oracle.js");
    let captured = capture::run_to_core(
        &node,
        &dir,
        "03-builtin-callbacks.js",
        &[],
        Duration::from_secs(180),
    )
    .expect("capturing the bench core");
    let core = captured.core.clone();
    let exe = env!("CARGO_BIN_EXE_crosswind");

    let crosswind = |core: &Path, node: &Path| {
        let out = Command::new(exe)
            .arg("unwind")
            .arg(core)
            .arg("--exe")
            .arg(node)
            .args(["--sysroot", AARCH64_SYSROOT, "--format", "json"])
            .output()
            .expect("running crosswind");
        assert!(out.status.success());
        out.stdout
    };
    let doc: serde_json::Value =
        serde_json::from_slice(&crosswind(&core, &node.node())).expect("crosswind JSON");
    let frames: usize = doc["threads"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| t["frames"].as_array().map_or(0, |f| f.len()))
                .sum()
        })
        .unwrap_or(0);

    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(2))
        .configure_from_args();
    let mut group = c.benchmark_group("unwind-core");
    group.bench_function("crosswind", |b| b.iter(|| crosswind(&core, &node.node())));
    group.bench_function("gdb-multiarch", |b| {
        b.iter(|| {
            capture::gdb_backtrace(&node.node(), &core, AARCH64_SYSROOT)
                .expect("running gdb-multiarch")
        })
    });
    group.finish();
    c.final_summary();

    let mean = |id: &str| -> Option<f64> {
        let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/criterion/unwind-core")
            .join(id)
            .join("new/estimates.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
        v["mean"]["point_estimate"].as_f64()
    };
    if let (Some(cw), Some(gdb)) = (mean("crosswind"), mean("gdb-multiarch")) {
        println!(
            "crosswind unwind: {:.1} ms for {frames} frames (all threads), {:.0} frames/s; gdb-multiarch bt: {:.1} ms; gdb/crosswind = {:.1}x",
            cw / 1e6,
            frames as f64 / (cw / 1e9),
            gdb / 1e6,
            gdb / cw
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
