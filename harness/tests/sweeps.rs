//! Instruction sweeps: `crosswind sweep` stops a live Node.js (arm64 under
//! `qemu-aarch64`, x64 under `qemu-x86_64`, through QEMU's gdbstub) at the entry of one function and single-steps it to its
//! return, unwinding at every instruction. Every step must reach the
//! thread's entry and show the callers V8 itself printed (`record()` in
//! the program). One trial each for an interpreted function, a
//! TurboFan-optimized function, a builtin (Array.prototype.map) and an
//! addon's C function built with -fomit-frame-pointer; on the default
//! Node.js line, or each of `CROSSWIND_NODE`, on both architectures
//! (`-- arm64` or `-- x64` keeps to one, as `just test-arm64` and
//! `just test-x64` do).

use std::path::{Path, PathBuf};

use crosswind_harness::live::sweep::{self, SweepOptions, SweepTarget};
use crosswind_harness::provision::{have_command, versions_under_test, NodePackage};
use crosswind_harness::scenario::AddonSpec;
use crosswind_harness::target::TargetArch;
use crosswind_unwinder::v8::Tier;
use libtest_mimic::{Arguments, Failed, Trial};

fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sweep-programs")
}

struct Case {
    name: &'static str,
    script: &'static str,
    flags: &'static [&'static str],
    target: &'static str,
    hit: usize,
    tier: Option<Tier>,
    addon: bool,
    /// Fewest instructions a correct sweep steps through.
    min_steps: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "interpreted-function",
        script: "interpreted.js",
        // --no-maglev where the line knows the flag (Node 20+): Maglev
        // would compile the function otherwise.
        flags: &["--no-opt", "--no-sparkplug", "--no-maglev"],
        target: "js:target",
        hit: 1,
        tier: Some(Tier::Interpreted),
        addon: false,
        min_steps: 100,
    },
    Case {
        name: "optimized-function",
        script: "optimized.js",
        flags: &["--allow-natives-syntax"],
        target: "js:target",
        hit: 1,
        tier: Some(Tier::Turbofan),
        addon: false,
        min_steps: 20,
    },
    Case {
        name: "builtin-array-map",
        script: "builtin.js",
        flags: &["--allow-natives-syntax"],
        target: "builtin:ArrayMap",
        // The first call is the one that prints V8's stack.
        hit: 2,
        tier: None,
        addon: false,
        min_steps: 50,
    },
    Case {
        name: "addon-omit-frame-pointer",
        script: "addon.js",
        flags: &[],
        target: "native:Work@sweep.node",
        hit: 2,
        tier: None,
        addon: true,
        min_steps: 10,
    },
];

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for version in versions_under_test() {
        for arch in TargetArch::ALL {
            let qemu = arch.qemu_program();
            for c in CASES {
                let v = version.clone();
                let trial = Trial::test(
                    format!("sweep::{}::node-{version}::{}", c.name, arch.name()),
                    move || run(c, &v, arch),
                );
                trials.push(if have_command(qemu) {
                    trial
                } else {
                    trial
                        .with_ignored_flag(true)
                        .with_kind(format!("needs {qemu}"))
                });
            }
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

/// Node.js 18 (V8 10.2) has no Maglev, and no `--no-maglev` flag.
fn flags_for(c: &Case, version: &str) -> Vec<String> {
    let has_maglev_flag = !version.starts_with("18.");
    c.flags
        .iter()
        .filter(|f| has_maglev_flag || **f != "--no-maglev")
        .map(|f| f.to_string())
        .collect()
}

fn run(c: &Case, version: &str, arch: TargetArch) -> Result<(), Failed> {
    let node = NodePackage::ensure(version, arch.name())
        .map_err(|e| format!("{e:#} (run `just setup`)"))?;
    let dir = std::env::temp_dir().join("crosswind-tests").join(format!(
        "sweep-{}-{version}-{}-{}",
        c.name,
        arch.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::copy(programs_dir().join(c.script), dir.join(c.script))
        .map_err(|e| format!("{}: {e}", c.script))?;
    std::fs::write(dir.join("oracle.js"), crosswind_harness::capture::ORACLE_JS)?;
    if c.addon {
        let source = std::fs::read_to_string(programs_dir().join("sweep.c"))?;
        let spec = AddonSpec {
            name: "sweep".into(),
            cflags: vec!["-O2".into(), "-fomit-frame-pointer".into()],
            sources: [("sweep.c".to_string(), source)].into_iter().collect(),
        };
        let built = crosswind_harness::addon::build(&spec, &node, arch.name())
            .map_err(|e| format!("{e:#}"))?;
        std::fs::copy(built, dir.join("sweep.node"))?;
    }
    let target: SweepTarget = c.target.parse().map_err(|e| format!("{e:#}"))?;
    let options = SweepOptions {
        node: version.to_string(),
        arch,
        target,
        hit: c.hit,
        tier: c.tier,
        max_steps: 20_000,
        out: None,
        json: false,
        flags: flags_for(c, version),
        script: dir.join(c.script),
        args: Vec::new(),
    };
    let log = dir.join("guest.log");
    let report = sweep::sweep(&options, Path::new(c.script), Some(dir.clone()), &log)
        .map_err(|e| format!("{e:#}"))?;
    let text = sweep::render(&report);
    let mut problems = Vec::new();
    if !report.failures.is_empty() {
        problems.push(format!("{} steps failed", report.failures.len()));
    }
    if let Some(why) = &report.incomplete {
        problems.push(format!("incomplete: {why}"));
    }
    if !report.oracle_compared {
        problems.push("the program printed no V8 stack to compare with".into());
    }
    if report.steps < c.min_steps {
        problems.push(format!(
            "only {} steps (expected at least {})",
            report.steps, c.min_steps
        ));
    }
    if let Some(t) = c.tier {
        if !report.target_tiers.contains(&t) {
            problems.push(format!(
                "the target ran in {:?}, not {t:?}",
                report.target_tiers
            ));
        }
    }
    if problems.is_empty() {
        eprintln!("{}", text.lines().next().unwrap_or(""));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    } else {
        Err(format!("{}\n{text}(kept in {})", problems.join("; "), dir.display()).into())
    }
}
